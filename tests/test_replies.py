"""escalator.outbox.relay against a real aiosmtpd sink: null sender, threading, TLS, faults."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from standins.incidents import envelope, incident
from standins.smtp_sink import SmtpSink

from escalator.core import render
from escalator.core.retry import Refused, RetryLater
from escalator.errors import ConfigError
from escalator.outbox.relay import Relay, load_template, parse_relay_url


def reply() -> tuple[EmailMessage, str]:
    sample = incident(
        mail_id=9,
        sender="ana@example.gov.uk",
        subject="Down\r\nBcc: victim@example.com",
        message_id="orig-9@example.gov.uk",
        references=("root@example.gov.uk",),
        window="support",
        page="none",
        alarm=True,
    )
    template = load_template("reply_escalated.txt.j2")
    return render.reply_message(sample, template, envelope()), "ana@example.gov.uk"


async def test_reply_is_sent_with_null_reverse_path_and_threading(sink: SmtpSink) -> None:
    """MAIL FROM:<>, one recipient, Auto-Submitted and References reach the relay intact."""
    message, to = reply()
    await Relay(parse_relay_url(sink.url)).send(message, to)
    (got,) = sink.delivered
    assert got.mail_from == "<>" and got.rcpt_tos == [to]
    assert got.message["Auto-Submitted"] == "auto-replied"
    assert got.message["In-Reply-To"] == "<orig-9@example.gov.uk>"
    assert got.message["References"] == "<root@example.gov.uk> <orig-9@example.gov.uk>"
    assert (
        got.message["Bcc"] is None and "support team has been alerted" in got.message.get_content()
    )


@pytest.mark.parametrize("mode", ["smtp+starttls", "smtps"])
async def test_tls_relays_with_auth(mode: str) -> None:
    """STARTTLS + AUTH and implicit TLS + AUTH both deliver, certificate verified."""
    with SmtpSink(mode) as sink:
        message, to = reply()
        await Relay(parse_relay_url(sink.url), tls=sink.client_tls).send(message, to)
        assert len(sink.delivered) == 1


async def test_wrong_password_is_refused() -> None:
    """A relay that rejects AUTH (535) is a permanent failure."""
    with SmtpSink("smtp+starttls") as sink:
        target = parse_relay_url(sink.url.replace("s3cret", "nope"))
        message, to = reply()
        with pytest.raises(Refused):
            await Relay(target, tls=sink.client_tls).send(message, to)


async def test_4xx_is_transient_and_5xx_permanent(sink: SmtpSink) -> None:
    """451 at DATA means retry later; 554 means the relay will never take it."""
    message, to = reply()
    relay = Relay(parse_relay_url(sink.url))
    sink.script("451 4.3.0 try later", "554 5.7.1 no")
    with pytest.raises(RetryLater):
        await relay.send(message, to)
    with pytest.raises(Refused):
        await relay.send(message, to)
    assert sink.delivered == []


async def test_relay_down_is_transient() -> None:
    """Nothing listening: RetryLater."""
    message, to = reply()
    with pytest.raises(RetryLater):
        await Relay(parse_relay_url("smtp://127.0.0.1:9"), timeout=2).send(message, to)


@pytest.mark.parametrize("url", ["http://u:hunter2@relay", "smtp://u:hunter2@", "hunter2:25"])
def test_bad_relay_url_is_a_config_error_without_echoing_it(url: str) -> None:
    """A malformed ESCALATOR_RELAY_URL is a ConfigError that never repeats its password."""
    with pytest.raises(ConfigError) as caught:
        parse_relay_url(url)
    assert "hunter2" not in str(caught.value)


def test_relay_url_defaults_and_credentials() -> None:
    """Ports default per scheme; user and password are URL-decoded."""
    target = parse_relay_url("smtp+starttls://me%40x:p%3Ass@mail.example:2587")
    assert (target.host, target.port, target.start_tls) == ("mail.example", 2587, True)
    assert (target.username, target.password) == ("me@x", "p:ss")
    assert parse_relay_url("smtps://h").port == 465 and parse_relay_url("smtp://h").port == 25
