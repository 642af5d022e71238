"""The load test's assumptions about the demo data set and locust's CSV files (bench/)."""

import datetime

import pytest
from django.contrib.auth import authenticate

from bench import demo_accounts
from bench.capacity import Step, read_aggregated
from demo import data
from demo.management.commands.seed_demo import SMALL
from demo.services import demo_seed


def test_the_load_test_knows_the_demo_password_and_domain():
    assert demo_accounts.DEMO_PASSWORD == data.DEMO_PASSWORD
    assert demo_accounts.DEMO_EMAIL_DOMAIN == data.DEMO_EMAIL_DOMAIN


@pytest.mark.django_db
def test_the_load_test_accounts_are_the_small_demo_sets_and_log_in():
    demo_seed(
        hosts=SMALL["hosts"], guests=SMALL["guests"], properties=1, bookings=0, seed=1, today=datetime.date(2026, 1, 5)
    )
    emails = demo_accounts.demo_emails(guests=SMALL["guests"], hosts=SMALL["hosts"])

    guest = authenticate(email=emails["guest"][-1], password=demo_accounts.DEMO_PASSWORD)
    host = authenticate(email=emails["host"][-1], password=demo_accounts.DEMO_PASSWORD)
    assert guest is not None and not guest.is_host
    assert host is not None and host.is_host
    assert emails["guest"][0] == "guest0001@demo.staybase.local"
    assert emails["host"][0] == "host001@demo.staybase.local"


LOCUST_STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,\
Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,search,900,0,40,45.1,10,400,2000,30.0,0.0,40,50,60,70,90,120,200,300,400,400,400
,Aggregated,{requests},{failures},42,48.0,10,900,2100,{rps},0.1,42,55,65,75,100,{p95},{p98},{p99},800,900,900
"""


def stats_file(tmp_path, *, requests=2000, failures=1, rps=66.7, p95=190, p98=300, p99=450):
    path = tmp_path / "users_00040_stats.csv"
    path.write_text(LOCUST_STATS.format(requests=requests, failures=failures, rps=rps, p95=p95, p98=p98, p99=p99))
    return path


def test_capacity_reads_the_aggregated_row_of_locusts_stats(tmp_path):
    step = read_aggregated(stats_file(tmp_path), users=40)

    assert step == Step(users=40, requests=2000, failures=1, rps=66.7, p50_ms=42, p95_ms=190, p99_ms=450)
    assert step.error_ratio == pytest.approx(0.0005)
    assert step.meets_targets


@pytest.mark.parametrize(
    ("change", "meets"),
    [
        ({"p95": 200}, False),  # p95 < 200 ms, strictly
        ({"p99": 500}, False),
        ({"failures": 2}, False),  # 0.1 % of 2,000 is not below 0.1 %
        ({"requests": 0, "failures": 0}, False),  # nothing measured is no capacity
        ({"p95": 199, "p99": 499}, True),
    ],
)
def test_a_step_meets_the_targets_only_below_every_threshold(tmp_path, change, meets):
    step = read_aggregated(stats_file(tmp_path, **change), users=40)

    assert step.meets_targets is meets
