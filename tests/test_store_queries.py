"""The store's named queries (store/queries.py): both dialects answer every name, with the same
parameters, and SQLite compiles each one against a freshly migrated store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from escalator.store import queries
from escalator.store.sqlite import SQLiteStore

DIALECTS = ("sqlite", "postgres")


def test_both_dialects_answer_the_same_names_with_the_same_parameters() -> None:
    sqlite, postgres = (queries.load(dialect) for dialect in DIALECTS)
    assert sqlite.keys() == postgres.keys()
    for name, query in sqlite.items():
        other = postgres[name]
        if query and other:  # an empty body (nothing to do in that dialect) takes any
            assert set(queries.parameters(query)) == set(queries.parameters(other)), name


def test_a_dialect_may_not_redefine_a_shared_query() -> None:
    shared = queries.parse(queries._read(queries.SHARED))
    for dialect in DIALECTS:
        assert not shared.keys() & queries.parse(queries._read(f"{dialect}-queries.sql")).keys()


def test_the_format_names_describes_and_includes() -> None:
    text = (
        "-- preamble\n\n-- cols --\na, b\n\n-- pick --\n-- what it does\n-- on two lines\n"
        "SELECT {cols} FROM t WHERE x = :x AND y::text = :y -- a note\n"
    )
    parsed = queries.parse(text)
    assert parsed == {
        "cols": "a, b",
        "pick": "SELECT {cols} FROM t WHERE x = :x AND y::text = :y -- a note",
    }
    assert queries.parameters(parsed["pick"]) == ["x", "y"]


def test_pyformat_keeps_casts_and_literal_percent() -> None:
    query = "SELECT x::bigint, '5%' FROM t WHERE a = :a AND b = ANY(:b) AND c = :a"
    assert queries.to_pyformat(query) == (
        "SELECT x::bigint, '5%%' FROM t WHERE a = %(a)s AND b = ANY(%(b)s) AND c = %(a)s"
    )


@pytest.fixture
async def migrated(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.close()
    return tmp_path / "s.db"


# Statements only: not the pieces of text others include (`*_columns`), nor empty bodies.
STATEMENTS = sorted(
    name for name, query in queries.load("sqlite").items() if query and "_columns" not in name
)


@pytest.mark.parametrize("name", STATEMENTS)
def test_sqlite_compiles_every_query(migrated: Path, name: str) -> None:
    query = queries.load("sqlite")[name]
    with sqlite3.connect(migrated) as conn:
        conn.execute(f"EXPLAIN {query}", dict.fromkeys(queries.parameters(query)))
