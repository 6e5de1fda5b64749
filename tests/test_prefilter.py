"""Literal prefilters only skip searches that would find nothing: decisions cannot change."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.core import channels, text
from escalator.core.prefilter import Haystack, Prefiltered, fold, may_match, needles, starts
from escalator.core.rules import parse_rules
from escalator.policy import default_rules_text

RULES = parse_rules(default_rules_text(), "built-in rules.toml")
PATTERNS = [pattern for rule in RULES.rules for pattern in rule.patterns] + [
    value.pattern
    for module in (text, channels)
    for value in vars(module).values()
    if isinstance(value, Prefiltered)
]
# Words the patterns are made of, so that generated texts often match; and the characters that
# re.IGNORECASE matches to ASCII letters (dotted and dotless i, long s, Kelvin sign).
WORDS = sorted(
    {word for pattern in PATTERNS for word in re.findall(r"[a-z]+", pattern.pattern)}
    | {"\u0130", "\u0131", "\u017f", "\u212a", "#", "--", "\n", "> ", "__________"}
)
TEXTS = st.lists(
    st.one_of(st.sampled_from(WORDS), st.sampled_from([" ", " ", "'", "-", ". ", ": "])),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.sampled_from(["lower", "upper", "title"]))
def test_a_text_a_pattern_matches_passes_its_prefilter(words: str, case: str) -> None:
    """Whatever the text and its case, a pattern that matches it is never skipped."""
    sample = getattr(words, case)()
    haystack = Haystack.of(sample)
    for pattern in PATTERNS:
        if pattern.search(sample):
            assert may_match(needles(pattern), fold(sample)), pattern.pattern
            assert haystack.may_match(needles(pattern)), pattern.pattern


@settings(max_examples=200, deadline=None)
@given(TEXTS, st.sampled_from(["lower", "upper", "title"]))
def test_a_haystack_finds_what_finditer_finds(words: str, case: str) -> None:
    """Rules searched through a Haystack (needles, start letters) give finditer's matches."""
    sample = getattr(words, case)()
    haystack = Haystack.of(sample)
    for rule in RULES.rules:
        for pattern, wanted, begins in zip(rule.patterns, rule.needles, rule.starts, strict=True):
            expected = [match.span() for match in pattern.finditer(sample)]
            assert [m.span() for m in haystack.finditer(pattern, wanted, begins)] == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=3), st.sampled_from(["lower", "upper", "title"]))
def test_a_rules_gate_index_keeps_every_pattern_that_matches(texts: list[str], case: str) -> None:
    """A rule tries only the patterns its GateIndex names for the texts: every pattern that
    matches one of them is among those, in the rule's order."""
    samples = [getattr(words, case)() for words in texts]
    haystacks = [Haystack.of(sample) for sample in samples]
    for rule in RULES.rules:
        tried = rule.index.candidates(haystacks)
        assert tried == sorted(set(tried))
        for n, pattern in enumerate(rule.patterns):
            if any(pattern.search(sample) for sample in samples):
                assert n in tried, pattern.pattern


def test_a_gate_index_skips_patterns_whose_words_are_absent() -> None:
    """Not a no-op: a text naming none of a rule's words tries only its ungated patterns."""
    rule = next(rule for rule in RULES.rules if rule.kind == "outage")
    tried = rule.index.candidates([Haystack.of("Hello, the weather is nice today.")])
    assert len(tried) < len(rule.patterns) // 2
    assert set(tried) >= rule.index.always


def test_needles_are_the_words_a_match_needs() -> None:
    """An alternation gives every alternative; a repeat of one character gives its copies."""
    assert set(needles(re.compile(r"\b(is|are) (down|offline)\b", re.I))[0].needles) == {
        "is down",
        "is offline",
        "are down",
        "are offline",
    }
    groups = needles(re.compile(r"^-{2,}\s*original message", re.I | re.M))
    assert [group.needles for group in groups] == [("original message",), ("--",)]
    assert needles(re.compile(r"\d+")) == ()


def test_starts_are_the_first_letters_of_every_match() -> None:
    """Start strings come from the pattern's opening, through groups; none when it may be empty."""
    assert starts(re.compile(r"\b(?<!not )(is|are) (down|offline)", re.I)) == ("are", "is ")
    assert starts(re.compile(r"\b(crash\w*|broken)\b", re.I)) == ("bro", "cra")
    assert starts(re.compile(r"(x)?down")) == ("dow", "xdo")
    assert starts(re.compile(r"\w*down")) == ()


def test_a_text_without_the_needles_is_not_searched() -> None:
    """The prefiltered search answers None for a text that lacks every needle."""
    marker = Prefiltered.compile(r"\bwrote:\s*$", re.I | re.M)
    assert marker.search("nothing here") is None
    match = marker.search("On Sat, Jo WROTE:\n")
    assert match is not None and match.group(0).startswith("WROTE:")


STARTED = [
    value
    for module in (text, channels)
    for value in vars(module).values()
    if isinstance(value, Prefiltered) and value.starts
]
CHANNEL_TEXTS = st.lists(
    st.sampled_from(
        [
            "slack",
            "SLACK",
            "channel",
            "Channel",
            "#",
            "<#",
            "C0ABC1234",
            "|name>",
            "teams ",
            "is",
            ":",
            " - ",
            "\u2013",
            "laa-apply",
            "inc-42",
            " ",
            "\n",
            "https://x.slack.com/archives/",
            "http",
            "\u212a",
            "named ",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(CHANNEL_TEXTS, TEXTS), st.sampled_from(["lower", "upper", "title"]))
def test_finditer_from_start_strings_finds_what_finditer_finds(words: str, case: str) -> None:
    """Trying a pattern only where its start strings occur gives finditer's matches, in order."""
    sample = getattr(words, case)()
    for marker in STARTED:
        expected = [(m.span(), m.groups()) for m in marker.pattern.finditer(sample)]
        assert [(m.span(), m.groups()) for m in marker.finditer(sample)] == expected
        first, found = marker.pattern.search(sample), marker.search(sample)
        assert (found and found.span()) == (first and first.span())
