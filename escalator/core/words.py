"""Plain words for people (pure): one time convention and no internal codes.

Wherever a person reads a time it is the cover calendar's wall clock with its zone named
("21:00 GMT, Thu 3 Dec"; the CLI adds the year). Reasons, windows and pages are said in words
("it does not name a Slack channel for the incident"), never as codes (`missing_slack_channel`);
the JSON outputs keep their contract values and do not come through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
QUOTE_MAX = 60

REASONS = {
    "automated_message": "it looks like an automatic message (auto-reply, bounce, notification)",
    "sender_not_allowed": "it comes from an address that may not raise escalations",
    "not_service_impacting": "it does not describe a live service failing its users",
    "missing_slack_channel": "it does not name the Slack channel where the incident is discussed",
    "missing_incident_facts": (
        "it does not say what is wrong (which service, what users see, since when)"
    ),
}

# why a mail is "not service impacting", by the rule that said so (escalator/core/rules.toml)
RULES = {
    "no_live_impact": "it says the live service is working",
    "non_production": "it is about a non-production environment",
    "pr_chaser": "it chases a pull request",
    "issue_status": "it asks about the status of an issue or ticket",
    "how_to": "it asks how to do something",
    "access_request": "it asks for access",
    "support_request": "it is a support request",
    "cost_question": "it asks about costs",
    "feature_request": "it asks for a new feature",
    "planned_work": "it is about planned work",
    "post_incident": "it is about an incident that is already over",
    "incident_review": "it asks for a review of an incident that is already over",
}

WINDOWS = {
    "support": "support hours (10:00-17:00)",
    "support_and_on_call": "support and on-call hours",
    "on_call": "on-call hours",
    "no_cover": "outside cover (22:00-07:00: nobody is on call)",
}

# the same, short enough for a table column
SHORT_REASONS = {
    "automated_message": "automated mail",
    "sender_not_allowed": "sender not allowed",
    "not_service_impacting": "not a live incident",
    "missing_slack_channel": "no Slack channel",
    "missing_incident_facts": "no incident facts",
}
SHORT_WINDOWS = {
    "support": "support",
    "support_and_on_call": "support + on-call",
    "on_call": "on-call",
    "no_cover": "no cover",
}


def short_reason(code: str) -> str:
    return SHORT_REASONS.get(code, code.replace("_", " "))


def short_window(code: str) -> str:
    return SHORT_WINDOWS.get(code, code.replace("_", " "))


def uncoded(line: str) -> str:
    """A line that names reasons as '(missing_slack_channel)' with the words instead."""
    for code, short in SHORT_REASONS.items():
        line = line.replace(f"({code})", f"({short})")
    return line


def state(code: str) -> str:
    """An action's state for people: 'dry run', not 'dry_run'."""
    return code.replace("_", " ")


def when(moment: datetime, zone: ZoneInfo = LONDON, *, year: bool = False) -> str:
    """'21:00 GMT, Thu 3 Dec' (with ' 2026' when `year`): the wall clock and its zone."""
    local = moment.astimezone(zone)
    text = f"{local:%H:%M} {local.tzname()}, {local:%a} {local.day} {local:%b}"
    return f"{text} {local.year}" if year else text


def clock(moment: datetime, zone: ZoneInfo = LONDON) -> str:
    """'07:00 GMT': the wall-clock time alone, for a moment the reader knows the day of."""
    local = moment.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"


def reason(code: str) -> str:
    """A reject reason in words; an unknown code is shown as it is rather than hidden."""
    return REASONS.get(code, code.replace("_", " "))


def window(code: str) -> str:
    return WINDOWS.get(code, code.replace("_", " "))


def page(code: str, page_at: datetime | None, zone: ZoneInfo = LONDON) -> str:
    """What was done about on-call, in a few words."""
    if code == "now":
        return "on-call paged"
    if code == "deferred" and page_at is not None:
        return f"on-call will be paged at {when(page_at, zone)}"
    return "on-call not paged"


def specific_reasons(
    reasons: Iterable[str], evidence: Iterable[Mapping[str, Any]]
) -> tuple[str, ...]:
    """Each reason in words, the specific one where the evidence names it: 'it is about a
    non-production environment (you wrote "staging database")'."""
    items = list(evidence)
    return tuple(_specific(code, items) for code in reasons)


def _specific(code: str, evidence: list[Mapping[str, Any]]) -> str:
    found = next((item for item in evidence if item.get("reason") == code), None)
    rule = str((found or {}).get("rule", ""))
    if code != "not_service_impacting" or rule not in RULES or found is None:
        return reason(code)
    quoted = _quote(str(found.get("matched", "")), str(found.get("where", "")))
    return RULES[rule] + quoted


def _quote(matched: str, where: str) -> str:
    """The sender's own words behind a rule, when short enough to recognise."""
    flat = " ".join(matched.split())
    if not flat or len(flat) > QUOTE_MAX or where not in ("subject", "new", "forwarded"):
        return ""
    return f' (you wrote "{flat}")'


def codes_free(text: str) -> bool:
    """True when no internal code reaches a person's text (used by tests and checks)."""
    codes = (*REASONS, "no_cover", "support_and_on_call", "on_call")
    return not any(code in text for code in codes)
