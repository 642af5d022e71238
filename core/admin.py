from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path

from core.exceptions import DomainError
from core.models import IdempotencyKey


def admin_run_service(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    service: Callable[[Any], object],
    *,
    done: str,
) -> None:
    """Call ``service`` once per selected object and report what happened.

    Each call is its own transaction, so one refusal does not undo the others. Rows are
    visited in primary-key order, the order every service takes its row locks in.
    """
    succeeded = 0
    skipped: dict[str, list[str]] = defaultdict(list)
    for obj in queryset.order_by("pk"):
        try:
            service(obj)
        except DomainError as exc:
            skipped[exc.message].append(f"#{obj.pk}")
        else:
            succeeded += 1
    opts = modeladmin.model._meta
    if succeeded:
        noun = opts.verbose_name if succeeded == 1 else opts.verbose_name_plural
        modeladmin.message_user(request, f"{succeeded} {noun} {done}.", messages.SUCCESS)
    for reason, labels in skipped.items():
        noun = opts.verbose_name if len(labels) == 1 else opts.verbose_name_plural
        modeladmin.message_user(
            request, f"Skipped {len(labels)} {noun} ({', '.join(labels)}): {reason}", messages.WARNING
        )


class ReadOnlyAdminMixin:
    """A record written only by services: staff may look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class StaffPageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A staff page in the admin's index (Cache, Jobs, Performance, Live), carried by a model
    that has no rows: its changelist is the page, which the subclass renders."""

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name=f"{opts.app_label}_{opts.model_name}_changelist",
            )
        ]


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "scope", "user", "response_status", "created_at", "expires_at")
    list_select_related = ("user",)
    list_filter = ("scope", "response_status", "created_at")
    search_fields = ("key", "scope", "user__email")
    ordering = ("-pk",)
    raw_id_fields = ("user",)
    show_full_result_count = False
