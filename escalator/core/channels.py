"""Finding the Slack channel a sender named for further communication.

Every channel-like mention is a candidate with a score: where it stands (the new text beats the
subject, which beats forwarded, quoted and signature text) and what the words around it say
("further comms in" raises it; "raised in", "alerts go to", "Team channel:" lower it). The best
score wins; the earliest mention breaks a tie. An archive link followed at once by a name
("<link> (#name)") is one mention of that name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

from escalator.core.prefilter import Group, Prefiltered, fold

# Each pattern names the strings its matches begin with, so a 50 KB paste is not walked by all.
_MARKUP = Prefiltered.compile(r"<#(C[A-Z0-9]{6,})(?:\|([^>]{1,80}))?>", starts=("<#",))
_ARCHIVE = Prefiltered.compile(
    r"https?://[\w.-]*slack\.com/(?:archives|client/[A-Za-z0-9]+|messages)/([A-Za-z0-9]{8,})\b",
    starts=("http",),
)
# One character is below what needles() offers, so the needle "#" is given here.
_HASH = Prefiltered(
    re.compile(r"(?<![\w&/#@=])#([A-Za-z0-9][A-Za-z0-9_-]{0,79})"), (Group.of(["#"]),), ("#",)
)
# "Slack channel: name"; not a Microsoft Teams channel, which no Slack reader can join.
# After a dash ("Slack - grateful if ...") only a name shaped like a channel (with '-', '_' or a
# digit) is taken: a dash there is as often punctuation of a sentence as a label.
_LABELLED = Prefiltered.compile(
    r"(?<!teams )(?<!teams' )(?<!notification )"
    r"\b(?:slack\s+channel|slack|channel)\s*(?:is|name)?\s*([:=\-\u2013])\s*"
    r"([A-Za-z0-9][A-Za-z0-9_-]{1,79})\b",
    re.IGNORECASE,
    starts=("slack", "channel"),
)
# "our Slack channel is name", "channel hmpps-auth-incident": without punctuation only a
# hyphenated name is taken as a channel.
_NAMED = Prefiltered.compile(
    r"(?<!notification )\b(?:slack\s+)?channel\s+(?:(?:is|called|named)\s+)?#?"
    r"([A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+)\b",
    re.IGNORECASE,
    starts=("slack", "channel"),
)
# A bare Slack channel ID after "Slack channel", "channel ID", "in Slack" ("we're talking in Slack
# channel C08M2QX7HJD", "slack chan id C07NGT5HFT2"), also said of the matter ("our slack channel
# for this is C06XK2M9TQA"): taken lowercased, as a labelled one ("Slack: C07RJ4M2QTX") is. The
# ID's shape is checked on the text as written (upper case, a digit), so "channel conversations"
# is none.
_SLACK_ID = Prefiltered.compile(
    r"\b(?:slack(?:\s+chan(?:nel)?)?|channel)(?:\s+id)?"
    r"(?:\s+for\s+(?:this|it|that|(?:the|this)\s+(?:incident|issue|outage|problem)))?"
    r"\s*(?:is\s+|[:=]\s*)?#?([A-Za-z0-9]{9,12})\b",
    re.IGNORECASE,
    starts=("slack", "channel"),
)


class _BeforeSlack:
    """A channel named as where the sender is, then "on Slack": "im in hmpps-x-incident on
    slack", "join laa-apply-incident in Slack", "we've spun up incident-parole-0412 in slack"
    (a channel made for the incident). Only a hyphenated (or underscored) name, after a
    word saying where, so "follow-up on slack" is none. Searched only in the few words before
    each "slack" (a search of the whole text cost ~0.1 ms on a 2 KB mail)."""

    pattern = re.compile(
        r"\b(?:in|join|into|to|at|use|via|(?:spun|set|stood|opened)\s+up|created|opened|started)"
        r"\s+(?:the\s+|our\s+|an?\s+)?#?"
        r"([A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+)\s+(?:channel\s+)?(?:on|in)\s+slack\b",
        re.IGNORECASE,
    )
    reach = 120  # characters before "slack" where the words and the name may stand

    def finditer(self, text: str, folded: str) -> Iterator[re.Match[str]]:
        end, at = 0, folded.find("slack")
        while at >= 0:
            match = self.pattern.search(text, max(end, at - self.reach), at + len("slack") + 1)
            if match is not None:
                end = match.end()
                yield match
            at = folded.find("slack", at + 1)


_ON_SLACK = _BeforeSlack()
_ID_SHAPE = re.compile(r"[CG][A-Z0-9]{8,11}")
# JIRA keys, PR numbers, "#1st", incident and change references (INC0012345, P1, CHG42).
_TICKET_KEY = re.compile(r"^(?:[A-Z]{2,10}-\d+|[A-Za-z]{1,4}\d+|\d+[A-Za-z]{0,2})$")
_LABEL_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "our",
        "my",
        "your",
        "this",
        "that",
        "is",
        "in",
        "on",
        "at",
        "of",
        "to",
        "for",
        "and",
        "or",
        "please",
        "see",
        "use",
        "https",
        "http",
        "www",
        "none",
        "tbc",
        "tbd",
        "na",
        "n/a",
        # "Slack channel: to follow", "channel - will set one up": a channel is promised, not named.
        "will",
        "be",
        "to",
        "not",
        "no",
        "yet",
        "pending",
        "soon",
        "shortly",
        "coming",
        "being",
        "created",
        "later",
        "unknown",
        "follow",
        "n",
    ]
)

# Hashtags people use for emphasis ("#urgent", "#P1"), not channels anyone would join.
_HASHTAGS = frozenset(
    {"urgent", "important", "help", "priority", "critical", "outage", "incident", "asap", "sev1"}
)

# Channels of the platform team itself: where people ask or alerts land, rarely where they talk.
PLATFORM_CHANNELS = frozenset(
    {
        "ask-cloud-platform",
        "high-priority-alarms",
        "low-priority-alarms",
        "cloud-platform-notify",
        "cloud-platform-update",
    }
)

_FURTHER = re.compile(
    r"further|update|comms|communicat|continu|discuss|join|coordinat|please use|use\b|"
    r"incident channel|war ?room|follow|talk|chat|reach us|contact us|bridge|respond|reply|"
    r"get back|answer|ping|slack\s*:|slack channel\s*:|channel\s*:",
    re.IGNORECASE,
)
_RAISED = re.compile(
    r"raised|asked|posted|mentioned|reported|flagged|no (response|answer|reply)|already (in|on)|"
    r"earlier|wrote|messaged|tried",
    re.IGNORECASE,
)
_ALERTS = re.compile(r"alert|alarm|notif|monitor|pager|fire[sd]?\b|webhook", re.IGNORECASE)
_TEAM_LINE = re.compile(r"team channel|team slack|general channel|our team'?s? channel", re.I)
# A contact line's label ("Tel: … | Team Slack: #x", "Team channel: #x"): where the team sits,
# not where this incident is talked about, unless the sender's words point to it ("our team
# channel - it's in my signature").
_TEAM_LABEL = re.compile(r"\bteam\s+(?:slack|channel)(?:\s+channel)?\s*[:\-\u2013]\s*$", re.I)
_POINTS_TO_TEAM = Prefiltered.compile(
    r"\b(?:our|my) team'?s? (?:slack )?channel\b|\bmy signature\b|\bsignature below\b",
    re.IGNORECASE,
    starts=("our", "my", "signature"),
)

# Searched in every mail's new text: prefiltered, so a mail without these words costs a lookup.
# A channel the sender is about to archive ("We'll archive #x on our side") is as closed.
_ARCHIVED = Prefiltered.compile(
    r"\barchived\b|\bno longer (used|in use|active|exists)\b|\b(old|previous|last) (incident )?"
    r"channel\b|\bchannel (from|of) (last|the last|the previous|that) (time|incident)\b|"
    r"(?:(?<=\bwe'll )|(?<=\bwe will )|(?<=\bi'll )|(?<=\bi will )|(?<=\bwe're going to )|"
    r"(?<=\bwe are going to )|(?<=\bi'm going to )|(?<=\bi am going to ))"
    r"(?:archive\b|close (the |this |that )?(slack |incident )?channel\b|close (?=#))",
    re.IGNORECASE,
    starts=("archive", "no longer", "old", "previous", "last", "channel", "close"),
)

# Said of the channel just named: "#x - it's been archived", "#x (archived)", "#x, which was
# archived".
_ARCHIVED_AFTER = re.compile(
    r"[\s,;:()\[\]\-\u2013]*(?:(?:it|that|this|which)\s*(?:'s|is|was|has|had)?\s*|"
    r"(?:is|was|has|had)\s+)?(?:now\s+|since\s+|also\s+)?(?:been\s+)?(?:now\s+)?archived\b",
    re.IGNORECASE,
)

# Right before a mention, naming it the new place: "New channel: #x", "the new incident channel is
# #x". What its clause says was archived is the old one.
_NEW_CHANNEL = re.compile(
    r"\bnew\s+(?:(?:slack|incident)\s+)*channel\s*(?:is\s+|[:=\-\u2013]\s*)?#?$", re.IGNORECASE
)

# In the quoted history, said of the channel just named: "we have now archived #x", "Closing #x -
# thanks all". The thread's old channel is then not where a new mail on it is answered.
_CLOSED_BEFORE = re.compile(
    r"\b(?:archived|archiving|closed|closing)\s+(?:the\s+)?(?:(?:slack|incident)\s+)?"
    r"(?:channel\s+)?$",
    re.IGNORECASE,
)
_CLOSED_AFTER = re.compile(
    r"[\s,;:()\[\]\-\u2013]*(?:(?:it|that|this|which)\s*(?:'s|is|was|has)?\s*|"
    r"(?:is|was|has|had)\s+)?(?:now\s+)?(?:been\s+)?(?:now\s+)?(?:archived|closed)\b",
    re.IGNORECASE,
)

# Said to have gone unanswered there: where the sender already asked, not where to talk next.
_UNANSWERED = re.compile(
    r"\bno (reply|response|answer)\b|"
    r"(\b(nobody|no one|no-one)|(n['\u2019]t|\bnot) (think |believe |see )?anyone)\b[^.!?\n]{0,50}?"
    r"\b(answer\w*|respon\w*|repl(y|ies|ied)|picked (it |this |that )?up|got back)\b|"
    r"\b(haven['\u2019]t|hasn['\u2019]t|have not|has not|not|didn['\u2019]t|did not|never) "
    r"(had|got|gotten|received|heard)"
    r"\b[^.!?\n]{0,20}\b(answer|response|reply|back)\b|"
    # "I posted it in #ask-cloud-platform yesterday and it's still waiting".
    r"\b(posted|asked|raised|put)\b[^.!?\n]{0,80}\b(it|that|this)(['\u2019]s| is| has been) still "
    r"(waiting|pending|unanswered|sitting there)\b",
    re.IGNORECASE,
)
# The sentence going on after a mention: "#x but nobody answered", "#x, and no reply yet".
_THEN_BUT = re.compile(r"[\s,;)\-\u2013]*(?:but|and|yet)\b", re.IGNORECASE)
# Named as the way in the sender is not using, or not to use: "email this address rather than
# posting in #ask-cloud-platform", "instead of #x", "Please don't use #x from the thread below".
_INSTEAD = re.compile(
    r"(?:\b(?:rather than|instead of)\s+(?:(?:posting|asking|writing|raising (?:it|this))\s+)?"
    r"|\b(?:don['\u2019]?t|do not|never|stop) (?:use|using|post|posting|talk|reply|write)\s+)"
    r"(?:(?:in|on|to|via)\s+)?(?:the\s+)?(?:slack\s+)?(?:channel\s+)?#?$",
    re.IGNORECASE,
)
# Where the sender says they are, right before the mention ("we're in slack #x", "were in #x",
# "I'm on #x"): a place to talk, even in a run-on sentence that also says another place went
# unanswered ("no answer in ask cloud platform were in slack #x").
_HERE = re.compile(
    r"\b(?:we['\u2019]?re|we are|were|i['\u2019]?m|i am)\s+(?:all\s+|now\s+)?(?:in|on)\s+"
    r"(?:(?:the|our)\s+)?(?:slack\s+)?(?:channel\s+)?$",
    re.IGNORECASE,
)
# Platform channels that announce or alert: never where a team talks unless the mail says so.
BROADCAST_CHANNELS = PLATFORM_CHANNELS - {"ask-cloud-platform"}
# A line of hashtags only ("#TeamMoJ #OneHMPPS"): a signature's slogans, not channels.
_HASHTAG_LINE = re.compile(r"[ \t]*(?:#[\w-]+[ \t]*){2,}")

_WHERE_SCORE = {"new": 2, "subject": 1, "forwarded": 0, "quoted": -3, "signature": -4}


@dataclass(frozen=True)
class ChannelMention:
    """One place a channel is named, and how much it looks like the place to talk."""

    channel: str
    where: str
    position: int
    score: int
    context: str  # the mention's sentence, up to the neighbouring mentions
    clause: str = ""  # the piece of it that holds the mention (split at commas, "so", "but")
    after: str = ""  # the rest of its sentence ("#x - it's been archived")
    before: str = ""  # its sentence up to the mention ("we have now archived #x")
    team_label: bool = False  # on a contact line's "Team Slack:" / "Team channel:" label
    # A Slack ID written bare ("Slack: C07RJ4M2QTX"): `channel` holds it lowercased, as any
    # name written out is, and this the ID as Slack knows it (upper case), to post to.
    slack_id: str | None = None


@dataclass(frozen=True)
class TextPart:
    where: str  # new | subject | forwarded | quoted | signature
    text: str


def find_channel(parts: list[TextPart], platform: bool = True) -> ChannelMention | None:
    """The channel meant for further communication, or None when no channel is named.
    `platform`: whether the platform team's own channels may be the answer at all."""
    return choose_channel(parts, platform)[0]


def choose_channel(
    parts: list[TextPart], platform: bool = True
) -> tuple[ChannelMention | None, list[ChannelMention]]:
    """The channel (as find_channel), and the mentions set aside as no longer or never this
    incident's place: archived or closed, or a contact line's team channel. When no channel is
    left, a person should see those (a reject for the channel alone is then in doubt)."""
    named = [mention for part in parts for mention in _mentions(part)]
    mentions = _without_closed_history(_without_team_labels(named, parts))
    if any(part.where == "new" and _ARCHIVED.search(part.text) for part in parts):
        # "the old channel is archived": the quoted history's channel is not where to talk now,
        # nor any other mention of a channel the sender says is archived.
        said = [m for m in mentions if m.where != "quoted" and _said_archived(m)]
        archived = {mention.channel for mention in said}
        mentions = [m for m in mentions if m.where != "quoted" and m.channel not in archived]
    set_aside = [mention for mention in named if mention not in mentions]
    return _best(mentions, parts, platform), set_aside


def _best(
    mentions: list[ChannelMention], parts: list[TextPart], platform: bool
) -> ChannelMention | None:
    if not platform:
        mentions = [mention for mention in mentions if mention.channel not in PLATFORM_CHANNELS]
    if not mentions:
        return None
    order = {part.where: index for index, part in enumerate(parts)}
    return max(mentions, key=lambda m: (m.score, -order[m.where], -m.position))


def _without_team_labels(
    mentions: list[ChannelMention], parts: list[TextPart]
) -> list[ChannelMention]:
    """No "Team Slack: #x" contact line, unless the sender's words point to it."""
    if not any(mention.team_label for mention in mentions):
        return mentions
    own = (part for part in parts if part.where in ("new", "subject"))
    if any(_POINTS_TO_TEAM.search(part.text) for part in own):
        return mentions
    return [mention for mention in mentions if not mention.team_label]


def _without_closed_history(mentions: list[ChannelMention]) -> list[ChannelMention]:
    """No quoted mention of a channel the quoted history says was archived or closed."""
    closed = {m.channel for m in mentions if m.where == "quoted" and _said_closed(m)}
    return [m for m in mentions if m.where != "quoted" or m.channel not in closed]


def _said_closed(mention: ChannelMention) -> bool:
    return bool(_CLOSED_BEFORE.search(mention.before) or _CLOSED_AFTER.match(mention.after))


def _said_archived(mention: ChannelMention) -> bool:
    """The mention's own clause says it is archived, or the words right after it do; never a
    channel named as the new one ("New channel: #x (the old one was archived)")."""
    if _NEW_CHANNEL.search(mention.before):
        return False
    return bool(_ARCHIVED.search(mention.clause) or _ARCHIVED_AFTER.match(mention.after))


def _mentions(part: TextPart) -> list[ChannelMention]:
    found = _raw_mentions(part.text)
    mentions = []
    lows = _sentence_starts(found, part.text)
    for index, (start, end, channel, slack_id) in enumerate(found):
        line_start = part.text.rfind("\n", 0, start) + 1
        line_end = _line_end(part.text, end)
        before_from = max(line_start, found[index - 1][1] if index else 0)
        after_to = min(line_end, found[index + 1][0] if index + 1 < len(found) else line_end)
        before, after = part.text[before_from:start], part.text[end:after_to]
        if _HASHTAG_LINE.fullmatch(part.text[line_start:line_end]):
            continue
        low = lows[index]
        high = found[index + 1][0] if index + 1 < len(found) else len(part.text)
        sentence = _sentence(part.text, start, end, low, high)
        context = sentence if len(sentence) <= 300 else f"{before}{_MARK}{after}"
        clause = next((c for c in _CLAUSE_BREAK.split(context) if _MARK in c), context)
        head = context.partition(_MARK)[0]
        score = _WHERE_SCORE[part.where] + _context_score(before, after, channel, head)
        after = context.partition(_MARK)[2]
        context, clause = context.replace(_MARK, " "), clause.replace(_MARK, " ")
        team = bool(_TEAM_LABEL.search(before))
        mentions.append(
            ChannelMention(
                channel, part.where, start, score, context, clause, after, head, team, slack_id
            )
        )
    return [m for m in _fold_link_names(mentions, found, part.text) if _candidate(m)]


# Mentions listed together ("in #a and #b"): the second is read in the first one's sentence.
_LIST_GAP = re.compile(r"[ \t]*(?:,|and|or|&|/)?[ \t]*(?:,|and|or|&|/)[ \t]*", re.IGNORECASE)


def _sentence_starts(found: list[_Raw], text: str) -> list[int]:
    """Where each mention's sentence may begin: after the mention before it, unless the two are
    listed together, when it is where the first one's may begin."""
    lows: list[int] = []
    for index, raw in enumerate(found):
        previous = found[index - 1] if index else None
        listed = previous is not None and _LIST_GAP.fullmatch(text, previous.end, raw.start)
        lows.append(lows[-1] if listed else previous.end if previous else 0)
    return lows


def _candidate(mention: ChannelMention) -> bool:
    """Not a channel named as the other way in ("rather than posting in #x"), nor one the sender
    says went unanswered, nor an announcement channel, unless the same sentence also asks for
    further communication there."""
    if _INSTEAD.search(mention.before):
        return False
    here = bool(_HERE.search(mention.before))
    further = here or bool(_FURTHER.search(_UNANSWERED.sub(" ", mention.context)))
    if _UNANSWERED.search(mention.context) and not further:
        return False
    return further or mention.channel not in BROADCAST_CHANNELS


_MARK = "\x00"  # where the mention stood, in its sentence
_CLAUSE_BREAK = re.compile(r"[,;:]|\s[-\u2013]\s|\b(?:so|but|and|instead)\b", re.IGNORECASE)
_STOPS = (". ", "! ", "? ", ".\n", "\n\n")


def _sentence(text: str, start: int, end: int, low: int, high: int) -> str:
    """The sentence around a mention, across the sender's line wrapping (not a blank line),
    without the neighbouring mentions (between `low` and `high`)."""
    left = max([low - 1] + [text.rfind(mark, low, start) for mark in _STOPS])
    stops = [text.find(mark, end, high) for mark in _STOPS]
    right = min([stop for stop in stops if stop >= 0], default=high)
    return " ".join(f"{text[left + 1 : start]}{_MARK}{text[end:right]}".split())


def _fold_link_names(
    mentions: list[ChannelMention], found: list[_Raw], text: str
) -> list[ChannelMention]:
    """ "<link> (#name)" is one mention of the name, with the better of the two scores."""
    folded: list[ChannelMention] = []
    for index, mention in enumerate(mentions):
        if index and _names_the_link(found[index - 1], found[index], text):
            other = folded.pop()
            name = mention.channel if _is_id(found[index - 1]) else other.channel
            score = max(other.score, mention.score)
            mention = replace(other, channel=name, score=score, slack_id=None)
        folded.append(mention)
    return folded


# Same line only: a name on the next line is another mention. Between an archive link and the
# name written out for people there may be brackets, a dash, or a few words saying so.
_LINK_TO_NAME_GAP = re.compile(
    r"[ \t(\[:,\-\u2013|]*(?:(?:i\.e\.|aka|or|that's|that is|which is)?[ \t]*(?:the )?(?:slack )?"
    r"(?:channel)?(?: name)?(?: is| called)?)?[ \t(\[:\-\u2013|]*",
    re.IGNORECASE,
)


def _names_the_link(previous: _Raw, current: _Raw, text: str) -> bool:
    """An ID (a link's, or one written bare) and a name beside it, either order, on one line."""
    gap = text[previous.end : current.start]
    if gap.count("\n") == 1 and gap.split("\n")[1].lstrip().startswith("("):
        gap = gap.replace("\n", " ")  # the name in brackets on the link's next line
    if "\n" in gap or _is_id(previous) == _is_id(current):
        return False
    return bool(_LINK_TO_NAME_GAP.fullmatch(gap))


class _Raw(NamedTuple):
    """One channel-like mention as found: where, the channel, and a bare ID's Slack form."""

    start: int
    end: int
    channel: str
    slack_id: str | None = None


def _is_id(raw: _Raw) -> bool:
    return raw.slack_id is not None or raw.channel.isupper()


def _raw_mentions(text: str) -> list[_Raw]:
    """Every channel-like mention, in order, without overlaps."""
    found: list[_Raw] = []
    taken: list[tuple[int, int]] = []
    folded = fold(text)
    for pattern, pick in (
        (_MARKUP, _from_markup),
        (_ARCHIVE, _from_archive),
        (_HASH, _from_hash),
        (_LABELLED, _from_labelled),
        (_NAMED, _from_label),
        (_SLACK_ID, _from_slack_id),
        (_ON_SLACK, _from_label),
    ):
        for match in pattern.finditer(text, folded):
            channel = pick(match)
            overlaps = any(s < match.end() and match.start() < e for s, e in taken)
            if channel and not overlaps:
                written = text[match.start() : match.end()]
                found.append(_Raw(match.start(), match.end(), channel, _bare_id(channel, written)))
                taken.append((match.start(), match.end()))
    return sorted(found)


def _bare_id(channel: str, written: str) -> str | None:
    """The Slack ID as written, when a lowercased mention is one ("Slack: C07RJ4M2QTX")."""
    upper = channel.upper()
    if channel.isupper() or not _is_slack_id(upper) or upper not in written:
        return None
    return upper


def _is_slack_id(name: str) -> bool:
    return bool(_ID_SHAPE.fullmatch(name)) and any(char.isdigit() for char in name)


def _from_markup(match: re.Match[str]) -> str | None:
    name = match.group(2)
    return _normalise(name) if name else match.group(1).upper()


def _from_archive(match: re.Match[str]) -> str | None:
    return match.group(1).upper()


def _from_hash(match: re.Match[str]) -> str | None:
    name = match.group(1).rstrip("-_")
    if _TICKET_KEY.match(name) or name.lower() in _HASHTAGS:
        return None
    return _normalise(name)


def _from_labelled(match: re.Match[str]) -> str | None:
    name = match.group(2).rstrip("-_")
    if match.group(1) in "-\u2013" and not re.search(r"[-_\d]", name):
        return None
    return _from_name(name)


def _from_label(match: re.Match[str]) -> str | None:
    return _from_name(match.group(1).rstrip("-_"))


def _from_slack_id(match: re.Match[str]) -> str | None:
    name = match.group(1)
    return name.lower() if _is_slack_id(name) else None


def _from_name(name: str) -> str | None:
    if name.lower() in _LABEL_STOPWORDS or _TICKET_KEY.match(name):
        return None
    return _normalise(name)


def _normalise(name: str) -> str | None:
    name = name.strip().lstrip("#").lower()
    return name if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", name) else None


def _unanswered_after(after: str) -> bool:
    """ "I already write in #x but nobody answer": the sentence goes on to say no answer came."""
    return bool(_THEN_BUT.match(after)) and bool(_UNANSWERED.search(after))


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _context_score(before: str, after: str, channel: str, head: str) -> int:
    """What the words on the same line say about this mention (`head`: its sentence before it)."""
    score = 0
    # "Team channel: #x" is a signature line: its "channel:" label does not ask for comms there.
    team_line = _TEAM_LINE.search(before)
    # "we haven't had a reply in #x": the reply there is what is missing, not asked for; it is
    # where the sender asked (as "raised in #x"), not where to talk next.
    unanswered = bool(_UNANSWERED.search(head)) or _unanswered_after(after)
    asked = _UNANSWERED.sub(" ", before) if unanswered else before
    if not team_line and (_FURTHER.search(asked) or _FURTHER.search(after)):
        score += 3
    # "no answer in ask cloud platform were in slack #x": where the sender is now, not where the
    # sentence said no answer came.
    if (_RAISED.search(before) or unanswered) and not _HERE.search(before):
        score -= 4
    if _ALERTS.search(before) or _ALERTS.search(after):
        score -= 2
    if team_line:
        score -= 4
    if channel in PLATFORM_CHANNELS:
        score -= 2
    return score
