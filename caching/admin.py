"""The admin's Cache page: per-kind counters, Redis and L1 state, and the staff actions.

Staff only, like the staff cache API (GET /api/v1/admin/cache/stats/ and friends): the page
has no model permissions. Actions are POSTed to the page itself (CSRF-protected by
``admin_view``), report through messages and redirect back, so a reload repeats nothing.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from caching import services
from caching.models import CachePage
from caching.selectors import cache_stats
from caching.stats import EVENTS, with_ratios
from core.admin import StaffPageAdmin
from core.exceptions import DomainError


class IdForm(forms.Form):
    id = forms.IntegerField(min_value=1, max_value=2**63 - 1)


def stats_rows(counts: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One row per kind, with the totals of every kind last."""
    if counts is None:
        return []
    rows = [{"kind": kind, **row} for kind, row in counts.items()]
    if rows:
        totals = {event: sum(row[event] for row in rows) for event in EVENTS}
        rows.append({"kind": "all kinds", **with_ratios({"all": totals})["all"]})
    return rows


@admin.register(CachePage)
class CachePageAdmin(StaffPageAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # admin_view (StaffPageAdmin.get_urls) has sent anyone but active staff to the login.
        if request.method == "POST":
            self._run_action(request)
            return HttpResponseRedirect(request.path)
        stats = cache_stats()
        context = {
            **self.admin_site.each_context(request),
            "title": "Cache",
            "opts": self.model._meta,
            "stats": stats,
            "cluster_rows": stats_rows(stats["cluster"]),
            "process_rows": stats_rows(stats["process"]),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/caching/cache.html", context)

    def _run_action(self, request: HttpRequest) -> None:
        action = request.POST.get("action")
        if action == "clear":
            deleted = services.cache_clear_all(actor=request.user).deleted_keys
            done = (
                f"Deleted {deleted} Staybase keys from Redis."
                if deleted is not None
                else "Cleared the local-memory cache."
            )
            self.message_user(request, done, messages.SUCCESS)
            return
        if action not in ("invalidate_user", "invalidate_property"):
            self.message_user(request, "Unknown action.", messages.ERROR)
            return
        subject = action.removeprefix("invalidate_")
        form = IdForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Enter the id of a {subject} (a positive whole number).", messages.ERROR)
            return
        pk = form.cleaned_data["id"]
        try:
            if subject == "user":
                result = services.cache_invalidate_user(user_id=pk, actor=request.user)
            else:
                result = services.cache_invalidate_property(property_id=pk, actor=request.user)
        except DomainError as exc:
            self.message_user(request, f"{subject.capitalize()} #{pk}: {exc.message}", messages.ERROR)
            return
        extra = " and the cached logins of their tokens" if subject == "user" else ""
        namespaces = ", ".join(result.namespaces)
        self.message_user(request, f"Invalidated {subject} #{pk}: {namespaces}{extra}.", messages.SUCCESS)
