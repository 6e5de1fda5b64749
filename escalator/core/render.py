"""What each outside system is sent, built from an incident as plain values (pure).

Everything derived from a mail is untrusted: Slack text is escaped (& < > only, in that order)
so no mail can mention, notify or disguise a link, and is truncated only after escaping;
PagerDuty fields are bounded by the Events API limits; reply headers carry no CR/LF.
The shell loads reply templates and passes their text in, so support can edit the wording.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_string
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from escalator.core import words

PD_SUMMARY_MAX = 1024
PD_DEDUP_MAX = 255
PD_DETAIL_MAX = 8000
SLACK_TEXT_MAX = 40_000
SLACK_BLOCK_TEXT_MAX = 3000
SLACK_HEADER_MAX = 150
SUBJECT_MAX = 200
ELLIPSIS = "…"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
_MSGID = re.compile(r"[^<>\s]{1,250}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
_ADDR = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


@dataclass(frozen=True)
class Incident:
    """One stored mail and its decision, as every renderer needs it."""

    mail_id: int
    received_at: datetime
    sender: str
    sender_name: str
    subject: str
    message_id: str | None
    references: tuple[str, ...]
    facts: str
    verdict: str
    reasons: tuple[str, ...]
    slack_channel: str | None
    window: str
    page: str
    page_at: datetime | None
    alarm: bool
    dedup_key: str
    notes: tuple[str, ...] = field(default=())
    evidence: tuple[Mapping[str, Any], ...] = field(default=())
    support_from: datetime | None = None
    status_page_url: str | None = None
    zone: ZoneInfo = words.LONDON
    # a follow-up decided together with earlier mails: `facts` are theirs (the root first) and
    # `update` the follow-up's own words; `thread` links every mail of it (label, URL)
    update: str = ""
    thread: tuple[tuple[str, str], ...] = ()
    page_failing: bool = False  # PagerDuty has not accepted the page (yet): say so, not "paged"
    doubts: tuple[Mapping[str, Any], ...] = field(default=())  # why the verdict may be wrong


# --- text hygiene ---------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters, & first so the others' entities survive."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate_escaped(text: str, limit: int) -> str:
    """Cut escaped text to `limit` chars without splitting an &amp;-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def slack_text(text: str, limit: int) -> str:
    """Mail-derived text made safe for Slack: escape, then truncate."""
    return truncate_escaped(slack_escape(text), limit)


def one_line(text: str, limit: int) -> str:
    """Collapse CR/LF and other controls into spaces, then bound the length."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - len(ELLIPSIS)] + ELLIPSIS


def header_msgid(value: str | None) -> str | None:
    """A Message-ID fit for a header (<local@domain>, no whitespace), or None."""
    bare = (value or "").strip().removeprefix("<").removesuffix(">")
    return f"<{bare}>" if _MSGID.fullmatch(bare) else None


def header_address(value: str) -> str | None:
    """A bare addr-spec fit for To:, or None when the input is not one."""
    match = _ADDR.fullmatch(value.strip())
    return match.group(0) if match else None


# --- conversation identity -------------------------------------------------------------------


def bounded_dedup_key(key: str) -> str:
    """The planner's conversation key within PagerDuty's 255 chars (hashed when longer)."""
    flat = one_line(key, 10_000)
    if 0 < len(flat) <= PD_DEDUP_MAX:
        return flat
    return "escalator/sha256/" + hashlib.sha256(key.encode()).hexdigest()


# --- wording shared by every channel ----------------------------------------------------------

ON_CALL_MINUTES = 30  # how long the sender waits for on-call in their channel before chasing


def page_status(incident: Incident) -> str:
    """What was done about on-call, in one line a human reads."""
    if incident.page == "now" and incident.page_failing:
        return (
            "On-call is being paged, but PagerDuty has not accepted the page yet: escalator keeps "
            "trying, and support has been alerted."
        )
    if incident.page == "now":
        return "On-call has been paged."
    if incident.page == "deferred" and incident.page_at is not None:
        return (
            f"Nobody is on call from 22:00 to 07:00: on-call will be paged at "
            f"{words.when(incident.page_at, incident.zone)}."
        )
    return "On-call not paged (support hours): support has been alerted."


def channel_label(channel: str | None) -> str:
    return f"#{channel}" if channel else "(no channel given)"


def channel_words(channel: str | None) -> str:
    """The channel as a person names it: #name; an ID means nothing to a reader, so it is
    'the Slack channel linked below' (the link opens it)."""
    if not channel:
        return "no Slack channel given"
    if is_channel_id(channel):
        return "the Slack channel linked in the details"
    return f"#{channel}"


def is_channel_id(channel: str) -> bool:
    """Slack IDs (C0123…, G…, D…) as triage keeps them (upper case); names are lower case."""
    return _CHANNEL_ID.fullmatch(channel) is not None


def channel_link(channel: str | None) -> str | None:
    """A link that opens the reporter's channel in Slack, when one was named: the archive link
    when the mail gave the channel's ID (archive links need one); otherwise Slack's documented
    redirect, which also accepts a name (percent-encoded: the name comes from the mail)."""
    if not channel:
        return None
    if is_channel_id(channel):
        return f"https://slack.com/archives/{channel}"
    return f"https://slack.com/app_redirect?channel={_percent_encode(channel.lstrip('#'))}"


_URL_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of everything but unreserved characters (the core may not
    import urllib, which also holds the network client)."""
    return "".join(
        char if char in _URL_UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in text
    )


# --- what the mail is about: service, symptom, since -----------------------------------------

HEADLINE_MAX = 110
_SUBJECT_NOISE = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|sv)\s*:|\[[^\]]{0,40}\]|(?:urgent|critical incident|critical|"
    r"escalation|incident|p[1-4]|help|important|live issue)\b\s*[:\-\u2013\u2014!]*)\s*",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|dear|morning|good \w+|all|team)\b[^.!?]{0,40}[,!]?$", re.I
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_SERVICE_SPLIT = re.compile(r"\s+[-\u2013\u2014|]\s+|:\s+")
_NAMESPACE = re.compile(r"\bnamespace[:\s]+\(?`?([a-z0-9][a-z0-9-]{2,62})", re.IGNORECASE)
_SINCE = re.compile(
    r"\bsince\s+((?:about |around |approx\.? )?(?:\d{1,2}[:.]\d{2}|\d{1,2}\s*[ap]m|midnight|"
    r"this morning|last night|yesterday|lunchtime|the (?:last|latest) (?:deploy\w*|release))"
    r"(?:\s*(?:am|pm))?(?: (?:today|yesterday|this morning|last night))?)",
    re.IGNORECASE,
)


def headline(incident: Incident) -> str:
    """Service and symptom in one line: the subject without 'Re:', 'URGENT', '[tag]'; when
    that says nothing ('P1', 'Urgent'), the first sentence the sender wrote."""
    subject = " ".join(_strip_noise(one_line(incident.subject, 1000)).split())
    if len(subject.split()) >= 3:
        return one_line(subject, HEADLINE_MAX)
    first = " ".join(_first_sentence(incident.facts).split())
    return one_line(first or subject or "(no subject)", HEADLINE_MAX)


def _strip_noise(subject: str) -> str:
    previous = None
    while previous != subject:
        previous, subject = subject, _SUBJECT_NOISE.sub("", subject, count=1)
    return subject.strip(" -:\u2013\u2014!")


def _first_sentence(facts: str) -> str:
    for line in facts.splitlines():
        line = line.strip()
        if len(line.split()) >= 3 and not _GREETING.match(line):
            return _SENTENCE.split(line, maxsplit=1)[0].rstrip(".")
    return ""


def service_name(incident: Incident) -> str | None:
    """The service, when the subject names it before a separator ('Crime apply - ...')."""
    subject = _strip_noise(one_line(incident.subject, 1000))
    parts = _SERVICE_SPLIT.split(subject, maxsplit=1)
    if len(parts) == 2 and 1 <= len(parts[0].split()) <= 6:
        return one_line(parts[0], 100)
    return None


def namespace(incident: Incident) -> str | None:
    match = _NAMESPACE.search(incident.facts)
    return match.group(1).lower() if match else None


def since(incident: Incident) -> str | None:
    """'since 06:50' as the sender wrote it, from the subject or their words."""
    match = _SINCE.search(f"{incident.subject}\n{incident.facts}")
    return one_line(match.group(1), 60) if match else None


def told(incident: Incident) -> str:
    """What the sender's reply says happens next, in one line (for on-call's details)."""
    channel = channel_words(incident.slack_channel)
    join = f"join {channel}" if incident.slack_channel else "answer (no Slack channel was given)"
    if incident.page == "deferred" and incident.page_at is not None:
        at = words.clock(incident.page_at, incident.zone)
        return f"on-call will be paged at {at} and {join}"
    if incident.page == "now":
        return f"on-call will {join}; best endeavours, up to an hour out of hours"
    return f"the support team will {join}"


UPDATE_LABEL = "Update from the sender:"


def people_facts(incident: Incident) -> str:
    """What the sender wrote, as on-call reads it: the root mail's facts first, then the
    follow-up that completed them under 'Update from the sender:'."""
    if not incident.update.strip():
        return incident.facts
    return f"{incident.facts.strip()}\n\n{UPDATE_LABEL}\n{incident.update.strip()}"


def split_conversation(conversation: str, own: str) -> tuple[str, str]:
    """(earlier mails' words, the follow-up's own words) from a conversation joined follow-up
    first (core.conversation.merge_follow_up); ("", conversation) when it is not one."""
    head = own.strip()
    if not head or not conversation.startswith(head):
        return conversation, ""
    return conversation[len(head) :].strip(), head


# --- PagerDuty --------------------------------------------------------------------------------


def pagerduty_summary(incident: Incident) -> str:
    """The one line on the on-call's lock screen: service and symptom first, where to talk;
    the sender is in the details."""
    notes = "".join(f" [{note}]" for note in incident.notes)
    channel = incident.slack_channel
    where = f"join #{channel}" if channel and not is_channel_id(channel) else channel_words(channel)
    what, started = headline(incident), since(incident)
    if started and "since" not in what.lower():
        what = f"{what} (since {started})"
    text = f"[Email escalation] {what} — {where}{notes}"
    return one_line(text, PD_SUMMARY_MAX)


def pagerduty_details(incident: Incident, review_url: str) -> dict[str, Any]:
    """Custom details in plain words, in the order on-call reads them."""
    details: dict[str, Any] = {
        "what is wrong": headline(incident),
        "service": service_name(incident) or namespace(incident) or "not named in the mail",
        "since": since(incident) or "not stated",
        "talk in": channel_words(incident.slack_channel),
        "what they wrote": people_facts(incident)[:PD_DETAIL_MAX],
        "raised by": one_line(f"{incident.sender_name} <{incident.sender}>".strip(), 600),
        "received": words.when(incident.received_at, incident.zone),
        "cover": words.window(incident.window),
        "the sender was told": told(incident),
        "mail page": review_url,
        "reference": f"escalation #{incident.mail_id}",
    }
    if incident.status_page_url:
        details["status page"] = incident.status_page_url
    if incident.notes:
        details["notes"] = list(incident.notes)
    if incident.doubts:
        details["in doubt"] = doubt_lines(incident)
    return details


def pagerduty_links(incident: Incident, review_url: str) -> list[dict[str, str]]:
    links = [{"href": review_url, "text": f"Escalation #{incident.mail_id}: the mail's page"}]
    link = channel_link(incident.slack_channel)
    if link:
        label = channel_words(incident.slack_channel)
        text = f"Reporter's channel {label}" if label.startswith("#") else "Reporter's channel"
        links.insert(0, {"href": link, "text": text})
    links.extend({"href": url, "text": label} for label, url in incident.thread)
    if incident.status_page_url:
        links.append({"href": incident.status_page_url, "text": "Platform status page"})
    return links


def pagerduty_event(incident: Incident, review_url: str) -> dict[str, Any]:
    """The Events API v2 trigger body (routing_key is added by the client). PD-CEF fields as
    PagerDuty defines them: source = the affected system (the service, else its namespace),
    component = the namespace when the mail names one, class = the kind of event."""
    service = service_name(incident) or namespace(incident)
    payload: dict[str, Any] = {
        "summary": pagerduty_summary(incident),
        "source": one_line(service or "service not named (email escalation)", 255),
        "severity": "critical",
        "timestamp": incident.received_at.isoformat(),
        "class": "email escalation",
        "custom_details": pagerduty_details(incident, review_url),
    }
    if namespace(incident):
        payload["component"] = namespace(incident)
    return {
        "event_action": "trigger",
        "dedup_key": incident.dedup_key,
        "payload": payload,
        "links": pagerduty_links(incident, review_url),
        "client": "escalator",
        "client_url": review_url,
    }


def pagerduty_update(
    incident: Incident, review_url: str, first_id: int, first_url: str
) -> dict[str, Any]:
    """A follow-up on the thread as a trigger under the escalation's own dedup key (issue 13.5):
    PagerDuty appends it to the open alert as a log entry; the incident keeps its title. The
    update's words and who sent it are in the custom details."""
    who = one_line(f"{incident.sender_name} <{incident.sender}>".strip(), 600)
    details: dict[str, Any] = {
        "update to": f"escalation #{first_id}: {first_url}",
        "update from": who,
        "what they wrote": incident.facts[:PD_DETAIL_MAX] or "(only quoted the thread)",
        "received": words.when(incident.received_at, incident.zone),
        "mail page": review_url,
    }
    summary = f"Update on escalation #{first_id}: {headline(incident)}"
    mail = (review_url, f"The update (mail #{incident.mail_id})")
    return _onto_first(incident, mail, (first_id, first_url), (summary, details))


def pagerduty_storm(
    incident: Incident, review_url: str, first: tuple[int, str], count: int
) -> dict[str, Any]:
    """A storm's counter where no alarm thread carries it (on-call-only cover, issue 16): a
    trigger under the storm's dedup key, which PagerDuty appends to the open alert as a log
    entry (as pagerduty_update's); the count leads the summary. Mail-derived text is one line,
    bounded (headline, one_line)."""
    details: dict[str, Any] = {
        "storm of": f"escalation #{first[0]}: {first[1]}",
        "mails so far": count,
        "latest mail": review_url,
        "latest received": words.when(incident.received_at, incident.zone),
    }
    summary = f"{count} mails so far on escalation #{first[0]}: {headline(incident)}"
    mail = (review_url, f"The latest mail of the storm (mail #{incident.mail_id})")
    return _onto_first(incident, mail, first, (summary, details))


def _onto_first(
    incident: Incident,
    mail: tuple[str, str],
    first: tuple[int, str],
    said: tuple[str, dict[str, Any]],
) -> dict[str, Any]:
    """A trigger under the first mail's dedup key (an update, a storm's counter): `said` is its
    summary and details (the mail's notes added), linking the first mail's page and this mail's
    (`mail`: its page's url and a label)."""
    (review_url, label), (first_id, first_url), (summary, details) = mail, first, said
    if incident.notes:
        details = {**details, "notes": list(incident.notes)}
    event = pagerduty_event(incident, review_url)
    text = one_line(f"[Email escalation] {summary}", PD_SUMMARY_MAX)
    event["payload"] = {**event["payload"], "summary": text, "custom_details": details}
    event["links"] = [
        {"href": first_url, "text": f"Escalation #{first_id}: the first mail's page"},
        {"href": review_url, "text": label},
    ]
    return event


# --- Slack ------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object that Slack will not reinterpret (verbatim): only the explicit
    <…> links escalator builds itself are links; mail-derived text is escaped."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def slack_link(url: str, label: str) -> str:
    """An explicit Slack link built by escalator: URL and label escaped, no '|' in the label."""
    return f"<{slack_escape(url)}|{slack_escape(label.replace('|', '/'))}>"


def slack_channel_ref(channel: str | None) -> str:
    """The reporter's channel as a real link: <#C…> for an ID, else a redirect link."""
    if not channel:
        return "no channel given"
    if is_channel_id(channel):
        return f"<#{channel}>"
    return slack_link(channel_link(channel) or "", f"#{channel}")


def alarm_header(incident: Incident) -> str:
    """Unlike Alertmanager's '[FIRING]' posts: what this is and what was done about on-call."""
    if incident.page == "now":
        return "Email escalation — on-call paged"
    if incident.page == "deferred" and incident.page_at is not None:
        return f"Email escalation — will page at {words.clock(incident.page_at, incident.zone)}"
    return "Email escalation — support hours, on-call not paged"


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url,
        "action_id": action_id,
    }


def _alarm_buttons(incident: Incident, review_url: str) -> dict[str, Any]:
    buttons = [_button("Open the mail's page", review_url, "open-mail")]
    link = channel_link(incident.slack_channel)
    if link:
        buttons.append(_button("Open the reporter's channel", link, "open-channel"))
    if incident.status_page_url:
        buttons.append(_button("Status page", incident.status_page_url, "open-status"))
    return {"type": "actions", "elements": buttons}


def slack_alarm(incident: Incident, review_url: str) -> tuple[str, list[dict[str, Any]]]:
    """Block Kit alarm for #high-priority-alarms and its plain-text fallback."""
    who = slack_text(f"{incident.sender_name} <{incident.sender}>".strip(), 500)
    what = slack_text(headline(incident), 500)
    channel = slack_channel_ref(incident.slack_channel)
    notes = "".join(f"\n:warning: {slack_text(note, 500)}" for note in incident.notes)
    notes += _doubt_note(incident)
    facts = (
        f"*Talk in:* {channel}\n*Raised by:* {who}\n"
        f"*Received:* {words.when(incident.received_at, incident.zone)} "
        f"({words.window(incident.window)})\n*On-call:* {slack_escape(page_status(incident))}"
    )
    mail_page = slack_link(review_url, f"Escalation #{incident.mail_id}")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": alarm_header(incident)}},
        _section(f"*{what}*"),
        _section(truncate_escaped(facts, SLACK_BLOCK_TEXT_MAX - 500) + notes),
        _section(_facts_text(people_facts(incident))),
        _alarm_buttons(incident, review_url),
        {"type": "context", "elements": [_mrkdwn(_alarm_context(incident, mail_page))]},
    ]
    fallback = f"{alarm_header(incident)}: {what}. Talk in {channel}. Raised by {who}.{notes}"
    return truncate_escaped(fallback, SLACK_TEXT_MAX), blocks


def _alarm_context(incident: Incident, mail_page: str) -> str:
    """The mail's page, and every mail of the thread when a follow-up completed an earlier one."""
    if not incident.thread:
        return f"{mail_page} · reply to the sender from there"
    others = ", ".join(slack_link(url, label) for label, url in incident.thread)
    return f"{mail_page} · the whole thread: {others}"


def slack_review(incident: Incident, review_url: str) -> tuple[str, list[dict[str, Any]]]:
    """A held reject for the support review channel (mention-safe), linking to its review page."""
    who = slack_text(f"{incident.sender_name} <{incident.sender}>".strip(), 500)
    subject = slack_text(one_line(incident.subject, SUBJECT_MAX) or "(no subject)", 400)
    reasons = slack_escape("; ".join(words.reason(code) for code in incident.reasons) or "none")
    link = slack_link(review_url, f"Review mail #{incident.mail_id}")
    text = f"Rejected, held for review: {subject} from {who} ({reasons}). {link}"
    return truncate_escaped(text, SLACK_TEXT_MAX), [
        _section(truncate_escaped(text, SLACK_BLOCK_TEXT_MAX)),
        _section(_facts_text(incident.facts)),
    ]


# --- the doubt path (issue 15): a reject that may be an incident is never silent -----------

DOUBT_HEADER = "Held, may be an incident — release to page"
DOUBT_SHOWN = 4


def doubt_lines(incident: Incident) -> list[str]:
    """Why the verdict may be wrong, one plain line per doubt (not escaped: callers escape for
    their channel)."""
    return describe_doubts(incident.doubts)


def describe_doubts(items: tuple[Mapping[str, Any], ...]) -> list[str]:
    """Stored doubts (the decision's "doubts") in plain words, at most DOUBT_SHOWN."""
    return [_doubt_words(item) for item in items[:DOUBT_SHOWN]]


_WHERE = {"new": "sender's new text", "quoted": "quoted history", "subject": "subject"}


def _doubt_words(item: Mapping[str, Any]) -> str:
    rule = one_line(str(item.get("rule") or "a reading rule").replace("_", " "), 80)
    matched = one_line(str(item.get("matched") or ""), 200)
    where = str(item.get("where") or "mail")
    place = one_line(_WHERE.get(where, where), 40)
    return f"{rule}: “{matched}” (in the {place})" if matched else f"{rule} (in the {place})"


def _doubt_note(incident: Incident) -> str:
    """The alarm's doubt line for a low-confidence escalation (escaped, like any mail text)."""
    if not incident.doubts:
        return ""
    return f"\n:grey_question: *In doubt:* {slack_text('; '.join(doubt_lines(incident)), 800)}"


def slack_doubt(incident: Incident, review_url: str) -> tuple[str, list[dict[str, Any]]]:
    """The alarm-channel notice for a held reject that may be an incident: mention-safe (mail
    text escaped, verbatim mrkdwn), the reasons and doubts in plain words, the review link."""
    who = slack_text(f"{incident.sender_name} <{incident.sender}>".strip(), 500)
    subject = slack_text(one_line(incident.subject, SUBJECT_MAX) or "(no subject)", 400)
    reasons = slack_escape("; ".join(words.reason(code) for code in incident.reasons) or "none")
    doubts = "\n".join(f"• {slack_text(line, 400)}" for line in doubt_lines(incident))
    link = slack_link(review_url, f"Review mail #{incident.mail_id}")
    text = (
        f"{DOUBT_HEADER}: {subject} from {who}. Rejected ({reasons}), but it may be an "
        f"incident:\n{doubts or '• (no detail kept)'}\nRelease it to page on-call: {link}"
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": DOUBT_HEADER}},
        _section(truncate_escaped(text, SLACK_BLOCK_TEXT_MAX)),
        _section(_facts_text(incident.facts)),
        {"type": "actions", "elements": [_button("Open the mail's page", review_url, "open-mail")]},
    ]
    return truncate_escaped(text, SLACK_TEXT_MAX), blocks


def pagerduty_doubt_event(incident: Incident, review_url: str) -> dict[str, Any]:
    """A low-urgency PagerDuty event for a held reject that may be an incident: severity
    "warning" (low urgency under dynamic notifications), its own dedup key (the planner's
    "doubt:<root>"), the review page linked so on-call can release it to page properly."""
    event = pagerduty_event(incident, review_url)
    reasons = "; ".join(words.reason(code) for code in incident.reasons) or "none"
    details = {
        "held because": reasons,
        "may be an incident because": doubt_lines(incident) or ["(no detail kept)"],
        "to page": f"release it on the mail's page: {review_url}",
        **{k: v for k, v in event["payload"]["custom_details"].items() if k != "in doubt"},
    }
    summary = one_line(f"[{DOUBT_HEADER}] {headline(incident)}", PD_SUMMARY_MAX)
    payload = {**event["payload"], "summary": summary, "severity": "warning"}
    return {**event, "payload": {**payload, "custom_details": details}}


def _facts_text(facts: str) -> str:
    label = "*What they wrote:*\n"
    body = slack_text(facts.strip() or "(empty)", SLACK_BLOCK_TEXT_MAX - len(label))
    return label + body


def ack_next(incident: Incident) -> str:
    """What happens next, for the reporter's channel."""
    if incident.page == "now":
        return "The on-call engineer has been paged and will join this channel."
    if incident.page == "deferred" and incident.page_at is not None:
        at = words.when(incident.page_at, incident.zone)
        return f"Nobody is on call from 22:00 to 07:00: on-call will be paged at {at}."
    return "The support team has been alerted and will join this channel."


def slack_ack(incident: Incident) -> tuple[str, list[dict[str, Any]]]:
    """The acknowledgement posted in the reporter's own channel, with its fallback."""
    subject = slack_text(one_line(incident.subject, SUBJECT_MAX) or "(no subject)", 400)
    received = words.when(incident.received_at, incident.zone)
    status = incident.status_page_url
    status_link = f" {slack_link(status, 'Platform status page')}." if status else ""
    text = (
        f"Your escalation “{subject}” reached the cloud platform team at {received}. "
        f"{slack_escape(ack_next(incident))} Reference #{incident.mail_id}.{status_link}"
    )
    return text, [_section(truncate_escaped(text, SLACK_BLOCK_TEXT_MAX))]


# --- reply mail -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """Everything the shell supplies that is not about the incident itself."""

    reply_from: str
    message_id: str
    date: datetime
    review_url: str


def reply_context(incident: Incident, review_url: str) -> dict[str, Any]:
    """Plain values a support-editable template may use (times in the one convention)."""
    page_at = incident.page_at
    return {
        "sender_name": incident.sender_name or incident.sender,
        "subject": one_line(incident.subject, SUBJECT_MAX) or "(no subject)",
        "received_at": words.when(incident.received_at, incident.zone),
        "verdict": incident.verdict,
        "reasons": list(incident.reasons),
        "reasons_in_words": list(words.specific_reasons(incident.reasons, incident.evidence)),
        "missing": missing_details(incident.reasons),
        "support_when": support_when(incident),
        "window": incident.window,
        "out_of_hours": incident.window != "support",
        "page": incident.page,
        "page_at": words.when(page_at, incident.zone) if page_at else None,
        "page_status": page_status(incident),
        "page_failing": incident.page_failing,
        "slack_channel": incident.slack_channel,
        "channel": reply_channel(incident.slack_channel),
        "alarm": incident.alarm,
        "reference": incident.mail_id,
        "review_url": review_url,
        "status_page_url": incident.status_page_url,
        "on_call_minutes": ON_CALL_MINUTES,
        # a reject that may be an incident (issue 15): support is told; no page is promised
        "in_doubt": incident.verdict == "reject" and bool(incident.doubts),
    }


def reply_channel(channel: str | None) -> str:
    """The sender's channel as the sender names it (they gave us an ID: 'your incident channel')."""
    if channel and not is_channel_id(channel):
        return f"#{channel}"
    return "your incident channel" if channel else "your team's Slack channel"


_MISSING = {
    "missing_slack_channel": "the Slack channel where the incident is being discussed "
    '(for example "the channel is #my-service-incident")',
    "missing_incident_facts": "what is wrong: which service, what its users see, and since when",
}


def missing_details(reasons: tuple[str, ...]) -> list[str]:
    """What the sender can add by replying; empty when nothing is actually missing."""
    return [_MISSING[code] for code in reasons if code in _MISSING]


def support_when(incident: Incident) -> str:
    """When a person in support will look at a held mail, in words."""
    start = incident.support_from
    if start is None:
        return "during support hours (10:00-17:00 on working days)"
    if start <= incident.received_at:
        return "today, before 17:00"
    return f"from {words.when(start, incident.zone)}"


def render_template(template_text: str, context: dict[str, Any]) -> str:
    """Render support-edited wording in a sandbox; unknown names fail loudly."""
    return _compiled(template_text).render(**context)


@functools.lru_cache(maxsize=16)
def _compiled(template_text: str) -> Template:
    """Compiling costs milliseconds; the same text always compiles to the same template."""
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    return env.from_string(template_text)


def reply_message(incident: Incident, template_text: str, envelope: Envelope) -> EmailMessage:
    """The reply mail: threaded, marked auto-replied, every header free of CR/LF."""
    to = header_address(incident.sender)
    if to is None:
        raise ValueError("sender is not a plain address")
    msg = EmailMessage()
    msg["From"] = formataddr(("Cloud platform escalations", envelope.reply_from))
    msg["To"] = to
    msg["Subject"] = "Re: " + (one_line(incident.subject, SUBJECT_MAX) or "your escalation")
    msg["Date"] = format_datetime(envelope.date)
    msg["Message-ID"] = envelope.message_id
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    _thread_headers(msg, incident)
    msg.set_content(render_template(template_text, reply_context(incident, envelope.review_url)))
    return msg


def _thread_headers(msg: EmailMessage, incident: Incident) -> None:
    parent = header_msgid(incident.message_id)
    if parent is None:
        return
    chain = [ref for ref in map(header_msgid, incident.references) if ref][-20:]
    msg["In-Reply-To"] = parent
    msg["References"] = " ".join([*chain, parent] if parent not in chain else chain)


# --- what was sent, read back -----------------------------------------------------------------


def sent_payload(kind: str, state: str, result: Mapping[str, Any] | None) -> Any:
    """The exact payload an action sent (or, in dry run, would have sent), from its stored
    result: the PagerDuty event, the Slack request (channel, text, blocks), the reply (to and
    the whole message). None when nothing was sent or it was sent before payloads were kept."""
    if not result:
        return None
    if "payload" in result:
        return result["payload"]
    if state != "dry_run":
        return None
    if kind == "page":
        return result.get("event")
    keys = ("to", "message") if "message" in result else ("channel", "text", "blocks", "thread_ts")
    return {key: result[key] for key in keys if key in result}


def payload_text(payload: Any) -> str | None:
    """A payload for people: a reply as its whole message, anything else as indented JSON."""
    if payload is None:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return readable_message(payload["message"])
    return json.dumps(payload, indent=2, ensure_ascii=False)


def readable_message(text: str) -> str:
    """A reply as a person reads it: its headers, then the body decoded (no quoted-printable
    soft breaks); the message exactly as sent stays in the stored payload."""
    message = message_from_string(text, policy=email_policy.default)
    headers = "\n".join(f"{name}: {value}" for name, value in message.items())
    if not isinstance(message, EmailMessage) or message.is_multipart():
        return text
    return f"{headers}\n\n{message.get_content()}"
