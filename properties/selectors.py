import datetime
from collections import defaultdict
from collections.abc import Sequence

from django.contrib.auth.models import AnonymousUser
from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, When

from accounts.models import User
from bookings.models import ACTIVE_BOOKING_STATUSES, Booking
from bookings.selectors import booking_list_overlapping
from properties.models import Amenity, Property, PropertyImage, Review


def property_list_visible(*, user: User | AnonymousUser | None) -> QuerySet[Property]:
    """Active listings for everyone; hosts also see their own inactive ones, staff see all."""
    queryset = Property.objects.all()
    if user is None or not user.is_authenticated:
        queryset = queryset.filter(is_active=True)
    elif not user.is_staff:
        queryset = queryset.filter(Q(is_active=True) | Q(host=user))
    return queryset


# What a search result shows (PropertyListOutputSerializer); description and address stay in the database.
PROPERTY_LIST_FIELDS = (
    "id",
    "host_id",
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
    "is_active",
)


def property_search(*, user: User | AnonymousUser | None) -> QuerySet[Property]:
    """Active listings with their cover image; pass the page to ``property_list_attach_amenities``.

    ``cover_image_name`` is its file; ``cover_image_pending_id`` its id while it awaits processing
    (the file is about to be renamed, see ``properties.serializers.property_image_url``).
    """
    return _as_list_rows(property_list_visible(user=user).filter(is_active=True))


def property_list_for_host(*, host: User) -> QuerySet[Property]:
    """The host's own listings, inactive ones too, newest first; rows as in search results."""
    return _as_list_rows(Property.objects.filter(host=host)).order_by("-created_at", "-id")


def _as_list_rows(queryset: QuerySet[Property]) -> QuerySet[Property]:
    cover = PropertyImage.objects.filter(property=OuterRef("pk")).order_by("position", "id")
    pending_id = Case(When(processed_at__isnull=True, then=F("id")))
    # Property declares both names for the serializers; mypy's Django plugin would add them again.
    return queryset.only(
        *PROPERTY_LIST_FIELDS
    ).annotate(  # type: ignore[no-redef]
        cover_image_name=Subquery(cover.values("image")[:1]),
        cover_image_pending_id=Subquery(cover.annotate(pending_id=pending_id).values("pending_id")[:1]),
    )


def property_list_attach_amenities(properties: Sequence[Property]) -> None:
    """Set ``amenity_slugs`` (by amenity name) on each listing of a page, in one query of tuples.

    A model prefetch builds one Amenity instance per listing and amenity (about 240 on a page
    of 20): a third of the CPU of an uncached search page.
    """
    if not properties:
        return
    slugs: dict[int, list[str]] = defaultdict(list)
    rows = (
        Property.amenities.through.objects.filter(property_id__in=[listing.pk for listing in properties])
        .order_by("amenity__name", "amenity_id")
        .values_list("property_id", "amenity__slug")
    )
    for property_id, slug in rows:
        slugs[property_id].append(slug)
    for listing in properties:
        listing.amenity_slugs = slugs.get(listing.pk, [])


def property_available_between(
    queryset: QuerySet[Property], *, check_in: datetime.date, check_out: datetime.date
) -> QuerySet[Property]:
    taken = Booking.objects.filter(
        property=OuterRef("pk"),
        status__in=ACTIVE_BOOKING_STATUSES,
        check_in__lt=check_out,
        check_out__gt=check_in,
    )
    return queryset.exclude(Exists(taken))


def property_with_all_amenities(queryset: QuerySet[Property], *, slugs: list[str]) -> QuerySet[Property]:
    wanted = sorted(set(slugs))
    having_all = (
        Property.amenities.through.objects.filter(amenity__slug__in=wanted)
        .values("property_id")
        .annotate(matched=Count("amenity_id"))
        .filter(matched=len(wanted))  # type: ignore[misc]  # the plugin does not see `matched` from annotate()
        .values("property_id")
    )
    return queryset.filter(pk__in=having_all)


def property_image_list_visible(*, user: User | AnonymousUser | None) -> QuerySet[PropertyImage]:
    return PropertyImage.objects.filter(property__in=property_list_visible(user=user)).only(
        "id", "property_id", "image"
    )


def property_detail(*, user: User | AnonymousUser | None) -> QuerySet[Property]:
    """Listings with their host; pass the one shown to ``property_attach_relations``."""
    return property_list_visible(user=user).select_related("host")


def property_attach_relations(listing: Property) -> None:
    """Set ``amenity_list`` (``{"slug", "name"}`` by name) and ``image_list`` (by position) on one listing.

    Two plain queries: a prefetch builds Amenity instances and runs Django's prefetch machinery,
    a third of the CPU of an uncached detail request.
    """
    listing.amenity_list = list(Amenity.objects.filter(properties=listing).order_by("name").values("slug", "name"))
    listing.image_list = list(PropertyImage.objects.filter(property=listing).order_by("position"))


def property_booked_ranges(*, property: Property, start: datetime.date, end: datetime.date) -> QuerySet[Booking]:
    return (
        booking_list_overlapping(property_id=property.pk, start=start, end=end)
        .order_by("check_in")
        .only("id", "check_in", "check_out", "status")
    )


def review_list_for_property(*, property: Property) -> QuerySet[Review]:
    return (
        Review.objects.filter(property=property)
        .select_related("author")
        .only("id", "rating", "text", "created_at", "booking_id", "property_id", "author__id", "author__first_name")
    )


def amenity_slugs_unknown(slugs: list[str]) -> list[str]:
    """The slugs among ``slugs`` that name no amenity, in the order given."""
    known = set(Amenity.objects.filter(slug__in=set(slugs)).values_list("slug", flat=True))
    return [slug for slug in dict.fromkeys(slugs) if slug not in known]


def amenity_list() -> QuerySet[Amenity]:
    return Amenity.objects.order_by("name")
