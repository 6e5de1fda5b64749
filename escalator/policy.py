"""Loading the decision policy from settings: the rules file, the extra-holidays file, and
how far the From header is believed (the sender policy, the border MTA's authserv-id, and the
Public Suffix List that tells two domains of one organisation from two organisations).

This is the shell side of the core: it reads files and hands their text to pure parsers.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

from publicsuffixlist import PublicSuffixList

from escalator.core.authenticity import TrustPolicy
from escalator.core.cover import CoverCalendar, build_calendar, parse_extra_days
from escalator.core.model import SenderPolicy
from escalator.core.policy import Policy
from escalator.core.rules import parse_rules
from escalator.core.triage import TriagePolicy
from escalator.errors import ConfigError
from escalator.settings import Settings


def default_rules_text() -> str:
    return resources.files("escalator.core").joinpath("rules.toml").read_text(encoding="utf-8")


def load_policy(settings: Settings) -> Policy:
    """Build the Policy the worker and the CLI decide with; a bad file is a ConfigError."""
    if settings.rules_file is None:
        rules = parse_rules(default_rules_text(), "built-in rules.toml")
    else:
        rules = parse_rules(
            _read(settings.rules_file, "ESCALATOR_RULES_FILE"), str(settings.rules_file)
        )
    return Policy(
        triage=TriagePolicy(rules, settings.allowed_senders, settings.trusted_list_ids),
        calendar=load_calendar(settings),
        trust=load_trust(settings),
    )


def load_calendar(settings: Settings) -> CoverCalendar:
    """The cover calendar alone (the dispatcher says when support will look at a held mail)."""
    extra_days: frozenset[date] = frozenset()
    if settings.extra_holidays_file is not None:
        extra_days = parse_extra_days(
            _read(settings.extra_holidays_file, "ESCALATOR_EXTRA_HOLIDAYS_FILE"),
            str(settings.extra_holidays_file),
        )
    return build_calendar(settings.timezone, extra_days)


def load_trust(settings: Settings) -> TrustPolicy:
    """The sender policy; "enforce" with no border MTA to believe would hold every mail."""
    authserv_id = (settings.authserv_id or "").strip()
    if settings.sender_policy is SenderPolicy.ENFORCE and not (authserv_id or settings.verify_dkim):
        raise ConfigError(
            "ESCALATOR_SENDER_POLICY=enforce needs ESCALATOR_AUTHSERV_ID (the authserv-id of the "
            "border MTA whose Authentication-Results are believed) or ESCALATOR_VERIFY_DKIM: "
            "without either no mail is verified"
        )
    return TrustPolicy(settings.sender_policy, authserv_id, organisational_domain)


_PSL = PublicSuffixList()  # the list bundled with the package (about 60 ms to load, once)


def organisational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the registered domain under its public suffix; '' for a public suffix."""
    return str(_PSL.privatesuffix(domain.rstrip(".").lower()) or "")


def _read(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc}") from None
