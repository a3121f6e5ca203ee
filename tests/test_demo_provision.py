"""The demo provisions its tenancy through the hub's records, and a second start on the same state keeps it."""

from __future__ import annotations

from pathlib import Path

from hub.identity.manage import password, pin
from hub.tenancy.credentials import new_seed, public_key, read_seed, write_seed
from novapos.demo.provision import DEMO_USERS, provision_demo
from tests.test_tenancy_nats import Hub, hub  # noqa: F401  (the fixture, for its database and runner)


def _records(at: Hub) -> list[tuple[object, ...]]:
    rows = at.run(lambda pool: pool.fetch(
        "SELECT s.store, s.status, s.nkey_public, count(l.*) AS locations FROM stores s"
        " JOIN locations l ON l.tenant = s.tenant AND l.store = s.store GROUP BY s.store, s.status, s.nkey_public"))
    return [tuple(row) for row in rows]


def test_a_second_demo_start_keeps_the_records_and_seeds_and_a_stray_seed_is_reissued(
        hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "credentials"
    first = provision_demo(hub.config.database_url, folder)
    seed = read_seed(first.store)
    assert first.store.stat().st_mode & 0o777 == 0o600 and first.hub.stat().st_mode & 0o777 == 0o600
    assert _records(hub) == [("store-001", "active", public_key(seed), 2)]
    authorization = first.authorization.read_text()
    assert public_key(seed) in authorization and public_key(read_seed(first.hub)) in authorization

    again = provision_demo(hub.config.database_url, folder)
    assert (read_seed(again.store), again.authorization.read_text()) == (seed, authorization)
    assert _records(hub) == [("store-001", "active", public_key(seed), 2)]

    stray = new_seed()  # a seed that is not the store's (say, restored from an older backup)
    write_seed(first.store, stray)
    provision_demo(hub.config.database_url, folder)
    assert _records(hub) == [("store-001", "active", public_key(stray), 2)]
    assert public_key(seed) not in first.authorization.read_text()
    users = hub.run(lambda pool: pool.fetch(
        "SELECT u.login, r.role, coalesce(r.region, r.store) AS place, u.password_hash IS NOT NULL AS console,"
        " u.pin_verifier IS NOT NULL AS till FROM users u JOIN user_roles r ON r.user_id = u.id ORDER BY u.id"))
    assert [tuple(row) for row in users] == [  # made once, kept on later starts
        ("admin", "tenant_admin", None, True, False), ("north", "regional_admin", "north", True, False),
        ("manager", "store_manager", "store-001", True, True), ("cashier", "cashier", "store-001", False, True)]
    for user in DEMO_USERS:  # the demo's secrets pass the rules the console enforces
        assert user.password is None or password("password", user.password) == user.password
        assert user.pin is None or pin("pin", user.pin) == user.pin
