"""The OpenAPI schema's conventions, in one place (drf-spectacular's ``DEFAULT_SCHEMA_CLASS``).

Every operation documents the errors it can answer, in the one error shape; operations are
tagged by domain and get ids named after their URL (``booking_cancel``, ``property_list``).
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin

from caching.auth import CachedTokenAuthentication
from core.exceptions import error_body

# The first path segment under /api/v1/ (past "host/") -> the tag of its domain.
DOMAIN_TAGS = {
    "auth": "auth",
    "properties": "properties",
    "amenities": "properties",
    "bookings": "bookings",
    "financial": "payouts",
    "payouts": "payouts",
    "analytics": "analytics",
    "admin": "admin",
    "ws": "realtime",
}

ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` names each bad field or parameter.",
    401: "No credentials, or a token that is invalid or revoked.",
    403: "Signed in but not allowed, or a session write without its CSRF token.",
    404: "No such object visible to you, or a page past the last one.",
    409: "Conflicts with the current state: dates already taken, a status that forbids the action, "
    "an email already registered, or an Idempotency-Key whose first request is still running.",
    413: "The body is over the upload limit (DATA_UPLOAD_MAX_MEMORY_SIZE, field and file counts).",
    415: "Unsupported Content-Type.",
    422: "Well-formed but not processable, e.g. an Idempotency-Key reused with another body.",
    429: "Rate-limited; Retry-After says when to try again.",
    503: "A dependency the request needs is unavailable; Retry-After says when to try again.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds to wait."}}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: not_found, invalid, booking_conflict...")
    message = serializers.CharField(help_text="For people; may change.")
    fields = serializers.DictField(  # type: ignore[assignment]  # the error body's "fields", not Serializer.fields
        child=serializers.JSONField(),
        help_text="Field or parameter name -> list of messages (nested for nested input); empty if none.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class StaybaseAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                parameter["schema"].update(minimum=1, example=1)
        error_schema = {"$ref": self.resolve_serializer(ErrorSerializer, "response").ref["$ref"]}
        responses = operation["responses"]
        for status in self._error_statuses(operation):
            response = responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
            response.setdefault("content", {"application/json": {"schema": error_schema}})
            if status in (429, 503):
                response.setdefault("headers", RETRY_AFTER)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> list[int]:
        parameters = operation.get("parameters", [])
        statuses = [429, 503]
        if "requestBody" in operation or any(p["in"] in ("query", "header") for p in parameters):
            statuses.append(400)
        if self.view.authentication_classes:
            statuses += [401, 403]
        if any(p["in"] == "path" for p in parameters) or self._lists_pages():
            statuses.append(404)
        if self.method in UNSAFE_METHODS:
            statuses += [400, 409, 413, 415, 422]
        return sorted(set(statuses))

    def _lists_pages(self) -> bool:
        paged = isinstance(view := self.view, GenericAPIView) and view.pagination_class is not None
        return self.method == "GET" and isinstance(view, ListModelMixin) and paged

    def _segments(self) -> list[str]:
        relative = self.path.removeprefix("/api/v1/")
        segments = [s for s in relative.strip("/").split("/") if s and not s.startswith("{")]
        return segments[1:] if segments[:1] == ["host"] and len(segments) > 1 else segments

    def get_tags(self) -> list[str]:
        segments = self._segments()
        first = segments[0] if segments else "api"
        return [DOMAIN_TAGS.get(first, first)]

    def get_operation_id(self) -> str:
        """From the URL's name: booking-list -> booking_list / booking_create, booking-detail -> booking_get..."""
        try:
            name = resolve(_concrete(self.path)).url_name
        except Resolver404:
            name = None
        if not name:
            return super().get_operation_id()
        base = name.replace("-", "_")
        entity = base.removesuffix("_list").removesuffix("_detail")
        if isinstance(self.view, ListModelMixin) and self.method in ("GET", "POST"):
            return f"{entity}_{'list' if self.method == 'GET' else 'create'}"
        verbs = {"GET": "get", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}
        if self.method == "POST":
            return base
        return f"{entity}_{verbs.get(self.method, self.method.lower())}"


def _concrete(path: str) -> str:
    """A path the URL resolver matches: each {parameter} becomes 1 (every route parameter is an integer id)."""
    return "/".join("1" if part.startswith("{") and part.endswith("}") else part for part in path.split("/"))


def api_docs_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and its docs pages: for everyone when API_DOCS_PUBLIC, else for staff (session or token)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.API_DOCS_PUBLIC or _is_staff(request):
            return view(request, *args, **kwargs)
        message = "The API schema and docs are for staff here: sign in to the admin, or send a staff token."
        return JsonResponse(error_body("docs_not_public", message), status=403)

    return guarded


def _is_staff(request: HttpRequest) -> bool:
    if request.user.is_authenticated:  # the admin's session
        return request.user.is_staff
    try:
        # TokenAuthentication reads only the Authorization header, which a plain HttpRequest has.
        authenticated = CachedTokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except AuthenticationFailed:
        return False
    return authenticated is not None and authenticated[0].is_staff
