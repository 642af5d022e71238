from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.permissions import request_user
from bookings.models import Booking, Payout, PayoutItem
from bookings.services.bookings import booking_cancel, booking_confirm
from bookings.services.payouts import payout_mark_failed, payout_mark_paid
from core.admin import ReadOnlyAdminMixin, admin_run_service

# The price snapshot booking_create took; editing any of it would break the money trail.
BOOKING_PRICE_FIELDS = (
    "nights",
    "currency",
    "nightly_price",
    "subtotal",
    "cleaning_fee",
    "service_fee",
    "total_price",
    "host_fee",
    "host_payout_amount",
)


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    """Bookings are created, priced and moved between states only by the booking services.

    The listing, guest and dates are read-only too: the price snapshot was computed for
    exactly that stay. Status changes go through the actions, which call the services.
    """

    list_display = (
        "id",
        "property",
        "host",
        "guest",
        "check_in",
        "check_out",
        "nights",
        "guests",
        "status",
        "total_price",
        "currency",
        "created_at",
    )
    list_display_links = ("id",)
    list_select_related = ("property", "property__host", "guest")
    list_filter = ("status", "currency", "check_in", "created_at")
    search_fields = ("guest__email", "property__title", "property__city", "property__host__email")
    search_help_text = "Search by booking number, guest or host email, listing title or city."
    # Newest first by primary key: an index walk that stops after one page. The model's
    # created_at ordering has no index and would sort every booking on each page load.
    ordering = ("-pk",)
    raw_id_fields = ("property", "guest")
    readonly_fields = (
        "property",
        "guest",
        "check_in",
        "check_out",
        "status",
        *BOOKING_PRICE_FIELDS,
        "created_at",
        "updated_at",
        "confirmed_at",
        "cancelled_at",
    )
    fieldsets = (
        (None, {"fields": ("property", "guest", "check_in", "check_out", "guests", "status")}),
        ("Price", {"fields": BOOKING_PRICE_FIELDS}),
        ("Record", {"fields": ("created_at", "updated_at", "confirmed_at", "cancelled_at")}),
    )
    actions = ("cancel_bookings", "confirm_bookings")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Booking | None = None) -> bool:
        return False

    @admin.display(description="Host", ordering="property__host__email")
    def host(self, obj: Booking) -> str:
        return obj.property.host.email

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Booking], search_term: str
    ) -> tuple[QuerySet[Booking], bool]:
        unfiltered = queryset
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        number = search_term.strip().lstrip("#")
        if number.isdigit():
            queryset |= unfiltered.filter(pk=int(number))
        return queryset, may_have_duplicates

    @admin.action(description="Cancel selected bookings", permissions=["change"])
    def cancel_bookings(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        admin_run_service(
            self,
            request,
            queryset,
            lambda booking: booking_cancel(booking=booking, actor=request_user(request)),
            done="cancelled",
        )

    @admin.action(description="Confirm selected bookings", permissions=["change"])
    def confirm_bookings(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        admin_run_service(
            self,
            request,
            queryset,
            lambda booking: booking_confirm(booking=booking, actor=request_user(request)),
            done="confirmed",
        )


class PayoutItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PayoutItem
    fields = ("booking", "amount", "released")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[PayoutItem]:
        return super().get_queryset(request).select_related("booking").order_by("pk")


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    """Payouts are created by payout_request and settled by the actions; nothing here is typed in."""

    list_display = (
        "id",
        "host",
        "amount",
        "currency",
        "status",
        "period_start",
        "period_end",
        "items",
        "created_at",
        "paid_at",
    )
    list_display_links = ("id",)
    list_select_related = ("host",)
    list_filter = ("status", "currency")
    search_fields = ("host__email",)
    date_hierarchy = "created_at"
    ordering = ("-pk",)
    autocomplete_fields = ("host",)
    readonly_fields = (
        "host",
        "amount",
        "currency",
        "booking_count",
        "period_start",
        "period_end",
        "status",
        "failure_reason",
        "created_at",
        "updated_at",
        "paid_at",
    )
    inlines = (PayoutItemInline,)
    actions = ("mark_paid", "mark_failed")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Payout | None = None) -> bool:
        return False

    @admin.display(description="Items", ordering="booking_count")
    def items(self, obj: Payout) -> int:
        return obj.booking_count

    @admin.action(description="Mark selected payouts paid", permissions=["change"])
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        admin_run_service(self, request, queryset, lambda payout: payout_mark_paid(payout=payout), done="marked paid")

    @admin.action(description="Mark selected payouts failed", permissions=["change"])
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        reason = f"Marked failed by {request_user(request).email}"
        admin_run_service(
            self,
            request,
            queryset,
            lambda payout: payout_mark_failed(payout=payout, reason=reason),
            done="marked failed",
        )


@admin.register(PayoutItem)
class PayoutItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "payout", "host", "booking", "listing", "amount", "released")
    list_select_related = ("payout", "payout__host", "booking", "booking__property")
    list_filter = ("released", "payout__status", "payout__currency")
    search_fields = ("payout__host__email", "booking__guest__email", "booking__property__title")
    raw_id_fields = ("payout", "booking")
    ordering = ("-pk",)
    show_full_result_count = False

    @admin.display(description="Host", ordering="payout__host__email")
    def host(self, obj: PayoutItem) -> str:
        return obj.payout.host.email

    @admin.display(description="Property")
    def listing(self, obj: PayoutItem) -> str:
        return str(obj.booking.property)
