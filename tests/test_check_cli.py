"""`escalator check` and `escalator cover` as a user runs them: a real subprocess each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SAMPLE = SHARED / "samples" / "005-ccq-results-500.eml"
REAL_FILES = sorted(
    str(p)
    for p in (SHARED / "real").rglob("*")
    if p.is_file() and not p.name.startswith(("LICENSE", "NOTICE", "README", "MANIFEST", "."))
)
CONTRACT_KEYS = {"verdict", "reasons", "slack_channel", "window", "page", "page_at", "alarm"}


def escalator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "escalator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_check_json_is_the_contract() -> None:
    """One mail, --json --at: exactly one JSON object with the contract's keys and values."""
    out = escalator("check", "--json", "--at", "2026-11-28T21:00:00Z", str(SAMPLE))
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert set(record) >= CONTRACT_KEYS and "file" not in record
    assert record["verdict"] == "escalate" and record["reasons"] == []
    assert (record["window"], record["page"], record["alarm"]) == ("on_call", "now", False)
    assert record["slack_channel"] == "ccq-incident" and record["page_at"] is None


def test_check_no_cover_gives_page_at_with_offset() -> None:
    out = escalator("check", "--json", "--at", "2026-11-28T23:30:00+00:00", str(SAMPLE))
    record = json.loads(out.stdout)
    assert (record["window"], record["page"], record["alarm"]) == ("no_cover", "deferred", True)
    assert record["page_at"] == "2026-11-29T07:00:00+00:00"


def test_several_files_are_json_lines_in_order_with_errors(tmp_path: Path) -> None:
    """JSON Lines in the order given, 'file' on each; unreadable or non-mail files get an
    'error' line, the others still decided, and the exit status is 1."""
    not_mail = tmp_path / "notes.txt"
    not_mail.write_text("just some words\nno headers at all\n")
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.eml"
    files = [str(SAMPLE), str(not_mail), str(empty), str(missing), str(SAMPLE)]
    out = escalator("check", "--json", "--at", "2026-11-25T12:00:00Z", *files)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 1
    assert [line["file"] for line in lines] == files
    assert [("error" in line) for line in lines] == [False, True, True, True, False]
    assert all(line["error"] for line in lines if "error" in line)
    assert lines[0]["window"] == "support" and lines[0]["alarm"] is True
    assert "Traceback" not in out.stderr


def test_human_form_explains_the_decision() -> None:
    """Without --json: verdict, the rules that fired on which words, channel, window, next step."""
    out = escalator(
        "check",
        "--at",
        "2026-11-25T12:00:00Z",
        str(SHARED / "samples" / "010-fee-calculator-pr-chase.eml"),
    )
    assert out.returncode == 0
    assert "REJECT: it does not describe a live service" in out.stdout
    assert "window at 12:00 GMT, Wed 25 Nov 2026: support hours (10:00-17:00)" in out.stdout
    assert "not_service_impacting" not in out.stdout and "on_call" not in out.stdout
    assert "rule pr_chaser matched" in out.stdout and "window at" in out.stdout
    assert "held for support review" in out.stdout


@pytest.mark.parametrize("bad", ["2026-11-28T21:00:00", "yesterday", "2026-13-01T00:00:00Z"])
def test_at_must_be_iso_with_offset(bad: str) -> None:
    """--at without an offset, or not a date, is a usage error with a clear message."""
    out = escalator("check", "--at", bad, str(SAMPLE))
    assert out.returncode == 2
    assert "--at" in out.stderr and "Traceback" not in out.stderr


def test_every_real_mail_gets_a_decision_or_an_error_line() -> None:
    """All of shared/corpus/real through one `check --json`: a line each, never a traceback."""
    out = escalator("check", "--json", "--at", "2026-11-28T21:00:00Z", *REAL_FILES)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == len(REAL_FILES) > 200
    assert "Traceback" not in out.stderr
    for line in lines:
        assert ("error" in line) or set(line) >= CONTRACT_KEYS, line
    decided = [line for line in lines if "error" not in line]
    assert len(decided) >= len(lines) - 5


def test_bad_rules_file_is_a_configuration_error(tmp_path: Path) -> None:
    """An operator's broken rules file stops the command with exit 2 and the file's name."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "x"\nkind = "symptom"\npatterns = ["(unclosed"]\n')
    out = escalator("check", str(SAMPLE), env={"ESCALATOR_RULES_FILE": str(rules)})
    assert out.returncode == 2
    assert "rules.toml" in out.stderr and "Traceback" not in out.stderr


def test_cover_prints_a_bank_holiday_week() -> None:
    """`escalator cover` shows Boxing Day's substitute Monday as on call all day."""
    out = escalator("cover", "--from", "2026-12-24", "--days", "6")
    rows = out.stdout.splitlines()
    assert out.returncode == 0 and len(rows) == 6
    assert rows[0].startswith("2026-12-24 Thu  [working day]") and "10:00-17:00 support" in rows[0]
    assert rows[4].startswith("2026-12-28 Mon  [Boxing Day (observed)]")
    assert "07:00-22:00 on-call" in rows[4] and "support" not in rows[4]
    assert rows[0].endswith("(GMT)") and "no_cover" not in out.stdout
