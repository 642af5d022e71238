"""Request parsers: DRF's JSON parser with a bound on how deeply a body may nest."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels (iterative: no recursion to exhaust)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        children: Iterable[Any]
        if isinstance(value, Mapping):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list))
    return False


class DepthLimitedJSONParser(JSONParser):
    """No request body of Staybase nests deeper than a few levels; a deeper one is refused with a 400.

    Python's decoder raises RecursionError somewhere near a thousand levels, which would be
    a 500; and a body just under that would still reach serializers and the idempotency
    fingerprint as a deep structure. The limit is checked on what the decoder built.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_JSON_DEPTH
        message = f"JSON parse error - the body nests deeper than {limit} levels."
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(message) from None
        if json_depth_exceeds(data, limit):
            raise ParseError(message)
        return data
