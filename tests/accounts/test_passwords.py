"""Password change and reset: revoke every other credential, never tell who has an account."""

import re

import pytest
from rest_framework.authtoken.models import Token

from accounts.models import User
from jobs.models import JobRecord
from jobs.testing import run_jobs
from tests.conftest import CommittingAPIClient, client_for

pytestmark = pytest.mark.django_db

OLD = "correct-horse-battery-staple"
NEW = "a-new-and-longer-passphrase"
API = "/api/v1/auth"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # What is tested is who may set a password, not PBKDF2: its 10^6 rounds cost seconds per test here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ana():
    return User.objects.create_user(email="ana@example.com", password=OLD, first_name="Ana")


def me(client: CommittingAPIClient, token: str) -> int:
    return client.get(f"{API}/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code


def login(client: CommittingAPIClient, password: str) -> int:
    return client.post(f"{API}/login/", {"email": "ana@example.com", "password": password}).status_code


# --- Change ---------------------------------------------------------------------------


def test_password_change_revokes_the_token_and_sessions_and_answers_with_a_new_token(ana, anon_client):
    laptop = client_for(ana)
    old_token = Token.objects.get(user=ana).key
    assert me(anon_client, old_token) == 200  # its auth context is cached now
    browser = CommittingAPIClient()
    browser.force_login(ana)
    assert browser.get(f"{API}/me/").status_code == 200

    response = laptop.post(f"{API}/password/change/", {"current_password": OLD, "new_password": NEW})

    assert response.status_code == 200
    new_token = response.json()["token"]
    assert list(Token.objects.filter(user=ana).values_list("key", flat=True)) == [new_token]
    assert new_token != old_token
    assert me(anon_client, old_token) == 401
    assert browser.get(f"{API}/me/").status_code == 401  # the session's password hash no longer matches
    assert me(anon_client, new_token) == 200
    assert login(anon_client, OLD) == 400
    assert login(anon_client, NEW) == 200


def test_password_change_with_a_wrong_current_password_changes_nothing(ana):
    client = client_for(ana)

    response = client.post(f"{API}/password/change/", {"current_password": "guess", "new_password": NEW})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_password"
    assert "current_password" in response.json()["error"]["fields"]
    ana.refresh_from_db()
    assert ana.check_password(OLD)
    assert Token.objects.filter(user=ana).count() == 1


def test_password_change_refuses_a_weak_password(ana):
    response = client_for(ana).post(f"{API}/password/change/", {"current_password": OLD, "new_password": "12345"})

    assert response.status_code == 400
    assert "new_password" in response.json()["error"]["fields"]
    ana.refresh_from_db()
    assert ana.check_password(OLD)


def test_password_change_needs_a_login(anon_client, ana):
    response = anon_client.post(f"{API}/password/change/", {"current_password": OLD, "new_password": NEW})

    assert response.status_code == 401


def test_password_change_is_rate_limited_per_user(ana):
    client = client_for(ana)
    statuses = [
        client.post(f"{API}/password/change/", {"current_password": "guess", "new_password": NEW}).status_code
        for _ in range(11)
    ]

    assert statuses == [400] * 10 + [429]


# --- Reset ----------------------------------------------------------------------------


def reset_email(mailoutbox) -> tuple[str, str]:
    [message] = mailoutbox
    uid = re.search(r"uid: (\S+)", message.body).group(1)
    token = re.search(r"token: (\S+)", message.body).group(1)
    return uid, token


def test_reset_request_answers_the_same_whether_or_not_the_account_exists(ana, anon_client, mailoutbox):
    User.objects.create_user(email="gone@example.com", password=OLD, is_active=False)

    known = anon_client.post(f"{API}/password/reset/", {"email": "ANA@example.com"})
    unknown = anon_client.post(f"{API}/password/reset/", {"email": "nobody@example.com"})
    inactive = anon_client.post(f"{API}/password/reset/", {"email": "gone@example.com"})

    assert known.status_code == unknown.status_code == inactive.status_code == 202
    assert known.content == unknown.content == inactive.content
    assert JobRecord.objects.get().task == "accounts.tasks.send_password_reset_email"
    run_jobs()
    assert [message.to for message in mailoutbox] == [["ana@example.com"]]


def test_reset_confirm_sets_the_password_revokes_tokens_and_works_once(ana, anon_client, mailoutbox):
    old_token = Token.objects.create(user=ana)
    assert me(anon_client, old_token.key) == 200
    anon_client.post(f"{API}/password/reset/", {"email": "ana@example.com"})
    run_jobs()
    uid, token = reset_email(mailoutbox)

    response = anon_client.post(f"{API}/password/reset/confirm/", {"uid": uid, "token": token, "new_password": NEW})

    assert response.status_code == 200
    assert me(anon_client, response.json()["token"]) == 200
    assert me(anon_client, old_token.key) == 401
    assert login(anon_client, NEW) == 200
    again = anon_client.post(f"{API}/password/reset/confirm/", {"uid": uid, "token": token, "new_password": OLD})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_reset_token"


@pytest.mark.parametrize(
    "change",
    [{"uid": "bm90LWEtbnVtYmVy"}, {"uid": "!!"}, {"uid": "OTk5OTk5"}, {"token": "abc-123"}],
    ids=["uid-not-a-number", "uid-not-base64", "no-such-user", "wrong-token"],
)
def test_reset_confirm_refuses_a_bad_link(change, ana, anon_client, mailoutbox):
    anon_client.post(f"{API}/password/reset/", {"email": "ana@example.com"})
    run_jobs()
    uid, token = reset_email(mailoutbox)

    response = anon_client.post(
        f"{API}/password/reset/confirm/", {"uid": uid, "token": token, "new_password": NEW, **change}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_reset_token"
    ana.refresh_from_db()
    assert ana.check_password(OLD)


def test_reset_confirm_refuses_a_weak_password_and_the_link_still_works(ana, anon_client, mailoutbox):
    anon_client.post(f"{API}/password/reset/", {"email": "ana@example.com"})
    run_jobs()
    uid, token = reset_email(mailoutbox)

    weak = anon_client.post(f"{API}/password/reset/confirm/", {"uid": uid, "token": token, "new_password": "123"})
    good = anon_client.post(f"{API}/password/reset/confirm/", {"uid": uid, "token": token, "new_password": NEW})

    assert weak.status_code == 400
    assert "new_password" in weak.json()["error"]["fields"]
    assert good.status_code == 200


def test_reset_email_links_to_the_client_app_when_configured(settings, ana, anon_client, mailoutbox):
    settings.PASSWORD_RESET_URL = "https://app.example.com/reset?uid={uid}&token={token}"
    anon_client.post(f"{API}/password/reset/", {"email": "ana@example.com"})
    run_jobs()

    [message] = mailoutbox
    assert re.search(r"https://app\.example\.com/reset\?uid=\w+&token=[\w-]+", message.body)
    assert "https://app.example.com/reset?uid=" in message.alternatives[0][0]


def test_reset_requests_are_rate_limited_per_address_alike_for_unknown_ones(ana, anon_client):
    def statuses(email: str) -> list[int]:
        return [anon_client.post(f"{API}/password/reset/", {"email": email}).status_code for _ in range(4)]

    assert statuses("ana@example.com") == [202, 202, 202, 429]
    assert statuses("nobody@example.com") == [202, 202, 202, 429]
    assert JobRecord.objects.count() == 1  # one queued email: the others joined it (dedupe key)
