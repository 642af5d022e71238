"""bench/cluster_bench.py's pure parts: the paths it loads and the locust pass/fail rule."""

from urllib.parse import unquote, urlsplit

from bench.cluster_bench import World, meets


def test_the_read_mix_quotes_city_names_and_covers_every_listing():
    world = World(property_ids=[1, 2, 3], cities=["New York", "Rome"])
    paths = world.read_mix()
    assert all(" " not in path for path in paths)  # a raw space would be a 400 from nginx
    searched = {unquote(urlsplit(path).query.split("&")[0].removeprefix("city=")) for path in paths if "city=" in path}
    assert searched == {"New York", "Rome"}
    for property_id in (1, 2, 3):
        assert f"/api/v1/properties/{property_id}/" in paths
    assert "/api/v1/properties/2/availability/" in {urlsplit(path).path for path in paths}


def test_a_locust_step_passes_only_within_every_target():
    passing = {"p95": 199.0, "p99": 499.0, "errors": 0.09}
    assert meets(passing)
    assert not meets({**passing, "p95": 200.0})
    assert not meets({**passing, "p99": 500.0})
    assert not meets({**passing, "errors": 0.1})
