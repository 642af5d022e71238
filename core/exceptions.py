"""Domain errors and the one place that renders every API error.

Every error leaves Staybase as ``{"error": {"code", "message", "fields"}}``:
validation errors, 401/403/404/405/415/429, domain errors and 500s alike.
"""

import math
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.db.availability import database_breaker, is_database_unavailable


class DomainError(Exception):
    """A business rule said no. Subclasses set the code and HTTP status."""

    code = "domain_error"
    status_code: int = status.HTTP_400_BAD_REQUEST
    default_message = "The request could not be completed."

    def __init__(
        self, message: str | None = None, *, fields: dict[str, list[str]] | None = None, code: str | None = None
    ):
        self.message = message or self.default_message
        self.fields = fields or {}
        if code:
            self.code = code
        super().__init__(self.message)


class InvalidInput(DomainError):
    code = "invalid"
    status_code = status.HTTP_400_BAD_REQUEST


class Conflict(DomainError):
    code = "conflict"
    status_code = status.HTTP_409_CONFLICT


class Forbidden(DomainError):
    code = "permission_denied"
    status_code = status.HTTP_403_FORBIDDEN
    default_message = "You do not have permission to perform this action."


class NotFound(DomainError):
    code = "not_found"
    status_code = status.HTTP_404_NOT_FOUND
    default_message = "Not found."


class Unprocessable(DomainError):
    code = "unprocessable"
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten_detail(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten_detail(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten_detail(item) for item in detail]
    return str(detail)


def _validation_response(exc: drf_exceptions.ValidationError) -> Response:
    detail = exc.detail
    if isinstance(detail, dict):
        fields = _flatten_detail(detail)
        non_field = fields.pop("non_field_errors", None)
        message = non_field[0] if non_field else "Invalid input."
        if non_field:
            fields["non_field_errors"] = non_field
    else:
        messages = _flatten_detail(detail if isinstance(detail, list) else [detail])
        fields = {}
        message = messages[0] if messages else "Invalid input."
    return Response(error_body("invalid", message, fields), status=status.HTTP_400_BAD_REQUEST)


# --- Request bodies over Django's upload limits: 413 naming the limit --------------------------------
def request_too_large_body(exc: Exception | None) -> dict[str, Any] | None:
    """The error body for Django's upload-limit exceptions, or None for any other exception."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_body("request_too_large", f"The request body is larger than the limit of {limit} bytes.")
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return error_body("request_too_large", f"The request has more than the limit of {limit} fields.")
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return error_body("request_too_large", f"The request has more than the limit of {limit} files.")
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if (too_large := request_too_large_body(exc)) is not None:
        return Response(too_large, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.ValidationError):
        return _validation_response(exc)

    response = drf_exception_handler(exc, context)
    if response is None:
        # Unexpected: re-raised by DRF so Django logs it, signals got_request_exception
        # (error trackers hook there) and answers through handler500 in the same shape.
        return None
    code = exc.get_codes() if isinstance(exc, drf_exceptions.APIException) else "error"
    if not isinstance(code, str):
        code = "error"
    message = str(exc.detail) if isinstance(exc, drf_exceptions.APIException) else str(exc)
    response.data = error_body(code, message)
    return response


# Django-level handlers for requests that never reach a DRF view (unknown URLs, crashes in middleware).
def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if (too_large := request_too_large_body(exception)) is not None:
        return JsonResponse(too_large, status=413)
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """CSRF_FAILURE_VIEW: a session-authenticated write without a valid CSRF token."""
    message = "CSRF verification failed: send the X-CSRFToken header, or authenticate with a token."
    return JsonResponse(error_body("csrf_failed", message), status=403)


def json_permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


@csrf_exempt  # no view here to protect; without it an unknown path answered a write with a CSRF 403
def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """The catch-all under /api/: a JSON 404 for any method, naming the path with a slash if that one exists."""
    if not request.path_info.endswith("/"):
        try:
            resolved = resolve(f"{request.path_info}/")
        except Resolver404:
            resolved = None
        if resolved is not None and resolved.func is not api_not_found:
            message = f"Not found. API paths end with a slash: {request.path}/"
            return JsonResponse(error_body("not_found", message), status=404)
    return json_not_found(request, exception)


def json_server_error(request: HttpRequest) -> JsonResponse:
    # Django calls this while handling the exception: a database outage met outside a view
    # (in a middleware) is still a 503, like the ones core.db.middleware answers for views.
    if is_database_unavailable(sys.exception()):
        return json_database_unavailable(request)
    return JsonResponse(error_body("server_error", "An unexpected error occurred."), status=500)


def json_database_unavailable(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """The database is down or refusing work: 503, retry after the breaker's next probe."""
    response = JsonResponse(
        error_body("database_unavailable", "The database is unavailable; try again in a moment."), status=503
    )
    response["Retry-After"] = str(max(1, math.ceil(database_breaker().reset_timeout)))
    return response


def json_too_many_requests(request: HttpRequest, *, retry_after_s: int) -> JsonResponse:
    """A 429 for plain Django views (the admin login) in the API's error shape."""
    response = JsonResponse(error_body("throttled", "Too many attempts; wait and try again."), status=429)
    response["Retry-After"] = str(max(1, retry_after_s))
    return response
