"""What a write invalidates, run after the transaction commits.

Domain apps declare the namespaces a change touches (properties/cache.py,
bookings/cache.py) and call ``invalidate_on_commit``; a rolled-back transaction
invalidates nothing, and a committed one invalidates before its response is sent.
"""

from collections.abc import Iterable

from django.db import transaction

from caching import layer


def invalidate_on_commit(namespaces: Iterable[str]) -> None:
    pending = sorted(set(namespaces))
    if pending:
        transaction.on_commit(lambda: layer.invalidate(pending))


def user_namespace(user_id: int) -> str:
    return f"user:{user_id}"


def city_token(city: str | None) -> str:
    """Cities are matched case-insensitively, so their namespaces and keys are lower-case."""
    return (city or "").strip().lower() or "-"
