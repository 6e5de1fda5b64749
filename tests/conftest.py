"""Shared fixtures: settings on a temporary data dir and free loopback ports, stores per backend.

- `make_settings(**overrides)`: Settings with data_dir in tmp_path, SMTP and HTTP on free ports.
- `sink`: a local SMTP server standing in for the relay that replies go through.
- `store` / `store_factory`: an opened Store for each backend (SQLite; PostgreSQL when reachable).
- `free_port()`: a TCP port on 127.0.0.1 nobody listens on right now.
- `pg_schema`: a fresh schema on the test PostgreSQL database, for `escalator serve` processes
  (their URL names it in search_path); skipped when PostgreSQL is not reachable.
- `start_server(store=None, **overrides)` / `server`: a running Service (SMTP, store, decide
  worker) on its own loop in a thread; `.smtp()` gives a connected smtplib client, `.mails()`
  the stored mails once decided, `.call(coro)` runs a coroutine on the service's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import smtplib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from standins.smtp_sink import SmtpSink

from escalator.settings import Settings
from escalator.store import ListedMail, Store
from escalator.store.postgres import PostgresStore
from escalator.store.sqlite import SQLiteStore

SettingsFactory = Callable[..., Settings]
StoreFactory = Callable[[], Awaitable[Store]]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    """Settings isolated from the developer's environment: tmp data dir, free ports, dry run."""
    for name in list(os.environ):
        if name.startswith("ESCALATOR_"):
            monkeypatch.delenv(name)

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "smtp_listen": f"127.0.0.1:{free_port()}",
            "http_listen": f"127.0.0.1:{free_port()}",
            # Tests run at the real now: a 09:00/18:00 handover digest would land in whichever
            # test happens to run then. Handover tests pass their own times and a pinned clock.
            "handover_times": (),
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


BACKENDS = ["sqlite", "postgresql"]
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores of one backend that share one database (like two workers would).

    PostgreSQL (127.0.0.1:5432, database `test`) gets a fresh schema per test, dropped after;
    the test is skipped when no server answers there.
    """
    opened: list[Store] = []
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "postgresql":
        await _require_postgres()

    async def make() -> Store:
        store: Store
        if request.param == "postgresql":
            store = PostgresStore(POSTGRES_URL, schema=schema)
        else:
            store = SQLiteStore(tmp_path / "store.db")
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if request.param == "postgresql":
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def _require_postgres() -> None:
    try:
        conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {exc}")
    await conn.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()


@pytest.fixture
def corpus_dir() -> Iterator[Path]:
    path = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real"
    if not path.is_dir():
        path = Path("/work/shared/corpus/real")
    yield path


# -- a running service in its own thread (so blocking smtplib clients can talk to it) ----------


class RunningServer:
    """A started Service on a private loop in a thread; `call` runs a coroutine on that loop."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        from escalator.app import Service

        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        async def build() -> Service:
            service = Service(settings, store=store)
            await service.start()
            return service

        self.service = self.call(build())
        self.host, self.port = self.service.smtp_address

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def mails(self, decide: bool = True) -> list[ListedMail]:
        """Every stored mail with its actions; with `decide`, after the worker caught up."""
        if decide:
            self.call(self.service.processor.burst())
        return self.call(self.service.store.list_mails())

    def smtp(self, **kwargs: Any) -> smtplib.SMTP:
        return smtplib.SMTP(self.host, self.port, timeout=30, **kwargs)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.call(self.service.stop(deadline=5))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture
def start_server(make_settings: SettingsFactory) -> Iterator[Callable[..., RunningServer]]:
    """Starts a real service (SMTP + store + decide worker) with setting overrides."""
    started: list[RunningServer] = []

    def start(store: Store | None = None, **overrides: Any) -> RunningServer:
        server = RunningServer(make_settings(**overrides), store)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A service on default settings (dry run), SMTP on a free loopback port."""
    return start_server()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A local SMTP server standing in for the relay replies go through (tests/standins)."""
    with SmtpSink() as running:
        yield running


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema on the test database, reached through the URL's search_path."""
    try:
        conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {exc}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        yield schema
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
