"""What a decision depends on besides the mail and the instant (`Policy`), and the contract's
routing table (`route`: verdict, cover window -> page, alarm). Pure, and reads no mail.

Apart from core/decide.py so that who only routes or holds a policy (the review page, the
outbox) loads neither the mail parser nor the decide worker (tests/test_boundaries.py).
escalator/policy.py builds a Policy from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from escalator.core.authenticity import TrustPolicy
from escalator.core.cover import CoverCalendar
from escalator.core.model import Page, Routing, Verdict, Window
from escalator.core.triage import TriagePolicy


@dataclass(frozen=True)
class Policy:
    """Everything a decision depends on besides the mail and the instant."""

    triage: TriagePolicy
    calendar: CoverCalendar
    trust: TrustPolicy = field(default_factory=TrustPolicy)


_ROUTES: dict[Window, tuple[Page, bool]] = {
    Window.SUPPORT: (Page.NONE, True),
    Window.SUPPORT_AND_ON_CALL: (Page.NOW, True),
    Window.ON_CALL: (Page.NOW, False),
    Window.NO_COVER: (Page.DEFERRED, True),
}


def route(verdict: Verdict, calendar: CoverCalendar, at: datetime) -> Routing:
    """The contract's routing table: escalations by window; rejects are never paged or alarmed."""
    window = calendar.window_at(at)
    if verdict is Verdict.REJECT:
        later = calendar.next_on_call_start(at) if window is Window.NO_COVER else None
        return Routing(window, Page.NONE, None, False, notice_at=later)
    page, alarm = _ROUTES[window]
    page_at = calendar.next_on_call_start(at) if page is Page.DEFERRED else None
    return Routing(window, page, page_at, alarm)
