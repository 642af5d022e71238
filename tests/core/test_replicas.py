"""The replica router's decisions (core/replicas.py), without a replica.

tests/core/test_replicas_live.py runs the same code against a real streaming replica.
"""

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.test import RequestFactory, override_settings

from core.replicas import (
    PinStore,
    ReadContext,
    ReplicaRouter,
    ReplicaSet,
    ReplicaState,
    lsn_to_int,
    pin_keys_for,
    read_context,
)


class FixedReplicas(ReplicaSet):
    """A replica set whose replicas have replayed a given position, probed by no one."""

    def __init__(self, replayed: dict[str, int]):
        self.replicas = [ReplicaState(alias, "", replay_lsn=lsn, usable=True) for alias, lsn in replayed.items()]

    def usable_replicas(self, *, at_least_lsn: int = 0) -> list[str]:
        return [r.alias for r in self.replicas if r.usable and r.replay_lsn >= at_least_lsn]


def router_with(replayed: dict[str, int]) -> ReplicaRouter:
    router = ReplicaRouter.__new__(ReplicaRouter)
    router.replicas = FixedReplicas(replayed)
    return router


def reading_as(keys: list[str], store: PinStore):
    return read_context.set(ReadContext(keys, store))


def test_lsn_text_compares_as_positions():
    assert lsn_to_int("0/3000148") == 0x3000148
    assert lsn_to_int("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn_to_int("1/0") > lsn_to_int("0/FFFFFFFF")


@pytest.fixture
def request_context():
    token = reading_as(["ryw:reader"], PinStore(ttl_s=30))
    yield read_context.get()
    read_context.reset(token)


def test_reads_without_a_pin_go_to_a_replica(request_context):
    assert router_with({"replica1": 100}).db_for_read(None) == "replica1"
    assert router_with({"replica1": 100, "replica2": 100}).db_for_read(None) in {"replica1", "replica2"}


def test_reads_outside_a_request_go_to_the_primary():
    assert read_context.get() is None
    assert router_with({"replica1": 100}).db_for_read(None) == DEFAULT_DB_ALIAS


def test_a_request_reads_from_the_primary_after_its_own_write(request_context):
    router = router_with({"replica1": 100})
    assert router.db_for_write(None) == DEFAULT_DB_ALIAS
    assert request_context.wrote is True
    assert router.db_for_read(None) == DEFAULT_DB_ALIAS


def test_writes_and_migrations_stay_on_the_primary():
    router = router_with({"replica1": 100})
    assert router.db_for_write(None) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "bookings") is True
    assert router.allow_migrate("replica1", "bookings") is False


@pytest.mark.django_db(transaction=True)
def test_reads_inside_a_transaction_on_the_primary_stay_there(request_context):
    router = router_with({"replica1": 100})
    with transaction.atomic():
        assert router.db_for_read(None) == DEFAULT_DB_ALIAS


def test_a_writer_reads_from_a_replica_only_once_it_has_replayed_the_write():
    store = PinStore(ttl_s=30)
    keys = ["ryw:writer"]
    store.pin(keys, 500)
    token = reading_as(keys, store)
    try:
        assert router_with({"replica1": 499}).db_for_read(None) == DEFAULT_DB_ALIAS
        assert router_with({"replica1": 499, "replica2": 500}).db_for_read(None) == "replica2"
    finally:
        read_context.reset(token)


def test_other_clients_are_not_held_back_by_a_writer():
    store = PinStore(ttl_s=30)
    store.pin(["ryw:writer"], 500)
    token = reading_as(["ryw:someone-else"], store)
    try:
        assert router_with({"replica1": 10}).db_for_read(None) == "replica1"
    finally:
        read_context.reset(token)


def test_the_highest_pin_of_all_identities_counts():
    store = PinStore(ttl_s=30)
    store.pin(["ryw:ip"], 900)
    store.pin(["ryw:token"], 100)
    assert store.floor(["ryw:ip", "ryw:token"]) == 900


def test_after_a_pin_is_lost_this_process_trusts_no_replica(monkeypatch):
    store = PinStore(ttl_s=30)
    monkeypatch.setattr("core.replicas.guarded", lambda kind, func, default: default)  # the store is down
    store.pin(["ryw:writer"], 500)
    monkeypatch.undo()
    assert store.floor(["ryw:anyone"]) == -1
    token = reading_as(["ryw:anyone"], store)
    try:
        assert router_with({"replica1": 10**9}).db_for_read(None) == DEFAULT_DB_ALIAS
    finally:
        read_context.reset(token)


def test_unreadable_pins_send_reads_to_the_primary(monkeypatch):
    store = PinStore(ttl_s=30)
    monkeypatch.setattr("core.replicas.guarded", lambda kind, func, default: default)
    assert store.floor(["ryw:anyone"]) == -1


def test_no_usable_replica_means_the_primary(request_context):
    router = router_with({})
    assert router.db_for_read(None) == DEFAULT_DB_ALIAS


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_pins_are_keyed_by_hashed_token_session_and_client_ip():
    request = RequestFactory().get(
        "/", HTTP_AUTHORIZATION="Token abc", HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="10.0.0.2"
    )
    request.COOKIES["sessionid"] = "s3ss10n"
    keys = pin_keys_for(request)
    assert len(keys) == 3
    assert all(key.startswith("ryw:") and "abc" not in key and "s3ss10n" not in key for key in keys)
    other_ip = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="203.0.113.10", REMOTE_ADDR="10.0.0.2")
    assert pin_keys_for(other_ip)[0] != keys[0]


def _replica_set_for(conninfo: str) -> ReplicaSet:
    replica_set = ReplicaSet([], max_lag_s=5, check_interval_s=60, connect_timeout_s=1)
    replica_set.replicas = [ReplicaState("replica1", conninfo)]
    return replica_set


def test_an_unreachable_replica_is_skipped_and_probed_once_per_interval(monkeypatch):
    replica_set = _replica_set_for("host=127.0.0.1 port=1 dbname=nothing user=nobody")
    attempts = []
    real_connect = psycopg.connect

    def counting_connect(*args, **kwargs):
        attempts.append(args)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting_connect)
    assert replica_set.usable_replicas() == []
    assert replica_set.usable_replicas() == []
    assert len(attempts) == 1


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="probes a PostgreSQL server")
def test_a_server_that_is_not_a_replica_is_never_used():
    settings_dict = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        dbname=settings_dict["NAME"],
        user=settings_dict.get("USER") or None,
        host=settings_dict.get("HOST") or None,
        port=str(settings_dict.get("PORT") or "") or None,
    )
    replica_set = _replica_set_for(conninfo)
    assert replica_set.usable_replicas() == []  # pg_last_wal_replay_lsn() is NULL on a primary
    assert replica_set.replicas[0].connection is not None
    replica_set.replicas[0].connection.close()


def test_a_login_pins_the_token_it_issues_so_its_first_use_reads_the_primary(client, django_user_model):
    """The client's next request carries the new token, perhaps from another address: the
    replica may not have the token yet, so that request must find a pin for it."""
    django_user_model.objects.create_user(email="pinned@example.com", password="a-long-passw0rd")
    context = ReadContext(pin_keys_for(RequestFactory().post("/")), PinStore(ttl_s=30))
    token = read_context.set(context)
    try:
        response = client.post(
            "/api/v1/auth/login/",
            {"email": "pinned@example.com", "password": "a-long-passw0rd"},
            content_type="application/json",
        )
    finally:
        read_context.reset(token)
    assert response.status_code == 200
    later_request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    token_key = pin_keys_for(later_request)[1]
    assert token_key in context.pin_keys
