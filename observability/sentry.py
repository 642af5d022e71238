"""Error reporting to Sentry, on only when ``SENTRY_DSN`` is set.

Initialised from ``ObservabilityConfig.ready()`` so the web workers and the job cluster
report alike. Every event carries the request id of the request or job it came from, so a
Sentry issue leads straight to its log lines.
"""

from typing import Any

import sentry_sdk
from django.conf import settings
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.transport import Transport

from observability.context import current_request_id


def _tag_request_id(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return event


# Headers, cookies and query parameters that identify a person (besides the credentials the
# SDK always filters); the same terms the SDK's legacy "no PII" mode drops.
_IDENTIFYING_TERMS = ["forwarded", "-ip", "remote-", "via", "-user"]
NO_PII: dict[str, Any] = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "denylist", "terms": _IDENTIFYING_TERMS}},
    "url_query_params": {"mode": "denylist", "terms": _IDENTIFYING_TERMS},
    # Request bodies carry emails, names and messages (registration, reviews).
    "http_bodies": [],
    "database_query_data": False,
    "queues": False,
    "gen_ai": {"inputs": False, "outputs": False},
    "graphql": {"document": False, "variables": False},
}


def sentry_init(*, transport: type[Transport] | Transport | None = None) -> bool:
    """Start the SDK if a DSN is configured; ``transport`` lets tests capture envelopes."""
    if not settings.SENTRY_DSN:
        return False
    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        integrations=[DjangoIntegration()],
        environment=settings.SENTRY_ENVIRONMENT,
        release=settings.SENTRY_RELEASE or None,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        # data_collection replaces the deprecated send_default_pii; {} = the SDK's full set.
        data_collection={} if settings.SENTRY_SEND_DEFAULT_PII else NO_PII,
        before_send=_tag_request_id,
        transport=transport,
    )
    return True


def capture_job_exception(exc: BaseException, *, job: dict[str, Any]) -> None:
    """Report a failed job attempt with what identifies it (name, id, attempt, priority,
    request id); an attempt that will be retried is a warning, a job that gives up an error.

    Without a DSN the SDK has no client and this records nothing, at no cost.
    """
    with sentry_sdk.new_scope() as scope:
        scope.set_context("job", job)
        for key in ("name", "id", "attempt", "priority"):
            if job.get(key) is not None:
                scope.set_tag(f"job.{key}", str(job[key]))
        if job.get("request_id"):
            scope.set_tag("request_id", job["request_id"])
        scope.set_level("warning" if job.get("will_retry") else "error")
        scope.capture_exception(exc)
