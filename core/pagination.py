from django.conf import settings
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from core.exceptions import InvalidInput


class StrictPageNumberPagination(PageNumberPagination):
    """Page-number pagination that rejects a bad ``page_size`` instead of silently clamping it."""

    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # type: ignore[override]
        return settings.API_MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise InvalidInput("page_size must be an integer.", fields={"page_size": ["Must be an integer."]}) from None
        if not 1 <= size <= self.max_page_size:
            raise InvalidInput(
                f"page_size must be between 1 and {self.max_page_size}.",
                fields={"page_size": [f"Must be between 1 and {self.max_page_size}."]},
            )
        return size
