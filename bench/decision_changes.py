"""Every decision that changed between two decision_snapshot.py runs, as a Markdown table.

Run: .venv/bin/python bench/decision_changes.py BEFORE.jsonl AFTER.jsonl > CHANGES.md
A change is a different verdict, reason list or channel; evidence-only changes are counted, not
listed; decisions kept with another confidence are listed in a second table. Each change gets a
one-line why, derived from the evidence and the doubts of the new decision (which rule
overruled which exclusion, or why an exclusion is no longer overruled):
read it as a reviewer's first guess, and check the rows that turned an escalation into a reject.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

Row = dict[str, Any]
NSI = "not_service_impacting"


def load(path: str) -> dict[str, Row]:
    with open(path, encoding="utf-8") as lines:
        return {row["name"]: row for row in map(json.loads, lines)}


def key(row: Row) -> tuple[str, list[str], str | None]:
    return row["verdict"], row["reasons"], row["slack_channel"]


def shown(row: Row) -> str:
    reasons = f" {', '.join(row['reasons'])}" if row["reasons"] else ""
    return f"{row['verdict']}{reasons} #{row['slack_channel']}"


def excluded_by(row: Row) -> str:
    return ", ".join(sorted({e["rule"] for e in row["evidence"] if e["reason"] == NSI})) or "-"


def impact(row: Row) -> Row | None:
    """The first impact the reading model found stated as present (it names its clause)."""
    return next((e for e in row["evidence"] if e.get("clause") and e["reason"] is None), None)


def why(before: Row, after: Row) -> tuple[str, str]:
    """(category, one line) for one changed decision."""
    if after["slack_channel"] != before["slack_channel"]:
        return "channel", f"channel {before['slack_channel']} -> {after['slack_channel']}"
    gained = NSI in after["reasons"] and NSI not in before["reasons"]
    lost = NSI in before["reasons"] and NSI not in after["reasons"]
    if lost:
        found = impact(after)
        said = f"{found['rule']}: '{found['matched']}'" if found else "an impact"
        rest = "; other reasons stand" if after["reasons"] else ""
        return (
            f"{NSI} dropped: {found['rule'] if found else '?'}",
            f"present impact in the sender's words ({said}) overrules {excluded_by(before)}{rest}",
        )
    if gained:
        return _no_longer_overruled(before, after)
    return "other", f"reasons {before['reasons']} -> {after['reasons']}"


def _no_longer_overruled(before: Row, after: Row) -> tuple[str, str]:
    signs = [e for e in before["evidence"] if e["rule"] in ("outage", "symptom")]
    outages = [e for e in signs if e["rule"] == "outage"]
    rule = excluded_by(after)
    doubts = [d for d in after.get("doubts", []) if "(" in d["rule"]]
    if signs and all(e["where"] == "quoted" for e in outages or signs):
        return (
            f"{NSI} stands: signs only in quoted history",
            f"{rule} no longer overruled: the outage signs were only in the quoted history "
            "(it may support, never decide)",
        )
    if doubts:
        return (
            f"{NSI} stands: impact negated or hypothetical",
            f"{rule} no longer overruled: '{doubts[0]['matched']}' reads as {doubts[0]['rule']}",
        )
    new_rules = {"future_risk", "priority_label"}
    if set(rule.split(", ")) & new_rules:
        return (
            f"{NSI} stands: new exclusion",
            f"{rule} (new: a risk to come / a priority label) and no present impact stated",
        )
    return (
        f"{NSI} stands: no present impact in own clauses",
        f"{rule} no longer overruled: the sender's own clauses state no present impact (the "
        "signs were quoted, in another environment's or the sender's tooling's clause, or one "
        "problem word)",
    )


def confidence_row(name: str, old: Row, new: Row) -> str:
    """A decision kept, its confidence changed: what is doubted now (or was)."""
    doubts = new.get("doubts") or old.get("doubts") or []
    said = "; ".join(f"{d['rule']}: '{d['matched']}'" for d in doubts[:2])
    moved = f"{old.get('confidence')} -> {new.get('confidence')}"
    return f"| `{name}` | {shown(new)} | {moved} | {said} |"


def main() -> None:
    before, after = load(sys.argv[1]), load(sys.argv[2])
    rows, categories, evidence_only, confidence = [], Counter[str](), 0, []
    for name, new in after.items():
        old = before.get(name)
        if old is None:
            continue
        if key(old) == key(new):
            evidence_only += old["evidence"] != new["evidence"]
            if old.get("confidence") != new.get("confidence"):
                confidence.append(confidence_row(name, old, new))
            continue
        category, line = why(old, new)
        categories[f"{old['verdict']} -> {new['verdict']}: {category}"] += 1
        rows.append(
            f"| `{name}` | {shown(old)} | {shown(new)} | {new.get('confidence')} | {line} |"
        )
    print(f"{len(rows)} decisions changed; {evidence_only} more changed only in their evidence.\n")
    for category, count in sorted(categories.items(), key=lambda item: -item[1]):
        print(f"- {count} {category}")
    print("\n| mail | before | after | confidence | why |\n|---|---|---|---|---|")
    print("\n".join(row.replace("\n", " ") for row in rows))
    print(f"\n{len(confidence)} decisions kept with another confidence.\n")
    print("| mail | decision | confidence | doubts now (or before) |\n|---|---|---|---|")
    print("\n".join(row.replace("\n", " ") for row in confidence))


if __name__ == "__main__":
    main()
