"""Shared fixtures: settings on a temporary data dir and free loopback ports, stores per backend.

- `make_settings(**overrides)`: Settings with data_dir in tmp_path, SMTP and HTTP on free ports.
- `store` / `store_factory`: an opened Store for each backend (SQLite; PostgreSQL when reachable).
- `free_port()`: a TCP port on 127.0.0.1 nobody listens on right now.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalator.settings import Settings
from escalator.store import Store
from escalator.store.sqlite import SQLiteStore

SettingsFactory = Callable[..., Settings]
StoreFactory = Callable[[], Awaitable[Store]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    """Settings isolated from the developer's environment: tmp data dir, free ports, dry run."""
    for name in list(__import__("os").environ):
        if name.startswith("ESCALATOR_"):
            monkeypatch.delenv(name)

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "smtp_listen": f"127.0.0.1:{free_port()}",
            "http_listen": f"127.0.0.1:{free_port()}",
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores of one backend that share one database (like two workers would)."""
    opened: list[Store] = []

    async def make() -> Store:
        store = SQLiteStore(tmp_path / "store.db")
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()


@pytest.fixture
def corpus_dir() -> Iterator[Path]:
    path = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real"
    if not path.is_dir():
        path = Path("/work/shared/corpus/real")
    yield path
