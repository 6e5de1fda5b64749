"""Where the bot may acknowledge an escalation in Slack (issue 16). Pure.

The channel comes from the mail, so an attacker chooses it: a mail naming #general once made
the bot join #general and post the sender's subject there. The acknowledgement therefore goes
only to a channel the bot may use: one it is already a member of, or one whose name matches
ESCALATOR_ACK_CHANNEL_PATTERNS (an incident channel, which it may join). A workspace-wide
channel (#general and its like) gets nothing, member or not. Anywhere else the reply mail,
which is always sent, is the acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

DEFAULT_PATTERNS = ("*-incident*", "*-live-issue*", "*-outage*")
# Channels every member of a workspace is in, by convention or by Slack itself (is_general).
GENERAL_LIKE = frozenset(
    {"general", "random", "announcements", "announce", "everyone", "all", "company", "all-staff"}
)


@dataclass(frozen=True)
class ChannelFacts:
    """What Slack's list of public channels says about one. `listed` False: not among them (a
    private channel, or none): only Slack knows if the bot is in it, so it may try, not join."""

    name: str
    is_member: bool = False
    is_general: bool = False
    listed: bool = True


@dataclass(frozen=True)
class AckPlace:
    """Post or not, and whether joining first is allowed; `why` says why not, for the outbox."""

    post: bool
    join: bool = False
    why: str = ""


def bare_name(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Case-insensitive glob match of a channel name against any pattern."""
    bare = bare_name(name)
    return any(fnmatchcase(bare, pattern.strip().lstrip("#").lower()) for pattern in patterns)


def general_like(facts: ChannelFacts) -> bool:
    return facts.is_general or bare_name(facts.name) in GENERAL_LIKE


def ack_place(facts: ChannelFacts, patterns: tuple[str, ...]) -> AckPlace:
    """The decision for one acknowledgement."""
    label = f"#{bare_name(facts.name)}"
    if general_like(facts):
        return AckPlace(False, why=f"not posted in {label}: a workspace-wide channel")
    if facts.is_member or not facts.listed:
        return AckPlace(True)
    if matches(facts.name, patterns):
        return AckPlace(True, join=True)
    return AckPlace(
        False,
        why=f"not posted in {label}: the bot is not a member and it is not an incident channel",
    )
