import logging

import pytest
from django.db import connection

from accounts.models import User
from observability.db import QueryInstrument, fingerprint
from tests.observability.conftest import sample

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            """SELECT "accounts_user"."id" FROM "accounts_user" WHERE "accounts_user"."email" = 'ana@example.com'""",
            'SELECT "accounts_user"."id" FROM "accounts_user" WHERE "accounts_user"."email" = ?',
        ),
        ("SELECT * FROM t WHERE id IN (%s, %s, %s) LIMIT 21", "SELECT * FROM t WHERE id IN (...) LIMIT ?"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (...)"),
        ("SELECT * FROM t WHERE a = $1 AND b = ?", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s), (%s, %s)", "INSERT INTO t (a, b) VALUES (...)"),
        ("SELECT price * 1.5e3, -7 FROM t", "SELECT price * ?, ? FROM t"),
        ('SELECT "U0"."id", t1.col2\n   FROM   t1', 'SELECT "U0"."id", t1.col2 FROM t1'),
        ("SELECT 'it''s' FROM t", "SELECT ? FROM t"),
    ],
)
def test_fingerprint_keeps_the_shape_and_drops_every_value(sql, expected):
    assert fingerprint(sql) == expected


def test_same_query_with_other_values_has_the_same_fingerprint():
    assert fingerprint("SELECT * FROM t WHERE id IN (1, 2)") == fingerprint("SELECT * FROM t WHERE id IN (7, 8, 9, 10)")


def test_every_connection_gets_one_outermost_wrapper():
    User.objects.exists()

    instruments = [w for w in connection.execute_wrappers if isinstance(w, QueryInstrument)]
    assert len(instruments) == 1
    assert connection.execute_wrappers[0] is instruments[0]


def test_a_temporary_execute_wrapper_cannot_remove_the_instrument():
    seen = []
    with connection.execute_wrapper(lambda execute, *args: seen.append(1) or execute(*args)):
        User.objects.exists()

    assert seen
    assert isinstance(connection.execute_wrappers[0], QueryInstrument)


def test_queries_feed_django_prometheus_db_metrics():
    labels = {"alias": "default", "vendor": connection.vendor}
    executed = sample("django_db_execute_total", labels)
    observed = sample("django_db_query_duration_seconds_count", labels)

    User.objects.filter(email="x@example.com").exists()
    User.objects.filter(email="y@example.com").exists()

    assert sample("django_db_execute_total", labels) == executed + 2
    assert sample("django_db_query_duration_seconds_count", labels) == observed + 2


def test_failed_queries_are_counted_by_error_type():
    labels = {"alias": "default", "vendor": connection.vendor}
    before = sum(
        sample("django_db_errors_total", {**labels, "type": name}) for name in ("OperationalError", "ProgrammingError")
    )

    with pytest.raises(Exception), connection.cursor() as cursor:  # noqa: B017 - the vendor decides which
        cursor.execute("SELECT * FROM no_such_table_anywhere")

    after = sum(
        sample("django_db_errors_total", {**labels, "type": name}) for name in ("OperationalError", "ProgrammingError")
    )
    assert after == before + 1


def test_slow_query_is_logged_with_fingerprint_duration_and_path_never_the_values(settings, guest_client, caplog):
    settings.SLOW_QUERY_MS = 0  # every query counts as slow
    labels = {"alias": "default", "vendor": connection.vendor}
    counted = sample("staybase_db_slow_queries_total", labels)

    with caplog.at_level(logging.WARNING, logger="staybase.db.slow"):
        response = guest_client.get("/api/v1/auth/me/")

    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "staybase.db.slow"]
    assert records
    token_lookup = next(r for r in records if "authtoken_token" in r.fingerprint)
    assert token_lookup.path == "/api/v1/auth/me/"
    assert token_lookup.query_ms >= 0
    assert len(token_lookup.fingerprint_id) == 12
    token = guest_client._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert all(token not in r.getMessage() and token not in r.fingerprint for r in records)
    assert sample("staybase_db_slow_queries_total", labels) == counted + len(records)


def test_fast_queries_are_not_logged_as_slow(settings, guest_client, caplog):
    settings.SLOW_QUERY_MS = 60_000

    with caplog.at_level(logging.WARNING, logger="staybase.db.slow"):
        guest_client.get("/api/v1/auth/me/")

    assert not [r for r in caplog.records if r.name == "staybase.db.slow"]


def test_slow_request_is_logged_with_query_count_and_db_time(settings, guest_client, caplog):
    settings.SLOW_REQUEST_MS = 0
    before = sample("staybase_http_slow_requests_total", {"view": "auth-me"})

    with caplog.at_level(logging.WARNING, logger="staybase.request.slow"):
        guest_client.get("/api/v1/auth/me/", HTTP_X_REQUEST_ID="slow-1")

    [record] = [r for r in caplog.records if r.name == "staybase.request.slow"]
    assert record.request_id == "slow-1"
    assert record.endpoint == "GET auth-me"
    assert record.db_queries >= 1
    assert record.db_time_ms > 0
    assert f"{record.db_queries} queries" in record.getMessage()
    assert sample("staybase_http_slow_requests_total", {"view": "auth-me"}) == before + 1


def test_fast_request_is_not_logged_as_slow(settings, guest_client, caplog):
    settings.SLOW_REQUEST_MS = 60_000

    with caplog.at_level(logging.WARNING, logger="staybase.request.slow"):
        guest_client.get("/api/v1/auth/me/")

    assert not [r for r in caplog.records if r.name == "staybase.request.slow"]
