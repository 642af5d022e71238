"""Middleware that is truly global."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import GZipMiddleware


class InstanceHeaderMiddleware:
    """``X-Staybase-Instance``: which API instance answered, for load-balancer debugging."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.instance = settings.INSTANCE_NAME

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Staybase-Instance"] = self.instance
        return response


class SelectiveGZipMiddleware(GZipMiddleware):
    """GZip for responses above a size threshold, except those that carry secrets.

    Compressing a response that reflects attacker-controlled input next to a secret
    (an auth token) opens it to BREACH-style length oracles; such views mark their
    response with ``response.contains_secrets = True``.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if getattr(response, "contains_secrets", False):
            return response
        if not response.streaming and len(response.content) < settings.GZIP_MIN_BYTES:
            return response
        return super().process_response(request, response)
