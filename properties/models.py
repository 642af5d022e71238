from collections.abc import Mapping

from django.conf import settings
from django.db import models
from django.db.models import Q

from caching.tracking import InvalidatingManager


class PropertyType(models.TextChoices):
    APARTMENT = "apartment", "Apartment"
    HOUSE = "house", "House"
    VILLA = "villa", "Villa"
    CABIN = "cabin", "Cabin"
    ROOM = "room", "Private room"
    LOFT = "loft", "Loft"


class Currency(models.TextChoices):
    USD = "USD", "US dollar"
    EUR = "EUR", "Euro"
    GBP = "GBP", "Pound sterling"


class Amenity(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100, unique=True)

    objects = InvalidatingManager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "amenities"

    def __str__(self) -> str:
        return self.name


class Property(models.Model):
    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="properties")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    property_type = models.CharField(max_length=16, choices=PropertyType.choices, default=PropertyType.APARTMENT)
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=100)
    address = models.CharField(max_length=255, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    price_per_night = models.DecimalField(max_digits=10, decimal_places=2)
    cleaning_fee = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.USD)
    max_guests = models.PositiveSmallIntegerField(default=2)
    bedrooms = models.PositiveSmallIntegerField(default=1)
    bathrooms = models.PositiveSmallIntegerField(default=1)
    amenities = models.ManyToManyField(Amenity, blank=True, related_name="properties")
    is_active = models.BooleanField(default=True)
    # Denormalised from Review by review_create so search can sort by rating without a join.
    rating_average = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    review_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvalidatingManager()

    # Set by the selectors on the rows they return (annotations or attached lists); declared, not
    # stored, so the serializers that read them type-check.
    amenity_slugs: list[str]
    amenity_list: list[Mapping[str, object]]
    image_list: list["PropertyImage"]
    cover_image_name: str | None
    cover_image_pending_id: int | None
    booking_total: int

    class Meta:
        verbose_name_plural = "properties"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["city", "price_per_night"], name="property_city_price_idx", condition=Q(is_active=True)
            ),
            models.Index(fields=["host", "-created_at"], name="property_host_created_idx"),
            models.Index(fields=["is_active", "-created_at"], name="property_active_created_idx"),
            models.Index(fields=["price_per_night"], name="property_price_idx", condition=Q(is_active=True)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(price_per_night__gt=0), name="property_price_positive"),
            models.CheckConstraint(condition=Q(cleaning_fee__gte=0), name="property_cleaning_fee_non_negative"),
            models.CheckConstraint(condition=Q(max_guests__gte=1), name="property_max_guests_positive"),
            models.CheckConstraint(condition=Q(currency__in=Currency.values), name="property_currency_valid"),
            models.CheckConstraint(condition=Q(property_type__in=PropertyType.values), name="property_type_valid"),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="property_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="property_longitude_range",
            ),
            models.CheckConstraint(
                condition=Q(rating_average__isnull=True) | Q(rating_average__gte=1, rating_average__lte=5),
                name="property_rating_average_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.city})"


def property_image_path(instance: "PropertyImage", filename: str) -> str:
    return f"properties/{instance.property_id}/{filename}"


class PropertyImage(models.Model):
    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(upload_to=property_image_path, width_field="width", height_field="height")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Filled by the image processing job (properties/image_processing.py) shortly after upload:
    # the original re-encoded without metadata and scaled to fit, and two thumbnails.
    thumbnail_small = models.ImageField(upload_to=property_image_path, null=True, blank=True)
    thumbnail_medium = models.ImageField(upload_to=property_image_path, null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = InvalidatingManager()

    class Meta:
        ordering = ["property", "position"]
        constraints = [
            models.UniqueConstraint(fields=["property", "position"], name="property_image_position_unique"),
        ]

    def __str__(self) -> str:
        return f"Image {self.position} of property {self.property_id}"


class Review(models.Model):
    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="reviews")
    booking = models.OneToOneField("bookings.Booking", on_delete=models.PROTECT, related_name="review")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    rating = models.PositiveSmallIntegerField()
    text = models.TextField(max_length=5000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvalidatingManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["property", "-created_at"], name="review_property_created_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.rating}★ for property {self.property_id}"
