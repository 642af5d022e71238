"""The one place Staybase names its Redis and cache keys.

Keys are versioned and hierarchical: ``sb:v1:<namespace>:<parts…>``. Bumping
``KEY_VERSION`` orphans every key at once (they expire on their own TTLs).
"""

from collections.abc import Callable

from django.conf import settings

KEY_VERSION = "v1"


def key_prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'sb'}:{KEY_VERSION}"


def raw_key_builder() -> Callable[..., str]:
    """raw_key with the prefix read once, for hot paths that build several keys per request."""
    prefix = key_prefix()
    return lambda *parts: ":".join([prefix, *(str(part) for part in parts)])


def raw_key(*parts: object) -> str:
    """A key for direct Redis access (scripts, counters), in the same namespace as the cache."""
    return ":".join([key_prefix(), *(str(part) for part in parts)])
