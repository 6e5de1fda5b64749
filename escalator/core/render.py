"""What each outside system is sent, built from an incident as plain values (pure).

Everything derived from a mail is untrusted: Slack text is escaped (& < > only, in that order)
so no mail can mention, notify or disguise a link, and is truncated only after escaping;
PagerDuty fields are bounded by the Events API limits; reply headers carry no CR/LF.
The shell loads reply templates and passes their text in, so support can edit the wording.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

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


def page_status(incident: Incident) -> str:
    """What was done about on-call, in one line a human reads."""
    if incident.page == "now":
        return "On-call has been paged."
    if incident.page == "deferred" and incident.page_at is not None:
        when = incident.page_at.strftime("%H:%M on %a %d %b")
        return f"No on-call cover now: on-call will be paged at {when}; support sees it first."
    return "On-call not paged (support hours): support has been alerted."


def channel_label(channel: str | None) -> str:
    return f"#{channel}" if channel else "(no channel given)"


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


# --- PagerDuty --------------------------------------------------------------------------------


def pagerduty_summary(incident: Incident) -> str:
    """Which service, where to talk: the one line on the on-call's phone."""
    notes = "".join(f" [{note}]" for note in incident.notes)
    text = (
        f"Escalation: {incident.subject or '(no subject)'} — talk in "
        f"{channel_label(incident.slack_channel)} — from {incident.sender}{notes}"
    )
    return one_line(text, PD_SUMMARY_MAX)


def pagerduty_event(incident: Incident, review_url: str) -> dict[str, Any]:
    """The Events API v2 trigger body (routing_key is added by the client)."""
    details = {
        "subject": one_line(incident.subject, SUBJECT_MAX * 5),
        "sender": one_line(f"{incident.sender_name} <{incident.sender}>", 600),
        "slack_channel": channel_label(incident.slack_channel),
        "facts": incident.facts[:PD_DETAIL_MAX],
        "window": incident.window,
        "received_at": incident.received_at.isoformat(),
        "reference": incident.mail_id,
        "message_id": incident.message_id,
        "notes": list(incident.notes),
    }
    links = [{"href": review_url, "text": f"Escalation #{incident.mail_id} in escalator"}]
    link = channel_link(incident.slack_channel)
    if link:
        links.insert(
            0, {"href": link, "text": f"Reporter's channel {channel_label(incident.slack_channel)}"}
        )
    return {
        "event_action": "trigger",
        "dedup_key": incident.dedup_key,
        "payload": {
            "summary": pagerduty_summary(incident),
            "source": "escalator",
            "severity": "critical",
            "timestamp": incident.received_at.isoformat(),
            "component": one_line(incident.slack_channel or "unknown", 255),
            "class": "customer-escalation",
            "custom_details": details,
        },
        "links": links,
        "client": "escalator",
        "client_url": review_url,
    }


# --- Slack ------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object that Slack will not reinterpret (verbatim)."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def slack_alarm(incident: Incident) -> tuple[str, list[dict[str, Any]]]:
    """Block Kit alarm for #high-priority-alarms and its plain-text fallback."""
    who = slack_text(f"{incident.sender_name} <{incident.sender}>".strip(), 500)
    subject = slack_text(one_line(incident.subject, SUBJECT_MAX * 5) or "(no subject)", 1000)
    channel = slack_text(channel_label(incident.slack_channel), 200)
    status = slack_text(page_status(incident), 500)
    notes = "".join(f"\n:warning: {slack_text(note, 500)}" for note in incident.notes)
    head = f"*Subject:* {subject}\n*From:* {who}\n*Reporter's channel:* {channel}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Customer escalation"}},
        _section(truncate_escaped(head, SLACK_BLOCK_TEXT_MAX)),
        _section(f"*Window:* {incident.window}\n*On-call:* {status}{notes}"),
        _section(_facts_text(incident.facts)),
        {"type": "context", "elements": [_mrkdwn(f"Reference #{incident.mail_id}")]},
    ]
    fallback = f"Customer escalation: {subject} from {who}, talk in {channel}. {status}{notes}"
    return truncate_escaped(fallback, SLACK_TEXT_MAX), blocks


def slack_review(incident: Incident, review_url: str) -> tuple[str, list[dict[str, Any]]]:
    """A held reject for the support review channel (mention-safe), linking to its review page."""
    who = slack_text(f"{incident.sender_name} <{incident.sender}>".strip(), 500)
    subject = slack_text(one_line(incident.subject, SUBJECT_MAX) or "(no subject)", 400)
    reasons = slack_escape(", ".join(incident.reasons) or "none recorded")
    link = f"<{slack_escape(review_url)}|Review mail #{incident.mail_id}>"
    text = f"Rejected, held for review: {subject} from {who} ({reasons}). {link}"
    return truncate_escaped(text, SLACK_TEXT_MAX), [
        _section(truncate_escaped(text, SLACK_BLOCK_TEXT_MAX)),
        _section(_facts_text(incident.facts)),
    ]


def _facts_text(facts: str) -> str:
    label = "*What they wrote:*\n"
    body = slack_text(facts.strip() or "(empty)", SLACK_BLOCK_TEXT_MAX - len(label))
    return label + body


def slack_ack(incident: Incident) -> tuple[str, list[dict[str, Any]]]:
    """The acknowledgement posted in the reporter's own channel, with its fallback."""
    subject = slack_text(one_line(incident.subject, SUBJECT_MAX) or "(no subject)", 400)
    received = incident.received_at.strftime("%H:%M %Z").strip()
    text = (
        f"Your escalation “{subject}” reached the cloud platform team at {received}. "
        f"{slack_escape(page_status(incident))} Reference #{incident.mail_id}."
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
    """Plain values a support-editable template may use."""
    return {
        "sender_name": incident.sender_name or incident.sender,
        "subject": one_line(incident.subject, SUBJECT_MAX) or "(no subject)",
        "received_at": incident.received_at.strftime("%H:%M %Z on %A %d %B %Y"),
        "verdict": incident.verdict,
        "reasons": list(incident.reasons),
        "window": incident.window,
        "page": incident.page,
        "page_at": incident.page_at.strftime("%H:%M on %A %d %B") if incident.page_at else None,
        "page_status": page_status(incident),
        "slack_channel": incident.slack_channel,
        "alarm": incident.alarm,
        "reference": incident.mail_id,
        "review_url": review_url,
    }


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
