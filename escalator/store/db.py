"""The line between the store's logic, written once, and a dialect (SQLite, PostgreSQL).

The logic is a set of jobs: async functions of a `Db` that run named queries (store/queries.py)
inside ONE transaction, decide from what they read, and build the rows of store/__init__.py.
A dialect supplies the `Db` (how a parameter is bound, how a stored time or JSON document is
read back) and a `Connector` that runs jobs: in a group-committed write transaction (with, on
PostgreSQL, a NOTIFY of the `News` to other replicas at commit) or as a read. Nothing above
this line knows which database it talks to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from escalator.errors import ConfigError

T = TypeVar("T")
News = Literal["mail", "actions"]  # what other replicas are told when a write commits


@dataclass(frozen=True)
class Json:
    """A parameter stored as a JSON document (TEXT on SQLite, JSONB on PostgreSQL)."""

    value: Any


class Row(Protocol):
    """A result row: columns by name (sqlite3.Row, psycopg's dict rows)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Db(Protocol):
    """Named queries inside the job's transaction, and the dialect's reading of stored values.
    Parameters: datetime, Json, a list (of ids or marks), str, int, bytes, bool or None."""

    async def one(self, name: str, **params: Any) -> Row | None: ...

    async def all(self, name: str, **params: Any) -> Sequence[Row]: ...

    async def run(self, name: str, **params: Any) -> int:
        """Execute; the number of rows it changed."""
        ...

    async def many(self, name: str, each: Sequence[dict[str, Any]]) -> Sequence[Row | None]:
        """Execute once per set of parameters, in order (on PostgreSQL in one round trip);
        the first row each gave (RETURNING), None for one that gave none."""
        ...

    def time(self, value: Any) -> datetime:
        """A stored instant as an aware datetime."""
        ...

    def json(self, value: Any) -> Any:
        """A stored JSON document as Python values."""
        ...


Job = Callable[[Db], Awaitable[T]]


class Connector(Protocol):
    """Runs jobs against one database (see the module docstring)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, job: Job[T], news: News | None = None) -> T:
        """Run `job` in a committed transaction (grouped with others); tell `news` at commit."""
        ...

    async def read(self, job: Job[T]) -> T:
        """Run `job` where it does not wait behind commits, when the dialect has such a place."""
        ...

    def subscribe(self, on_mail: Callable[[], None], on_actions: Callable[[], None]) -> None: ...


class Tables:
    """A mixin of Store methods written once over jobs: the store provides where jobs run."""

    async def _write(self, job: Job[T], news: News | None = None) -> T:
        raise NotImplementedError  # provided by the store

    async def _read(self, job: Job[T]) -> T:
        raise NotImplementedError  # provided by the store


def clock() -> datetime:
    """The store's own clock, for the times it stamps itself (updated_at, audit of a review)."""
    return datetime.now(UTC)


def check_version(version: int, known: int) -> None:
    """Refuse a store whose schema is newer than this escalator's migrations."""
    if version > known:
        raise ConfigError(
            f"the store's schema version {version} is newer than this escalator knows "
            f"({known}): upgrade escalator"
        )
