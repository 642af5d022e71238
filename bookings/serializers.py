from rest_framework import serializers

from bookings.models import Booking, BookingStatus, Payout
from core.serializers import IdField, QueryParamsSerializer


class BookingCreateInputSerializer(serializers.Serializer):
    property_id = IdField()
    check_in = serializers.DateField()
    check_out = serializers.DateField()
    guests = serializers.IntegerField(min_value=1, max_value=100)


class BookingPropertySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    city = serializers.CharField()
    country = serializers.CharField()


class BookingGuestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()


BOOKING_FIELDS = [
    "id",
    "property",
    "check_in",
    "check_out",
    "nights",
    "guests",
    "status",
    "currency",
    "nightly_price",
    "subtotal",
    "cleaning_fee",
    "service_fee",
    "total_price",
    "created_at",
    "confirmed_at",
    "cancelled_at",
]


class BookingOutputSerializer(serializers.ModelSerializer):
    """What the guest sees."""

    property = BookingPropertySerializer(read_only=True)

    class Meta:
        model = Booking
        fields = BOOKING_FIELDS
        read_only_fields = fields


class HostBookingOutputSerializer(serializers.ModelSerializer):
    """What the host sees: who is coming and what the host earns."""

    property = BookingPropertySerializer(read_only=True)
    guest = BookingGuestSerializer(read_only=True)

    class Meta:
        model = Booking
        fields = [*BOOKING_FIELDS, "guest", "host_fee", "host_payout_amount"]
        read_only_fields = fields


class BookingListQuerySerializer(QueryParamsSerializer):
    status = serializers.ChoiceField(choices=BookingStatus.choices, required=False)
    property_id = IdField(required=False)


class CurrencySummarySerializer(serializers.Serializer):
    currency = serializers.CharField()
    stays = serializers.IntegerField()
    gross = serializers.DecimalField(max_digits=14, decimal_places=2)
    fees = serializers.DecimalField(max_digits=14, decimal_places=2)
    net = serializers.DecimalField(max_digits=14, decimal_places=2)
    upcoming = serializers.DecimalField(max_digits=14, decimal_places=2)
    available = serializers.DecimalField(max_digits=14, decimal_places=2)
    in_payout = serializers.DecimalField(max_digits=14, decimal_places=2)
    paid_out = serializers.DecimalField(max_digits=14, decimal_places=2)


class FinancialSummaryOutputSerializer(serializers.Serializer):
    currencies = CurrencySummarySerializer(many=True)


class PayoutOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payout
        fields = [
            "id",
            "amount",
            "currency",
            "status",
            "period_start",
            "period_end",
            "booking_count",
            "failure_reason",
            "created_at",
            "paid_at",
        ]
        read_only_fields = fields
