"""Domain errors and the one place that renders every API error.

Every error leaves Staybase as ``{"error": {"code", "message", "fields"}}``:
validation errors, 401/403/404/405/415/429, domain errors and 500s alike.
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """A business rule said no. Subclasses set the code and HTTP status."""

    code = "domain_error"
    status_code = status.HTTP_400_BAD_REQUEST
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
        flat = [_flatten_detail(item) for item in detail]
        return flat
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


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("server_error", "An unexpected error occurred."), status=500)


def json_too_many_requests(request: HttpRequest, *, retry_after_s: int) -> JsonResponse:
    """A 429 for plain Django views (the admin login) in the API's error shape."""
    response = JsonResponse(error_body("throttled", "Too many attempts; wait and try again."), status=429)
    response["Retry-After"] = str(max(1, retry_after_s))
    return response
