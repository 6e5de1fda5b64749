"""Score labelled mail sets the way a new user would meet them: through `escalator check --json`.

Run: .venv/bin/python bench/blind_score.py DIR [DIR ...] [--at ISO] [--misses]
Each DIR holds .eml files and a labels.json (file, verdict, reason, slack_channel). For each set it
prints the issue's three figures: genuine incidents escalated, rejects rejected with the right
primary reason, channels exact; `--misses` lists every mail decided unlike its label.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ESCALATOR = Path(sys.executable).with_name("escalator")


def check(directory: Path, labels: list[dict[str, Any]], at: str) -> dict[str, dict[str, Any]]:
    """The CLI's contract for every labelled file of one set, by file name."""
    files = [str(directory / label["file"]) for label in labels]
    run = subprocess.run(
        [str(ESCALATOR), "check", "--json", "--at", at, *files],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    return {Path(line["file"]).name: line for line in lines}


def misses(labels: list[dict[str, Any]], got: dict[str, dict[str, Any]]) -> list[str]:
    """One line per mail decided unlike its label."""
    rows = []
    for label in labels:
        seen = got.get(label["file"], {"error": "no output"})
        primary = (seen.get("reasons") or [None])[0]
        wanted = (label["verdict"], label["reason"], label["slack_channel"])
        actual = (seen.get("verdict"), primary, seen.get("slack_channel"))
        if wanted != actual:
            note = seen.get("error") or f"confidence {seen.get('confidence')}"
            rows.append(f"  {label['file']}: want {wanted} got {actual} {note}")
    return rows


def figures(labels: list[dict[str, Any]], got: dict[str, dict[str, Any]]) -> str:
    """Escalated genuine incidents, right-reason rejects, exact channels, and low confidence."""
    genuine = [x for x in labels if x["verdict"] == "escalate"]
    rejects = [x for x in labels if x["verdict"] == "reject"]
    seen = [got.get(x["file"], {}) for x in labels]
    escalated = sum(got.get(x["file"], {}).get("verdict") == "escalate" for x in genuine)
    right = sum(
        (got.get(x["file"], {}).get("reasons") or [None])[0] == x["reason"] for x in rejects
    )
    pairs = zip(seen, labels, strict=True)
    channels = sum(s.get("slack_channel") == x["slack_channel"] for s, x in pairs)
    low = sum(s.get("confidence") == "low" for s in seen)
    return (
        f"genuine escalated {escalated}/{len(genuine)} ({pct(escalated, len(genuine))}); "
        f"rejects right reason {right}/{len(rejects)} ({pct(right, len(rejects))}); "
        f"channels exact {channels}/{len(labels)} ({pct(channels, len(labels))}); "
        f"low confidence {low}"
    )


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--at", default="2026-11-28T21:00:00Z")
    parser.add_argument("--misses", action="store_true")
    args = parser.parse_args()
    for directory in args.dirs:
        labels = json.loads((directory / "labels.json").read_text(encoding="utf-8"))
        got = check(directory, labels, args.at)
        print(f"{directory}: {len(labels)} mails: {figures(labels, got)}")
        if args.misses:
            print("\n".join(misses(labels, got)) or "  (no misses)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
