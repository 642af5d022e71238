"""Log records that carry their request: a filter adds the context, two formatters render it.

Production writes one JSON object per line for the log pipeline; development writes
readable text. ``LOGGING`` in config.settings wires them up, for Django and the gunicorn master.
"""

import datetime
import json
import logging
from typing import Any

from django.utils.functional import empty

from observability.context import current_work

# No formatter here prints a record's thread or process: the logging module's documented switches
# spare every record looking them up (a tenth of the cost of an access-log line).
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
PROBE_PATHS = frozenset({"/health/", "/health/ready/", "/metrics"})
# Fields every JSON line has, null when the record is not about a request.
CORE_FIELDS = ("request_id", "user_id", "method", "path", "status", "duration_ms")
# Django's request logger passes the request object itself; method and path already say it.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    *("message", "asctime", "taskName", "request", "status_code")
}


def authenticated_user_id(request: Any) -> int | None:
    """The user authentication already resolved, if any. Evaluating Django's lazy user here
    would run a session query from inside a log call; no public API tells whether it has
    been evaluated, hence its ``_wrapped``."""
    user = request.__dict__.get("user")
    resolved = getattr(user, "_wrapped", user)
    return resolved.pk if resolved is not empty and getattr(resolved, "is_authenticated", False) is True else None


class RequestContextFilter(logging.Filter):
    """Adds request_id, user_id, method and path of the current request to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = record.__dict__
        # Django logs 4xx/5xx responses after the middleware has returned, passing the request.
        work = current_work.get()
        request = (work and work.request) or values.get("request")
        request_id = (work and work.request_id) or getattr(request, "request_id", None)
        if request_id is not None:
            values.setdefault("request_id", request_id)
        if "status_code" in values:  # Django's request logger names it so
            values.setdefault("status", values["status_code"])
        if request is not None and hasattr(request, "method"):
            values.setdefault("method", request.method)
            values.setdefault("path", request.path)
            if values.get("user_id") is None:
                values["user_id"] = authenticated_user_id(request)
        return True


class ProbeAnswerFilter(logging.Filter):
    """Keeps probe answers out of django.request, and so out of Sentry: a readiness 503 every
    few seconds while the database is down is one incident, which readiness logs itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record.__dict__.get("request"), "path_info", None) not in PROBE_PATHS


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra= fields are kept, exceptions become structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        payload: dict[str, Any] = {
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{name: record.__dict__.get(name) for name in CORE_FIELDS},
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and name not in payload and not name.startswith("_"):
                payload[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc_value, _ = record.exc_info
            payload["exception"] = {
                "type": f"{exc_type.__module__}.{exc_type.__qualname__}",
                "message": str(exc_value),
                "stacktrace": self.formatException(record.exc_info),
            }
        elif record.exc_text:
            payload["exception"] = {"type": None, "message": None, "stacktrace": record.exc_text}
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request-id] message`` for people reading a terminal."""

    def __init__(self) -> None:
        # The default covers records outside a request and those that bypassed the filter.
        super().__init__(
            "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s", defaults={"request_id": "-"}
        )
