"""Literal prefilters: the words a regular expression cannot match without.

A rule pattern such as '\\b(is|are) (down|offline)\\b' can only match a text that contains one of
"is down", "is offline", "are down", "are offline". Checking those with `in` on a lowercased copy
of the text costs microseconds; running the pattern's search costs about 80 us per 1.5 KB part,
and most patterns match nothing in most mails. A pattern whose needles are all absent is skipped,
so the result of every search is unchanged: the prefilter only avoids searches that find nothing.

The needles are derived from the pattern's parse tree (re._parser, CPython's own). Anything the
analysis does not understand contributes no needle, and a pattern with no reliable needle is
always searched.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

sre_parse: Any
sre_c: Any
try:  # CPython's regex parser; without it every pattern is simply always searched
    sre_c = importlib.import_module("re._constants")
    sre_parse = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - other Pythons
    sre_parse = sre_c = None

# The only non-ASCII characters that re.IGNORECASE matches to an ASCII character (found by
# trying every code point): fold them first so that `in` on the lowercased text misses nothing.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
_MAX_EXACT = 64  # alternatives multiplied out before a sequence is summarised
_MAX_COPIES = 16  # a repeated string's needle: this many characters of its required copies
_MAX_GROUPS = 3  # independent needle sets checked per pattern (each must be present)
_MAX_STARTS = 24  # more start strings than this cost more to find than a search
_GATE = 3  # letters of a needle looked up in a Haystack's index before the text is scanned
_MIN_NEEDLE = 2  # shorter needles are in almost every text: not worth checking
_RARE = 5  # needles this long are rare enough in prose that fewer of them beat longer ones


@dataclass(frozen=True)
class Group:
    """Strings of which every match contains one; `gates` holds their first three letters."""

    needles: tuple[str, ...]
    gates: frozenset[str] | None  # first three letters of each; None when a needle is shorter
    # By first three letters: (last three letters, needle), so a Haystack scans only the needles
    # whose both ends are pieces of the text.
    by_gate: Mapping[str, tuple[tuple[str, str], ...]] = field(compare=False)
    # By first three letters: what all those needles begin with, when longer than the three
    # ("everything " for 60 needles "everything else still is running ..."): one scan for it
    # rules them all out when it is absent.
    heads: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, strings: Iterable[str]) -> Group:
        ordered = tuple(sorted(set(strings), key=lambda item: (-len(item), item)))
        if any(len(needle) < _GATE for needle in ordered):
            return cls(ordered, None, {})
        by_gate: dict[str, tuple[tuple[str, str], ...]] = {}
        for needle in ordered:
            by_gate[needle[:_GATE]] = (*by_gate.get(needle[:_GATE], ()), (needle[-_GATE:], needle))
        heads = {gate: _common_start([n for _, n in pairs]) for gate, pairs in by_gate.items()}
        long = {gate: head for gate, head in heads.items() if len(head) > _GATE}
        return cls(ordered, frozenset(by_gate), by_gate, long)


def _common_start(strings: list[str]) -> str:
    """What every string begins with."""
    first, last = min(strings), max(strings)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), None)
    return first if size is None else first[:size]


# Groups of needles: a match contains one needle of every group. Empty: always search.
Needles = tuple[Group, ...]
_Exact = frozenset[str] | None


def fold(text: str) -> str:
    """The text as the needles are written: lowercase, IGNORECASE's special letters folded."""
    return text.translate(_FOLD).lower() if not text.isascii() else text.lower()


def needles(pattern: re.Pattern[str]) -> Needles:
    """Groups of strings: every match contains one of each group; empty when none is known."""
    if sre_parse is None or pattern.flags & re.LOCALE:
        return ()
    try:
        exact, candidates = _scan(sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # noqa: BLE001 - an unknown construct means no prefilter, never an error
        return ()
    groups = [exact] if exact is not None and _usable(exact) else candidates
    chosen = sorted(set(groups), key=_worth, reverse=True)[:_MAX_GROUPS]
    return tuple(Group.of(group) for group in chosen)


def starts(pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Up to three first letters of every match ('is ', 'are' for '\\b(is|are) down'); or ()."""
    if sre_parse is None or pattern.flags & re.LOCALE:
        return ()
    try:
        leading = _leading(sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # noqa: BLE001 - an unknown construct means no start strings, never an error
        return ()
    if not leading or min(map(len, leading)) < _MIN_NEEDLE or len(leading) > _MAX_STARTS:
        return ()
    return tuple(sorted(leading))


def _leading(items: Iterable[tuple[Any, Any]]) -> frozenset[str]:
    """Strings (of up to three letters) that every match of the sequence begins with."""
    current = frozenset({""})
    for op, arg in items:
        exact, _ = _node(op, arg)
        if exact is not None and len(current) * len(exact) <= _MAX_EXACT:
            current = frozenset((a + b)[:_GATE] for a in current for b in exact)
            continue
        if op is sre_c.SUBPATTERN:
            inner = _leading(arg[-1])
        elif op is sre_c.BRANCH:
            inner = frozenset().union(*(_leading(alternative) for alternative in arg[1]))
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT) and arg[0] >= 1:
            inner = _leading(arg[2])
        else:
            inner = frozenset({""})
        return frozenset((a + b)[:_GATE] for a in current for b in inner)
    return current


@dataclass(frozen=True)
class Prefiltered:
    """A compiled pattern with its needles: a text without them is not searched at all."""

    pattern: re.Pattern[str]
    needles: Needles
    # Strings every match begins with (lowercase), when the caller knows them: finditer() then
    # tries the pattern only where one occurs instead of at every position of a long text.
    starts: tuple[str, ...] = ()

    @classmethod
    def compile(cls, pattern: str, flags: int = 0, starts: tuple[str, ...] = ()) -> Prefiltered:
        compiled = re.compile(pattern, flags)
        return cls(compiled, needles(compiled), starts)

    def search(self, text: str, folded: str | None = None) -> re.Match[str] | None:
        """pattern.search(text); `folded` is fold(text) when the caller already has it."""
        folded = fold(text) if folded is None else folded
        if self.starts:  # no start string, no match: the needles would only repeat the scan
            return next(self._from_starts(text, folded), None)
        return self.pattern.search(text) if may_match(self.needles, folded) else None

    def finditer(self, text: str, folded: str | None = None) -> Iterator[re.Match[str]]:
        """pattern.finditer(text): the same matches, in order."""
        folded = fold(text) if folded is None else folded
        if self.starts:
            return self._from_starts(text, folded)
        return self.pattern.finditer(text) if may_match(self.needles, folded) else iter(())

    def _from_starts(self, text: str, folded: str) -> Iterator[re.Match[str]]:
        return _matches_at(self.pattern, text, _occurrences(folded, self.starts))


def _matches_at(
    pattern: re.Pattern[str], text: str, positions: list[int]
) -> Iterator[re.Match[str]]:
    """Leftmost non-overlapping matches, tried only at the positions where one may begin.

    match(text, pos) sees the text before pos (lookbehind, \\b) as search() does, and fold()
    keeps every character at its index, so these are exactly finditer's matches.
    """
    end = 0
    for position in positions:
        if position >= end and (match := pattern.match(text, position)):
            end = max(match.end(), position + 1)
            yield match


def _occurrences(folded: str, starts: tuple[str, ...]) -> list[int]:
    positions: set[int] = set()
    for start in starts:
        index = folded.find(start)
        while index >= 0:
            positions.add(index)
            index = folded.find(start, index + 1)
    return sorted(positions)


def may_match(wanted: Needles, folded: str) -> bool:
    """False only when the pattern cannot match the text `folded` was made from."""
    return all(any(needle in folded for needle in group.needles) for group in wanted)


@dataclass(frozen=True)
class Haystack:
    """A text read by many patterns: folded once, and indexed by its three-letter pieces.

    A group none of whose needles starts with a piece of the text is absent: one set operation
    in C instead of a scan of the text per needle (about 500 ns per 1.5 KB each).
    """

    text: str
    folded: str
    grams: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Haystack:
        folded = fold(text)
        pieces = zip(folded, folded[1:], folded[2:], strict=False)  # shorter tails end it
        return cls(text, folded, frozenset(map("".join, pieces)))

    def search(
        self, pattern: re.Pattern[str], wanted: Needles, begins: tuple[str, ...]
    ) -> re.Match[str] | None:
        """pattern.search(text), skipped without the needles, tried only where `begins` occur."""
        return next(self.finditer(pattern, wanted, begins), None)

    def finditer(
        self, pattern: re.Pattern[str], wanted: Needles, begins: tuple[str, ...]
    ) -> Iterator[re.Match[str]]:
        """pattern.finditer(text): the same matches, in order."""
        if not self.may_match(wanted):
            return iter(())
        if not begins:
            return pattern.finditer(self.text)
        present = tuple(start for start in begins if len(start) < _GATE or start in self.grams)
        return _matches_at(pattern, self.text, _occurrences(self.folded, present))

    def may_match(self, wanted: Needles) -> bool:
        """may_match(wanted, self.folded), answered mostly from the index."""
        folded, grams = self.folded, self.grams
        for group in wanted:
            if group.gates is None:
                if not any(needle in folded for needle in group.needles):
                    return False
                continue
            candidates = (
                group.by_gate[gate]
                for gate in grams.intersection(group.gates)
                if gate not in group.heads or group.heads[gate] in folded
            )
            if not any(
                tail in grams and needle in folded for pairs in candidates for tail, needle in pairs
            ):
                return False
        return True


@dataclass(frozen=True)
class GateIndex:
    """Which of a rule's patterns a text may match, from one set operation per text: each
    pattern is filed under the gates (first three letters of the needles) of one of its groups,
    and a pattern none of whose gates is a piece of the text cannot match it, as
    Haystack.may_match would say pattern by pattern; patterns without gates are always tried."""

    always: frozenset[int]
    gates: frozenset[str]
    by_gate: Mapping[str, frozenset[int]] = field(compare=False)

    @classmethod
    def of(cls, wanted: Iterable[Needles]) -> GateIndex:
        always: set[int] = set()
        by_gate: dict[str, set[int]] = {}
        for index, groups in enumerate(wanted):
            gated = next((group.gates for group in groups if group.gates is not None), None)
            if gated is None:
                always.add(index)
            for gate in gated or ():
                by_gate.setdefault(gate, set()).add(index)
        filed = {gate: frozenset(indexes) for gate, indexes in by_gate.items()}
        return cls(frozenset(always), frozenset(filed), filed)

    def candidates(self, haystacks: Iterable[Haystack]) -> list[int]:
        """The patterns, in order, that may match one of the texts (a superset of those that do)."""
        found = set(self.always)
        for haystack in haystacks:
            for gate in haystack.grams.intersection(self.gates):
                found |= self.by_gate[gate]
        return sorted(found)


def _worth(strings: frozenset[str]) -> tuple[bool, int]:
    """Fewest needles among those long enough to be rare; else the longest shortest needle."""
    shortest = min(map(len, strings))
    return shortest >= _RARE, -len(strings) if shortest >= _RARE else shortest


def _usable(strings: _Exact) -> bool:
    return bool(strings) and min(map(len, strings or ())) >= _MIN_NEEDLE


def _sequence(items: Iterable[tuple[Any, Any]]) -> tuple[_Exact, _Exact]:
    """(every string the sequence can consume, or None; an any-of set every match contains)."""
    exact, candidates = _scan(items)
    return exact, max(candidates, key=_worth, default=None)


def _scan(items: Iterable[tuple[Any, Any]]) -> tuple[_Exact, list[frozenset[str]]]:
    """(every string the sequence can consume, or None; any-of sets every match contains)."""
    current: frozenset[str] = frozenset({""})
    exact_so_far = True
    candidates: list[frozenset[str]] = []
    for op, arg in items:
        exact, required = _node(op, arg)
        if exact is not None and len(current) * len(exact) <= _MAX_EXACT:
            current = frozenset(a + b for a in current for b in exact)
            continue
        exact_so_far = False
        candidates += [current, required or exact or frozenset()]
        current = frozenset({""})
    candidates.append(current)
    return (current if exact_so_far else None), [item for item in candidates if _usable(item)]


def _node(op: Any, arg: Any) -> tuple[_Exact, _Exact]:
    """The exact strings and required needles of one parse-tree node."""
    if op is sre_c.LITERAL:
        char = chr(arg)
        return (frozenset({char.lower()}), None) if char.isascii() else (None, None)
    if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
        return frozenset({""}), None  # zero width: consumes nothing
    if op is sre_c.IN:
        return _char_class(arg), None
    if op is sre_c.SUBPATTERN:
        return _sequence(arg[-1])
    if op is sre_c.ATOMIC_GROUP:
        return _sequence(arg)
    if op is sre_c.BRANCH:
        return _branch(arg[1])
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
        low, high, body = arg
        return _repeat(low, high, _sequence(body))
    return None, None


def _char_class(items: list[tuple[Any, Any]]) -> _Exact:
    """A class of a few ASCII characters ('[- ]') is a set of one-letter strings."""
    chars = [chr(value) for op, value in items if op is sre_c.LITERAL]
    if len(chars) != len(items) or not all(char.isascii() for char in chars):
        return None
    return frozenset(char.lower() for char in chars)


def _branch(alternatives: list[list[tuple[Any, Any]]]) -> tuple[_Exact, _Exact]:
    summaries = [_sequence(alternative) for alternative in alternatives]
    exacts = [exact for exact, _ in summaries]
    union: _Exact = None
    if all(item is not None for item in exacts):
        union = frozenset().union(*(item or () for item in exacts))
        union = union if len(union) <= _MAX_EXACT else None
    wanted = [exact if _usable(exact) else required for exact, required in summaries]
    if not all(_usable(item) for item in wanted):
        return union, None
    return union, frozenset().union(*(item or () for item in wanted))


def _repeat(low: int, high: int, body: tuple[_Exact, _Exact]) -> tuple[_Exact, _Exact]:
    exact, required = body
    if exact is not None and high <= 2:  # 's?', '(ed)?': a few exact strings
        strings = {""} if low == 0 else set()
        power = frozenset({""})
        for count in range(1, high + 1):
            power = frozenset(a + b for a in power for b in exact)
            if count >= low:
                strings |= power
        if len(strings) <= _MAX_EXACT:
            return frozenset(strings), None
    if low == 0:
        return None, None
    if exact is not None and len(exact) == 1:  # '-{2,}', '_{10,}': at least `low` copies
        (single,) = exact
        return None, frozenset({(single * min(low, _MAX_COPIES))[:_MAX_COPIES]})
    return None, exact if _usable(exact) else required
