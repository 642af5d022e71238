import uuid
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Sum

from accounts.models import User
from bookings.models import Booking, BookingStatus
from core.exceptions import Conflict, Forbidden, InvalidInput
from properties.image_processing import property_image_process_later
from properties.images import validate_image_upload
from properties.models import Amenity, Property, PropertyImage, Review
from realtime.events import property_updated_emit, review_created_emit

PROPERTY_EDITABLE_FIELDS = frozenset(
    {
        "title",
        "description",
        "property_type",
        "city",
        "country",
        "address",
        "latitude",
        "longitude",
        "price_per_night",
        "cleaning_fee",
        "currency",
        "max_guests",
        "bedrooms",
        "bathrooms",
        "is_active",
    }
)


def property_ensure_manageable(*, property: Property, actor: User) -> None:
    if not (actor.is_staff or property.host_id == actor.pk):
        raise Forbidden("Only the property's host can change it.")


def _amenities_from_slugs(slugs: list[str]) -> list[Amenity]:
    unique = sorted(set(slugs))
    amenities = list(Amenity.objects.filter(slug__in=unique))
    if len(amenities) != len(unique):
        unknown = sorted(set(unique) - {a.slug for a in amenities})
        raise InvalidInput("Unknown amenities.", fields={"amenities": [f"Unknown amenity: {s}" for s in unknown]})
    return amenities


@transaction.atomic
def property_create(*, host: User, amenities: list[str] | None = None, **fields: Any) -> Property:
    if not host.is_host:
        raise Forbidden("Only hosts can list properties. Register as a host first.", code="not_a_host")
    unknown = set(fields) - PROPERTY_EDITABLE_FIELDS
    if unknown:
        raise InvalidInput(f"Unexpected fields: {', '.join(sorted(unknown))}.")
    property = Property.objects.create(host=host, **fields)
    if amenities:
        property.amenities.set(_amenities_from_slugs(amenities))
    return property


@transaction.atomic
def property_update(*, property: Property, actor: User, amenities: list[str] | None = None, **fields: Any) -> Property:
    property_ensure_manageable(property=property, actor=actor)
    unknown = set(fields) - PROPERTY_EDITABLE_FIELDS
    if unknown:
        raise InvalidInput(f"Unexpected fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(property, name, value)
    if fields:
        property.save(update_fields=[*fields, "updated_at"])
    if amenities is not None:
        property.amenities.set(_amenities_from_slugs(amenities))
    property_updated_emit(property=property, fields=[*fields, *(["amenities"] if amenities is not None else [])])
    return property


@transaction.atomic
def property_deactivate(*, property: Property, actor: User) -> Property:
    """Delete means deactivate: bookings and reviews keep pointing at the listing."""
    property_ensure_manageable(property=property, actor=actor)
    if property.is_active:
        property.is_active = False
        property.save(update_fields=["is_active", "updated_at"])
        property_updated_emit(property=property, fields=["is_active"])
    return property


def property_image_add(
    *, property: Property, actor: User, image: UploadedFile, position: int | None = None
) -> PropertyImage:
    property_ensure_manageable(property=property, actor=actor)
    extension = validate_image_upload(image)
    # Never keep the client's file name: a valid PNG called x.html would be served as HTML.
    image.name = f"{uuid.uuid4().hex}.{extension}"
    with transaction.atomic():
        # Lock the listing so two concurrent uploads cannot pick the same next position.
        Property.objects.select_for_update().filter(pk=property.pk).first()
        if position is None:
            last = property.images.aggregate(last=Max("position"))["last"]
            position = 0 if last is None else last + 1
        try:
            with transaction.atomic():
                created = PropertyImage.objects.create(property=property, image=image, position=position)
        except IntegrityError:
            raise Conflict(
                f"Position {position} already holds an image.", fields={"position": ["Already taken."]}
            ) from None
        property_updated_emit(property=property, fields=["images"])
        # Thumbnails, metadata stripping and scaling happen in a job; the upload answers now.
        property_image_process_later(image=created)
        return created


@transaction.atomic
def review_create(
    *, property: Property, author: User, rating: int, text: str = "", booking_id: int | None = None
) -> Review:
    """One review per completed stay; the listing's rating summary is refreshed in the same transaction."""
    stays = Booking.objects.filter(property=property, guest=author, status=BookingStatus.COMPLETED, review__isnull=True)
    if booking_id is not None:
        stays = stays.filter(pk=booking_id)
    booking = stays.order_by("-check_out").first()
    if booking is None:
        raise Forbidden(
            "Only guests with a completed, not yet reviewed stay at this property can review it.",
            code="no_reviewable_stay",
        )
    try:
        with transaction.atomic():
            review = Review.objects.create(property=property, booking=booking, author=author, rating=rating, text=text)
    except IntegrityError:
        raise Conflict("This stay has already been reviewed.", code="already_reviewed") from None
    property_ratings_refresh(property_ids=[property.pk])
    review_created_emit(review=review, property=property)
    return review


def property_ratings_refresh(*, property_ids: Iterable[int] | None) -> None:
    """Store the rating average and review count of the listings given (``None``: all reviewed ones).

    Listings share few distinct (average, count) pairs, so one UPDATE per pair is far
    cheaper than a CASE-per-row bulk_update over thousands of listings (the demo seed).
    """
    reviews = Review.objects.all() if property_ids is None else Review.objects.filter(property_id__in=property_ids)
    summaries = reviews.values("property_id").annotate(total=Sum("rating"), count=Count("id")).order_by()
    listings_by_summary: dict[tuple[Decimal, int], list[int]] = defaultdict(list)
    for row in summaries:
        # Exact integer sum / count, rounded half-up: the same on every database.
        average = (Decimal(row["total"]) / row["count"]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        listings_by_summary[average, row["count"]].append(row["property_id"])
    for (average, count), ids in listings_by_summary.items():
        Property.objects.filter(pk__in=ids).update(rating_average=average, review_count=count)
