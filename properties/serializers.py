import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request

from core.serializers import IdField, QueryParamsSerializer
from properties.models import Amenity, Currency, Property, PropertyImage, PropertyType, Review

DEFAULT_AVAILABILITY_DAYS = 90
MAX_AVAILABILITY_DAYS = 366
MONEY_PLACES = Decimal("0.01")
LATLNG_PLACES = Decimal("0.000001")


def _decimal_text(value: Decimal | None, places: Decimal) -> str | None:
    """What DRF's DecimalField renders: quantized, fixed-point text."""
    return None if value is None else f"{Decimal(value).quantize(places):f}"


class AmenityOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Amenity
        fields = ["slug", "name"]


def property_image_url(
    *, property_id: int, image_id: int | None, name: str, processed: bool, request: Request | None
) -> str:
    """Where a client finds an image, valid for as long as the image exists.

    Until the processing job has run, the file is about to be replaced under a new name (the
    re-encoded copy without metadata), so the address given is the image's own, which
    redirects to whichever file is current; afterwards the file itself.
    """
    if processed:
        path = PropertyImage.image.field.storage.url(name)
    else:
        path = reverse("property-image-file", kwargs={"pk": property_id, "image_id": image_id})
    return request.build_absolute_uri(path) if request else path


def _url_of(image: PropertyImage, request: Request | None) -> str:
    return property_image_url(
        property_id=image.property_id,
        image_id=image.pk,
        name=image.image.name or "",
        processed=image.processed_at is not None,
        request=request,
    )


class PropertyImageOutputSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(
        help_text="The image; before processing, an address that redirects to the current file."
    )
    thumbnail_small_url = serializers.ImageField(
        source="thumbnail_small", read_only=True, allow_null=True, help_text="320 px JPEG; null until processed."
    )
    thumbnail_medium_url = serializers.ImageField(
        source="thumbnail_medium", read_only=True, allow_null=True, help_text="800 px JPEG; null until processed."
    )

    class Meta:
        model = PropertyImage
        fields = [
            "id",
            "url",
            "thumbnail_small_url",
            "thumbnail_medium_url",
            "processed_at",
            "width",
            "height",
            "position",
            "created_at",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, image: PropertyImage) -> str:
        return _url_of(image, self.context.get("request"))


# A search result: from selectors.property_search plus property_list_attach_amenities. Fields
# are declared because a ModelSerializer introspects the model for every response (a tenth of
# an uncached search page's CPU). Comments, not a docstring: that would become API docs.
class PropertyListOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    property_type = serializers.ChoiceField(choices=PropertyType.choices, read_only=True)
    city = serializers.CharField(read_only=True)
    country = serializers.CharField(read_only=True)
    latitude = serializers.DecimalField(max_digits=9, decimal_places=6, read_only=True, allow_null=True)
    longitude = serializers.DecimalField(max_digits=9, decimal_places=6, read_only=True, allow_null=True)
    price_per_night = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True)
    cleaning_fee = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True)
    currency = serializers.ChoiceField(choices=Currency.choices, read_only=True)
    max_guests = serializers.IntegerField(read_only=True)
    bedrooms = serializers.IntegerField(read_only=True)
    bathrooms = serializers.IntegerField(read_only=True)
    rating_average = serializers.DecimalField(max_digits=3, decimal_places=2, read_only=True, allow_null=True)
    review_count = serializers.IntegerField(read_only=True)
    amenities = serializers.ListField(child=serializers.SlugField(), source="amenity_slugs", read_only=True)
    cover_image = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(read_only=True)
    host_id = serializers.IntegerField(read_only=True)

    def to_representation(self, instance: Property) -> dict:
        # Written out: the generic field loop was a fifth of an uncached search page's CPU. The
        # declared fields stay the schema; a test holds this equal to the generic rendering.
        return self._listing(instance, amenities=list(instance.amenity_slugs))

    def _listing(self, instance: Property, *, amenities: list) -> dict:
        return {
            "id": instance.pk,
            "title": instance.title,
            "property_type": instance.property_type,
            "city": instance.city,
            "country": instance.country,
            "latitude": _decimal_text(instance.latitude, LATLNG_PLACES),
            "longitude": _decimal_text(instance.longitude, LATLNG_PLACES),
            "price_per_night": _decimal_text(instance.price_per_night, MONEY_PLACES),
            "cleaning_fee": _decimal_text(instance.cleaning_fee, MONEY_PLACES),
            "currency": instance.currency,
            "max_guests": instance.max_guests,
            "bedrooms": instance.bedrooms,
            "bathrooms": instance.bathrooms,
            "rating_average": _decimal_text(instance.rating_average, MONEY_PLACES),
            "review_count": instance.review_count,
            "amenities": amenities,
            "cover_image": self.get_cover_image(instance),
            "is_active": instance.is_active,
            "host_id": instance.host_id,
        }

    def get_cover_image(self, obj: Property) -> str | None:
        if not obj.cover_image_name:
            return None
        return property_image_url(
            property_id=obj.pk,
            image_id=obj.cover_image_pending_id,
            name=obj.cover_image_name,
            processed=obj.cover_image_pending_id is None,
            request=self.context.get("request"),
        )


class HostSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    first_name = serializers.CharField()


# One listing, from selectors.property_detail plus property_attach_relations.
class PropertyDetailOutputSerializer(PropertyListOutputSerializer):
    # The detail shows amenities as objects where the list shows slugs.
    amenities = AmenityOutputSerializer(many=True, read_only=True, source="amenity_list")  # type: ignore[assignment]
    description = serializers.CharField(read_only=True)
    address = serializers.CharField(read_only=True)
    images = PropertyImageOutputSerializer(many=True, read_only=True, source="image_list")
    host = HostSummarySerializer(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Property) -> dict:
        # Written out as the search result's (a test holds it equal to the generic rendering);
        # images are rare and few, so they keep the generic serializer.
        fields = self.fields
        return {
            **self._listing(
                instance, amenities=[{"slug": a["slug"], "name": a["name"]} for a in instance.amenity_list]
            ),
            "description": instance.description,
            "address": instance.address,
            "images": fields["images"].to_representation(instance.image_list),
            "host": {"id": instance.host.pk, "first_name": instance.host.first_name},
            "created_at": fields["created_at"].to_representation(instance.created_at),
            "updated_at": fields["updated_at"].to_representation(instance.updated_at),
        }

    def get_cover_image(self, obj: Property) -> str | None:
        images = obj.image_list  # in position order
        return _url_of(images[0], self.context.get("request")) if images else None


class PropertyInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    property_type = serializers.ChoiceField(choices=PropertyType.choices, required=False)
    city = serializers.CharField(max_length=100)
    country = serializers.CharField(max_length=100)
    address = serializers.CharField(max_length=255, required=False, allow_blank=True)
    latitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, min_value=Decimal(-90), max_value=Decimal(90), required=False, allow_null=True
    )
    longitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, min_value=Decimal(-180), max_value=Decimal(180), required=False, allow_null=True
    )
    price_per_night = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0.01"))
    cleaning_fee = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0"), required=False)
    currency = serializers.ChoiceField(choices=Currency.choices, required=False)
    max_guests = serializers.IntegerField(min_value=1, max_value=100, required=False)
    bedrooms = serializers.IntegerField(min_value=0, max_value=100, required=False)
    bathrooms = serializers.IntegerField(min_value=0, max_value=100, required=False)
    amenities = serializers.ListField(
        child=serializers.SlugField(max_length=50), required=False, max_length=100, allow_empty=True
    )


class PropertyUpdateInputSerializer(PropertyInputSerializer):
    is_active = serializers.BooleanField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class PropertyImageInputSerializer(serializers.Serializer):
    # Content is validated by properties.images (real type by content, size, pixels).
    image = serializers.FileField(allow_empty_file=False)
    position = serializers.IntegerField(min_value=0, max_value=1000, required=False)


class AvailabilityQuerySerializer(QueryParamsSerializer):
    start = serializers.DateField(required=False, help_text="First night (default today).")
    end = serializers.DateField(required=False, help_text="Day after the last night (default start + 90 days).")

    def validate(self, attrs: dict) -> dict:
        start = attrs.get("start") or timezone.localdate()
        horizon = timezone.localdate() + datetime.timedelta(days=settings.BOOKING_MAX_ADVANCE_DAYS)
        if start > horizon:
            raise serializers.ValidationError({"start": [f"Must be on or before {horizon.isoformat()}."]})
        end = attrs.get("end") or start + datetime.timedelta(days=DEFAULT_AVAILABILITY_DAYS)
        if end <= start:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        if (end - start).days > MAX_AVAILABILITY_DAYS:
            raise serializers.ValidationError({"end": [f"The range spans at most {MAX_AVAILABILITY_DAYS} days."]})
        return {"start": start, "end": end}


class BookedRangeSerializer(serializers.Serializer):
    check_in = serializers.DateField()
    check_out = serializers.DateField()


class AvailabilityOutputSerializer(serializers.Serializer):
    property_id = serializers.IntegerField()
    start = serializers.DateField()
    end = serializers.DateField()
    booked = BookedRangeSerializer(many=True)


class ReviewOutputSerializer(serializers.ModelSerializer):
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = Review
        fields = ["id", "property_id", "booking_id", "rating", "text", "author_name", "created_at"]
        read_only_fields = fields

    def get_author_name(self, obj: Review) -> str:
        return obj.author.first_name or "Guest"


class ReviewInputSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    text = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    booking_id = IdField(required=False)
