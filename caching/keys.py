"""The one place Staybase names its Redis and cache keys.

Keys are versioned and hierarchical. Two families:

* cache-API keys (``v1:property:12``): Django's cache adds its own ``KEY_PREFIX`` and
  version, so in Redis they read ``sb:1:v1:property:12``;
* raw keys (``sb:v1:rl:...``) for direct Redis access (Lua scripts, counters, channels).

Bumping ``KEY_VERSION`` orphans every key at once (they expire on their own TTLs).
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping

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
    return raw_key_builder()(*parts)


def cache_key(kind: str, *parts: object) -> str:
    """A key for Django's cache API: ``v1:<kind>:<parts…>``."""
    return ":".join([KEY_VERSION, kind, *(str(part) for part in parts)])


def generation_key(namespace: str) -> str:
    return cache_key("gen", namespace)


def params_digest(params: Mapping[str, Iterable[str] | str], *, ignore: Iterable[str] = ()) -> str:
    """A stable digest of query parameters: order, repeats and blank values do not matter,
    so equal searches share one key (``?a=1&b=2`` == ``?b=2&a=1&c=``)."""
    skipped = set(ignore)
    normalized: dict[str, list[str]] = {}
    for name in sorted(params):
        if name in skipped:
            continue
        raw = params.getlist(name) if hasattr(params, "getlist") else params[name]
        values = [raw] if isinstance(raw, str) else list(raw)
        cleaned = sorted({value.strip() for value in values if value.strip()})
        if cleaned:
            normalized[name] = cleaned
    encoded = json.dumps(normalized, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()
