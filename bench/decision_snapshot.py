"""Every decision of a fixed corpus, one JSON line each: diff two runs to prove a change neutral.

Run: .venv/bin/python bench/decision_snapshot.py OUT.jsonl   (then `cmp BEFORE.jsonl OUT.jsonl`)
The corpus: shared/corpus/samples (also with a null sender and an allowlist), the labelled cases
of tests/test_triage_cases.py with their own lists, every file under shared/corpus/real, the
bench mails, the labelled blind sets (tests/mails/blind, tests/mails/blind2/*), and 1,500 mails
mixed from the cases' lines with a fixed seed (many combinations of rules, quotes, forwards and
signatures). Each line holds the contract (verdict, reasons, channel,
evidence) and a digest of the parsed mail, so a parse change shows too.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from escalator.core.decide import decide
from escalator.core.mail import parse_mail
from escalator.core.policy import Policy
from escalator.core.triage import TriagePolicy
from escalator.policy import load_policy
from escalator.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]
# The labelled cases and the bench mails live in a test module and a script, not in a package.
cases: Any = importlib.import_module("test_triage_cases")
bench_decide: Any = importlib.import_module("bench_decide")

CORPUS = ROOT.parent / "shared" / "corpus"
MAILS = ROOT / "tests" / "mails"
AT = datetime(2026, 11, 28, 21, tzinfo=UTC)
Item = tuple[str, bytes, Policy, str | None]


def corpus(base: Policy) -> Iterator[Item]:
    def policy(allowed: tuple[str, ...] = (), trusted: tuple[str, ...] = ()) -> Policy:
        return Policy(TriagePolicy(base.triage.rules, allowed, trusted), base.calendar)

    for path in sorted((CORPUS / "samples").glob("*.eml")):
        yield f"sample:{path.name}", path.read_bytes(), base, None
        strict = policy(("justice.gov.uk",), ("x.lists",))
        yield f"sample-null:{path.name}", path.read_bytes(), strict, "<>"
    for case in cases.CASES:
        yield (
            f"case:{case.name}",
            case.raw,
            policy(case.allowed_senders, case.trusted_list_ids),
            None,
        )
    for path in sorted((CORPUS / "real").rglob("*")):
        if path.is_file():
            yield f"real:{path.relative_to(CORPUS)}", path.read_bytes(), base, None
    for size in (2_000, 50_000, 500_000):
        yield f"bench-text:{size}", bench_decide.text_mail(size), base, None
        yield f"bench-att:{size}", bench_decide.attachment_mail(size), base, None
    for path in sorted(MAILS.glob("blind*/**/*.eml")):
        yield f"blind:{path.relative_to(MAILS)}", path.read_bytes(), base, None
    for index, raw in enumerate(mixed(1_500)):
        yield f"mix:{index}", raw, base, None


def mixed(count: int) -> Iterator[bytes]:
    """Mails made of random lines of the labelled cases: quotes, forwards, wraps, signatures."""
    rng = random.Random(7)
    lines: list[str] = []
    subjects: list[str] = []
    for case in cases.CASES:
        mail = parse_mail(case.raw)
        subjects.append(mail.subject)
        for part in (mail.body.new, mail.body.quoted, mail.body.forwarded):
            lines += [line for line in part.split("\n") if line.strip()]
    for _ in range(count):
        body = "\n".join(rng.sample(lines, rng.randint(1, 9)))
        if rng.random() < 0.3:
            quoted = "\n".join("> " + line for line in rng.sample(lines, 4))
            body += f"\n\nOn Sat, 28 Nov 2026 Jo <jo@x.org> wrote:\n{quoted}"
        if rng.random() < 0.2:
            head = "\n".join(rng.sample(lines, 2))
            body = f"{head}\n\n---------- Forwarded message ---------\nFrom: x\n{body}"
        if rng.random() < 0.3:
            body += "\n\nThanks\nJo Bloggs\n07700 900 072"
        subject = rng.choice(subjects) if rng.random() < 0.8 else rng.choice(lines)[:80]
        subject = "Fwd: " + subject if rng.random() < 0.1 else subject
        if rng.random() < 0.2:
            body = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
        yield cases.eml(subject, body)


def main() -> None:
    base = load_policy(Settings())
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for name, raw, policy, envelope_from in corpus(base):
            contract = decide(raw, AT, policy, envelope_from).to_contract()
            parsed = hashlib.sha256(repr(parse_mail(raw)).encode()).hexdigest()[:16]
            row = {"name": name, "parsed": parsed, **contract}
            out.write(json.dumps(row, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
