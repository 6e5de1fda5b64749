"""The triage rules as data: parsed from TOML text into compiled, frozen values.

The default rules ship as escalator/core/rules.toml; the shell reads the file (default or the
operator's override) and hands the text here, so this module does no I/O.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from escalator.core.model import Reason
from escalator.core.prefilter import GateIndex, Needles, needles, starts
from escalator.core.reading import Cues, parse_cues
from escalator.errors import ConfigError

RULE_KINDS = frozenset(
    {
        "outage",
        "symptom",
        "live",
        "no_impact",
        "non_production",
        "exclusion",
        "resolved",
        "ongoing",
        "lasting_impact",
        "present_impact",
        "priority_label",
        "exposure",
        "work_stopped",
    }
)


@dataclass(frozen=True)
class Rule:
    """A named list of patterns of one kind; the kind says how triage uses a match."""

    name: str
    kind: str
    reason: Reason | None
    patterns: tuple[re.Pattern[str], ...]
    # Per pattern, words it cannot match without and the letters its matches begin with (see
    # prefilter.py): derived from the patterns, never configured.
    needles: tuple[Needles, ...] = field(init=False, repr=False, compare=False)
    starts: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    index: GateIndex = field(init=False, repr=False, compare=False)  # which patterns to try

    def __post_init__(self) -> None:
        object.__setattr__(self, "needles", tuple(needles(pattern) for pattern in self.patterns))
        object.__setattr__(self, "starts", tuple(starts(pattern) for pattern in self.patterns))
        object.__setattr__(self, "index", GateIndex.of(self.needles))


@dataclass(frozen=True)
class AutomatedRules:
    precedence: frozenset[str]
    flag_headers: tuple[str, ...]
    list_headers: tuple[str, ...]
    content_types: frozenset[str]
    senders: tuple[re.Pattern[str], ...]
    subjects: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Rules:
    automated: AutomatedRules
    rules: tuple[Rule, ...]
    min_words: int
    cues: Cues
    # [facts]: words that name nothing ("again", "same"), and the vocabulary of a problem.
    vague_words: frozenset[str] = frozenset()
    problem: re.Pattern[str] = re.compile(r"(?s).")
    # A problem named only as such, and the words that say since when (see [facts]).
    generic: re.Pattern[str] = re.compile(r"(?!)")
    since: re.Pattern[str] = re.compile(r"(?!)")
    # The sender says the details are not in the mail ("I'd rather not put the detail in an email").
    withheld: re.Pattern[str] = re.compile(r"(?!)")

    def of_kind(self, kind: str) -> tuple[Rule, ...]:
        return self._by_kind.get(kind, ())

    @cached_property
    def _by_kind(self) -> dict[str, tuple[Rule, ...]]:
        kinds = dict.fromkeys(rule.kind for rule in self.rules)
        return {kind: tuple(rule for rule in self.rules if rule.kind == kind) for kind in kinds}


def parse_rules(text: str, source: str = "rules") -> Rules:
    """Compile a rules file; any mistake becomes a ConfigError naming the file and the rule."""
    try:
        data = tomllib.loads(text)
        return Rules(
            automated=_automated(data.get("automated", {})),
            rules=tuple(_rule(item) for item in data.get("rule", [])),
            min_words=int(data.get("facts", {}).get("min_words", 12)),
            cues=parse_cues(data.get("reading", {})),
            **_facts(data.get("facts", {})),
        )
    except (tomllib.TOMLDecodeError, re.error, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {type(exc).__name__}: {exc}") from None


def _facts(data: dict[str, Any]) -> dict[str, Any]:
    """The optional lists of [facts]; an older copy without them keeps the old behaviour."""
    found: dict[str, Any] = {}
    if "vague_words" in data:
        found["vague_words"] = frozenset(str(data["vague_words"]).lower().split())
    for name in ("problem", "generic", "since", "withheld"):
        if name in data:
            found[name] = re.compile(str(data[name]), re.IGNORECASE)
    return found


def _automated(data: dict[str, Any]) -> AutomatedRules:
    return AutomatedRules(
        precedence=frozenset(value.lower() for value in data.get("precedence", [])),
        flag_headers=tuple(value.lower() for value in data.get("flag_headers", [])),
        list_headers=tuple(value.lower() for value in data.get("list_headers", [])),
        content_types=frozenset(value.lower() for value in data.get("content_types", [])),
        senders=_compile(data.get("senders", [])),
        subjects=_compile(data.get("subjects", [])),
    )


def _rule(item: dict[str, Any]) -> Rule:
    name, kind = str(item["name"]), str(item["kind"])
    if kind not in RULE_KINDS:
        raise ValueError(f"rule {name!r} has kind {kind!r}; known kinds: {sorted(RULE_KINDS)}")
    reason = item.get("reason")
    try:
        patterns = _compile(item["patterns"])
    except re.error as exc:
        raise ValueError(f"rule {name!r}: bad pattern: {exc}") from None
    return Rule(name, kind, Reason(reason) if reason else None, patterns)


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern, re.IGNORECASE | re.MULTILINE) for pattern in patterns)
