"""The admin's Live page, beside Cache, Jobs and Performance."""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.admin import StaffPageAdmin
from realtime.models import LivePage
from realtime.selectors import rooms_for_live_page


@admin.register(LivePage)
class LivePageAdmin(StaffPageAdmin):
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        # The socket's own two rooms (broadcast, user:<id>) count towards the per-socket limit.
        rooms = rooms_for_live_page(limit=settings.REALTIME_MAX_ROOMS_PER_SOCKET - 2)
        context = {
            **self.admin_site.each_context(request),
            "title": "Live",
            "opts": self.model._meta,
            "rooms": rooms,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "realtime/admin/live.html", context)
