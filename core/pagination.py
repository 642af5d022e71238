from django.conf import settings
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request

from core.exceptions import InvalidInput


class StrictPageSizeMixin:
    """Rejects a bad ``page_size`` with a 400 instead of silently clamping it."""

    page_size: int
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:
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


class StrictPageNumberPagination(StrictPageSizeMixin, PageNumberPagination):
    pass


class NewestFirstCursorPagination(StrictPageSizeMixin, CursorPagination):
    """For the large, growing lists: constant cost per page (no COUNT(*), no OFFSET scan),
    and stable while rows are added. Ids grow with creation time, so "-id" is newest first."""

    page_size = 20
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        # DRF hands the position to the queryset unchecked: "p=abc" would reach the database.
        position = cursor.position if cursor is not None else None
        if position is not None and (not position.isdigit() or int(position) >= 2**63):
            raise NotFound(self.invalid_cursor_message)
        return cursor
