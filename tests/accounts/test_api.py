import pytest
from rest_framework.authtoken.models import Token

from accounts.models import User
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

STRONG_PASSWORD = "correct-horse-battery-staple"


def test_register_returns_a_token_that_authenticates(anon_client):
    response = anon_client.post(
        "/api/v1/auth/register/", {"email": "Ana@Example.com", "password": STRONG_PASSWORD, "is_host": True}
    )

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["email"] == "ana@example.com"
    assert body["user"]["is_host"] is True
    assert body["user"]["tier"] == "free"
    me = anon_client.get("/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.status_code == 200
    assert me.json()["email"] == "ana@example.com"


def test_register_rejects_duplicates_case_insensitively_and_weak_passwords(anon_client):
    User.objects.create_user(email="ana@example.com", password=STRONG_PASSWORD)

    duplicate = anon_client.post("/api/v1/auth/register/", {"email": "ANA@example.com", "password": STRONG_PASSWORD})
    weak = anon_client.post("/api/v1/auth/register/", {"email": "bo@example.com", "password": "12345"})
    malformed = anon_client.post("/api/v1/auth/register/", {"email": "not-an-email", "password": STRONG_PASSWORD})

    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "email_taken"
    assert weak.status_code == 400
    assert "password" in weak.json()["error"]["fields"]
    assert malformed.status_code == 400
    assert "email" in malformed.json()["error"]["fields"]
    assert User.objects.count() == 1


def test_login_and_logout_revoke_the_token(anon_client):
    User.objects.create_user(email="ana@example.com", password=STRONG_PASSWORD)

    wrong = anon_client.post("/api/v1/auth/login/", {"email": "ana@example.com", "password": "nope"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_credentials"

    token = anon_client.post("/api/v1/auth/login/", {"email": "ANA@example.com", "password": STRONG_PASSWORD}).json()[
        "token"
    ]
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert anon_client.post("/api/v1/auth/logout/", **auth).status_code == 204
    assert not Token.objects.filter(key=token).exists()
    revoked = anon_client.get("/api/v1/auth/me/", **auth)
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "authentication_failed"


def test_me_requires_authentication(anon_client, guest):
    assert anon_client.get("/api/v1/auth/me/").status_code == 401
    assert client_for(guest).get("/api/v1/auth/me/").json()["id"] == guest.pk
