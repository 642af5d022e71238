"""Cache warming: what it picks, that the entries it stores are the ones clients are served,
that it is idempotent, that --dry-run touches nothing, failures, the command, the job."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from bookings.models import BookingStatus
from caching import backend
from caching.circuit import breaker_for
from caching.stats import cache_stats_counter
from caching.tasks import warm_cache_task
from caching.warming import (
    ALREADY_WARM,
    FAILED,
    WARMED,
    WOULD_WARM,
    active_hosts,
    cache_warm,
    hottest_properties,
    top_cities,
)
from jobs.models import JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.schedules import RECURRING_JOBS
from jobs.testing import run_jobs
from tests.conftest import client_for
from tests.factories import BookingFactory, HostFactory, PropertyFactory, PropertyImageFactory

API = "/api/v1"


@pytest.fixture(autouse=True)
def _testserver_is_the_public_host(settings):
    settings.CACHE_WARM_BASE_URLS = ["http://testserver"]


def days_ago(days: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


def booked(listing, *, count: int, created: datetime.datetime | None = None, **fields) -> None:
    for i in range(count):
        booking = BookingFactory(
            property=listing, check_in=timezone.localdate() + datetime.timedelta(days=10 + 5 * i), **fields
        )
        if created is not None:
            type(booking).objects.filter(pk=booking.pk).update(created_at=created)


def x_cache(client, url: str, **extra) -> str:
    response = client.get(url, **extra)
    assert response.status_code == 200, response.content
    return response["X-Cache"]


def warm(**limits):
    return cache_warm(dry_run=False, **{"limit_properties": 10, "limit_searches": 10, "limit_hosts": 10, **limits})


@pytest.fixture
def market(host, other_host):
    """Lisbon: two listings of ``host`` booked recently; Porto: one of ``other_host``."""
    lisbon = [PropertyFactory(host=host, city="Lisbon"), PropertyFactory(host=host, city="Lisbon")]
    porto = PropertyFactory(host=other_host, city="Porto")
    booked(lisbon[0], count=2)
    booked(porto, count=1)
    return {"lisbon": lisbon, "porto": porto}


# --- What is warmed ------------------------------------------------------------------------------------------------


def test_hottest_properties_are_the_most_booked_in_90_days_then_the_most_reviewed(db):
    busiest = PropertyFactory()
    booked(busiest, count=3)
    busy_reviewed = PropertyFactory(review_count=1)
    booked(busy_reviewed, count=1)
    busy = PropertyFactory()
    booked(busy, count=1)
    most_reviewed = PropertyFactory(review_count=9)
    long_ago = PropertyFactory()
    booked(long_ago, count=5, created=days_ago(91))
    cancelled = PropertyFactory()
    booked(cancelled, count=5, status=BookingStatus.CANCELLED)
    inactive = PropertyFactory(is_active=False)
    booked(inactive, count=5)

    hottest = [listing.pk for listing in hottest_properties(limit=5)]

    assert hottest == [busiest.pk, busy_reviewed.pk, busy.pk, most_reviewed.pk, long_ago.pk]
    assert inactive.pk not in [listing.pk for listing in hottest_properties(limit=100)]
    assert len(hottest_properties(limit=2)) == 2


def test_top_cities_count_active_listings_whatever_the_spelling(db):
    for city in ("Lisbon", "lisbon", " Lisbon", "Porto", "Porto", "Paris"):
        PropertyFactory(city=city)
    for _ in range(4):
        PropertyFactory(city="Madrid", is_active=False)

    assert top_cities(limit=10) == ["Lisbon", "Porto", "Paris"]
    assert top_cities(limit=1) == ["Lisbon"]


def test_active_hosts_are_active_hosts_booked_in_90_days_busiest_first(db):
    busiest, quiet, dormant, gone = HostFactory(), HostFactory(), HostFactory(), HostFactory(is_active=False)
    booked(PropertyFactory(host=busiest), count=3)
    booked(PropertyFactory(host=quiet), count=1)
    booked(PropertyFactory(host=dormant), count=4, created=days_ago(100))
    booked(PropertyFactory(host=gone), count=4)
    booked(PropertyFactory(host=HostFactory()), count=2, status=BookingStatus.CANCELLED)

    assert active_hosts(limit=10) == [busiest.pk, quiet.pk]
    assert active_hosts(limit=1) == [busiest.pk]


# --- The warmed entry is the served entry ----------------------------------------------------------------------------


def test_warmed_entries_are_hits_for_the_requests_clients_make(market, host, other_host, guest, anon_client):
    report = warm()

    assert report.ok, report.failed
    assert report.count(WARMED) == len(report.results) > 0
    guest_client = client_for(guest)
    lisbon = market["lisbon"][0]
    for client in (anon_client, guest_client):
        assert x_cache(client, f"{API}/properties/") == "HIT"
        assert x_cache(client, f"{API}/properties/?city=Lisbon") == "HIT"
        assert x_cache(client, f"{API}/properties/?city=lisbon") == "HIT"  # equal searches share one entry
        assert x_cache(client, f"{API}/properties/?city=Porto") == "HIT"
        assert x_cache(client, f"{API}/properties/{lisbon.pk}/") == "HIT"
        assert x_cache(client, f"{API}/properties/{lisbon.pk}/reviews/") == "HIT"
    assert x_cache(guest_client, f"{API}/analytics/market/?city=Lisbon") == "HIT"
    assert x_cache(client_for(host), f"{API}/analytics/dashboard/") == "HIT"
    assert x_cache(client_for(other_host), f"{API}/analytics/dashboard/") == "HIT"
    # Other parameters are other searches, not warmed.
    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon&ordering=price") == "MISS"


def test_warming_a_dashboard_never_serves_it_to_another_viewer(market, host, staff):
    warm()

    staff_view = client_for(staff).get(f"{API}/analytics/dashboard/?host_id={host.pk}")
    third_host = client_for(HostFactory()).get(f"{API}/analytics/dashboard/")

    assert staff_view.status_code == third_host.status_code == 200
    assert staff_view["X-Cache"] == third_host["X-Cache"] == "MISS"
    assert third_host.json() != client_for(host).get(f"{API}/analytics/dashboard/").json()


def test_warming_over_https_stores_the_https_links_clients_get(settings, host):
    settings.CACHE_WARM_BASE_URLS = ["https://testserver"]
    listing = PropertyFactory(host=host)
    PropertyImageFactory(property=listing)

    assert warm(limit_searches=0, limit_hosts=0).ok

    response = client_for(None).get(f"{API}/properties/{listing.pk}/", secure=True)
    assert response["X-Cache"] == "HIT"
    assert response.json()["images"][0]["url"].startswith("https://testserver/")


# --- Idempotent, dry run --------------------------------------------------------------------------------------------


def test_a_second_run_finds_everything_already_warm(market):
    first = warm()
    sets = cache_stats_counter.local().get("search", {}).get("sets", 0)

    second = warm()

    assert first.count(WARMED) == len(second.results) > 0
    assert second.count(ALREADY_WARM) == len(second.results)
    assert second.count(WARMED) == 0
    assert cache_stats_counter.local().get("search", {}).get("sets", 0) == sets  # nothing recomputed


def test_dry_run_lists_the_targets_and_touches_no_cache(market, anon_client):
    lines: list[str] = []
    sets = {kind: row.get("sets", 0) for kind, row in cache_stats_counter.local().items()}

    report = cache_warm(dry_run=True, limit_properties=10, limit_searches=10, limit_hosts=10, progress=lines.append)

    assert {result.outcome for result in report.results} == {WOULD_WARM}
    assert {result.target.kind for result in report.results} == {"property", "reviews", "search", "market", "dashboard"}
    assert any("GET http://testserver/api/v1/properties/?city=Lisbon" in line for line in lines)
    assert lines[-1] == f"Would warm {len(report.results)} targets."
    assert {kind: row.get("sets", 0) for kind, row in cache_stats_counter.local().items()} == sets
    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "MISS"


def test_limits_of_zero_warm_nothing_of_that_kind(market):
    report = cache_warm(dry_run=True, limit_properties=0, limit_searches=1, limit_hosts=0)

    assert [(r.target.kind, r.target.label) for r in report.results] == [
        ("search", "all cities"),
        ("search", "Lisbon"),
        ("market", "Lisbon"),
    ]


def test_with_the_cache_off_nothing_is_warmed(settings, market):
    settings.CACHE_ENABLED = False

    report = warm()

    assert report.results == []
    assert report.ok
    assert "CACHE_ENABLED" in report.summary()


# --- Failures --------------------------------------------------------------------------------------------------------


def test_a_failing_target_is_reported_and_the_others_still_warm(settings, market, anon_client):
    settings.CACHE_WARM_BASE_URLS = ["http://testserver", "http://not-an-allowed-host.example"]

    report = warm(limit_hosts=0)

    failed = {(r.target.kind, r.target.base_url) for r in report.failed}
    assert failed == {
        ("property", "http://not-an-allowed-host.example"),
        ("search", "http://not-an-allowed-host.example"),
    }
    assert all("DisallowedHost" in result.detail for result in report.failed)
    assert not report.ok
    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "HIT"


@pytest.mark.skipif(not backend.is_redis(), reason="the circuit breaker guards Redis only")
def test_with_redis_unreachable_targets_fail_as_not_stored(market):
    breaker = breaker_for("redis")
    try:
        for _ in range(breaker.failure_threshold):
            breaker.record_failure(ConnectionError("test: Redis is down"))

        report = warm(limit_properties=1, limit_searches=0, limit_hosts=0)
    finally:
        breaker.reset()

    assert report.results
    assert {result.outcome for result in report.results} == {FAILED}
    assert all("not stored" in result.detail for result in report.results)


# --- The command -----------------------------------------------------------------------------------------------------


def test_warm_cache_command_reports_progress_and_exits_zero(market):
    out = io.StringIO()

    call_command("warm_cache", "--properties", "1", "--searches", "1", "--hosts", "1", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/") and "-> warmed (MISS)" in lines[0]
    assert lines[-1].endswith("0 already warm, 0 being refreshed by another worker, 0 failed.")


def test_warm_cache_command_warns_that_a_local_memory_cache_is_its_own(market):
    err = io.StringIO()

    call_command("warm_cache", "--searches", "1", stdout=io.StringIO(), stderr=err)

    if backend.is_redis():
        assert err.getvalue() == ""
    else:
        assert "the local-memory cache is private to each process" in err.getvalue()


def test_warm_cache_command_dry_run(market, anon_client):
    out = io.StringIO()

    call_command("warm_cache", "--dry-run", stdout=out)

    assert "would warm search Lisbon: GET http://testserver/api/v1/properties/?city=Lisbon" in out.getvalue()
    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "MISS"


def test_warm_cache_command_exits_one_when_a_target_failed(settings, market):
    settings.CACHE_WARM_BASE_URLS = ["http://not-an-allowed-host.example"]

    with pytest.raises(CommandError, match="failed") as failure:
        call_command("warm_cache", "--hosts", "0", stdout=io.StringIO())

    assert failure.value.returncode == 1


def test_warm_cache_command_refuses_negative_limits(db):
    with pytest.raises(CommandError, match="argument --hosts: -1 is negative"):
        call_command("warm_cache", "--hosts", "-1")


def test_on_start_does_nothing_unless_warm_on_start_is_set(settings, db):
    settings.CACHE_WARM_ON_START = False
    out = io.StringIO()

    call_command("warm_cache", "--on-start", stdout=out)

    assert "CACHE_WARM_ON_START is off" in out.getvalue()
    assert not JobRecord.objects.exists()


def test_on_start_queues_one_low_priority_warming_job(
    settings, market, anon_client, django_capture_on_commit_callbacks
):
    settings.CACHE_WARM_ON_START = True

    with django_capture_on_commit_callbacks(execute=True):
        call_command("warm_cache", "--on-start", stdout=io.StringIO())
        call_command("warm_cache", "--on-start", stdout=io.StringIO())  # a second container starting

    job = JobRecord.objects.get()
    assert (job.task, job.priority, job.status) == ("caching.tasks.warm_cache_task", Priority.LOW, JobStatus.QUEUED)
    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "MISS"  # queued, not run at start

    assert run_jobs() == 1

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    if backend.is_redis():
        assert "0 failed" in job.result
        assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "HIT"
    else:  # the worker's local-memory cache would be its own: nothing to warm from there
        assert job.result.startswith("skipped: the local-memory cache is private to each process")


# --- The job ---------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not backend.is_redis(), reason="a worker warms a cache others read only with Redis")
def test_warm_cache_task_warms_and_says_what_it_did(market, anon_client):
    summary = warm_cache_task()

    assert summary.endswith("0 failed.") and "0 already warm" in summary
    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "HIT"
    assert ": 0 warmed," in warm_cache_task()


@pytest.mark.skipif(backend.is_redis(), reason="the local-memory cache is the embedded default")
def test_warm_cache_task_skips_the_local_memory_cache_no_other_process_reads(market, anon_client):
    assert warm_cache_task().startswith("skipped: the local-memory cache is private to each process")

    assert x_cache(anon_client, f"{API}/properties/?city=Lisbon") == "MISS"


def test_warm_cache_task_is_a_low_priority_job():
    assert warm_cache_task.job_spec.priority == Priority.LOW
    assert warm_cache_task.job_spec.name == "caching.tasks.warm_cache_task"


def test_warm_cache_task_is_scheduled_every_15_minutes():
    minutes = sorted(entry.at.minute for entry in RECURRING_JOBS if entry.task == "caching.tasks.warm_cache_task")

    assert minutes == [7, 22, 37, 52]
    assert all(entry.every == "H" for entry in RECURRING_JOBS if entry.task == "caching.tasks.warm_cache_task")
