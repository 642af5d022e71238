"""Production serves its own static files (whitenoise) and answers CORS by environment."""

import json

import pytest
from django.test import override_settings

from tests.test_settings_modes import production_env, run_python

# Runs in a production-mode process: the hashed name comes from the manifest collectstatic wrote.
FETCH_ADMIN_CSS = """
import json
import django
django.setup()
from django.templatetags.static import static
from django.test import Client
url = static("admin/css/base.css")
client = Client(HTTP_HOST="staybase.example.com")
plain = client.get(url, secure=True)
gzipped = client.get(url, secure=True, HTTP_ACCEPT_ENCODING="gzip")
missing = client.get("/static/admin/css/no-such-file.css", secure=True)
print(json.dumps({
    "url": url,
    "status": plain.status_code,
    "content_type": plain.get("Content-Type"),
    "cache_control": plain.get("Cache-Control"),
    "body_start": b"".join(plain.streaming_content)[:200].decode(errors="replace"),
    "gzip_encoding": gzipped.get("Content-Encoding"),
    "missing_status": missing.status_code,
}))
"""


@pytest.fixture(scope="module")
def production_static(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("static")
    env = production_env(STATIC_ROOT=str(tmp_path / "staticfiles"))
    collected = run_python(["manage.py", "collectstatic", "--noinput", "-v", "0"], env, tmp_path)
    assert collected.returncode == 0, collected.stderr
    fetched = run_python(["-c", FETCH_ADMIN_CSS], env, tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    return json.loads(fetched.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_production_serves_admin_css_under_its_hashed_name(production_static):
    assert production_static["url"].startswith("/static/admin/css/base.")
    assert production_static["url"] != "/static/admin/css/base.css"  # a content hash in the name
    assert production_static["status"] == 200
    assert production_static["content_type"].startswith("text/css")
    assert "max-age=315360000" in production_static["cache_control"]  # hashed: cacheable forever
    assert "{" in production_static["body_start"]


@pytest.mark.subprocess
def test_production_serves_static_files_precompressed(production_static):
    assert production_static["gzip_encoding"] == "gzip"


@pytest.mark.subprocess
def test_production_unknown_static_file_is_404(production_static):
    assert production_static["missing_status"] == 404


@pytest.mark.subprocess
def test_collectstatic_is_quiet_at_verbosity_zero(tmp_path):
    result = run_python(
        ["manage.py", "collectstatic", "--noinput", "-v", "0"],
        {"STATIC_ROOT": str(tmp_path / "dev-static")},
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


# --- CORS ------------------------------------------------------------------------

ORIGIN = "https://app.example.com"


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_cors_preflight_from_an_allowed_origin_is_answered(anon_client, db):
    response = anon_client.options(
        "/api/v1/bookings/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed_headers = response["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed_headers.split(",")}
    assert "Access-Control-Allow-Credentials" not in response


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_cors_response_names_the_allowed_origin_and_exposes_rate_limit_headers(anon_client, db):
    response = anon_client.get("/api/v1/properties/", HTTP_ORIGIN=ORIGIN)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    exposed = {h.strip() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "X-RateLimit-Remaining", "Retry-After"} <= exposed


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_cors_other_origin_gets_no_allow_header(anon_client, db):
    response = anon_client.get("/api/v1/properties/", HTTP_ORIGIN="https://evil.example.net")

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_cors_allows_no_origin_by_default(anon_client, db):
    response = anon_client.options("/api/v1/bookings/", HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.subprocess
def test_cors_origins_come_from_the_environment(tmp_path):
    result = run_python(
        ["-c", "from django.conf import settings; print(settings.CORS_ALLOWED_ORIGINS)"],
        {"CORS_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com"},
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['https://a.example.com', 'https://b.example.com']"
