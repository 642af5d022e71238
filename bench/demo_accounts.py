"""Tokens of the small demo data set's accounts (seed_demo --small: host001..host020 and
guest0001..guest0200, password demo.data.DEMO_PASSWORD), for load tests.

Logging in costs a password hash (hundreds of milliseconds of server CPU), so a load test logs
each account in once, before the load, and keeps the tokens in a file: Staybase's token for a
user stays the same across logins, so the file stays valid until someone logs out.
"""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# demo.data's values (importing it needs Django set up; tests/deploy/test_load_test.py checks them).
DEMO_PASSWORD = "staybase-demo"  # noqa: S105 - the demo accounts' published password
DEMO_EMAIL_DOMAIN = "demo.staybase.local"
LOGIN_PATH = "/api/v1/auth/login/"


def demo_emails(*, guests: int, hosts: int) -> dict[str, list[str]]:
    return {
        "guest": [f"guest{n:04d}@{DEMO_EMAIL_DOMAIN}" for n in range(1, guests + 1)],
        "host": [f"host{n:03d}@{DEMO_EMAIL_DOMAIN}" for n in range(1, hosts + 1)],
    }


def log_in(base_url: str, email: str, *, timeout_s: float = 30) -> str:
    body = json.dumps({"email": email, "password": DEMO_PASSWORD}).encode()
    request = urllib.request.Request(
        base_url.rstrip("/") + LOGIN_PATH, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)["token"]


def demo_tokens(base_url: str, *, path: Path, guests: int = 20, hosts: int = 5) -> dict[str, list[str]]:
    """Tokens by role ("guest", "host"), read from ``path`` or obtained by logging in (then saved there)."""
    if path.exists():
        tokens = json.loads(path.read_text())
        if len(tokens.get("guest", [])) >= guests and len(tokens.get("host", [])) >= hosts:
            return tokens
    # A few at a time: the server hashes passwords on all its workers.
    with ThreadPoolExecutor(max_workers=4) as pool:
        tokens = {
            role: list(pool.map(lambda email: log_in(base_url, email), emails))
            for role, emails in demo_emails(guests=guests, hosts=hosts).items()
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens))
    return tokens
