from rest_framework import serializers

from core.serializers import IdField, QueryParamsSerializer

MAX_DASHBOARD_MONTHS = 24


def _money_field() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=2)


def _rate_field() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=7, decimal_places=4)


class DashboardQuerySerializer(QueryParamsSerializer):
    months = serializers.IntegerField(min_value=1, max_value=MAX_DASHBOARD_MONTHS, default=12)
    host_id = IdField(required=False, help_text="Staff only: the host to report on.")


class MarketQuerySerializer(QueryParamsSerializer):
    city = serializers.CharField(max_length=100)


class AnalyticsPeriodSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="Exclusive.")
    months = serializers.IntegerField()


class DashboardStatusCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    completed = serializers.IntegerField()


class DashboardRevenueMonthSerializer(serializers.Serializer):
    month = serializers.DateField()
    currency = serializers.CharField()
    bookings = serializers.IntegerField()
    nights = serializers.IntegerField()
    gross_revenue = _money_field()
    host_payout = _money_field()


class DashboardRevenueTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    bookings = serializers.IntegerField()
    nights = serializers.IntegerField()
    gross_revenue = _money_field()
    host_payout = _money_field()
    average_daily_rate = _money_field()


class AnalyticsOccupancyWindowSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="Exclusive.")
    booked_nights = serializers.IntegerField()
    available_nights = serializers.IntegerField()
    rate = _rate_field()


class DashboardOccupancySerializer(serializers.Serializer):
    active_properties = serializers.IntegerField()
    last_30_days = AnalyticsOccupancyWindowSerializer()
    next_30_days = AnalyticsOccupancyWindowSerializer()


class DashboardRatingSerializer(serializers.Serializer):
    average = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    count = serializers.IntegerField()


class DashboardTopPropertySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    city = serializers.CharField()
    currency = serializers.CharField()
    revenue = _money_field()
    bookings = serializers.IntegerField()


class DashboardOutputSerializer(serializers.Serializer):
    host_id = serializers.IntegerField()
    period = AnalyticsPeriodSerializer()
    bookings_by_status = DashboardStatusCountsSerializer()
    revenue_by_month = DashboardRevenueMonthSerializer(many=True)
    revenue_totals = DashboardRevenueTotalSerializer(many=True)
    occupancy = DashboardOccupancySerializer()
    rating = DashboardRatingSerializer()
    top_properties = DashboardTopPropertySerializer(many=True)


class MarketPriceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    properties = serializers.IntegerField()
    average_nightly_price = _money_field()


class MarketDailyRateSerializer(serializers.Serializer):
    currency = serializers.CharField()
    bookings = serializers.IntegerField()
    nights = serializers.IntegerField()
    average_daily_rate = _money_field()


class MarketOutputSerializer(serializers.Serializer):
    city = serializers.CharField()
    supply = serializers.IntegerField()
    average_nightly_price = MarketPriceSerializer(many=True)
    occupancy = AnalyticsOccupancyWindowSerializer()
    average_daily_rate = MarketDailyRateSerializer(many=True)
    bookings_last_30_days = serializers.IntegerField()
    source = serializers.ChoiceField(  # type: ignore[assignment]  # an output field named "source"
        choices=["precomputed", "live"],
        help_text="precomputed: from the hourly refresh job; live: computed for this request "
        "(the city has no fresh precomputed figures yet).",
    )
    computed_at = serializers.DateTimeField()
