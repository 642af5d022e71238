"""ModelSerializers answering the same JSON as Staybase's endpoints, written the way DRF's docs teach."""

import datetime

from django.utils import timezone
from rest_framework import serializers

from accounts.models import User
from bookings.models import Booking
from properties.models import Amenity, Property, PropertyImage, Review
from properties.serializers import property_image_url

LIST_FIELDS = [
    "id",
    "title",
    "property_type",
    "city",
    "country",
    "latitude",
    "longitude",
    "price_per_night",
    "cleaning_fee",
    "currency",
    "max_guests",
    "bedrooms",
    "bathrooms",
    "rating_average",
    "review_count",
    "amenities",
    "cover_image",
    "is_active",
    "host_id",
]


def _image_url(image: PropertyImage, request) -> str:
    return property_image_url(
        property_id=image.property_id,
        image_id=image.pk,
        name=image.image.name,
        processed=image.processed_at is not None,
        request=request,
    )


class ImageSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    thumbnail_small_url = serializers.ImageField(source="thumbnail_small", read_only=True)
    thumbnail_medium_url = serializers.ImageField(source="thumbnail_medium", read_only=True)

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

    def get_url(self, image: PropertyImage) -> str:
        return _image_url(image, self.context.get("request"))


class PropertyListSerializer(serializers.ModelSerializer):
    amenities = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    cover_image = serializers.SerializerMethodField()

    class Meta:
        model = Property
        fields = LIST_FIELDS

    def get_cover_image(self, obj: Property) -> str | None:
        images = obj.images.all()  # prefetched in position order
        return _image_url(images[0], self.context.get("request")) if images else None


class AmenitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Amenity
        fields = ["slug", "name"]


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "first_name"]


class PropertyDetailSerializer(PropertyListSerializer):
    amenities = AmenitySerializer(many=True, read_only=True)
    images = ImageSerializer(many=True, read_only=True)
    host = HostSerializer(read_only=True)

    class Meta:
        model = Property
        fields = [*LIST_FIELDS, "description", "address", "images", "host", "created_at", "updated_at"]


class AvailabilityQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)

    def validate(self, attrs: dict) -> dict:
        start = attrs.get("start") or timezone.localdate()
        end = attrs.get("end") or start + datetime.timedelta(days=90)
        if end <= start:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        return {"start": start, "end": end}


class BookedRangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Booking
        fields = ["check_in", "check_out"]


class ReviewSerializer(serializers.ModelSerializer):
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = Review
        fields = ["id", "property_id", "booking_id", "rating", "text", "author_name", "created_at"]

    def get_author_name(self, obj: Review) -> str:
        return obj.author.first_name or "Guest"


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "first_name", "last_name", "is_host", "is_staff", "tier", "date_joined"]
