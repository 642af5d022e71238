"""Every Staybase command keeps README's contract: exit 0 done, 1 failed, 2 bad arguments; -v 0 is quiet."""

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import HostFactory, PropertyFactory
from tests.test_settings_modes import run_python

DAYS = datetime.timedelta


# --- Exit codes as a shell sees them (argument errors come before any database access) ---------


@pytest.mark.parametrize(
    "args",
    [
        ["warm_cache", "--properties", "-5"],
        ["warm_cache", "--hosts", "many"],
        ["seed_demo", "--bookings", "-1"],
        ["generate_reports", "--day", "yesterday"],
        ["generate_reports", "--host", "-3"],
        ["process_payouts", "--today", "2026-13-01"],
    ],
    ids=" ".join,
)
@pytest.mark.subprocess
def test_an_argument_argparse_rejects_exits_2(args, tmp_path):
    result = run_python(["manage.py", *args], {}, tmp_path)

    assert result.returncode == 2, result.stderr
    assert "error: argument" in result.stderr


@pytest.mark.subprocess
def test_a_day_that_is_not_over_exits_2_from_the_shell(tmp_path):
    future = (timezone.localdate() + DAYS(365 * 4)).isoformat()

    result = run_python(["manage.py", "generate_reports", "--day", future], {}, tmp_path)

    assert result.returncode == 2, result.stderr
    assert "only a day before today" in result.stderr
    assert result.stdout == ""


# --- Checks only the command can make: CommandError with returncode 2 -----------------------


@pytest.mark.django_db
def test_generate_reports_names_a_host_that_does_not_exist():
    known = PropertyFactory().host

    with pytest.raises(CommandError, match="no such host: 99999") as refused:
        call_command("generate_reports", "--host", str(known.pk), "--host", "99999", stdout=StringIO())

    assert refused.value.returncode == 2


@pytest.mark.django_db
def test_generate_reports_refuses_a_host_without_an_active_listing():
    idle = HostFactory()

    with pytest.raises(CommandError, match=f"no such host: {idle.pk}") as refused:
        call_command("generate_reports", "--host", str(idle.pk), stdout=StringIO())

    assert refused.value.returncode == 2


@pytest.mark.django_db
@pytest.mark.parametrize("days_ahead", [0, 1, 365])
def test_generate_reports_refuses_today_and_later(days_ahead):
    day = (timezone.localdate() + DAYS(days_ahead)).isoformat()

    with pytest.raises(CommandError, match="only a day before today") as refused:
        call_command("generate_reports", "--day", day, stdout=StringIO())

    assert refused.value.returncode == 2


@pytest.mark.django_db
def test_generate_reports_accepts_a_known_host_and_a_past_day():
    host = PropertyFactory().host
    out = StringIO()

    call_command("generate_reports", "--host", str(host.pk), "--day", "2026-01-15", "--dry-run", stdout=out)

    assert f"host {host.pk} <{host.email}>: would report on 2026-01-15" in out.getvalue()


# --- -v 0 prints nothing when all went well -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["complete_stays"],
        ["complete_stays", "--dry-run"],
        ["cleanup"],
        ["cleanup", "--dry-run"],
        ["generate_reports"],
        ["generate_reports", "--dry-run"],
        ["refresh_market_data"],
        ["process_payouts", "--dry-run"],
        ["setup_schedules"],
        ["warm_cache"],
        ["warm_cache", "--dry-run"],
        ["warm_cache", "--on-start"],
        ["seed_demo", "--hosts", "1", "--guests", "2", "--properties", "2", "--bookings", "4"],
        ["create_demo_staff"],
    ],
    ids=" ".join,
)
def test_verbosity_zero_is_quiet(args):
    PropertyFactory(city="Lisbon")
    out, err = StringIO(), StringIO()

    call_command(*args, "-v", "0", stdout=out, stderr=err)

    assert out.getvalue() == ""
    assert err.getvalue() == ""


@pytest.mark.django_db
def test_verbosity_one_still_reports():
    out = StringIO()

    call_command("complete_stays", stdout=out)

    assert out.getvalue() == "0 stay(s) completed.\n"
