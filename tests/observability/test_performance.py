import datetime
import threading
import time
from collections import Counter

import pytest
from django.test import Client
from django.urls import reverse

from caching.redis import is_redis as uses_redis
from observability.admin import timeline_chart
from observability.perfstats import PerfStore, _percentile, bucket_index, bucket_upper_ms, perf_store

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.observability.sample")]

ME = "GET auth-me"


def report(client, **params) -> dict:
    response = client.get("/api/v1/admin/performance/", params)
    assert response.status_code == 200, response.content
    return response.json()


# --- percentiles --------------------------------------------------------------------------


@pytest.mark.parametrize("ms", [0.2, 1, 1.05, 3.3, 47, 999, 12_345])
def test_a_duration_falls_in_a_bucket_whose_bound_is_within_ten_percent(ms):
    index = bucket_index(ms)

    assert bucket_upper_ms(index) >= ms
    assert ms <= 1 or bucket_upper_ms(index) <= ms * 1.1 + 1e-9


def test_percentiles_from_buckets():
    durations = [10] * 90 + [100] * 9 + [1000]
    buckets = Counter(bucket_index(ms) for ms in durations)

    assert _percentile(buckets, 100, 0.50) == pytest.approx(10, rel=0.1)
    assert _percentile(buckets, 100, 0.95) == pytest.approx(100, rel=0.1)
    assert _percentile(buckets, 100, 0.99) == pytest.approx(100, rel=0.1)
    assert _percentile(buckets, 100, 1.0) == pytest.approx(1000, rel=0.1)
    assert _percentile(Counter(), 0, 0.5) is None


# --- the staff API ------------------------------------------------------------------------


def test_report_counts_requests_per_endpoint_with_percentiles(staff_client, guest_client):
    for _ in range(3):
        guest_client.get("/api/v1/auth/me/")

    body = report(staff_client, minutes=5)

    me = next(row for row in body["endpoints"] if row["endpoint"] == ME)
    assert me["count"] == 3
    assert me["errors"] == 0
    assert me["error_rate"] == 0
    assert 0 < me["p50_ms"] <= me["p95_ms"] <= me["p99_ms"]
    assert body["window_minutes"] == 5
    assert len(body["timeline"]) == 5
    assert sum(minute["count"] for minute in body["timeline"]) == body["totals"]["count"]
    assert body["totals"]["count"] >= 3


def test_report_counts_5xx_as_errors(staff_client):
    crashing = Client(raise_request_exception=False)
    crashing.get("/test/boom/")
    crashing.get("/test/boom/")

    boom = next(row for row in report(staff_client)["endpoints"] if row["endpoint"] == "GET test-boom")

    assert boom["count"] == 2
    assert boom["errors"] == 2
    assert boom["error_rate"] == 1.0


def test_report_names_endpoints_by_view_name_not_by_path_or_regex(staff_client, guest_client):
    guest_client.get("/api/v1/properties/123456/")
    guest_client.get("/api/v1/properties/654321/")
    guest_client.post("/api/v1/no/such/thing/")  # the catch-all: a regex route
    staff_client.get("/admin/accounts/")  # the admin's app index: a regex route too

    endpoints = {row["endpoint"]: row["count"] for row in report(staff_client)["endpoints"]}

    assert endpoints["GET property-detail"] == 2
    assert endpoints["POST api-not-found"] == 1
    assert endpoints["GET admin:app_list"] == 1
    assert not any("123456" in name or "^" in name or "(?P" in name for name in endpoints)


def test_report_lists_the_slowest_queries_as_fingerprints(staff_client, guest_client, settings):
    settings.SLOW_QUERY_MS = 0
    guest_client.get("/api/v1/auth/me/")
    settings.SLOW_QUERY_MS = 60_000  # the report's own queries are not slow

    body = report(staff_client, limit=50)

    assert body["slowest_queries"]
    token_query = next(q for q in body["slowest_queries"] if "authtoken_token" in q["fingerprint"])
    assert token_query["count"] >= 1
    assert token_query["max_ms"] >= token_query["avg_ms"] >= 0
    assert token_query["last_path"] == "/api/v1/auth/me/"
    key = guest_client._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert key not in str(body)
    maxima = [q["max_ms"] for q in body["slowest_queries"]]
    assert maxima == sorted(maxima, reverse=True)


@pytest.mark.parametrize("params", [{"minutes": 0}, {"minutes": 61}, {"limit": 0}, {"minutes": "x"}])
def test_report_rejects_bad_parameters_in_the_json_error_shape(staff_client, params):
    response = staff_client.get("/api/v1/admin/performance/", params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_report_is_for_staff_only(guest_client, anon_client):
    assert guest_client.get("/api/v1/admin/performance/").status_code == 403
    assert anon_client.get("/api/v1/admin/performance/").status_code == 401


# --- the stores ---------------------------------------------------------------------------


def test_redis_store_adds_up_what_several_processes_recorded():
    if not uses_redis():
        pytest.skip("the shared store is Redis (REDIS_URL)")
    from django_redis import get_redis_connection

    # Two stores on one Redis stand in for two gunicorn workers.
    first, second = PerfStore(get_redis_connection("default")), PerfStore(get_redis_connection("default"))
    first.record_request("GET /two-workers/", 10.0, False)
    second.record_request("GET /two-workers/", 20.0, True)
    first.flush()
    second.flush()

    minute = int(time.time() // 60)
    requests = perf_store().minutes(minute - 1, minute)
    fields = Counter()
    for minute in requests.values():
        fields.update({k: v for k, v in minute.items() if k.startswith("GET /two-workers/")})
    assert fields["GET /two-workers/\tc"] == 2
    assert fields["GET /two-workers/\te"] == 1
    assert fields["GET /two-workers/\ts"] == 30.0


def test_local_store_is_thread_safe():
    store = PerfStore()

    def hammer():
        for _ in range(500):
            store.record_request("GET /threads/", 1.0, False)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    minute = int(time.time() // 60)
    requests = store.minutes(minute - 1, minute)
    assert sum(fields.get("GET /threads/\tc", 0) for fields in requests.values()) == 2000


# --- the admin page -----------------------------------------------------------------------


def test_admin_performance_page_renders_the_chart_and_tables(superuser_client, guest_client, settings):
    settings.SLOW_QUERY_MS = 0
    guest_client.get("/api/v1/auth/me/")

    response = superuser_client.get(reverse("admin:observability_performancepage_changelist"), {"minutes": 60})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html
    assert "<rect" in html
    assert ME in html
    assert "authtoken_token" in html
    # Pure HTML/SVG/CSS: nothing loaded from elsewhere, no chart script.
    assert 'src="http' not in html
    assert 'href="http' not in html
    assert "<script>" not in html


def test_admin_index_lists_the_performance_page(superuser_client):
    response = superuser_client.get(reverse("admin:index"))

    assert reverse("admin:observability_performancepage_changelist") in response.content.decode()


def test_admin_performance_page_is_refused_to_non_staff(guest):
    client = Client()
    client.force_login(guest)

    response = client.get(reverse("admin:observability_performancepage_changelist"))

    assert response.status_code == 302  # to the admin login
    assert "/admin/login/" in response["Location"]


def test_timeline_chart_scales_bars_and_the_p95_line():
    minute = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    timeline = [
        {"minute": minute, "count": 10, "errors": 0, "p95_ms": 50.0},
        {"minute": minute + datetime.timedelta(minutes=1), "count": 0, "errors": 0, "p95_ms": None},
        {"minute": minute + datetime.timedelta(minutes=2), "count": 5, "errors": 5, "p95_ms": 100.0},
    ]

    chart = timeline_chart(timeline)

    tall, empty, half = chart["bars"]
    assert float(tall["h"]) == chart["baseline"] - chart["top"]
    assert float(empty["h"]) == 0
    assert float(half["h"]) == pytest.approx(float(tall["h"]) / 2)
    assert float(half["error_h"]) == pytest.approx(float(half["h"]))
    assert len(chart["p95_points"].split()) == 2
    assert chart["max_count"] == 10
    assert chart["max_p95"] == 100.0
