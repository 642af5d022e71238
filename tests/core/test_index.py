"""The site root tells a newcomer where everything is, in JSON."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_root_links_the_api_docs_admin_and_health(anon_client):
    response = anon_client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["name"] == "Staybase API"
    assert body["api_base"] == "http://testserver/api/v1/"
    assert body["links"] == {
        "docs": "http://testserver/api/docs/",
        "redoc": "http://testserver/api/redoc/",
        "schema": "http://testserver/api/schema/",
        "admin": "http://testserver/admin/",
        "health": "http://testserver/health/",
        "ready": "http://testserver/health/ready/",
    }


@pytest.mark.parametrize("name", ["docs", "redoc", "schema", "health", "admin"])
def test_every_link_of_the_root_answers(anon_client, name):
    url = anon_client.get("/").json()["links"][name].removeprefix("http://testserver")

    assert anon_client.get(url).status_code in {200, 302}  # the admin redirects to its login
