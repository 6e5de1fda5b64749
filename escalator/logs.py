"""Logging set-up: JSON lines in production, readable lines at a terminal.

What may be logged is decided where the log call is written (ids, Message-IDs, verdicts, action
states), never a mail body or a secret. As a second line of defence the JSON formatter drops any
`extra` field whose name suggests content or credentials.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_FORBIDDEN_FIELDS = ("body", "raw", "text", "token", "key", "password", "secret", "payload")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not any(bad in name for bad in _FORBIDDEN_FIELDS):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(log_format: str = "auto", level: int = logging.INFO) -> None:
    """Route every logger to stdout in the chosen format (auto: JSON unless a terminal)."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs each SMTP command with addresses at INFO; warnings are enough here.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
