"""Decision time for 2 KB, 50 KB and 5 MB mails, against mail-parser's bare parse of the same mail.

Run: .venv/bin/python bench/bench_decide.py
Prints, per mail, the median of N runs of (a) mailparser.parse_from_bytes and (b) the whole
decision (parse + triage + routing), their ratio and decisions per second on one core; then the
mean over the labelled samples. No timed asserts: figures for the notes.
"""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import mailparser

from escalator.core.decide import decide
from escalator.policy import load_policy
from escalator.settings import Settings

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "samples"
AT = datetime(2026, 11, 28, 21, tzinfo=UTC)
LOG_LINE = "2026-11-28T20:59:59Z ERROR Faraday::ConnectionFailed: Failed to open TCP connection\n"


def text_mail(size: int) -> bytes:
    """The easy sample with a pasted log that makes it `size` bytes long."""
    head = (SAMPLE / "005-ccq-results-500.eml").read_bytes()
    lines = LOG_LINE * (max(0, size - len(head)) // len(LOG_LINE) + 1)
    return head + b"\nLogs:\n" + lines.encode()[: max(0, size - len(head))]


def attachment_mail(size: int) -> bytes:
    """A short incident report with a base64 attachment making it `size` bytes long."""
    blob = base64.encodebytes(bytes(range(256)) * (size * 3 // 4 // 256 + 1))[:size].decode()
    return (
        "From: Ravi <ravi@example.org>\r\nTo: escalations@localhost\r\nSubject: Checkout down\r\n"
        "Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
        "Checkout returns 500 for every user since 10:00. Slack: #shop-incident\r\n--b\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="dump.bin"\r\n\r\n{blob}\r\n--b--\r\n'
    ).encode()


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def row(label: str, raw: bytes, runs: int, decide_once: Callable[[bytes], object]) -> None:
    bare = median_seconds(lambda: mailparser.parse_from_bytes(raw), runs)
    full = median_seconds(lambda: decide_once(raw), runs)
    print(
        f"{label:<24}{len(raw):>10}{bare * 1e3:>11.2f}{full * 1e3:>11.2f}"
        f"{full / bare:>8.2f}{1 / full:>9.0f}"
    )


def samples_mean(decide_once: Callable[[bytes], object], rounds: int) -> None:
    """Mean over the samples of each one's median: the mix a real inbox sees, not one shape."""
    raws = [path.read_bytes() for path in sorted(SAMPLE.glob("*.eml"))]
    bare = statistics.mean(
        median_seconds(partial(mailparser.parse_from_bytes, raw), rounds) for raw in raws
    )
    full = statistics.mean(median_seconds(partial(decide_once, raw), rounds) for raw in raws)
    label = f"{len(raws)} samples (mean)"
    size = sum(map(len, raws)) // len(raws)
    print(
        f"{label:<24}{size:>10}{bare * 1e3:>11.2f}{full * 1e3:>11.2f}"
        f"{full / bare:>8.2f}{1 / full:>9.0f}"
    )


def main() -> None:
    policy = load_policy(Settings())

    def decide_once(raw: bytes) -> object:
        return decide(raw, AT, policy)

    print(f"{'mail':<24}{'bytes':>10}{'parse ms':>11}{'decide ms':>11}{'ratio':>8}{'dec/s':>9}")
    for label, raw, runs in [
        ("2 KB text", text_mail(2_000), 200),
        ("50 KB text", text_mail(50_000), 30),
        ("50 KB attachment", attachment_mail(50_000), 30),
        ("5 MB text", text_mail(5_000_000), 5),
        ("5 MB attachment", attachment_mail(5_000_000), 5),
    ]:
        row(label, raw, runs, decide_once)
    samples_mean(decide_once, 20)


if __name__ == "__main__":
    main()
