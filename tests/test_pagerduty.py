"""escalator.outbox.pagerduty against the HTTPS Events API stand-in: one attempt per call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standins.incidents import incident
from standins.pagerduty import PagerDutyStandIn

from escalator.core import render
from escalator.core.retry import Refused, RetryLater
from escalator.errors import ConfigError, TransientError
from escalator.outbox.pagerduty import PagerDuty


@pytest.fixture
async def pd(tmp_path: Path) -> AsyncIterator[PagerDutyStandIn]:
    async with PagerDutyStandIn(tmp_path) as standin:
        yield standin


def client(pd: PagerDutyStandIn, key: str | None = None, timeout: float = 5.0) -> PagerDuty:
    return PagerDuty(key or pd.routing_key, pd.url, pd.ca_file, timeout=timeout)


def event(key: str = "root-1@example.gov.uk") -> dict[str, object]:
    return render.pagerduty_event(incident(dedup_key=key), "http://127.0.0.1:8025/mails/1")


async def test_rendered_event_passes_the_documented_contract(pd: PagerDutyStandIn) -> None:
    """A rendered trigger is accepted (202) over verified TLS and its dedup_key comes back."""
    result = await client(pd).send(event())
    assert result == {"dedup_key": "root-1@example.gov.uk"}
    assert pd.received[-1].status == 202 and pd.received[-1].errors == []
    assert pd.received[-1].body["routing_key"] == pd.routing_key


async def test_same_dedup_key_is_one_incident(pd: PagerDutyStandIn) -> None:
    """Two triggers with one dedup_key update one incident instead of opening two."""
    await client(pd).send(event())
    await client(pd).send(event())
    assert list(pd.incidents) == ["root-1@example.gov.uk"]


async def test_429_is_one_attempt_with_retry_after(pd: PagerDutyStandIn) -> None:
    """A 429 is not retried inside the client: it comes back at once with Retry-After."""
    pd.script("429")
    with pytest.raises(RetryLater) as caught:
        await client(pd).send(event())
    assert caught.value.retry_after == 30.0
    assert len(pd.received) == 1


@pytest.mark.parametrize("fault", ["500", "503", "reset"])
async def test_server_errors_and_resets_are_transient_after_one_request(
    pd: PagerDutyStandIn, fault: str
) -> None:
    """5xx and a dropped connection raise RetryLater after exactly one request."""
    pd.script(fault)
    with pytest.raises(RetryLater):
        await client(pd).send(event())
    assert len(pd.received) == 1


async def test_timeout_is_transient(pd: PagerDutyStandIn) -> None:
    """A server that never answers yields RetryLater once the client timeout passes."""
    pd.script("timeout")
    with pytest.raises(TransientError):
        await client(pd, timeout=0.5).send(event())


async def test_invalid_event_is_refused_not_retried(pd: PagerDutyStandIn) -> None:
    """A 400 from the API (here: a bad routing key) is permanent."""
    with pytest.raises(Refused):
        await client(pd, key="wrong-key").send(event())
    assert pd.received[-1].status == 400


async def test_untrusted_certificate_is_refused(pd: PagerDutyStandIn) -> None:
    """Without the CA file the stand-in's certificate is not trusted: no event leaves."""
    with pytest.raises(RetryLater):
        await PagerDuty(pd.routing_key, pd.url, None, timeout=2).send(event())
    assert pd.received == []


def test_http_url_is_a_config_problem(tmp_path: Path) -> None:
    """A non-https Events URL is a configuration error at construction."""
    with pytest.raises(ConfigError, match="https"):
        PagerDuty("k", "http://127.0.0.1:1", None)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"summary": "x" * 1025}, "payload.summary"),
        ({"severity": "sev1"}, "payload.severity"),
        ({"source": ""}, "payload.source"),
        ({"timestamp": "yesterday"}, "payload.timestamp"),
    ],
)
async def test_standin_refuses_what_pagerduty_would(
    pd: PagerDutyStandIn, change: dict[str, object], error: str
) -> None:
    """The stand-in is strict: an over-long summary, an unknown severity, an empty source or
    a bad timestamp is a 400 naming the field, so a passing test means a valid event."""
    bad = event()
    bad["payload"] = {**bad["payload"], **change}  # type: ignore[dict-item]
    with pytest.raises(Refused):
        await client(pd).send(bad)
    assert pd.received[-1].status == 400
    assert any(error in item for item in pd.received[-1].errors)


async def test_standin_refuses_an_over_long_dedup_key(pd: PagerDutyStandIn) -> None:
    """dedup_key over 255 characters is invalid."""
    with pytest.raises(Refused):
        await client(pd).send(event(key="k" * 256))
