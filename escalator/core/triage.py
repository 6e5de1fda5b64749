"""Triage: is this mail an escalation the process accepts, and if not, every reason why.

Reasons are checked independently and reported in the contract's precedence order, each with
the evidence (rule, words, part of the mail) that produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from escalator.core.channels import TextPart, find_channel
from escalator.core.mail import ParsedMail
from escalator.core.model import REASON_ORDER, Evidence, Reason, Triage, Verdict
from escalator.core.prefilter import Haystack
from escalator.core.rules import Rule, Rules

_SNIPPET = 80
# A request the process excludes (how-to, PR chase, ...) stays an incident when the mail shows an
# outage sign or this many different problem words: one is often just the question's topic.
_SYMPTOMS_OVER_EXCLUSION = 2
# The symptom rule (in rules.toml) whose single match is an outage, whatever else the mail asks.
SIGN_KINDS = ("outage", "symptom")  # both are incident facts; "outage" also beats a request
# Rules read the opening of each part: a person states the problem in the first page, and a
# pasted 5 MB log must not cost seconds of regular expressions (about 3 ms per rule per 50 KB).
_RULE_TEXT_CHARS = 6_000


@dataclass(frozen=True)
class TriagePolicy:
    """The rules plus the deployment's lists (empty allowlist: everyone may send)."""

    rules: Rules
    allowed_senders: tuple[str, ...] = ()
    trusted_list_ids: tuple[str, ...] = ()


def triage(mail: ParsedMail, policy: TriagePolicy, envelope_from: str | None = None) -> Triage:
    """Decide escalate or reject for one parsed mail."""
    channel = find_channel(_channel_parts(mail))
    findings: dict[Reason, list[Evidence]] = {
        Reason.AUTOMATED_MESSAGE: automated_evidence(mail, policy, envelope_from),
        Reason.SENDER_NOT_ALLOWED: _sender_evidence(mail, policy),
        Reason.NOT_SERVICE_IMPACTING: [],
        Reason.MISSING_SLACK_CHANNEL: [],
        Reason.MISSING_INCIDENT_FACTS: [],
    }
    content = _content_parts(mail)
    impact = _impact_evidence(content, _thread_parts(mail, content), policy.rules)
    findings[Reason.NOT_SERVICE_IMPACTING] = impact.excluded
    if channel is None:
        findings[Reason.MISSING_SLACK_CHANNEL] = [
            Evidence("channel", "no Slack channel named", "mail", Reason.MISSING_SLACK_CHANNEL)
        ]
    if not impact.symptoms and _word_count(content) < policy.rules.min_words:
        findings[Reason.MISSING_INCIDENT_FACTS] = [
            Evidence(
                "facts",
                f"no symptom and under {policy.rules.min_words} words",
                "mail",
                Reason.MISSING_INCIDENT_FACTS,
            )
        ]
    reasons = tuple(reason for reason in REASON_ORDER if findings[reason])
    evidence = [item for reason in reasons for item in findings[reason]]
    if channel is not None:
        evidence.append(Evidence("channel", channel.channel, channel.where))
    evidence.extend(impact.symptoms[:3])
    verdict = Verdict.REJECT if reasons else Verdict.ESCALATE
    return Triage(verdict, reasons, channel.channel if channel else None, tuple(evidence))


# --- automated mail (RFC 3834 and friends) --------------------------------------------------


def automated_evidence(
    mail: ParsedMail, policy: TriagePolicy, envelope_from: str | None = None
) -> list[Evidence]:
    """Why this mail was written by a machine; empty when a person wrote it."""
    auto = policy.rules.automated
    trusted_list = from_trusted_list(mail, policy.trusted_list_ids)
    found: list[Evidence] = []
    submitted = (mail.header("auto-submitted") or "").strip().lower()
    if submitted and not submitted.startswith("no"):
        found.append(_auto("auto_submitted", submitted, "header Auto-Submitted"))
    precedence = (mail.header("precedence") or "").strip().lower()
    ignored = {"list", "bulk"} if trusted_list else set()
    if precedence in auto.precedence - ignored:
        found.append(_auto("precedence", precedence, "header Precedence"))
    for name in auto.flag_headers + (() if trusted_list else auto.list_headers):
        if mail.header(name) is not None:
            found.append(_auto("header_present", name, f"header {name}"))
    found.extend(_auto_sender(mail, auto.senders, envelope_from, trusted_list))
    if mail.content_type in auto.content_types:
        found.append(_auto("content_type", mail.content_type, "header Content-Type"))
    found.extend(_first_matches("auto_subject", auto.subjects, mail.subject, "subject"))
    return [_with_reason(item, Reason.AUTOMATED_MESSAGE) for item in found]


def _auto(rule: str, matched: str, where: str) -> Evidence:
    return Evidence(rule, matched[:_SNIPPET], where, Reason.AUTOMATED_MESSAGE)


def _auto_sender(
    mail: ParsedMail,
    senders: tuple[re.Pattern[str], ...],
    envelope_from: str | None,
    trusted_list: bool,
) -> list[Evidence]:
    found = []
    return_path = (mail.header("return-path") or "").strip()
    if envelope_from is not None and envelope_from.strip("<> ") == "":
        found.append(_auto("null_sender", "<>", "envelope MAIL FROM"))
    elif return_path.replace(" ", "") == "<>":
        found.append(_auto("null_sender", "<>", "header Return-Path"))
    if not trusted_list:
        found.extend(_first_matches("auto_sender", senders, mail.from_addr, "header From"))
    return found


def from_trusted_list(mail: ParsedMail, trusted: tuple[str, ...]) -> bool:
    """A List-Id of the deployment's own front group makes list headers ordinary."""
    list_id = (mail.header("list-id") or "").lower()
    ids = re.findall(r"<([^<>]+)>", list_id) or [list_id.strip()]
    wanted = {value.strip().strip("<>").lower() for value in trusted}
    return bool(wanted & {value.strip() for value in ids})


# --- the sender allowlist -------------------------------------------------------------------


def _sender_evidence(mail: ParsedMail, policy: TriagePolicy) -> list[Evidence]:
    if not policy.allowed_senders or sender_allowed(mail.from_addr, policy.allowed_senders):
        return []
    shown = mail.from_addr or "(no From address)"
    return [
        Evidence("sender_allowlist", shown[:_SNIPPET], "header From", Reason.SENDER_NOT_ALLOWED)
    ]


def sender_allowed(address: str, allowed: tuple[str, ...]) -> bool:
    """An entry is an address, or a domain ('@example.org' or 'example.org') and its subdomains."""
    address = address.lower()
    domain = address.rpartition("@")[2]
    for entry in (value.strip().lower() for value in allowed):
        if "@" in entry.lstrip("@"):
            if address == entry:
                return True
        elif domain and (domain == entry.lstrip("@") or domain.endswith("." + entry.lstrip("@"))):
            return True
    return False


# --- service impact -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Impact:
    symptoms: list[Evidence]
    excluded: list[Evidence]


@dataclass(frozen=True)
class _Read:
    """A part as the rules read it, with the index that literal prefilters look in."""

    where: str
    haystack: Haystack


def _impact_evidence(content: list[TextPart], thread: list[TextPart], rules: Rules) -> _Impact:
    """Symptoms found, and the exclusions that make the mail not service-impacting.

    Symptoms are read in the whole thread (a reply "any news?" is about the outage it quotes);
    everything that rejects is read only in the sender's own words.
    """
    # The thread starts with the content parts: fold each part once for every rule.
    read = [_Read(part.where, Haystack.of(part.text)) for part in thread]
    parts = read[: len(content)]

    def hits(kind: str) -> list[Evidence]:
        return [item for rule in rules.of_kind(kind) for item in _rule_matches(rule, parts)]

    signs = _sign_rules(rules)
    symptoms = [item for rule in signs for item in _rule_matches(rule, read)]
    outage = {rule.name for rule in rules.of_kind("outage")}
    excluded = hits("no_impact")
    if not hits("live"):
        excluded += _non_production(hits("non_production"), symptoms, outage)
    if not _has_outage(symptoms, outage):
        requests = hits("exclusion")
        if requests and not _several_symptoms(signs, read):
            excluded += requests
    if not hits("ongoing"):
        excluded += hits("resolved")
    return _Impact(symptoms, excluded)


def _rule_matches(rule: Rule, parts: list[_Read]) -> list[Evidence]:
    """The first match of each of the rule's patterns, at most one evidence per pattern."""
    found = []
    for pattern, needles, starts in zip(rule.patterns, rule.needles, rule.starts, strict=True):
        for part in parts:
            match = part.haystack.search(pattern, needles, starts)
            if match:
                item = Evidence(rule.name, match.group(0)[:_SNIPPET], part.where, rule.reason)
                if item not in found:
                    found.append(item)
                break
    return found[:3]


def _sign_rules(rules: Rules) -> tuple[Rule, ...]:
    """Outage and symptom rules, each kind in file order, outage first (as evidence lists them)."""
    return tuple(rule for kind in SIGN_KINDS for rule in rules.of_kind(kind))


def _non_production(
    mentions: list[Evidence], symptoms: list[Evidence], outage_rules: set[str]
) -> list[Evidence]:
    """Non-production mentions that say where the problem is, not where a fix was tried.

    "Our UAT environment is down" names UAT in the subject or more than once; "the site has been
    down since 8pm, we have a fix in dev" mentions dev once, beside an outage: that stays an outage.
    """
    outage = _has_outage(symptoms, outage_rules)
    in_subject = any(item.where == "subject" for item in mentions)
    return mentions if len(mentions) >= 2 or in_subject or not outage else []


def _has_outage(symptoms: list[Evidence], outage_rules: set[str]) -> bool:
    """One outage sign makes a question, a chase or a request part of an incident."""
    return any(item.rule in outage_rules for item in symptoms)


def _several_symptoms(rules: tuple[Rule, ...], parts: list[_Read]) -> bool:
    """Different problem words ("failing" and "failed" are two) enough to outweigh a request."""
    seen: set[str] = set()
    for rule in rules:
        for pattern, needles, starts in zip(rule.patterns, rule.needles, rule.starts, strict=True):
            for part in parts:
                matches = part.haystack.finditer(pattern, needles, starts)
                seen.update(match.group(0).lower() for match in matches)
                if len(seen) >= _SYMPTOMS_OVER_EXCLUSION:
                    return True
    return False


def _first_matches(
    rule: str, patterns: tuple[re.Pattern[str], ...], text: str, where: str
) -> list[Evidence]:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return [Evidence(rule, match.group(0)[:_SNIPPET] or text[:_SNIPPET], where)]
    return []


def _with_reason(item: Evidence, reason: Reason) -> Evidence:
    return Evidence(item.rule, item.matched, item.where, reason)


# --- what the mail says ---------------------------------------------------------------------

_QUOTES = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


def _content_parts(mail: ParsedMail) -> list[TextPart]:
    """The sender's own words: subject, new text, and any mail they forwarded."""
    parts = [TextPart("subject", mail.subject), TextPart("new", mail.body.new)]
    if mail.body.forwarded:
        parts.append(TextPart("forwarded", mail.body.forwarded))
    elif _FORWARD_SUBJECT.match(mail.subject) and mail.body.quoted:
        # Outlook forwards look like replies ("From: … Sent: …"); the subject says what they are.
        parts.append(TextPart("forwarded", mail.body.quoted))
    return [TextPart(part.where, _unwrap(part.text[:_RULE_TEXT_CHARS])) for part in parts]


_FORWARD_SUBJECT = re.compile(r"^\s*(fw|fwd|forward(ed)?)\s*:", re.IGNORECASE)
# A line break inside a sentence (clients wrap plain text at ~72 columns), not before a list item.
_WRAPPED = re.compile(r"(?<=[^\s.!?:;])[ \t]*\n[ \t]*(?=[^\s>*\u2022\d-])")


def _unwrap(text: str) -> str:
    """Sentences joined back across the sender's line wrapping, so phrases match whole."""
    return _WRAPPED.sub(" ", text.translate(_QUOTES))


def _thread_parts(mail: ParsedMail, content: list[TextPart]) -> list[TextPart]:
    """The sender's words, then the earlier messages they quote."""
    quoted = TextPart("quoted", _unwrap(mail.body.quoted[:_RULE_TEXT_CHARS]))
    return [*content, quoted] if quoted.text else content


def _channel_parts(mail: ParsedMail) -> list[TextPart]:
    body = mail.body
    parts = [
        TextPart("new", body.new),
        TextPart("subject", mail.subject),
        TextPart("forwarded", body.forwarded),
        TextPart("quoted", body.quoted),
        TextPart("signature", body.signature),
    ]
    return [TextPart(part.where, part.text.translate(_QUOTES)) for part in parts]


_NOISE = re.compile(
    r"https?://\S+|<#[^>]*>|(?<!\w)#[\w-]+|\S+@\S+|\+?\d[\d ()-]{6,}\d|"
    r"^\s*(hi|hello|hey|dear|morning|good (morning|afternoon|evening))\b[^\n]{0,30}$",
    re.IGNORECASE | re.MULTILINE,
)


# Facts are counted in words of four letters or more that are not function words or words of
# urgency, contact, coordination (who is gathered, who is asked) and channel-joining: "P1
# declared, please join the channel as soon as you can,
# call me" says nothing about what is wrong, however long it is.
_FACT_WORD_MIN_LETTERS = 4
_FILLER_WORDS = """
please urgent urgently asap immediately soon possible possibly quickly help need needed call
ring phone contact reach message join channel slack bridge thread chat teams incident major
critical priority declared raised escalating escalate thanks thank cheers regards kind best
many team hello everything details have with this that there their they them then than from
your what when were will would could should about some someone anyone anything something
into just like also here been being does done very much more moment time able know look
cloud platform manager managers engineer engineers owner owners involved involve gathered asked
appreciate appreciated really already
"""
_FILLER = frozenset(_FILLER_WORDS.split())


def _word_count(parts: list[TextPart]) -> int:
    """Words the sender wrote about the problem: no greetings, links, numbers, channels, filler."""
    text = "\n".join(part.text for part in parts if part.where != "subject")
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", _NOISE.sub(" ", text))
    return sum(
        len(word) >= _FACT_WORD_MIN_LETTERS and word.lower().split("'")[0] not in _FILLER
        for word in words
    )
