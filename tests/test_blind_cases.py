"""The blind set in tests/mails/blind (written without reading the rules) is decided as labelled.

Each mail was labelled from the labelling guide (shared/corpus/samples/README.md) alone; the
decision is the whole triage (parse, rules, channel) run as `escalator check` runs it. Mails
001-040 were written before the rules were read; 041-114 after the first run (their notes say so).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from escalator.core.decide import decide
from escalator.core.policy import Policy
from escalator.policy import load_policy
from escalator.settings import Settings

BLIND = Path(__file__).resolve().parent / "mails" / "blind"
LABELS = json.loads((BLIND / "labels.json").read_text(encoding="utf-8"))
AT = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(Settings())


@pytest.mark.parametrize("label", LABELS, ids=[label["file"] for label in LABELS])
def test_blind_mail_is_decided_as_labelled(label: dict[str, object], policy: Policy) -> None:
    """Verdict, primary reason and Slack channel match the label of every blind mail."""
    contract = decide((BLIND / str(label["file"])).read_bytes(), AT, policy).to_contract()
    assert contract["verdict"] == label["verdict"], contract["evidence"]
    primary = contract["reasons"][0] if contract["reasons"] else None
    assert primary == label["reason"], contract["evidence"]
    assert contract["slack_channel"] == label["slack_channel"], contract["evidence"]


def test_blind_labels_cover_every_mail_and_reason() -> None:
    """Every blind .eml is labelled, and the labels span escalate and each reject reason."""
    assert sorted(label["file"] for label in LABELS) == sorted(p.name for p in BLIND.glob("*.eml"))
    reasons = Counter(label["reason"] for label in LABELS)
    assert set(reasons) == {
        None,
        "not_service_impacting",
        "missing_slack_channel",
        "missing_incident_facts",
        "automated_message",
    }
