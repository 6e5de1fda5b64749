"""Blind sets 2 (tests/mails/blind2/{a,...,i}, issue 15): written and labelled by people who
never read the rules, tuned on afterwards (see the READMEs there). Set d was the hold-out of the
tuning on a, b and c, set e (three writers, e1-e3) the next batch, set f (f1, f2) the one after,
set g (g1, g2) the one after that, set h (h1, h2) and set i (i1, i2) after them; all have been
tuned on since, so none of these sets is blind any more. Set j (j1, j2), the latest, is kept with
its blind first-run figures (its README) and only its labels checked here until it is tuned on.

Every genuine incident must escalate (one test per mail: a wrong reject can leave an outage
unpaged). Rejects and channels are held per set to the issue's thresholds, as aggregates: at least
95 % of rejects rejected with the labelled primary reason, at least 97 % of channels exact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from escalator.core.decide import decide
from escalator.core.policy import Policy
from escalator.policy import load_policy
from escalator.settings import Settings

BLIND2 = Path(__file__).resolve().parent / "mails" / "blind2"
SETS = (
    *("a", "b", "c", "d", "e/e1", "e/e2", "e/e3", "f/f1", "f/f2", "g/g1", "g/g2"),
    *("h/h1", "h/h2", "i/i1", "i/i2"),
)
AT = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)  # bench/blind_score.py's default instant
RIGHT_REASON_MIN = 0.95
CHANNEL_EXACT_MIN = 0.97
# Not at the reason and channel thresholds yet (j: two channels; k: three sender_not_allowed
# labels that only a sender allowlist with a border MTA can meet, a planned outage in an HTML
# part, an archive link's ID beside its name): every genuine incident in them must escalate.
BLIND_NOW = ("j/j1", "j/j2", "k/k1", "k/k2")


def labels(name: str) -> list[dict[str, Any]]:
    return list(json.loads((BLIND2 / name / "labels.json").read_text(encoding="utf-8")))


GENUINE = [
    (name, label)
    for name in SETS + BLIND_NOW
    for label in labels(name)
    if label["verdict"] == "escalate"
]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(Settings())


def contract(name: str, label: dict[str, Any], policy: Policy) -> dict[str, Any]:
    raw = (BLIND2 / name / str(label["file"])).read_bytes()
    return dict(decide(raw, AT, policy).to_contract())


@pytest.mark.parametrize(
    ("name", "label"), GENUINE, ids=[f"{name}/{label['file']}" for name, label in GENUINE]
)
def test_genuine_incident_escalates(name: str, label: dict[str, Any], policy: Policy) -> None:
    """A genuine incident is escalated, whatever else the mail says."""
    decided = contract(name, label, policy)
    assert decided["verdict"] == "escalate", decided["evidence"]


@pytest.mark.parametrize("name", SETS)
def test_rejects_have_the_right_primary_reason(name: str, policy: Policy) -> None:
    """At least 95 % of the set's rejects are rejected with the labelled primary reason."""
    rejects = [label for label in labels(name) if label["verdict"] == "reject"]
    wrong = []
    for label in rejects:
        decided = contract(name, label, policy)
        primary = decided["reasons"][0] if decided["reasons"] else None
        if (decided["verdict"], primary) != ("reject", label["reason"]):
            wrong.append((label["file"], decided["verdict"], primary, label["reason"]))
    assert rejects
    assert (len(rejects) - len(wrong)) / len(rejects) >= RIGHT_REASON_MIN, wrong


@pytest.mark.parametrize("name", SETS)
def test_channels_are_exact(name: str, policy: Policy) -> None:
    """At least 97 % of the set's mails get exactly the labelled channel (or none)."""
    every = labels(name)
    wrong = []
    for label in every:
        got = contract(name, label, policy)["slack_channel"]
        if got != label["slack_channel"]:
            wrong.append((label["file"], got, label["slack_channel"]))
    assert (len(every) - len(wrong)) / len(every) >= CHANNEL_EXACT_MIN, wrong


@pytest.mark.parametrize("name", SETS + BLIND_NOW)
def test_labels_cover_every_mail(name: str) -> None:
    """Every kept .eml is labelled once; the argued ones are not in the set."""
    files = sorted(label["file"] for label in labels(name))
    assert files == sorted(path.name for path in (BLIND2 / name).glob("*.eml"))
    path = BLIND2 / name / "argued.json"  # sets g-i have none; j2 has one
    argued = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    assert not {str(item.get("file")) for item in argued} & set(files)
