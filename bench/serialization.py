"""How to store the big cache payloads: pickle vs orjson vs json, with and without compression.

    DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/serialization.py

Builds the payloads from the database in this process (Django set up, nothing served):

* ``search100 data``: a search page of 100 listings as the API's Python data (what a selector
  cache would hold), and ``search100 json``: the same page rendered, the bytes clients get;
* ``dashboard dict``: the busiest host's dashboard as the selector returns it (Decimal, date);
* ``entry search100`` / ``entry search20`` / ``entry detail``: the ``caching.layer.Entry`` the
  response cache stores (generations, freshness and a ``CachedBody`` of rendered bytes).

For each payload and codec (pickle protocol 5, orjson, json; rendered bytes also stored raw;
an Entry as an orjson/json header line followed by the raw body, since JSON cannot hold bytes)
and compression (none, zlib 1 and 6, lz4 frame, zstd 1 and 3 when installed) it prints the
bytes stored, dumps and loads in µs (best of several timed batches), whether loads gives
back an equal object, and the Redis GET of a value of that size through django-redis's client
(REDIS_URL; keys under ``sbbench:serialization:`` with a 60 s TTL, deleted at the end), so
transfer time saved by compression can be set against the time compression costs.
"""

import datetime
import json
import os
import pickle
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import orjson
except ImportError:  # pragma: no cover - pinned in requirements.txt
    orjson = None
try:
    import lz4.frame as lz4_frame
except ImportError:
    lz4_frame = None
try:
    import zstandard
except ImportError:
    zstandard = None

# Redis databases other people's work uses on the shared server; benchmarks stay off them.
RESERVED_REDIS_DBS = {0, 1, 9, 11, 12, 13}
KEY_PREFIX = "sbbench:serialization:"
BATCH_SECONDS = 0.03
BATCHES = 7
GET_ROUNDS = 9
GET_BATCH = 50
TINY = b"x" * 16


@dataclass(frozen=True)
class Codec:
    name: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


@dataclass(frozen=True)
class Compression:
    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | datetime.date | datetime.datetime):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _compressions() -> list[Compression]:
    found = [
        Compression("none", lambda b: b, lambda b: b),
        Compression("zlib-1", lambda b: zlib.compress(b, 1), zlib.decompress),
        Compression("zlib-6", lambda b: zlib.compress(b, 6), zlib.decompress),
    ]
    if lz4_frame is not None:
        found.append(Compression("lz4", lz4_frame.compress, lz4_frame.decompress))
    if zstandard is not None:
        for level in (1, 3):
            compressor = zstandard.ZstdCompressor(level=level)
            found.append(Compression(f"zstd-{level}", compressor.compress, zstandard.ZstdDecompressor().decompress))
    return found


def _codecs_for(payload: Any) -> list[Codec]:
    from caching.layer import Entry
    from caching.responses import CachedBody

    pickle5 = Codec("pickle-5", lambda v: pickle.dumps(v, protocol=5), pickle.loads)
    if isinstance(payload, bytes):
        return [Codec("raw", lambda v: v, lambda b: b), pickle5]
    if isinstance(payload, Entry):

        def envelope(dump_header: Callable[[Any], bytes], load_header: Callable[[bytes], Any]) -> tuple:
            def dumps(entry: Entry) -> bytes:
                body = entry.value
                header = [list(entry.generations), entry.fresh_until, body.content_type, body.etag]
                return dump_header(header) + b"\n" + body.content

            def loads(data: bytes) -> Entry:
                line, _, content = data.partition(b"\n")
                generations, fresh_until, content_type, etag = load_header(line)
                return Entry(tuple(generations), fresh_until, CachedBody(content, content_type, etag))

            return dumps, loads

        codecs = [pickle5]
        if orjson is not None:
            codecs.append(Codec("orjson header+body", *envelope(orjson.dumps, orjson.loads)))
        codecs.append(Codec("json header+body", *envelope(lambda h: json.dumps(h).encode(), json.loads)))
        return codecs
    codecs = [pickle5]
    if orjson is not None:
        codecs.append(Codec("orjson", lambda v: orjson.dumps(v, default=_json_default), orjson.loads))
    codecs.append(
        Codec(
            "json",
            lambda v: json.dumps(v, default=_json_default, separators=(",", ":")).encode(),
            json.loads,
        )
    )
    return codecs


def _per_call_us(func: Callable[[], Any]) -> float:
    """The best over a few batches of the mean time of one call, in µs."""
    func()
    calls = 1
    while True:  # size a batch to about BATCH_SECONDS
        started = time.perf_counter()
        for _ in range(calls):
            func()
        elapsed = time.perf_counter() - started
        if elapsed >= BATCH_SECONDS / 5 or calls >= 1 << 20:
            break
        calls *= 4
    calls = max(1, int(calls * BATCH_SECONDS / max(elapsed, 1e-9)))
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return min(samples)


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")  # no query log in the process that measures
    os.environ.setdefault("RATE_LIMIT_SCALE", "1000000")
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # no request log lines between the table rows
    import django

    django.setup()


def _payloads() -> dict[str, Any]:
    from django.db.models import Count
    from django.test import Client, override_settings
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from accounts.models import User
    from analytics.selectors import host_dashboard
    from caching.layer import Entry
    from caching.responses import CachedBody, _etag

    guest = User.objects.filter(is_host=False, is_staff=False, is_active=True).order_by("pk").first()
    host = (
        User.objects.filter(is_host=True, is_active=True)
        .annotate(n=Count("properties__bookings"))
        .order_by("-n", "pk")
        .first()
    )
    if guest is None or host is None:
        sys.exit("The database has no guest or host; seed it first (bench/run.py does).")
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=guest)[0].key}")

    def get(path: str) -> Any:
        with override_settings(CACHE_ENABLED=False):
            response = client.get(path, HTTP_ACCEPT="application/json")
        if response.status_code != 200:
            sys.exit(f"GET {path} answered {response.status_code}: {response.content[:300]!r}")
        return response

    search100 = get("/api/v1/properties/?page_size=100")
    search20 = get("/api/v1/properties/?city=Lisbon")
    detail_id = search20.data["results"][0]["id"]
    detail = get(f"/api/v1/properties/{detail_id}/")

    def entry(content: bytes) -> Entry:
        stamp = time.time_ns() // 1000
        return Entry(
            generations=(stamp, stamp + 1),
            fresh_until=time.time() + 180,
            value=CachedBody(content=content, content_type="application/json", etag=_etag(content)),
        )

    return {
        "search100 data": json.loads(search100.content),  # plain dicts and lists, as the API's data
        "search100 json": search100.content,
        "dashboard dict": host_dashboard(host=host, today=timezone.localdate()),
        "entry search100": entry(search100.content),
        "entry search20": entry(search20.content),
        "entry detail": entry(detail.content),
    }


def _redis_client():
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return None
    database = int((urlsplit(url).path or "/0").lstrip("/") or 0)
    if database in RESERVED_REDIS_DBS:
        sys.exit(f"REDIS_URL points at database {database}; use a benchmark database (e.g. /5).")
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def main() -> int:
    _setup_django()
    payloads = _payloads()
    client = _redis_client()
    compressions = _compressions()
    measured: list[tuple[str, str, str, int, int, float, float, bool]] = []
    blobs: dict[int, bytes] = {}  # one stored value per size, for the Redis GET
    for payload_name, payload in payloads.items():
        for codec in _codecs_for(payload):
            encoded = codec.dumps(payload)
            exact = codec.loads(encoded) == payload
            dumps_us = _per_call_us(lambda codec=codec, payload=payload: codec.dumps(payload))
            loads_us = _per_call_us(lambda codec=codec, encoded=encoded: codec.loads(encoded))
            for compression in compressions:
                blob = compression.compress(encoded)
                if blob is not encoded:
                    dumps_us_total = dumps_us + _per_call_us(lambda c=compression, e=encoded: c.compress(e))
                    loads_us_total = loads_us + _per_call_us(lambda c=compression, b=blob: c.decompress(b))
                else:
                    dumps_us_total, loads_us_total = dumps_us, loads_us
                blobs.setdefault(len(blob), blob)
                measured.append(
                    (
                        payload_name,
                        codec.name,
                        compression.name,
                        len(encoded),
                        len(blob),
                        dumps_us_total,
                        loads_us_total,
                        exact,
                    )
                )
    get_us = _redis_get_us(client, blobs) if client is not None else {}
    rows = []
    for payload_name, codec_name, compression_name, plain, size, dumps_us, loads_us, exact in measured:
        get = get_us.get(size)
        rows.append(
            [
                payload_name,
                codec_name,
                compression_name,
                f"{size:,}",
                f"{size / plain:.2f}" if compression_name != "none" else "",
                f"{dumps_us:.1f}",
                f"{loads_us:.1f}",
                f"{get:.0f}" if get is not None else "-",
                f"{get + loads_us:.0f}" if get is not None else "-",
                "yes" if exact else "no",
            ]
        )
    header = [
        "payload",
        "codec",
        "compression",
        "bytes",
        "vs none",
        "dumps µs",
        "loads µs",
        "Redis GET µs",
        "GET + loads µs",
        "round-trips equal",
    ]
    print(_render(header, rows, text_columns=3))
    print()
    tiny = get_us.get(len(TINY))
    print(
        f"Python {sys.version.split()[0]}, orjson {getattr(orjson, '__version__', 'missing')}, "
        f"lz4 {'yes' if lz4_frame else 'missing'}, zstandard {getattr(zstandard, '__version__', 'missing')}. "
        f"Times are the best of {BATCHES} timed batches (timeit's convention: the least disturbed by other work); "
        "dumps/loads include (de)compression. "
        + (
            f"Redis GET via django-redis's client ({os.environ['REDIS_URL']}), sizes interleaved over "
            f"{GET_ROUNDS} rounds; a {len(TINY)}-byte value takes {tiny:.0f} µs (the fixed cost of a round trip). "
            if client is not None
            else "No REDIS_URL: Redis GET skipped. "
        )
        + f"1-minute load average {os.getloadavg()[0]:.2f}."
    )
    return 0


def _redis_get_us(client, blobs: dict[int, bytes]) -> dict[int, float]:
    """Per size, the best over interleaved rounds of the mean GET time of a batch, in µs."""
    blobs = {**blobs, len(TINY): TINY}
    keys = {size: f"{KEY_PREFIX}{size}" for size in blobs}
    try:
        for size, blob in blobs.items():
            client.set(keys[size], blob, ex=60)
        best: dict[int, float] = {}
        for _ in range(GET_ROUNDS):
            for size, key in keys.items():
                started = time.perf_counter()
                for _ in range(GET_BATCH):
                    client.get(key)
                per_call = (time.perf_counter() - started) / GET_BATCH * 1e6
                best[size] = min(per_call, best.get(size, per_call))
        return best
    finally:
        client.delete(*keys.values())


def _render(header: list[str], rows: list[list[str]], *, text_columns: int) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (
            c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    separator = (
        "|" + "|".join("-" * (w + 2) if i < text_columns else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    )
    return "\n".join([line(header), separator, *(line(row) for row in rows)])


if __name__ == "__main__":
    sys.exit(main())
