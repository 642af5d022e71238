from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import DateRangeField, RangeBoundary, RangeOperators
from django.db import models
from django.db.models import F, Func, Q, Value

from bookings.constraints import PostgresExclusionConstraint
from caching.tracking import InvalidatingManager
from properties.models import Currency


class BookingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"


HALF_CENT = Value(Decimal("0.005"))

# Bookings in these states hold the property's nights.
ACTIVE_BOOKING_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.COMPLETED)


class DateRange(Func):
    function = "DATERANGE"
    output_field = DateRangeField()


class Booking(models.Model):
    property = models.ForeignKey("properties.Property", on_delete=models.PROTECT, related_name="bookings")
    guest = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings")
    check_in = models.DateField()
    check_out = models.DateField()
    nights = models.PositiveSmallIntegerField()
    guests = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=BookingStatus.choices, default=BookingStatus.PENDING)
    currency = models.CharField(max_length=3, choices=Currency.choices)
    # Price snapshot taken at booking time; all computed by booking_create, never by the client.
    nightly_price = models.DecimalField(max_digits=10, decimal_places=2)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    cleaning_fee = models.DecimalField(max_digits=10, decimal_places=2)
    service_fee = models.DecimalField(max_digits=10, decimal_places=2)
    total_price = models.DecimalField(max_digits=12, decimal_places=2)
    host_fee = models.DecimalField(max_digits=10, decimal_places=2)
    host_payout_amount = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = InvalidatingManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["property", "check_in", "check_out"], name="booking_property_dates_idx"),
            models.Index(fields=["guest", "-created_at"], name="booking_guest_created_idx"),
            models.Index(fields=["status", "check_out"], name="booking_status_checkout_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(check_out__gt=F("check_in")), name="booking_checkout_after_checkin"),
            models.CheckConstraint(condition=Q(guests__gte=1), name="booking_guests_positive"),
            models.CheckConstraint(condition=Q(nights__gte=1), name="booking_nights_positive"),
            models.CheckConstraint(condition=Q(status__in=BookingStatus.values), name="booking_status_valid"),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0, cleaning_fee__gte=0, service_fee__gte=0, host_fee__gte=0),
                name="booking_amounts_non_negative",
            ),
            # Within half a cent: exact on PostgreSQL (numeric values are whole cents), and
            # immune to SQLite storing decimals as binary floats.
            models.CheckConstraint(
                condition=Q(
                    total_price__gt=F("subtotal") + F("cleaning_fee") + F("service_fee") - HALF_CENT,
                    total_price__lt=F("subtotal") + F("cleaning_fee") + F("service_fee") + HALF_CENT,
                ),
                name="booking_total_is_sum_of_parts",
            ),
            models.CheckConstraint(
                condition=Q(
                    host_payout_amount__gt=F("subtotal") + F("cleaning_fee") - F("host_fee") - HALF_CENT,
                    host_payout_amount__lt=F("subtotal") + F("cleaning_fee") - F("host_fee") + HALF_CENT,
                ),
                name="booking_host_payout_is_earnings_minus_fee",
            ),
            PostgresExclusionConstraint(
                name="booking_no_overlap_per_property",
                expressions=[
                    (DateRange("check_in", "check_out", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("property", RangeOperators.EQUAL),
                ],
                condition=Q(status__in=ACTIVE_BOOKING_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"Booking #{self.pk} {self.check_in}→{self.check_out}"


class PayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"


class Payout(models.Model):
    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, choices=Currency.choices)
    status = models.CharField(max_length=16, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    period_start = models.DateField()
    period_end = models.DateField()
    booking_count = models.PositiveIntegerField()
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    objects = InvalidatingManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["host", "-created_at"], name="payout_host_created_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(condition=Q(period_end__gte=F("period_start")), name="payout_period_ordered"),
            models.CheckConstraint(condition=Q(status__in=PayoutStatus.values), name="payout_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Payout #{self.pk} {self.amount} {self.currency} ({self.status})"


class PayoutItem(models.Model):
    """One booking's share of a payout. A booking sits in at most one unreleased item.

    When a payout fails its items are released (kept for the record) so the bookings
    become eligible again; the partial unique constraint makes double payment impossible.
    """

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="items")
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payout_items")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    released = models.BooleanField(default=False)

    objects = InvalidatingManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["booking"], condition=Q(released=False), name="payout_item_booking_paid_once"
            ),
        ]

    def __str__(self) -> str:
        return f"Booking {self.booking_id} in payout {self.payout_id}"
