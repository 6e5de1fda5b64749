"""Named queries, the procrastinate way: the store's SQL lives in .sql files, each under a name.

`store/queries.sql` holds what both dialects run as written; `sqlite-queries.sql` and
`postgres-queries.sql` hold the names whose SQL differs (locks, arrays, SKIP LOCKED) and only
those: a name is either shared or in both dialect files (tests/test_store_queries.py checks,
with the parameters each query takes). The format, one query after another:

    -- name --
    -- what it does (any number of comment lines)
    SELECT ... FROM mails WHERE id = :id

Parameters are `:name` (SQLite's style; a dialect turns them into its own). A query may include
a named piece of text as `{name}` (the mail columns are listed once). An empty body is a query
that does nothing in that dialect. The logic that runs these queries is written once
(store/manager.py and the job modules); the dialect only executes them (store/db.py).
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --\n(?:--.*\n)*", re.MULTILINE)
_INCLUDE = re.compile(r"\{([a-z0-9_]+)\}")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
SHARED = "queries.sql"


def parse(text: str) -> dict[str, str]:
    """{name: SQL} from one file's text; what stands before the first name is its preamble."""
    parts = _HEADER.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def load(dialect: str) -> dict[str, str]:
    """Every query `dialect` runs: the shared ones and its own, includes resolved."""
    shared, own = parse(_read(SHARED)), parse(_read(f"{dialect}-queries.sql"))
    if clash := sorted(shared.keys() & own.keys()):
        raise ValueError(f"{dialect}-queries.sql redefines shared queries: {clash}")
    merged = shared | own
    return {name: _include(body, merged) for name, body in merged.items()}


def parameters(query: str) -> list[str]:
    """The `:name` parameters of a query, in order of appearance (repeats included)."""
    return _PARAM.findall(query)


def to_pyformat(query: str) -> str:
    """`:name` as psycopg's `%(name)s` (a literal `%` doubled); `::type` casts left alone."""
    return _PARAM.sub(r"%(\1)s", query.replace("%", "%%"))


def _include(body: str, named: dict[str, str]) -> str:
    return _INCLUDE.sub(lambda found: named[found.group(1)], body)


def _read(name: str) -> str:
    return resources.files("escalator.store").joinpath(name).read_text("utf-8")
