"""Triage: is this mail an escalation the process accepts, and if not, every reason why.

Reasons are checked independently and reported in the contract's precedence order, each with
the evidence (rule, words, part of the mail) that produced it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from escalator.core.channels import ChannelMention, TextPart, choose_channel
from escalator.core.model import (
    REASON_ORDER,
    Confidence,
    Evidence,
    Reason,
    Triage,
    Verdict,
    ordered_reasons,
)
from escalator.core.prefilter import Haystack
from escalator.core.reading import (
    Clause,
    Cues,
    State,
    awaited,
    clause_at,
    clauses,
    refused_access,
    state_of,
)
from escalator.core.rules import Rule, Rules

if TYPE_CHECKING:  # the triage reads a parsed mail; who only asks about list headers parses none
    from escalator.core.mail import ParsedMail

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
    automated = automated_evidence(mail, policy, envelope_from)
    findings: dict[Reason, list[Evidence]] = {
        Reason.AUTOMATED_MESSAGE: automated,
        Reason.SENDER_NOT_ALLOWED: _sender_evidence(mail, policy),
        Reason.NOT_SERVICE_IMPACTING: [],
        Reason.MISSING_SLACK_CHANNEL: [],
        Reason.MISSING_INCIDENT_FACTS: [],
    }
    content = _content_parts(mail)
    impact = _impact_evidence(content, _thread_parts(mail, content), policy.rules)
    automated, alert_subject = _person_under_alert_subject(automated, content, impact)
    findings[Reason.AUTOMATED_MESSAGE] = automated
    findings[Reason.NOT_SERVICE_IMPACTING] = impact.excluded
    channel, set_aside = choose_channel(
        _channel_parts(mail, automated, _earlier_matter_over(impact, policy.rules, content)),
        platform=not automated,
    )
    if channel is None:
        findings[Reason.MISSING_SLACK_CHANNEL] = [
            Evidence("channel", "no Slack channel named", "mail", Reason.MISSING_SLACK_CHANNEL)
        ]
    # Words are counted only for a mail without a symptom (the count is the dearest step).
    words = -1 if impact.symptoms or impact.strong else _word_count(content)
    if 0 <= words < policy.rules.min_words:
        impact = replace(impact, strong=_stated_impact(content, policy.rules))
    findings[Reason.MISSING_INCIDENT_FACTS] = _missing_facts(mail, content, impact, words, policy)
    # The confidence is judged in the precedence order; the reasons are told facts first.
    judged = tuple(reason for reason in REASON_ORDER if findings[reason])
    reasons = ordered_reasons(judged)
    evidence = [item for reason in reasons for item in findings[reason]]
    if channel is not None:
        evidence.append(Evidence("channel", channel.channel, channel.where))
    evidence.extend(impact.strong[:3])
    shown = {(item.rule, item.matched, item.where) for item in impact.strong[:3]}
    evidence.extend(
        [item for item in impact.symptoms if (item.rule, item.matched, item.where) not in shown][:3]
    )
    verdict = Verdict.REJECT if reasons else Verdict.ESCALATE
    doubts = _doubts(judged, impact, words, policy.rules, findings[Reason.MISSING_INCIDENT_FACTS])
    if not doubts and judged and judged[0] is Reason.MISSING_SLACK_CHANNEL:
        doubts = _impact_without_channel(content, judged, policy.rules) or _set_aside(set_aside)
    if not doubts and judged and judged[0] is Reason.MISSING_INCIDENT_FACTS:
        doubts = _attached(mail.attachments)
    if verdict is Verdict.ESCALATE:
        doubts = [*doubts, *(_overruled(item) for item in alert_subject)]
    confidence = Confidence.LOW if doubts else Confidence.HIGH
    channel_name = channel.channel if channel else None
    slack_id = channel.slack_id if channel else None
    found = tuple(evidence)
    return Triage(verdict, reasons, channel_name, found, confidence, tuple(doubts), slack_id)


# --- confidence: a wrong reject must never be silent ------------------------------------------

_THIN_MARGIN = 3  # facts within this many words of the minimum: a thin "missing facts"


def _doubts(
    reasons: tuple[Reason, ...],
    impact: _Impact,
    words: int,
    rules: Rules,
    facts: list[Evidence] | None = None,
) -> list[Evidence]:
    """What makes the verdict uncertain (rules.toml, policy point 5); empty when it is sure."""
    primary = reasons[0] if reasons else None
    if primary is Reason.MISSING_INCIDENT_FACTS and facts and facts[0].rule == _WITHHELD:
        return [Evidence("thin", facts[0].matched, "mail")]
    if primary is None:
        return [_overruled(item) for item in impact.overruled[:3]]
    if primary is Reason.NOT_SERVICE_IMPACTING:
        thin = all(item.where == "subject" for item in impact.excluded)
        if thin and impact.excluded:
            return [Evidence("thin", "the only exclusion is in the subject", "subject")]
        quoted = [item for item in impact.symptoms if item.where == "quoted"]
        outage = {rule.name for rule in rules.of_kind("outage")}
        quoted_outage = [item for item in quoted if item.rule in outage][:1]
        return impact.doubts or [_quoted(item) for item in quoted_outage]
    if primary is Reason.MISSING_INCIDENT_FACTS and words >= rules.min_words:
        return [Evidence("thin", f"{words} words without a word of a problem", "mail")]
    if primary is Reason.MISSING_INCIDENT_FACTS and words < 0:
        return [Evidence("thin", "a problem word with nothing named beside it", "mail")]
    if primary is Reason.MISSING_INCIDENT_FACTS and words >= rules.min_words - _THIN_MARGIN:
        return [Evidence("thin", f"{words} words of facts, {rules.min_words} needed", "mail")]
    return []


# --- incident facts: what is wrong, and with what ----------------------------------------------

_SHORT_NEW_TEXT = 300  # characters: only a mail this short can be too vague to name anything


def _missing_facts(
    mail: ParsedMail, content: list[TextPart], impact: _Impact, words: int, policy: TriagePolicy
) -> list[Evidence]:
    """Why the mail states no incident facts; empty when it does (rules.toml, [facts])."""
    rules = policy.rules
    if impact.strong:
        return []
    if not impact.symptoms and 0 <= words < rules.min_words:
        return _facts_evidence(f"no symptom and under {rules.min_words} words")
    if impact.excluded:
        return []  # the readings below only where no exclusion already rejects
    if impact.symptoms:
        vague = _vague(mail, impact, rules)
        return _facts_evidence("a problem word, nothing named") if vague else []
    return _nothing_told(content, words, rules)


_WITHHELD = "facts_withheld"  # the sender keeps the details for a call


def _nothing_told(content: list[TextPart], words: int, rules: Rules) -> list[Evidence]:
    """A mail without a symptom that keeps its details for a call, or says no word of a problem,
    and states no impact either: no facts."""
    text = "\n".join(part.text for part in content)
    withheld = rules.withheld.search(text)
    if not (withheld or not _problem_told(text, rules)) or _stated_impact(content, rules):
        return []
    if withheld is None:
        return _facts_evidence(f"no symptom and no word of a problem in {words} words")
    said = f'the details kept for a call: "{withheld.group(0)[:_SNIPPET]}"'
    return [Evidence(_WITHHELD, said, "mail", Reason.MISSING_INCIDENT_FACTS)]


def _problem_told(text: str, rules: Rules) -> bool:
    """A word of a problem, not counting a problem named only as such ("a serious problem with
    our live service") in a mail that does not say since when either."""
    told = text if rules.since.search(text) else rules.generic.sub(" ", text)
    return bool(rules.problem.search(told))


def _facts_evidence(matched: str) -> list[Evidence]:
    return [Evidence("facts", matched, "mail", Reason.MISSING_INCIDENT_FACTS)]


def _vague(mail: ParsedMail, impact: _Impact, rules: Rules) -> bool:
    """A short mail whose problem words (none quoted) stand beside no word naming anything."""
    if len(mail.body.new) > _SHORT_NEW_TEXT or mail.body.forwarded or mail.body.quoted:
        return False
    if any(item.where not in ("new", "subject") for item in impact.symptoms):
        return False
    text = _NOISE.sub(" ", f"{mail.subject}\n{mail.body.new}")
    named = [
        word
        for word in (w.lower().split("'")[0] for w in re.findall(r"[A-Za-z][A-Za-z'-]*", text))
        if len(word) >= _FACT_WORD_MIN_LETTERS
        and word not in _FILLER
        and word not in rules.vague_words
    ]
    return not named


def _attached(names: tuple[str, ...]) -> list[Evidence]:
    """A mail without facts in its text that carries attachments: the facts may be in them
    ("Incident report attached."), which no rule reads, so a person should."""
    shown = ", ".join(names)[:_SNIPPET]
    return [Evidence("attachment", shown, "mail")] if names else []


def _quoted(item: Evidence) -> Evidence:
    """An outage told in the quoted thread: it did not decide, but a person should look."""
    return Evidence(f"{item.rule} (quoted history)", item.matched, item.where, None, item.clause)


def _overruled(item: Evidence) -> Evidence:
    """An exclusion that lost to a stated impact, shown without its reject reason."""
    return Evidence(f"overruled {item.rule}", item.matched, item.where, None, item.clause)


def _impact_without_channel(
    content: list[TextPart], reasons: tuple[Reason, ...], rules: Rules
) -> list[Evidence]:
    """An impact stated as present in a mail rejected for its channel: a real incident held.
    An outage sign counts even when its clause names no production or people ("Apply is down
    since 19:00"), unless the mail is also rejected for stating no facts."""
    parts = [_Read(part.where, Haystack.of(part.text)) for part in content]
    lasting, located, unlocated = _Reading(parts, rules).strong()
    vague = Reason.MISSING_INCIDENT_FACTS in reasons
    return [*lasting, *located, *([] if vague else unlocated)][:2]


def _set_aside(mentions: list[ChannelMention]) -> list[Evidence]:
    """Channels named but not taken (archived, closed, a signature's team channel): a reject
    for the channel alone may be a person's slip, so one of us should read it."""
    first = {m.channel: m for m in reversed(mentions)}  # each channel once, where first named
    return [
        Evidence("channel set aside", f"#{m.channel}", m.where, None, _said(m)[:_SNIPPET])
        for m in list(reversed(first.values()))[:2]
    ]


def _said(mention: ChannelMention) -> str:
    """The mention's sentence with the channel in it."""
    return " ".join(f"{mention.before}#{mention.channel}{mention.after}".split())


def _stated_impact(content: list[TextPart], rules: Rules) -> list[Evidence]:
    """Any impact the reading finds stated as present: facts, when no symptom word was found."""
    parts = [_Read(part.where, Haystack.of(part.text)) for part in content]
    lasting, located, unlocated = _Reading(parts, rules).strong()
    return [*lasting, *located, *unlocated][:3]


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


# An alerting tool's subject label ("[FIRING:2]", "[Alerting]"); never an auto-reply's or a
# bounce's, whose body may echo a person's words.
_ALERT = re.compile(r"\[(firing|resolved|alerting)", re.IGNORECASE)
# A person's own words: "I'm the on-call dev", "we've lost", "I have pasted our alert below".
_FIRST_PERSON = re.compile(
    r"\b(i['\u2019]m|i am|i['\u2019]ve|i have|we['\u2019]re|we are|we['\u2019]ve|we have)\b",
    re.IGNORECASE,
)


def _person_under_alert_subject(
    automated: list[Evidence], content: list[TextPart], impact: _Impact
) -> tuple[list[Evidence], list[Evidence]]:
    """(the automated evidence that stands, the alert subject a person wrote under). An
    alerting tool's subject ("[FIRING:2] ApiDown") is all that looks automated, and the
    sender's new text says in the first person what is broken: a person pasting their alert,
    read as their mail (low confidence, the subject shown as overruled)."""
    alert = all(item.rule == "auto_subject" and _ALERT.match(item.matched) for item in automated)
    if not automated or not alert:
        return automated, []
    new = "\n".join(part.text for part in content if part.where == "new")
    told = any(item.where == "new" for item in [*impact.symptoms, *impact.strong])
    return ([], automated) if told and _FIRST_PERSON.search(new) else (automated, [])


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
    symptoms: list[Evidence]  # incident facts, read in the whole thread
    excluded: list[Evidence]  # what makes the mail not service-impacting
    strong: list[Evidence] = field(default_factory=list)  # present impact, sender's words
    overruled: list[Evidence] = field(default_factory=list)  # exclusions the impact beat
    doubts: list[Evidence] = field(default_factory=list)  # why a reject may be an incident


@dataclass(frozen=True)
class _Read:
    """A part as the rules read it, with the index that literal prefilters look in."""

    where: str
    haystack: Haystack


def _impact_evidence(content: list[TextPart], thread: list[TextPart], rules: Rules) -> _Impact:
    """Symptoms found, and the exclusions that make the mail not service-impacting.

    Symptoms are read in the whole thread (a reply "any news?" is about the outage it quotes);
    everything that rejects, and every impact that overrules a reject, is read only in the
    sender's own words. The policy is the one written at the top of rules.toml.
    """
    # The thread starts with the content parts: fold each part once for every rule.
    read = [_Read(part.where, Haystack.of(part.text)) for part in thread]
    parts = read[: len(content)]

    def hits(kind: str) -> list[Evidence]:
        return [item for rule in rules.of_kind(kind) for item in _rule_matches(rule, parts)]

    symptoms = [item for rule in _sign_rules(rules) for item in _rule_matches(rule, read)]
    no_impact = hits("no_impact")
    labels = hits("priority_label")
    # Each exclusion is read first and its counter-sign only when it matched: most mails
    # name no test environment and no fix, and pay for neither list.
    non_production = hits("non_production")
    non_production = [] if non_production and hits("live") else non_production
    requests = hits("exclusion")
    resolved = _told_resolutions(parts, rules)
    resolved = [] if resolved and hits("ongoing") else resolved
    if not (no_impact or labels or non_production or requests or resolved):
        return _Impact(symptoms, [])  # nothing to overrule: the common mail reads no clauses
    reading = _Reading(parts, rules)
    # The mail itself says the problem is in a test environment: only impacts placed in
    # production (or exposures, which are incidents anywhere) overrule that.
    # The same holds when the sender says production or its users are unaffected.
    # ("The site is up" does not say production is unaffected: its data may still be lost.)
    elsewhere = any(rules.cues.unaffected.search(item.matched) for item in no_impact)
    elsewhere = elsewhere or len(non_production) >= 2
    elsewhere = elsewhere or any(item.where == "subject" for item in non_production)
    # "Nothing is live yet": an outage in that production has no users to hurt.
    prelaunch = any(rules.cues.prelaunch.search(item.matched) for item in no_impact)
    # Placed in a test environment and production said unaffected: "SERVICE DOWN" is that
    # environment's service; an outage counts only where its clause names production or users.
    outside = bool(non_production) and any(
        rules.cues.unaffected.search(item.matched) for item in no_impact
    )
    lasting, located, unlocated = reading.strong(elsewhere, prelaunch, outside)
    if lasting or located:
        # Strong impact beats an exclusion; only a lasting one (data, credentials, a breach)
        # also beats "resolved": an outage the sender says is over is over.
        beaten = [*no_impact, *labels, *non_production, *requests]
        if lasting or not resolved:
            return _Impact(symptoms, [], [*lasting, *located], [*beaten, *resolved])
        return _Impact(symptoms, resolved, [*located], [])
    # An outage sign not placed in production beats a request and a priority label, and a
    # passing mention of a test environment; not the sender's "live is fine".
    weak_env = len(non_production) < 2 and all(item.where != "subject" for item in non_production)
    beaten = [*labels, *requests, *(non_production if weak_env else [])] if unlocated else []
    if not unlocated and _chases_quoted_outage(requests, resolved, symptoms, rules):
        beaten = list(requests)  # "any news?" on a thread about a live outage: that outage
    excluded = [
        item for item in [*no_impact, *labels, *non_production, *resolved] if item not in beaten
    ]
    if requests and not beaten and reading.several_symptoms():
        beaten = list(requests)  # two problem words beat a request, shown as overruled (policy 5)
    elif requests and not beaten:
        excluded += requests
    doubts = reading.doubts() if excluded else []
    return _Impact(symptoms, excluded, unlocated[:3], beaten if not excluded else [], doubts)


def _chases_quoted_outage(
    requests: list[Evidence], resolved: list[Evidence], symptoms: list[Evidence], rules: Rules
) -> bool:
    """Only a request for news, on a thread whose quoted history reports an outage."""
    outage = {rule.name for rule in rules.of_kind("outage")}
    news = {"issue_status"}
    quoted = any(item.where == "quoted" and item.rule in outage for item in symptoms)
    return quoted and not resolved and bool(requests) and {i.rule for i in requests} <= news


class _Reading:
    """The sender's parts read clause by clause, only where some rule matched (see reading.py)."""

    def __init__(self, parts: list[_Read], rules: Rules) -> None:
        self._parts = parts
        self._rules = rules
        self._clauses: dict[int, list[Clause]] = {}
        self._doubted: list[Evidence] = []

    def strong(
        self, elsewhere: bool = False, prelaunch: bool = False, outside: bool = False
    ) -> tuple[list[Evidence], list[Evidence], list[Evidence]]:
        """Impacts stated as present: (lasting: an exposure, or data lost; located: money,
        liberty, or an outage whose clause names production or its users; unlocated: an outage
        sign whose clause does not say where). `elsewhere`: the mail places its problem in a
        test environment, so data and money impacts must name production to count.
        `prelaunch`: the mail says its service is not live yet, so no money impact is placed and
        an outage only when its clause names the people it hurts (exposures and data lost still
        are). `outside`: the mail places its problem in a test environment and says production
        is unaffected, so an outage must name production or its users, not just "the service"."""
        cues = self._rules.cues
        exposure = self._present("exposure", lasting=True)
        lasting = self._present("lasting_impact", lasting=True)
        present = self._present("present_impact")
        outages = self._present("outage") + self._present("work_stopped")
        placed = [i for i in [*lasting, *present] if not elsewhere or _located(i.clause, cues)]
        # Not live yet: only an outage or money impact whose clause names the people it hurts.
        placed = [i for i in placed if i in lasting or _hurts_users(i.clause, prelaunch, cues)]
        located = [
            i
            for i in outages
            if _located(i.clause, cues)
            and _hurts_users(i.clause, prelaunch, cues)
            and (not outside or _names_live(i.clause, cues))
        ]
        unlocated = [item for item in [*lasting, *present, *outages] if item not in placed]
        unlocated = [item for item in unlocated if item not in located]
        placed_lasting = [item for item in lasting if item in placed]
        placed_present = [item for item in present if item in placed]
        return [*exposure, *placed_lasting], [*placed_present, *located], unlocated

    def several_symptoms(self) -> bool:
        """Two different problem words in present clauses about a service or its users."""
        cues = self._rules.cues
        seen = {
            _REFUSED if refused_access(item.clause, cues) else item.matched.lower()
            for item in self._present("symptom", every=True)
        }
        return len(seen) >= _SYMPTOMS_OVER_EXCLUSION

    def doubts(self) -> list[Evidence]:
        """Impact words read but not as a present impact, and present symptoms that lost."""
        present = self._present("symptom")[:2] + self._present("outage")[:2]
        return (self._doubted + present)[:4]

    def _present(self, kind: str, lasting: bool = False, every: bool = False) -> list[Evidence]:
        found: list[Evidence] = []
        for rule in self._rules.of_kind(kind):
            for item in self._rule_reads(rule, lasting, every):
                if item not in found:
                    found.append(item)
        return found

    def _rule_reads(self, rule: Rule, lasting: bool, every: bool) -> list[Evidence]:
        found = []
        for n in rule.index.candidates(part.haystack for part in self._parts):
            pattern, needles, starts = rule.patterns[n], rule.needles[n], rule.starts[n]
            for index, part in enumerate(self._parts):
                for match in part.haystack.finditer(pattern, needles, starts):
                    item = self._judge(rule, index, match, lasting)
                    if item is not None:
                        found.append(item)
                        if not every:
                            break
        return found

    def _judge(
        self, rule: Rule, index: int, match: re.Match[str], lasting: bool
    ) -> Evidence | None:
        """Evidence of a present impact, or None (noting a negated or hypothetical one)."""
        part = self._parts[index]
        clause = clause_at(self._clauses_of(index), match.start())
        state = state_of(clause, match.start(), lasting, self._rules.cues)
        item = Evidence(rule.name, match.group(0)[:_SNIPPET], part.where, None, clause.shown)
        if state is State.PRESENT:
            return item
        if state in _DOUBTED_STATES and rule.kind != "symptom":
            doubted = Evidence(
                f"{rule.name} ({state.value})", item.matched, part.where, None, clause.shown
            )
            if doubted not in self._doubted:
                self._doubted.append(doubted)
        return None

    def _clauses_of(self, index: int) -> list[Clause]:
        if index not in self._clauses:
            self._clauses[index] = clauses(self._parts[index].haystack.text, self._rules.cues)
        return self._clauses[index]


_REFUSED = "(the sender's access refused)"  # every problem word of such clauses, counted once
_DOUBTED_STATES = (State.NEGATED, State.HYPOTHETICAL, State.SCHEDULED)


def _hurts_users(clause: str, prelaunch: bool, cues: Cues) -> bool:
    """Before launch, a clause must name the people hurt; otherwise any placement stands."""
    return not prelaunch or bool(cues.users.search(clause))


def _names_live(clause: str, cues: Cues) -> bool:
    """The clause names production or the people a live service serves (not "the service")."""
    return bool(cues.production.search(clause) or cues.users.search(clause))


def _located(clause: str, cues: Cues) -> bool:
    """The clause names production, the public or the people a live service serves."""
    return bool(cues.production.search(clause) or cues.people.search(clause))


def _told_resolutions(parts: list[_Read], rules: Rules) -> list[Evidence]:
    """Resolutions the sender tells, not the ones a sentence waits for ("until it's fixed")."""

    def told(part: _Read, match: re.Match[str]) -> bool:
        return not awaited(part.haystack.text, match.start(), match.end(), rules.cues)

    return [item for rule in rules.of_kind("resolved") for item in _rule_matches(rule, parts, told)]


def _rule_matches(
    rule: Rule, parts: list[_Read], keep: Callable[[_Read, re.Match[str]], bool] | None = None
) -> list[Evidence]:
    """The first match (that `keep` keeps) of each of the rule's patterns, at most one evidence
    per pattern."""
    found = []
    for n in rule.index.candidates(part.haystack for part in parts):
        pattern, needles, starts = rule.patterns[n], rule.needles[n], rule.starts[n]
        for part in parts:
            match = part.haystack.search(pattern, needles, starts)
            if match and keep is not None and not keep(part, match):
                matches = part.haystack.finditer(pattern, needles, starts)
                match = next((m for m in matches if keep(part, m)), None)
            if match:
                item = Evidence(rule.name, match.group(0)[:_SNIPPET], part.where, rule.reason)
                if item not in found:
                    found.append(item)
                break
    return found[:3]


def _sign_rules(rules: Rules) -> tuple[Rule, ...]:
    """Outage and symptom rules, each kind in file order, outage first (as evidence lists them)."""
    return tuple(rule for kind in SIGN_KINDS for rule in rules.of_kind(kind))


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
# "*.example.org" and "3,100 bookings" continue a sentence; "* item" and "1. item" start a list.
_WRAPPED = re.compile(
    r"(?<=[^\s.!?:;])[ \t]*\n[ \t]*(?=[^\s>*\u2022\d-]|\*[^\s*]|\d+(?![\d.)]*[.)]\s))"
)


def _unwrap(text: str) -> str:
    """Sentences joined back across the sender's line wrapping, so phrases match whole."""
    return _WRAPPED.sub(" ", text.translate(_QUOTES))


def _thread_parts(mail: ParsedMail, content: list[TextPart]) -> list[TextPart]:
    """The sender's words, then the earlier messages they quote."""
    quoted = TextPart("quoted", _unwrap(mail.body.quoted[:_RULE_TEXT_CHARS]))
    return [*content, quoted] if quoted.text else content


_REVIEW_RULE = "incident_review"


def _earlier_matter_over(impact: _Impact, rules: Rules, content: list[TextPart]) -> bool:
    """The sender's words say the thread's matter is over and ask something new: a review of it,
    or another request ("thanks, fine since; separately, could you ..."), or close it ("nothing
    else needed"). A bare "thanks, that's fixed it" stays on the thread's channel."""
    over = {rule.name for rule in rules.of_kind("resolved")}
    own = [item for item in impact.excluded if item.where != "quoted"]
    ended = any(item.rule in over for item in own)
    new_ask = any(item.rule == _REVIEW_RULE or item.rule not in over for item in own)
    return ended and (new_ask or any(_CLOSED_MATTER.search(part.text) for part in content))


# The sender closes the matter, asking nothing more: "all fixed now … Nothing else needed
# tonight, we'll write it up next week", "Write-up to follow on the ticket". The thread's
# channel is then not where to talk.
_CLOSED_MATTER = re.compile(
    r"\b(nothing (else|more|further) (is |was )?(needed|required)|no (further|more) action"
    r"|(you )?can close (this|it|the (ticket|incident|channel))"
    r"|(we['\u2019]ll|we will|i['\u2019]ll|i will) write (it|this|that) up"
    r"|write-?up (to follow|will follow|coming))\b",
    re.IGNORECASE,
)


# Quoted and bounced material a machine sent back, or the history of a matter the sender says is
# over, is not where the sender asks to talk now.
_MACHINE_COPIES = frozenset({"forwarded", "quoted"})


# A machine's subject that only echoes the mail it answers ("Automatic reply: …", "Undeliverable:
# Re: …"): the channel in it is the other mail's, as in a bounced copy. A list's own copy
# ("[list] CICA apply DOWN - #x") is not an echo.
_ECHO_SUBJECT = re.compile(r"^\s*(re|aw|sv|antw|fw|fwd)\s*:", re.IGNORECASE)


def _echoed_subject(mail: ParsedMail, automated: list[Evidence]) -> bool:
    answers = any(item.rule == "auto_subject" for item in automated)
    return answers or bool(automated and _ECHO_SUBJECT.match(mail.subject))


# A list digest's post, under its author's line ("Dan Price <dan.price@x.gov.uk>: Nov 30 06:41AM"):
# a copy of another person's message, as a bounced or quoted one is.
_POST_AUTHOR = re.compile(r"^[^\n<>@]{1,80}<[^\s<>@]+@[^\s<>]+>:[^\n]{0,40}\b\d{1,2}:\d{2}", re.M)


def _channel_parts(mail: ParsedMail, automated: list[Evidence], over: bool) -> list[TextPart]:
    body = mail.body
    dropped = set(_MACHINE_COPIES) if automated else {"quoted"} if over else set()
    if _echoed_subject(mail, automated):
        dropped.add("subject")
    post = _POST_AUTHOR.search(body.new) if automated else None
    parts = [
        TextPart("new", body.new[: post.start()] if post else body.new),
        TextPart("subject", mail.subject),
        TextPart("forwarded", body.forwarded),
        TextPart("quoted", body.quoted),
        TextPart("signature", body.signature),
    ]
    kept = [part for part in parts if part.where not in dropped]
    return [TextPart(part.where, part.text.translate(_QUOTES)) for part in kept]


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
appreciate appreciated really already escalation escalations severity emergency attention
respond response callback mobile number straight away
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
