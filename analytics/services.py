"""Writes of the analytics app: precomputed tables only, never booking rows."""

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from analytics.models import HostReport, MarketSnapshot
from analytics.selectors import host_daily_report, market_cities, market_data
from core.mail import send_templated_email
from jobs.effects import effect_once


def _as_json(data: dict[str, Any]) -> dict[str, Any]:
    """Decimals become strings and dates ISO strings, exactly as the API renders them."""
    rendered: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return rendered


def host_report_generate(*, host: User, day: datetime.date, force: bool = False) -> tuple[HostReport, bool]:
    """The host's report for ``day``: created once, recomputed only with ``force``.

    Returns (report, created). Idempotent: concurrent or repeated runs keep one row.
    """
    if not force:
        existing = HostReport.objects.filter(host=host, day=day).first()
        if existing is not None:
            return existing, False
    data = _as_json(host_daily_report(host=host, day=day))
    try:
        with transaction.atomic():
            report, created = HostReport.objects.update_or_create(host=host, day=day, defaults={"data": data})
    except IntegrityError:
        # A concurrent run inserted it between our look and our insert.
        return HostReport.objects.get(host=host, day=day), False
    return report, created


def host_report_email(*, report: HostReport) -> bool:
    """Email the report to its host, at most once. Returns whether this call sent it."""
    with effect_once(f"email:host-report:{report.host_id}:{report.day.isoformat()}") as first:
        if not first:
            return False
        send_templated_email(
            to=[report.host.email],
            subject=f"Your Staybase day: {report.day:%a %-d %b %Y}",
            template="host_daily_report",
            context={"report": report.data, "day": report.day, "host": report.host},
        )
    HostReport.objects.filter(pk=report.pk).update(emailed_at=timezone.now())
    return True


def host_reports_prune(*, older_than: datetime.date, dry_run: bool = False) -> int:
    old = HostReport.objects.filter(day__lt=older_than)
    return old.count() if dry_run else old.delete()[0]


@dataclass
class MarketRefresh:
    refreshed: list[str]
    removed: list[str]


def market_snapshots_refresh(
    *,
    today: datetime.date,
    dry_run: bool = False,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
) -> MarketRefresh:
    """Precompute ``market_data`` for every city with active listings; drop cities with none.

    One transaction per city, so a long refresh never holds locks for long and a failure
    halfway keeps what was refreshed. The market responses cached for a city are
    invalidated when its row changes (analytics.cache.MARKET_SNAPSHOT).
    """
    cities = market_cities()
    result = MarketRefresh(refreshed=[], removed=[])
    for key, name in cities.items():
        data = _as_json(market_data(city=name, today=today))
        if not dry_run:
            with transaction.atomic():
                MarketSnapshot.objects.update_or_create(
                    city_key=key,
                    defaults={"city": name, "as_of": today, "data": data, "computed_at": timezone.now()},
                )
        result.refreshed.append(name)
        if progress:
            progress(name, data)
    gone = MarketSnapshot.objects.exclude(city_key__in=list(cities))
    result.removed = sorted(gone.values_list("city", flat=True))
    if not dry_run:
        gone.delete()
    return result
