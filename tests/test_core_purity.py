"""The core does no I/O: its modules import nothing that talks to the outside world."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "escalator" / "core"
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "sqlite3",
    "subprocess",
    "os",
    "shutil",
    "pathlib",
    "io",
    "urllib",
    "http",
    "requests",
    "httpx",
    "aiohttp",
    "aiosmtpd",
    "aiosmtplib",
    "smtplib",
    "psycopg",
    "slack_sdk",
    "pagerduty",
    "prometheus_client",
    "time",
    "threading",
    "logging.handlers",
    "escalator.store",
    "escalator.settings",
    "escalator.ingress",
    "escalator.decider",
    "escalator.outbox",
    "escalator.review",
    "escalator.cli",
    "escalator.app",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_modules_import_no_io_modules() -> None:
    """No module under escalator/core imports an I/O module or a shell module of ours."""
    offenders = {}
    for path in sorted(CORE.glob("*.py")):
        bad = {
            name
            for name in _imports(path)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
        }
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_importing_the_core_loads_no_network_or_store_library() -> None:
    """Importing every core module in a fresh interpreter pulls in no async, DB or HTTP library.

    (mail-parser itself imports subprocess for Outlook .msg files; the core never calls it.)
    """
    modules = [f"escalator.core.{path.stem}" for path in CORE.glob("*.py")]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + "bad = [m for m in ('asyncio', 'sqlite3', 'aiohttp', 'aiosmtpd', 'psycopg', "
        "'slack_sdk', 'pagerduty', 'http.client') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
