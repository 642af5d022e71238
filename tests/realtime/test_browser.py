"""The /live/ demo page in a real browser (Playwright driving Debian's chromium).

CI installs chromium with apt (.ci/run); elsewhere the test is skipped when it is absent.
"""

import datetime
import os
import shutil

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.factories import HostFactory, PropertyFactory
from tests.realtime.processes import SocketProcess

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(
        not shutil.which(CHROMIUM) and os.environ.get("CI") != "true",
        reason="chromium is not installed (Debian: apt-get install chromium); CI installs it and runs this test",
    ),
]


def _book(client, listing, days: int):
    check_in = timezone.localdate() + datetime.timedelta(days=days)
    response = client.post(
        "/api/v1/bookings/",
        {
            "property_id": listing.pk,
            "check_in": check_in.isoformat(),
            "check_out": (check_in + datetime.timedelta(days=2)).isoformat(),
            "guests": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_live_page_shows_booking_events_and_resumes_after_a_dropped_connection(
    transactional_db, tmp_path, guest_client, monkeypatch
):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls here are still
    # plain synchronous ones (Django documents this switch for exactly that situation).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    host = HostFactory()
    listing = PropertyFactory(host=host)
    token, _ = Token.objects.get_or_create(user=host)
    server = SocketProcess(tmp_path)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.port}/live/")
            page.fill("#token", token.key)
            page.click("button[type=submit]")
            expect(page.locator("#status")).to_have_text(f"live: host:{host.pk}", timeout=15_000)

            first = _book(guest_client, listing, days=10)
            expect(page.locator("#events li")).to_have_count(1, timeout=15_000)
            expect(page.locator("#events li").first).to_contain_text(f"booking.created booking {first}")

            page.evaluate("window.staybaseLive.drop()")
            expect(page.locator("#status")).to_contain_text("disconnected", timeout=10_000)
            missed = [_book(guest_client, listing, days=20 + 3 * n) for n in range(3)]
            page.evaluate("window.staybaseLive.reconnect()")

            expect(page.locator("#events li")).to_have_count(4, timeout=15_000)
            offsets = page.locator("#events li").evaluate_all("items => items.map(i => Number(i.dataset.offset))")
            assert offsets == [4, 3, 2, 1]  # newest first: every event once, none lost while away
            texts = page.locator("#events li").all_inner_texts()
            for booking_id in missed:
                assert sum(f"booking {booking_id} " in text for text in texts) == 1
            browser.close()
    finally:
        server.stop()
