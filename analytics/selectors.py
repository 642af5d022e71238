"""Read-only analytics computed by the database.

Every figure is one aggregate query; Python only divides the handful of aggregated
numbers that come back (one row per currency or per month), never booking rows.

Definitions shared by the host dashboard and the market view:

* A *booked* stay is a confirmed or completed booking: pending requests may still be
  declined and cancelled ones earn nothing.
* Money is summed per currency and never across currencies; revenue is attributed to
  the month of the stay's check-in.
* Occupancy counts booked nights that fall inside the window (stays are clipped to it)
  at active properties, over active properties x window days.
"""

import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import NotSupportedError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    Count,
    DateField,
    DecimalField,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Greatest, Least, TruncMonth
from django.db.models.sql.compiler import SQLCompiler

from accounts.models import User
from analytics.models import MarketSnapshot
from bookings.models import Booking, BookingStatus, Payout
from core.exceptions import Forbidden, InvalidInput, NotFound
from properties.models import Property, Review

BOOKED_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
OCCUPANCY_WINDOW_DAYS = 30
TOP_PROPERTIES_LIMIT = 5

CENT = Decimal("0.01")
RATE_QUANTUM = Decimal("0.0001")
# Wide enough that a sum of many bookings never overflows the converter's precision.
MONEY_SUM = DecimalField(max_digits=20, decimal_places=2)


# What an expression's as_sql() returns: SQL and its parameters.
_AsSql = tuple[str, tuple[Any, ...]]


class DaysBetween(Func):
    """Whole days from ``start`` to ``end`` (``end - start``) for two date expressions."""

    arity = 2
    output_field = IntegerField()

    def _compile_pair(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, str, list[Any], list[Any]]:
        start, end = self.get_source_expressions()
        start_sql, start_params = compiler.compile(start)
        end_sql, end_params = compiler.compile(end)
        return start_sql, end_sql, list(start_params), list(end_params)

    def as_sql(  # type: ignore[override]  # the stubs list Func.as_sql's optional template arguments
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _AsSql:
        raise NotSupportedError(f"DaysBetween is not implemented for {connection.vendor}.")

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any) -> _AsSql:
        start_sql, end_sql, start_params, end_params = self._compile_pair(compiler, connection)
        return f"CAST(julianday({end_sql}) - julianday({start_sql}) AS INTEGER)", (*end_params, *start_params)

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any) -> _AsSql:
        start_sql, end_sql, start_params, end_params = self._compile_pair(compiler, connection)
        return f"({end_sql} - {start_sql})", (*end_params, *start_params)


def _money(amount: Decimal | None) -> Decimal:
    return (amount or Decimal("0")).quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(numerator: Decimal | int | None, denominator: Decimal | int | None, quantum: Decimal) -> Decimal:
    if not denominator:
        return Decimal("0").quantize(quantum)
    return (Decimal(numerator or 0) / Decimal(denominator)).quantize(quantum, rounding=ROUND_HALF_UP)


def _month_start(today: datetime.date, *, months_back: int) -> datetime.date:
    index = today.year * 12 + today.month - 1 - months_back
    return datetime.date(index // 12, index % 12 + 1, 1)


def _booked(bookings: QuerySet[Booking]) -> QuerySet[Booking]:
    return bookings.filter(status__in=BOOKED_STATUSES)


def _nights_in_window(start: datetime.date, end: datetime.date) -> Sum:
    """Sum of booked nights clipped to [start, end); stays outside the window add nothing."""
    clipped = DaysBetween(
        Greatest(F("check_in"), Value(start, output_field=DateField())),
        Least(F("check_out"), Value(end, output_field=DateField())),
    )
    return Sum(clipped, filter=Q(check_in__lt=end, check_out__gt=start), default=0)


def _occupancy_window(*, booked_nights: int, supply: int, start: datetime.date, end: datetime.date) -> dict[str, Any]:
    available = supply * (end - start).days
    return {
        "start": start,
        "end": end,
        "booked_nights": booked_nights,
        "available_nights": available,
        "rate": _ratio(booked_nights, available, RATE_QUANTUM),
    }


def _window_bounds(today: datetime.date) -> tuple[datetime.date, datetime.date, datetime.date]:
    span = datetime.timedelta(days=OCCUPANCY_WINDOW_DAYS)
    return today - span, today, today + span


def dashboard_host_get(*, viewer: User, host_id: int | None) -> User:
    """Whose dashboard ``viewer`` may see: their own, or any host's when staff."""
    if host_id is not None and host_id != viewer.pk:
        if not viewer.is_staff:
            raise Forbidden("Only staff can view another host's dashboard.")
        host = User.objects.filter(pk=host_id, is_host=True).first()
        if host is None:
            raise NotFound("No host with this id.")
        return host
    if viewer.is_host:
        return viewer
    if viewer.is_staff:
        raise InvalidInput("host_id is required for staff who are not hosts.", fields={"host_id": ["Required."]})
    raise Forbidden("Only hosts have an analytics dashboard.", code="not_a_host")


def host_dashboard(*, host: User, today: datetime.date, months: int = 12) -> dict[str, Any]:
    """Booking, revenue, occupancy and rating figures for one host's properties.

    Revenue, nightly rates and top properties cover stays checking in from the first day
    of the month ``months - 1`` months ago up to the end of the current month; booking
    counts by status and the rating are all-time; occupancy looks 30 days back and ahead.
    """
    period_start = _month_start(today, months_back=months - 1)
    period_end = _month_start(today, months_back=-1)
    bookings = Booking.objects.filter(property__host=host)
    booked_in_period = _booked(bookings).filter(check_in__gte=period_start, check_in__lt=period_end)

    status_counts = bookings.aggregate(
        **{status.value: Count("id", filter=Q(status=status)) for status in BookingStatus}
    )

    revenue_by_month = [
        {
            "month": row["month"],
            "currency": row["currency"],
            "bookings": row["bookings"],
            "nights": row["night_count"],
            "gross_revenue": _money(row["gross_revenue"]),
            "host_payout": _money(row["host_payout"]),
        }
        for row in booked_in_period.annotate(month=TruncMonth("check_in"))
        .values("month", "currency")
        .annotate(
            bookings=Count("id"),
            night_count=Sum("nights"),
            gross_revenue=Sum(F("subtotal") + F("cleaning_fee"), output_field=MONEY_SUM),
            host_payout=Sum("host_payout_amount", output_field=MONEY_SUM),
        )
        .order_by("month", "currency")
    ]

    revenue_totals = [
        {
            "currency": row["currency"],
            "bookings": row["bookings"],
            "nights": row["night_count"],
            "gross_revenue": _money(row["gross_revenue"]),
            "host_payout": _money(row["host_payout"]),
            "average_daily_rate": _ratio(row["stay_revenue"], row["night_count"], CENT),
        }
        for row in booked_in_period.values("currency")
        .annotate(
            bookings=Count("id"),
            night_count=Sum("nights"),
            stay_revenue=Sum("subtotal", output_field=MONEY_SUM),
            gross_revenue=Sum(F("subtotal") + F("cleaning_fee"), output_field=MONEY_SUM),
            host_payout=Sum("host_payout_amount", output_field=MONEY_SUM),
        )
        .order_by("currency")
    ]

    past_start, window_split, next_end = _window_bounds(today)
    active_properties = Property.objects.filter(host=host, is_active=True).count()
    nights = _booked(bookings.filter(property__is_active=True)).aggregate(
        past=_nights_in_window(past_start, window_split),
        upcoming=_nights_in_window(window_split, next_end),
    )

    rating = Review.objects.filter(property__host=host).aggregate(total=Sum("rating", default=0), count=Count("id"))

    top_properties = [
        {
            "id": row["property_id"],
            "title": row["property__title"],
            "city": row["property__city"],
            "currency": row["currency"],
            "revenue": _money(row["revenue"]),
            "bookings": row["bookings"],
        }
        for row in booked_in_period.values("property_id", "property__title", "property__city", "currency")
        .annotate(revenue=Sum("host_payout_amount", output_field=MONEY_SUM), bookings=Count("id"))
        .order_by("-revenue", "property_id", "currency")[:TOP_PROPERTIES_LIMIT]
    ]

    return {
        "host_id": host.pk,
        "period": {"start": period_start, "end": period_end, "months": months},
        "bookings_by_status": status_counts,
        "revenue_by_month": revenue_by_month,
        "revenue_totals": revenue_totals,
        "occupancy": {
            "active_properties": active_properties,
            "last_30_days": _occupancy_window(
                booked_nights=nights["past"], supply=active_properties, start=past_start, end=window_split
            ),
            "next_30_days": _occupancy_window(
                booked_nights=nights["upcoming"], supply=active_properties, start=window_split, end=next_end
            ),
        },
        "rating": {
            "average": _ratio(rating["total"], rating["count"], CENT) if rating["count"] else None,
            "count": rating["count"],
        },
        "top_properties": top_properties,
    }


def market_data(*, city: str, today: datetime.date) -> dict[str, Any]:
    """Supply, prices and demand for active listings in ``city`` (case-insensitive).

    Demand covers the 30 days before ``today``: booked stays that checked in during that
    window (count and average daily rate) and booked nights clipped to it (occupancy).
    An unknown city yields zero supply and empty figures.
    """
    start, end, _ = _window_bounds(today)
    properties = Property.objects.filter(city__iexact=city.strip(), is_active=True)
    bookings = _booked(Booking.objects.filter(property__in=properties))

    supply = properties.count()
    prices = [
        {
            "currency": row["currency"],
            "properties": row["properties"],
            "average_nightly_price": _ratio(row["price_total"], row["properties"], CENT),
        }
        for row in properties.values("currency")
        .annotate(properties=Count("id"), price_total=Sum("price_per_night", output_field=MONEY_SUM))
        .order_by("currency")
    ]

    checked_in = bookings.filter(check_in__gte=start, check_in__lt=end)
    daily_rates = [
        {
            "currency": row["currency"],
            "bookings": row["bookings"],
            "nights": row["night_count"],
            "average_daily_rate": _ratio(row["stay_revenue"], row["night_count"], CENT),
        }
        for row in checked_in.values("currency")
        .annotate(bookings=Count("id"), night_count=Sum("nights"), stay_revenue=Sum("subtotal", output_field=MONEY_SUM))
        .order_by("currency")
    ]

    demand = bookings.aggregate(
        booked_nights=_nights_in_window(start, end),
        bookings=Count("id", filter=Q(check_in__gte=start, check_in__lt=end)),
    )

    return {
        "city": city.strip(),
        "supply": supply,
        "average_nightly_price": prices,
        "occupancy": _occupancy_window(booked_nights=demand["booked_nights"], supply=supply, start=start, end=end),
        "average_daily_rate": daily_rates,
        "bookings_last_30_days": demand["bookings"],
    }


def market_data_get(*, city: str, today: datetime.date, now: datetime.datetime) -> dict[str, Any]:
    """``market_data`` from the precomputed snapshot when it is fresh, computed live otherwise.

    Fresh means computed for ``today`` and less than ``MARKET_DATA_MAX_AGE_MINUTES`` ago.
    ``source`` says which ("precomputed" or "live") and ``computed_at`` when.
    """
    max_age = datetime.timedelta(minutes=settings.MARKET_DATA_MAX_AGE_MINUTES)
    snapshot = (
        MarketSnapshot.objects.filter(city_key=city.strip().lower(), as_of=today, computed_at__gt=now - max_age)
        .only("data", "computed_at")
        .first()
    )
    if snapshot is None:
        return {**market_data(city=city, today=today), "source": "live", "computed_at": now}
    # The figures are the city's; the name is echoed as asked, like the live answer does.
    return {**snapshot.data, "city": city.strip(), "source": "precomputed", "computed_at": snapshot.computed_at}


def market_cities() -> dict[str, str]:
    """Cities with active listings: lower-cased key -> the spelling most listings use."""
    spellings: dict[str, tuple[int, str]] = {}
    rows = Property.objects.filter(is_active=True).values_list("city").annotate(n=Count("id")).order_by("city")
    for city, count in rows:
        key = city.strip().lower()
        if key and (key not in spellings or count > spellings[key][0]):
            spellings[key] = (count, city.strip())
    return {key: name for key, (_, name) in sorted(spellings.items())}


def report_hosts() -> QuerySet[User]:
    """Hosts who get a daily report: active accounts with at least one active listing."""
    listing = Property.objects.filter(host=OuterRef("pk"), is_active=True)
    return User.objects.filter(is_host=True, is_active=True).filter(Exists(listing)).order_by("pk")


UPCOMING_DAYS = 7
UPCOMING_LIMIT = 20


def _money_by_currency(rows: QuerySet) -> list[dict[str, Any]]:
    return [{"currency": row["currency"], "count": row["n"], "amount": _money(row["amount"])} for row in rows]


def host_daily_report(*, host: User, day: datetime.date) -> dict[str, Any]:
    """What happened on ``host``'s listings on ``day``, what is pending and what is coming.

    New, confirmed and cancelled bookings count events of that day (UTC); money is per
    currency; "upcoming" lists check-ins of the week after ``day``; occupancy is the next
    30 days from the day after.
    """
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(days=1)
    bookings = Booking.objects.filter(property__host=host)

    def booked_money(queryset: QuerySet[Booking]) -> list[dict[str, Any]]:
        return _money_by_currency(
            queryset.values("currency")
            .annotate(n=Count("id"), amount=Sum("host_payout_amount", output_field=MONEY_SUM))
            .order_by("currency")
        )

    counts = bookings.aggregate(
        created=Count("id", filter=Q(created_at__gte=start, created_at__lt=end)),
        confirmed=Count("id", filter=Q(confirmed_at__gte=start, confirmed_at__lt=end)),
        cancelled=Count("id", filter=Q(cancelled_at__gte=start, cancelled_at__lt=end)),
        pending=Count("id", filter=Q(status=BookingStatus.PENDING)),
    )
    next_day = day + datetime.timedelta(days=1)
    upcoming = [
        {
            "booking_id": row["pk"],
            "property": row["property__title"],
            "check_in": row["check_in"],
            "check_out": row["check_out"],
            "guests": row["guests"],
        }
        for row in _booked(bookings)
        .filter(check_in__gte=next_day, check_in__lt=next_day + datetime.timedelta(days=UPCOMING_DAYS))
        .order_by("check_in", "pk")
        .values("pk", "property__title", "check_in", "check_out", "guests")[:UPCOMING_LIMIT]
    ]
    window_end = next_day + datetime.timedelta(days=OCCUPANCY_WINDOW_DAYS)
    active_properties = Property.objects.filter(host=host, is_active=True).count()
    nights = _booked(bookings.filter(property__is_active=True)).aggregate(
        booked=_nights_in_window(next_day, window_end)
    )
    payouts = _money_by_currency(
        Payout.objects.filter(host=host, created_at__gte=start, created_at__lt=end)
        .values("currency")
        .annotate(n=Count("id"), amount=Sum("amount", output_field=MONEY_SUM))
        .order_by("currency")
    )
    return {
        "host_id": host.pk,
        "day": day,
        "bookings": {
            "new": counts["created"],
            "confirmed": counts["confirmed"],
            "cancelled": counts["cancelled"],
            "pending_requests": counts["pending"],
        },
        "new_booking_earnings": booked_money(bookings.filter(created_at__gte=start, created_at__lt=end)),
        "payouts": payouts,
        "upcoming_check_ins": upcoming,
        "occupancy_next_30_days": _occupancy_window(
            booked_nights=nights["booked"], supply=active_properties, start=next_day, end=window_end
        ),
    }
