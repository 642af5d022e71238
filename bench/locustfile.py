"""Staybase under a realistic mix of users (locust), against nginx or one API instance.

    locust -f bench/locustfile.py --headless -u 50 -r 25 -t 60s --host http://127.0.0.1:8080 \
        --csv bench/results/locust/run --reset-stats

Share of actions (task weights): anonymous search 50 %, property detail 25 %, availability 10 %,
a guest's booking list 8 %, booking create + cancel 5 %, host dashboard 2 %. Each simulated
user thinks 0.5-1.5 s between actions (about one action per second per user).

Logged-in actions use the small demo set's accounts (``manage.py seed_demo --small``), logged in
once before the load (bench/demo_accounts.py; tokens cached in STAYBASE_TOKENS_FILE, default
bench/results/tokens-<host>.json). The server under test needs raised rate limits
(RATE_LIMIT_SCALE=1000): every simulated user comes from one IP address.
"""

import datetime
import os
import random
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import requests
from locust import FastHttpUser, between, events, task

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench.demo_accounts import demo_tokens  # noqa: E402

ORDERINGS = ["", "price", "-price", "-rating"]


@dataclass(frozen=True)
class DemoWorld:
    """What the simulated users pick from: the listings and cities found, the demo accounts' tokens."""

    property_ids: list[int]
    cities: list[str]
    guest_tokens: list[str]
    host_tokens: list[str]


def discover(base_url: str) -> DemoWorld:
    listings: list[dict] = []
    session = requests.Session()
    for page in (1, 2, 3):
        response = session.get(f"{base_url}/api/v1/properties/", params={"page": page, "page_size": 100}, timeout=30)
        response.raise_for_status()
        listings += response.json()["results"]
    if not listings:
        raise RuntimeError(f"{base_url} lists no properties: seed it first (manage.py seed_demo --small)")
    host = urlsplit(base_url).netloc.replace(":", "_")
    tokens_file = Path(os.environ.get("STAYBASE_TOKENS_FILE") or BASE_DIR / "bench" / "results" / f"tokens-{host}.json")
    tokens = demo_tokens(base_url, path=tokens_file)
    return DemoWorld(
        property_ids=[item["id"] for item in listings],
        cities=sorted({item["city"] for item in listings}),
        guest_tokens=tokens["guest"],
        host_tokens=tokens["host"],
    )


@events.test_start.add_listener
def prepare(environment, **kwargs) -> None:
    StaybaseUser.world = discover(environment.host.rstrip("/"))


class StaybaseUser(FastHttpUser):
    wait_time = between(0.5, 1.5)
    world: ClassVar[DemoWorld]

    def on_start(self) -> None:
        self.guest_auth = {"Authorization": f"Token {random.choice(self.world.guest_tokens)}"}
        self.host_auth = {"Authorization": f"Token {random.choice(self.world.host_tokens)}"}

    @task(50)
    def search(self) -> None:
        params = {"city": random.choice(self.world.cities)}
        ordering = random.choice(ORDERINGS)
        if ordering:
            params["ordering"] = ordering
        self.client.get("/api/v1/properties/", params=params, name="search")

    @task(25)
    def detail(self) -> None:
        self.client.get(f"/api/v1/properties/{random.choice(self.world.property_ids)}/", name="detail")

    @task(10)
    def availability(self) -> None:
        start = datetime.date.today() + datetime.timedelta(days=random.randrange(0, 60))  # noqa: DTZ011
        self.client.get(
            f"/api/v1/properties/{random.choice(self.world.property_ids)}/availability/",
            params={"start": start.isoformat(), "end": (start + datetime.timedelta(days=30)).isoformat()},
            name="availability",
        )

    @task(8)
    def booking_list(self) -> None:
        self.client.get("/api/v1/bookings/", headers=self.guest_auth, name="booking list")

    @task(5)
    def booking_create_cancel(self) -> None:
        # Far ahead, where the demo data books little; a 409 (the dates are taken) is the API
        # answering correctly, not an error.
        check_in = datetime.date.today() + datetime.timedelta(days=random.randrange(365, 700))  # noqa: DTZ011
        body = {
            "property_id": random.choice(self.world.property_ids),
            "check_in": check_in.isoformat(),
            "check_out": (check_in + datetime.timedelta(days=random.randint(1, 4))).isoformat(),
            "guests": 1,
        }
        headers = {**self.guest_auth, "Idempotency-Key": str(uuid.uuid4())}
        with self.client.post(
            "/api/v1/bookings/", json=body, headers=headers, name="booking create", catch_response=True
        ) as response:
            if response.status_code == 409:
                response.success()
                return
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            booking_id = response.json()["id"]
        self.client.post(f"/api/v1/bookings/{booking_id}/cancel/", headers=self.guest_auth, name="booking cancel")

    @task(2)
    def host_dashboard(self) -> None:
        self.client.get("/api/v1/analytics/dashboard/", headers=self.host_auth, name="host dashboard")
