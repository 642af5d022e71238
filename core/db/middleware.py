"""Views that cannot reach the database answer 503 JSON with Retry-After, not a 500.

Last in MIDDLEWARE, so its ``process_exception`` is the first to see a view's exception
(DRF views re-raise what their handler does not know). Failures outside a view reach
``core.exceptions.json_server_error``, which gives the same answer.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.db.availability import is_database_unavailable
from core.exceptions import json_database_unavailable


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            return json_database_unavailable(request, exception)
        return None
