"""Reading the sender's own words clause by clause: is an impact stated as present?

A rule match says which words were found; the clause around them says what they mean. "Data was
lost" is an impact; "no data was lost", "if data were lost", "data lost on staging" and "the
outage is resolved" are not present impacts. Each match is placed in its clause (split at
sentence ends, line ends and the contrastive words of `clause_break`), and the clause is read
for the cues of rules.toml's [reading] table: a negation or a hypothetical in the few words
before the match (or a general "when production is down"), a recovery told after it in the
clause (or a past occasion told before it: "last time an upgrade caused a 40-minute outage"), a
planned window announced around it, a non-production environment named without production, or
the sender's own tooling (kubectl, a pipeline) named without users or a service.

Only matches are read: a part with no match costs no clause splitting, so the common mail pays
nothing for the reading. Pure; the cues are data an engineer can edit.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_WINDOW_CHARS = 48  # how far before a match a negation or a hypothetical still governs it
_CLAUSE_SHOWN = 160


class State(StrEnum):
    """What a clause says about the impact words found in it."""

    PRESENT = "present"
    NEGATED = "negated"
    HYPOTHETICAL = "hypothetical"
    RESOLVED = "resolved"
    NON_PRODUCTION = "non_production"
    TOOLING = "tooling"
    SCHEDULED = "scheduled"


@dataclass(frozen=True)
class Cues:
    """The [reading] table of rules.toml, compiled."""

    clause_break: re.Pattern[str]
    negation: re.Pattern[str]
    hypothetical: re.Pattern[str]
    recovered: re.Pattern[str]
    resolved: re.Pattern[str]
    non_production: re.Pattern[str]
    production: re.Pattern[str]
    tooling: re.Pattern[str]
    people: re.Pattern[str]
    unaffected: re.Pattern[str]
    conditional: re.Pattern[str]
    scheduled: re.Pattern[str]
    prelaunch: re.Pattern[str]
    users: re.Pattern[str]
    pending: re.Pattern[str]
    refusal: re.Pattern[str]
    past: re.Pattern[str]
    generic: re.Pattern[str]
    announced: re.Pattern[str]


_NEVER = r"(?!)"


def parse_cues(data: dict[str, Any]) -> Cues:
    """Compile the [reading] table. A cue missing from an older copy of the rules never matches,
    so every impact it would have doubted reads as present: the safe direction."""
    names = Cues.__dataclass_fields__
    return Cues(**{name: re.compile(str(data.get(name, _NEVER)), re.IGNORECASE) for name in names})


@dataclass(frozen=True)
class Clause:
    start: int
    end: int
    text: str

    @property
    def shown(self) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= _CLAUSE_SHOWN else text[: _CLAUSE_SHOWN - 1] + "\u2026"


def clauses(text: str, cues: Cues) -> list[Clause]:
    """The clauses of a text, in order, covering it without overlap."""
    found: list[Clause] = []
    start = 0
    for match in cues.clause_break.finditer(text):
        if match.start() > start:
            found.append(Clause(start, match.start(), text[start : match.start()]))
        start = match.end()
    if start < len(text):
        found.append(Clause(start, len(text), text[start:]))
    return found


def clause_at(found: list[Clause], position: int) -> Clause:
    """The clause holding a position (the nearest one before it when it falls on a break)."""
    index = bisect.bisect_right([clause.start for clause in found], position) - 1
    return found[max(index, 0)] if found else Clause(0, 0, "")


def state_of(clause: Clause, start: int, lasting: bool, cues: Cues) -> State:
    """What the clause says about a match beginning at `start` (an offset in the whole text).

    Lasting impacts (data lost, credentials exposed) stay present after the cause is fixed and
    whatever tool they were found with, until the clause says the data was restored or the
    secret rotated; an outage is over once the clause says it recovered.
    """
    before = clause.text[max(0, start - clause.start - _WINDOW_CHARS) : start - clause.start]
    if cues.negation.search(before):
        return State.NEGATED
    if cues.hypothetical.search(before):
        return State.HYPOTHETICAL
    if cues.conditional.search(clause.text[: start - clause.start]) or _generic(
        clause, start, cues
    ):
        return State.HYPOTHETICAL
    if cues.non_production.search(clause.text) and not cues.production.search(clause.text):
        return State.NON_PRODUCTION
    # A recovery is told after the impact ("lost, all restored now"); one told before it
    # ("restored at 19:00 and since then the site is down") is the start of a new problem.
    after = clause.text[start - clause.start :]
    if lasting:
        return State.RESOLVED if cues.recovered.search(after) else State.PRESENT
    head = clause.text[: start - clause.start]
    if cues.resolved.search(after) or cues.past.search(head):
        return State.RESOLVED
    if _scheduled(after, cues) or _announced(head, cues):
        return State.SCHEDULED
    if cues.tooling.search(clause.text) and not cues.people.search(clause.text):
        return State.TOOLING
    return State.PRESENT


def refused_access(clause: str, cues: Cues) -> bool:
    """The clause is the sender's own access being refused ("Forbidden error, cannot access the
    prod namespace"), naming no users of a service as refused."""
    if not cues.refusal.search(clause):
        return False
    return not cues.users.search(cues.refusal.sub(" ", clause))


def awaited(text: str, start: int, end: int, cues: Cues) -> bool:
    """A resolution the sentence waits for ("stopped until it's fixed", "once it is restored"),
    not one it tells ("down until it was restored at 10:00")."""
    return bool(cues.pending.search(text[max(0, start - _WINDOW_CHARS) : end]))


_SCHEDULE_REACH = 80  # characters after an outage word where its planned window may stand


def _scheduled(after: str, cues: Cues) -> bool:
    """The outage's own window follows it ("offline Saturday 20:00-22:00"), with no "since"
    between them ("down since 20:10, after the 18:00-19:00 window" is happening now)."""
    window = cues.scheduled.search(after[:_SCHEDULE_REACH])
    if window is None:
        return False
    return not re.search(r"\bsince\b", after[: window.start()], re.IGNORECASE)


def _announced(head: str, cues: Cues) -> bool:
    """The clause announces the outage's window before it ("Planned downtime - Sat 12 Dec
    06:00-09:00 - service unavailable"): planned work named and its window given, with no
    "since", "after" or "during" telling of an outage that came of it. The window stands right
    before the outage, no comma between ("… 19:00-21:00, sign-in just spins" is a new problem)."""
    if not cues.announced.search(head):
        return False
    windows = list(cues.scheduled.finditer(head))
    gap = head[windows[-1].end() :] if windows else ","
    return len(gap) <= _ANNOUNCED_GAP and "," not in gap


_ANNOUNCED_GAP = 30  # characters between a planned window and the outage it announces


def _generic(clause: Clause, start: int, cues: Cues) -> bool:
    """The match stands in a general "when production is down" (any time it is), not a told one."""
    offset = start - clause.start
    return any(m.start() <= offset < m.end() for m in cues.generic.finditer(clause.text))
