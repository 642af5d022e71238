from typing import Any, cast

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import InvalidInput


class StrictPageSizeMixin:
    """Rejects a bad ``page_size`` with a 400 instead of silently clamping it."""

    page_size: int | None
    page_size_query_param: str | None = "page_size"

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get("page_size")
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise InvalidInput("page_size must be an integer.", fields={"page_size": ["Must be an integer."]}) from None
        most = settings.API_MAX_PAGE_SIZE
        if not 1 <= size <= most:
            raise InvalidInput(
                f"page_size must be between 1 and {most}.", fields={"page_size": [f"Must be between 1 and {most}."]}
            )
        return size

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        # A mixin: the DRF pagination class it is mixed into defines this.
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)  # type: ignore[misc]
        for parameter in parameters:
            if parameter["name"] == "page_size":
                parameter["schema"].update(minimum=1, maximum=settings.API_MAX_PAGE_SIZE, default=self.page_size)
            elif parameter["name"] == getattr(self, "page_query_param", None):
                parameter["schema"].update(minimum=1)
        return parameters


class StrictPageNumberPagination(StrictPageSizeMixin, PageNumberPagination):
    """A malformed ``page`` is a 400; a well-formed one past the last page stays a 404."""

    def get_page_number(self, request: Request, paginator: Paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if raw in self.last_page_strings:
            return paginator.num_pages
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise InvalidInput("page must be a positive integer.", fields={"page": ["Must be a positive integer."]})
        return int(raw)


class CappedCountPaginator(Paginator):
    """Counts at most ``SEARCH_COUNT_CAP`` rows: a COUNT over a LIMIT, never over the whole table.

    Past the cap, ``count`` is the cap and only the pages up to it exist.
    """

    @cached_property
    def matches(self) -> int:
        cap = settings.SEARCH_COUNT_CAP
        if isinstance(self.object_list, QuerySet):
            # No ORDER BY: the database stops after cap + 1 rows instead of sorting them all.
            return self.object_list.order_by().values("pk")[: cap + 1].count()
        return min(len(self.object_list), cap + 1)

    @cached_property
    def count(self) -> int:
        return min(self.matches, settings.SEARCH_COUNT_CAP)

    @property
    def count_is_exact(self) -> bool:
        return self.matches <= settings.SEARCH_COUNT_CAP


class CappedCountPagination(StrictPageNumberPagination):
    """Page numbers over a capped count (search): ``count_is_exact`` says whether there are more."""

    django_paginator_class = CappedCountPaginator

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            paginator = self.django_paginator_class(queryset, self.get_page_size(request))
            if paginator.count_is_exact:
                raise
            raise InvalidInput(
                f"Only the first {paginator.count} results are paged; narrow the search.",
                fields={"page": [f"At most {paginator.num_pages} for this search."]},
            ) from None

    def get_paginated_response(self, data: Any) -> Response:
        assert self.page is not None  # paginate_queryset() ran
        paginator = cast(CappedCountPaginator, self.page.paginator)
        return Response(
            {
                "count": paginator.count,
                "count_is_exact": paginator.count_is_exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"]["count"]["description"] = "Matching results, up to the cap (see count_is_exact)."
        paginated["properties"]["count_is_exact"] = {
            "type": "boolean",
            "description": "False when more results match than are counted and paged; narrow the search.",
        }
        paginated["required"] = [*paginated.get("required", []), "count_is_exact"]
        return paginated


class NewestFirstCursorPagination(StrictPageSizeMixin, CursorPagination):
    """For the large, growing lists: constant cost per page (no COUNT(*), no OFFSET scan),
    and stable while rows are added. Ids grow with creation time, so "-id" is newest first."""

    page_size = 20
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Cursor | None:
        invalid = InvalidInput(
            "Invalid cursor: pass on the next or previous link as given.",
            fields={"cursor": ["Not a cursor of this list."]},
        )
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        # DRF hands the position to the queryset unchecked: "p=abc" would reach the database.
        position = None if cursor is None or cursor.position is None else str(cursor.position)
        if position is not None and not (position.isascii() and position.isdigit() and int(position) < 2**63):
            raise invalid
        return cursor
