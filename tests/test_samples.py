"""The labelled escalation samples in shared/corpus/samples are decided as labelled."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from escalator.core.decide import decide
from escalator.core.model import Verdict
from escalator.core.policy import Policy
from escalator.policy import load_policy
from escalator.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "samples"
LABELS = json.loads((SAMPLES / "labels.json").read_text(encoding="utf-8"))
AT = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(Settings())


@pytest.mark.parametrize("label", LABELS, ids=[label["file"] for label in LABELS])
def test_sample_is_decided_as_labelled(label: dict[str, object], policy: Policy) -> None:
    """Verdict, primary reason and channel match the label of every sample mail."""
    decision = decide((SAMPLES / str(label["file"])).read_bytes(), AT, policy)
    contract = decision.to_contract()
    assert contract["verdict"] == label["verdict"], contract["evidence"]
    primary = contract["reasons"][0] if contract["reasons"] else None
    assert primary == label["reason"], contract["evidence"]
    assert contract["slack_channel"] == label["slack_channel"]


def test_samples_cover_both_verdicts(policy: Policy) -> None:
    """The labelled set exercises escalations and every reject reason it names."""
    verdicts = {
        decide((SAMPLES / label["file"]).read_bytes(), AT, policy).verdict for label in LABELS
    }
    assert verdicts == {Verdict.ESCALATE, Verdict.REJECT}
    assert len(LABELS) == len(list(SAMPLES.glob("*.eml")))
