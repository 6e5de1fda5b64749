"""Compare two outbox_snapshot.py runs mail by mail, whatever ids a change shifted.

Run: .venv/bin/python bench/outbox_diff.py BEFORE.jsonl AFTER.jsonl [--show]
Lines are matched by (instant, mail name, line kind, n-th of that kind for that mail), and action
ids inside the payloads (the reply Message-ID) are blanked, so one mail decided differently does
not make every later line differ. Prints the mails that differ and, with --show, each field.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from typing import Any

_ACTION_ID = re.compile(r"reply-\d+\.\d+@")


def load(path: str) -> dict[tuple[str, str, str, int], Any]:
    rows: dict[tuple[str, str, str, int], Any] = {}
    seen: Counter[tuple[str, str, str]] = Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(_ACTION_ID.sub("reply-N.M@", line))
            base = (row["instant"], row["name"], row.get("kind", "mail"))
            seen[base] += 1
            row.pop("action", None)
            row.pop("mail", None)
            rows[(*base, seen[base])] = row
    return rows


def main() -> None:
    before, after = load(sys.argv[1]), load(sys.argv[2])
    changed: Counter[str] = Counter()
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key) or {}, after.get(key) or {}
        if old != new:
            changed[key[1]] += 1
            if "--show" in sys.argv:
                fields = sorted(f for f in set(old) | set(new) if old.get(f) != new.get(f))
                print(key, fields)
    print(f"{len(before)} lines before, {len(after)} after; mails that differ:")
    for name, count in sorted(changed.items()):
        print(f"  {name}: {count} lines")


if __name__ == "__main__":
    main()
