"""``Idempotency-Key`` support for unsafe endpoints.

The first request with a key records an in-progress marker in its own transaction,
then does the work and stores the response in one transaction with it. A retry with
the same key and body replays the stored response; a different body is a 422; a
retry while the first is still running is a 409. Failed work (an exception) releases
the key so the client can try again.
"""

import datetime
import hashlib
import json
from collections.abc import Callable

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from core.exceptions import Conflict, InvalidInput, Unprocessable
from core.models import IdempotencyKey

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
# A marker older than this belongs to a request whose process died mid-flight.
STALE_IN_PROGRESS = datetime.timedelta(minutes=2)


def request_fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.request_fingerprint != fingerprint:
        raise Unprocessable(
            "This Idempotency-Key was already used with a different request body.", code="idempotency_key_reused"
        )
    if record.response_status is None:
        raise Conflict("A request with this Idempotency-Key is still being processed.", code="idempotency_in_progress")
    response = Response(record.response_body, status=record.response_status)
    response[REPLAY_HEADER] = "true"
    return response


def _claim(*, request: Request, scope: str, key: str, fingerprint: str) -> IdempotencyKey | Response:
    now = timezone.now()
    lookup = {"user": request.user, "scope": scope, "key": key}
    for _ in range(2):
        existing = IdempotencyKey.objects.filter(**lookup).first()
        if existing is not None:
            expired = existing.expires_at <= now
            stale = existing.response_status is None and existing.created_at <= now - STALE_IN_PROGRESS
            if not (expired or stale):
                return _replay(existing, fingerprint)
            IdempotencyKey.objects.filter(pk=existing.pk).delete()
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    **lookup,
                    request_fingerprint=fingerprint,
                    expires_at=now + datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
                )
        except IntegrityError:
            continue  # a concurrent request claimed it first: replay or report it in progress
    existing = IdempotencyKey.objects.get(**lookup)
    return _replay(existing, fingerprint)


def idempotent(*, request: Request, scope: str, handler: Callable[[], Response]) -> Response:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return handler()
    key = key.strip()
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            fields={IDEMPOTENCY_HEADER: ["Invalid key."]},
        )
    fingerprint = request_fingerprint(request)
    claimed = _claim(request=request, scope=scope, key=key, fingerprint=fingerprint)
    if isinstance(claimed, Response):
        return claimed
    try:
        with transaction.atomic():
            response = handler()
            claimed.response_status = response.status_code
            claimed.response_body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
            claimed.save(update_fields=["response_status", "response_body"])
    except BaseException:
        # Errors are raised, not returned: nothing was done, so the client may retry the key.
        claimed.delete()
        raise
    return response


def idempotency_keys_purge_expired(*, now: datetime.datetime, dry_run: bool = False, batch_size: int = 5000) -> int:
    """Delete expired keys (a retry after expiry is a new request anyway), in batches."""
    expired = IdempotencyKey.objects.filter(expires_at__lt=now)
    if dry_run:
        return expired.count()
    deleted = 0
    while True:
        ids = list(expired.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
