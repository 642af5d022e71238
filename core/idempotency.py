"""``Idempotency-Key`` support for unsafe endpoints.

The key is claimed in the same transaction as the work and stored with its response, so
it is released whenever the work is: a raised error, a 5xx answer, a database that went
away mid-request or a process that died all roll the claim back with the work, and a
retry with the key is processed afresh. A retry with the same key and body replays the
stored response; a different body is a 422. A retry that arrives while the first request
is still running waits on the key's unique index for that transaction, then replays it
(or, if it failed, does the work itself).
"""

import datetime
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from core.exceptions import InvalidInput, Unprocessable
from core.models import IdempotencyKey

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"


class _KeyTaken(Exception):  # control flow: another request with this key committed first
    pass


def request_fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.request_fingerprint != fingerprint:
        raise Unprocessable(
            "This Idempotency-Key was already used with a different request body.", code="idempotency_key_reused"
        )
    response = Response(record.response_body, status=record.response_status)
    response[REPLAY_HEADER] = "true"
    return response


def _claim_and_run(*, lookup: dict[str, Any], fingerprint: str, handler: Callable[[], Response]) -> Response:
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    **lookup,
                    request_fingerprint=fingerprint,
                    expires_at=timezone.now() + datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
                )
        except IntegrityError:
            raise _KeyTaken from None
        response = handler()
        if response.status_code >= 500:
            # Not an answer to remember: undo the work with the claim so a retry runs again.
            transaction.set_rollback(True)
            return response
        record.response_status = response.status_code
        record.response_body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
        record.save(update_fields=["response_status", "response_body"])
    return response


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
    lookup = {"user": request.user, "scope": scope, "key": key}
    for _ in range(2):
        existing = IdempotencyKey.objects.filter(**lookup).first()
        if existing is not None:
            # Expired, or an unfinished claim left by the two-step claims of earlier releases.
            if existing.expires_at > timezone.now() and existing.response_status is not None:
                return _replay(existing, fingerprint)
            IdempotencyKey.objects.filter(pk=existing.pk).delete()
        try:
            return _claim_and_run(lookup=lookup, fingerprint=fingerprint, handler=handler)
        except _KeyTaken:
            continue  # a concurrent request with this key committed first: replay its answer
    return _replay(IdempotencyKey.objects.get(**lookup), fingerprint)


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
