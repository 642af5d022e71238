import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def eight_listings(settings):
    settings.SEARCH_COUNT_CAP = 5
    return PropertyFactory.create_batch(8, city="Lisbon")


def test_search_counts_at_most_the_cap_and_says_the_count_is_not_exact(anon_client, eight_listings):
    first = anon_client.get("/api/v1/properties/", {"page_size": 2})
    last = anon_client.get("/api/v1/properties/", {"page_size": 2, "page": 3})

    assert first.status_code == 200
    assert list(first.json()) == ["count", "count_is_exact", "next", "previous", "results"]
    assert first.json()["count"] == 5
    assert first.json()["count_is_exact"] is False
    assert len(last.json()["results"]) == 1  # the fifth: no page beyond the counted matches
    assert last.json()["next"] is None


def test_a_page_past_the_capped_count_asks_to_narrow_the_search(anon_client, eight_listings):
    response = anon_client.get("/api/v1/properties/", {"page_size": 2, "page": 4})

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["page"] == ["At most 3 for this search."]
    assert "narrow the search" in response.json()["error"]["message"]


def test_a_malformed_page_is_a_400_past_the_cap_too(anon_client, eight_listings):
    response = anon_client.get("/api/v1/properties/", {"page_size": 2, "page": "abc"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["page"] == ["Must be a positive integer."]


def test_below_the_cap_the_count_is_exact_and_unknown_pages_are_404(anon_client, settings):
    settings.SEARCH_COUNT_CAP = 5
    PropertyFactory.create_batch(3)

    body = anon_client.get("/api/v1/properties/").json()

    assert (body["count"], body["count_is_exact"]) == (3, True)
    assert anon_client.get("/api/v1/properties/", {"page": 2}).status_code == 404


def test_the_count_query_stops_at_the_cap_without_sorting(anon_client, eight_listings):
    with CaptureQueriesContext(connection) as queries:
        assert anon_client.get("/api/v1/properties/", {"ordering": "-price"}).status_code == 200

    count_sql = next(query["sql"] for query in queries if "COUNT(" in query["sql"].upper())
    assert "LIMIT 6" in count_sql
    assert "ORDER BY" not in count_sql.upper()
