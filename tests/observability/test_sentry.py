import logging

import pytest
import sentry_sdk
from django.test import Client
from sentry_sdk.transport import Transport

from jobs.models import JobRecord
from jobs.services import enqueue
from jobs.testing import run_jobs
from observability.context import bound_request_id
from observability.sentry import sentry_init
from tests.observability.sample import failing_task

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.observability.sample")]


class CapturingTransport(Transport):
    """Keeps every envelope the SDK would send."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [event for envelope in self.envelopes if (event := envelope.get_event()) is not None]


@pytest.fixture
def sentry_events(settings):
    settings.SENTRY_DSN = "https://public@sentry.example.invalid/1"
    settings.SENTRY_ENVIRONMENT = "test-env"
    settings.SENTRY_RELEASE = "staybase@1.2.3"
    transport = CapturingTransport()
    assert sentry_init(transport=transport)
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def exception_types(event: dict) -> list[str]:
    return [value["type"] for value in event["exception"]["values"]]


def test_sentry_stays_off_without_a_dsn(settings):
    settings.SENTRY_DSN = ""

    assert sentry_init() is False
    assert not sentry_sdk.get_client().is_active()


def test_an_exception_in_a_view_reaches_sentry_with_the_request_id(sentry_events):
    client = Client(raise_request_exception=False)

    response = client.get("/test/boom/", HTTP_X_REQUEST_ID="req-boom-1")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    [event] = sentry_events.events()
    assert "RuntimeError" in exception_types(event)
    assert event["exception"]["values"][-1]["value"] == "boom from a view"
    assert event["tags"]["request_id"] == "req-boom-1"
    assert event["environment"] == "test-env"
    assert event["release"] == "staybase@1.2.3"
    assert event["transaction"] == "/test/boom/"


def test_sentry_sends_no_personal_data_by_default(sentry_events, guest):
    client = Client(raise_request_exception=False)
    client.force_login(guest)

    client.get(
        "/test/boom/?email=ana@example.com",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
        REMOTE_ADDR="198.51.100.8",
    )

    [event] = sentry_events.events()
    assert "user" not in event or not {"id", "email", "ip_address"} & set(event["user"])
    serialized = str(event)
    assert guest.email not in serialized
    assert "198.51.100.7" not in serialized
    assert "198.51.100.8" not in serialized
    assert client.cookies["sessionid"].value not in serialized


def test_an_exception_in_a_task_reaches_sentry_with_the_jobs_context(sentry_events, django_capture_on_commit_callbacks):
    with bound_request_id("req-enqueuer-9"), django_capture_on_commit_callbacks(execute=True):
        record = enqueue(failing_task, 42)

    run_jobs()

    record.refresh_from_db()
    assert record.status == "dead"
    [event] = [e for e in sentry_events.events() if "RuntimeError" in exception_types(e)]
    assert event["exception"]["values"][-1]["value"] == "task failed for booking 42"
    job = event["contexts"]["job"]
    assert job["id"] == record.pk
    assert job["name"] == "tests.observability.sample.failing_task"
    assert job["attempt"] == 1
    assert job["will_retry"] is False
    assert event["tags"]["request_id"] == "req-enqueuer-9"
    assert event["tags"]["job.name"] == "tests.observability.sample.failing_task"
    assert event["level"] == "error"


def test_a_request_carries_its_id_into_the_jobs_it_enqueues_and_their_logs(anon_client, caplog):
    response = anon_client.post("/test/enqueue/", HTTP_X_REQUEST_ID="req-enqueue-5")

    assert response.status_code == 202
    record = JobRecord.objects.get(pk=response.json()["job_id"])
    assert record.request_id == "req-enqueue-5"
    with caplog.at_level(logging.INFO, logger="tests.observability.sample"):
        assert run_jobs() == 1
    [line] = [r for r in caplog.records if r.name == "tests.observability.sample"]
    assert line.getMessage() == "job ran with 7"
    assert line.request_id == "req-enqueue-5"
