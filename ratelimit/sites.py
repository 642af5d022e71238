"""The admin site, its login limited per client IP and per submitted account by the API's limiter (POSTs only).

It is Django's default site (``default_site`` of ratelimit.apps.AdminConfig), so every
``admin.site`` and ``@admin.register`` use it.
"""

import math

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from core.exceptions import json_too_many_requests
from ratelimit.limiter import identity, limiter

LOGIN_RULES = ("admin_login_ip", "admin_login_account")


class RateLimitedAdminSite(admin.AdminSite):
    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        rate_limiter = limiter()
        if request.method != "POST" or not rate_limiter.enabled:
            return super().login(request, extra_context)
        rules = [rate_limiter.rules[name] for name in LOGIN_RULES]
        outcome, _ = rate_limiter.check(
            rules, [identity(rule, request, request.POST.get("username")) for rule in rules]
        )
        if outcome is None:
            return super().login(request, extra_context)
        if outcome.allowed:
            response = super().login(request, extra_context)
        else:
            response = json_too_many_requests(request, retry_after_s=math.ceil(outcome.retry_after_s()))
        for header, value in outcome.headers().items():
            response[header] = value
        return response
