"""What a write invalidates, run after the transaction commits.

Domain apps declare the namespaces a change touches (properties/cache.py,
bookings/cache.py) and call ``invalidate_on_commit``; a rolled-back transaction
invalidates nothing, and a committed one invalidates before its response is sent.
"""

import hashlib
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
    """Cities are matched case-insensitively, so their namespaces and keys are lower-case.

    The name comes from client input: anything unusual (control characters, odd symbols,
    great length) becomes a digest, so it can neither break a key nor bloat one.
    """
    token = "-".join((city or "").strip().lower().split())
    if not token:
        return "-"
    if len(token) > 60 or not all(ch.isalnum() or ch in "-.'" for ch in token):
        return "h" + hashlib.blake2b(token.encode(), digest_size=8).hexdigest()
    return token
