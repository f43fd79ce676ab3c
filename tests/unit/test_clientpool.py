"""kiln.core.clientpool: backend clients kept per identity, never keyed by a credential."""

from __future__ import annotations

import threading

from kiln.core.clientpool import ClientPool
from kiln.core.context import SecretContext
from kiln.core.redact import Redactor


class _Client:
    def __init__(self, name: str, usable: bool = True) -> None:
        self.name = name
        self._usable = usable

    def usable(self) -> bool:
        return self._usable


def test_equal_identities_share_one_client_and_others_get_their_own() -> None:
    pool = ClientPool()
    built: list[str] = []

    def build(name: str) -> _Client:
        built.append(name)
        return _Client(name)

    a1 = pool.reuse(("vault", "https://a", "token-a"), lambda: build("a"))
    a2 = pool.reuse(("vault", "https://a", "token-a"), lambda: build("a-again"))
    b = pool.reuse(("vault", "https://a", "token-b"), lambda: build("b"))
    assert a1 is a2
    assert b is not a1
    assert built == ["a", "b"]


def test_a_client_that_says_it_is_no_longer_usable_is_replaced() -> None:
    pool = ClientPool()
    stale = pool.reuse("id", lambda: _Client("old", usable=False))
    fresh = pool.reuse("id", lambda: _Client("new"))
    assert stale.name == "old"
    assert fresh.name == "new"
    assert pool.reuse("id", lambda: _Client("third")) is fresh


def test_the_pool_is_bounded_least_recently_used_first() -> None:
    pool = ClientPool(max_entries=2)
    first = pool.reuse("one", lambda: _Client("one"))
    pool.reuse("two", lambda: _Client("two"))
    assert pool.reuse("one", lambda: _Client("x")) is first  # "one" is now the most recent
    pool.reuse("three", lambda: _Client("three"))
    assert len(pool) == 2
    assert pool.reuse("two", lambda: _Client("two-again")).name == "two-again"


def test_no_part_of_an_identity_is_kept_in_the_pool() -> None:
    pool = ClientPool()
    secret = "s3cr3t-role-secret-id-value"
    pool.reuse(("approle", "role-id", secret), lambda: _Client("c"))
    kept = repr(vars(pool))
    assert secret not in kept
    assert "role-id" not in kept


def test_threads_asking_at_once_all_get_the_one_kept_client() -> None:
    pool = ClientPool()
    got: list[_Client] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        got.append(pool.reuse("shared", lambda: _Client("c")))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(got) == 8
    assert len({id(c) for c in got}) == 1


def test_a_secret_context_without_a_pool_builds_every_time() -> None:
    ctx = SecretContext(app=None, env={}, redactor=Redactor())
    assert ctx.reuse("x", lambda: _Client("a")) is not ctx.reuse("x", lambda: _Client("a"))
    pooled = SecretContext(app=None, env={}, redactor=Redactor(), pool=ClientPool())
    assert pooled.reuse("x", lambda: _Client("a")) is pooled.reuse("x", lambda: _Client("b"))
