"""The parts of the harness that run inside Django, in a subprocess with the app's environment.

    python -m bench.django_side prepare --city Lisbon
    python -m bench.django_side count < scenarios.json
    python -m bench.django_side catalogue

Each prints one JSON document on stdout. Running them as subprocesses means a variant's
environment (cache, throttling, ...) applies to the query count exactly as to gunicorn.
"""

import argparse
import json
import os
import sys
from pathlib import Path


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def prepare(city: str) -> dict[str, object]:
    """Pick the benchmark users and listing from the seeded data and give the users tokens."""
    from django.db import connection
    from django.db.models import Count
    from rest_framework.authtoken.models import Token

    from accounts.models import User
    from bookings.models import Booking
    from properties.models import Property

    host = (
        User.objects.filter(is_host=True, is_active=True)
        .annotate(booking_count=Count("properties__bookings"))
        .order_by("-booking_count", "pk")
        .first()
    )
    guest = (
        User.objects.filter(is_host=False, is_active=True)
        .annotate(booking_count=Count("bookings"))
        .order_by("-booking_count", "pk")
        .first()
    )
    listing = Property.objects.filter(city=city, is_active=True).order_by("-review_count", "pk").first()
    if host is None or guest is None or listing is None:
        raise SystemExit(f"The database has no host, guest or active listing in {city}; seed it first.")
    return {
        "vendor": connection.vendor,
        "tokens": {
            "host": Token.objects.get_or_create(user=host)[0].key,
            "guest": Token.objects.get_or_create(user=guest)[0].key,
        },
        "users": {"host": host.email, "guest": guest.email},
        "context": {"city": city, "property_id": listing.pk},
        "rows": {
            "properties": Property.objects.count(),
            "properties_in_city": Property.objects.filter(city=city, is_active=True).count(),
            "bookings": Booking.objects.count(),
            "host_bookings": host.booking_count,
            "guest_bookings": guest.booking_count,
        },
    }


def count_queries(requests: list[dict[str, object]]) -> list[dict[str, object]]:
    """Queries per request, measured on the second (warm) request of each scenario."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(raise_request_exception=False)
    results = []
    for request in requests:
        headers = {"HTTP_AUTHORIZATION": f"Token {request['token']}"} if request["token"] else {}
        body = request.get("body") or ""

        def send(request=request, headers=headers, body=body):
            return client.generic(
                request["method"], request["path"], data=body, content_type="application/json", **headers
            )

        send()
        with CaptureQueriesContext(connection) as queries:
            response = send()
        if request.get("capture"):  # the bytes a bare view (bench/views.py) answers
            Path(request["capture"]).write_bytes(response.content)
        results.append({"name": request["name"], "queries": len(queries), "status": response.status_code})
    return results


def catalogue() -> dict[str, object]:
    """What the Zipf replay (bench/replay.py) draws from: active listings, most reviewed first,
    and cities by active supply (with how many listings each has)."""
    from django.db.models import Count
    from django.db.models.functions import Lower

    from properties.models import Property

    active = Property.objects.filter(is_active=True)
    return {
        "property_ids": list(active.order_by("-review_count", "pk").values_list("pk", flat=True)),
        "cities": [
            [row["city_key"], row["n"]]
            for row in active.annotate(city_key=Lower("city"))
            .values("city_key")
            .annotate(n=Count("id"))
            .order_by("-n", "city_key")
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").add_argument("--city", required=True)
    sub.add_parser("count")
    sub.add_parser("catalogue")
    args = parser.parse_args()
    _setup()
    if args.command == "prepare":
        result = prepare(args.city)
    elif args.command == "count":
        result = count_queries(json.load(sys.stdin))
    else:
        result = catalogue()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
