"""Ingress benchmark: durable accepts per second against a no-op aiosmtpd server, same run.

    .venv/bin/python bench/bench_ingress.py [--quick | --memory | --cores [--workers N]]

For 1 and 20 sessions and 2 KB and 100 KB mails, Postfix's smtp-source (one connection per
mail, like real MTAs) pushes mails into (a) a no-op aiosmtpd server that answers 250 and keeps
nothing, (b) the ingress half of the service (SMTP + SQLite WAL with fsync per group commit +
decide worker), and (c) the whole `escalator serve` (plus dispatcher and review page). It prints
mails/s for each and the ratios to (a), the decide backlog when the load ends (and how long it
takes to clear), and the RSS of `escalator serve` (alone, and with its decide children) before,
at the peak of and after 20 sessions each sending a 10 MB mail. Then (alone with --cores) a
second table: the whole `escalator serve` as one process and with ESCALATOR_WORKERS=N (default
2), each against the no-op server in the same rounds: medians of 3 rounds of 3 s.
Bounded to a few minutes. Needs smtp-source (Debian package postfix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
CASES = ((1, 2_000), (20, 2_000), (1, 100_000), (20, 100_000))
TARGET_SECONDS = 1.0  # per measured run, after a calibration run
REPEATS = 2
DRAIN_SECONDS = 2.0  # how long to watch the decide backlog shrink after a run
SETTLE_SECONDS = 2.0  # before the idle and after the burst figures of the memory run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the baseline: a no-op aiosmtpd server ----------------------------------------------------


def run_noop_server(port: int) -> None:
    """aiosmtpd with a handler that keeps nothing: the ceiling for any aiosmtpd-based server."""
    from aiosmtpd.smtp import SMTP

    class Noop:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd hook name
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Noop(), hostname="bench", ident="noop", data_size_limit=None),
            "127.0.0.1",
            port,
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- servers under test -----------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    db: Path | None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def start_noop() -> Server:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--noop-server", str(port)])
    wait_listening(port, proc)
    return Server(proc, port, None)


def run_ingress_only(port: int, data_dir: str) -> None:
    """The ingress half of `escalator serve`: SMTP, store and decide worker, no dispatch/web."""
    from escalator.app import Service
    from escalator.settings import Settings

    async def main() -> None:
        settings = Settings(data_dir=Path(data_dir), smtp_listen=f"127.0.0.1:{port}",
                            max_connections=200, max_connections_per_client=100)  # fmt: skip
        service = Service(settings, with_dispatch_and_web=False)
        await service.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await service.stop(deadline=5)

    asyncio.run(main())


def start_ingress(data_dir: Path) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--ingress-server", str(port), str(data_dir)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wait_listening(port, proc)
    return Server(proc, port, data_dir / "escalator.db")


def start_escalator(data_dir: Path, workers: int = 1) -> Server:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")},
        "PYTHONPATH": str(REPO),
        "ESCALATOR_DATA_DIR": str(data_dir),
        "ESCALATOR_SMTP_LISTEN": f"127.0.0.1:{port}",
        "ESCALATOR_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "ESCALATOR_MAX_CONNECTIONS": "200",
        "ESCALATOR_MAX_CONNECTIONS_PER_CLIENT": "100",
        "ESCALATOR_WORKERS": str(workers),
    }
    log_path = data_dir.parent / f"serve-{data_dir.name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "escalator", "serve"], env=env, stdout=log, stderr=log
        )
    wait_listening(port, proc)
    if workers > 1:  # the socket answers once one worker listens: wait for all of them
        wait_logged(log_path, b"acceptor processes", proc)
    return Server(proc, port, data_dir / "escalator.db")


def wait_logged(path: Path, text: bytes, proc: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + 60
    while text not in path.read_bytes():
        if proc.poll() is not None or time.monotonic() > give_up:
            raise SystemExit("server never said it was ready")
        time.sleep(0.1)


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.recv(100)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server never listened")


# -- load -------------------------------------------------------------------------------------


def push(port: int, sessions: int, size: int, count: int) -> float:
    """Send `count` mails of `size` bytes over `sessions` parallel sessions; return mails/s."""
    started = time.perf_counter()
    subprocess.run(
        [SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(size),
         "-f", "bench@example.org", "-t", "escalations@localhost", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return count / (time.perf_counter() - started)


def calibrate(port: int, sessions: int, size: int, seconds: float = TARGET_SECONDS) -> int:
    """How many mails make a run of about `seconds` against this server."""
    rate = push(port, sessions, size, max(sessions * 2, 20))
    return max(sessions * 2, int(rate * seconds))


def best_rates(servers: list[Server], sessions: int, size: int) -> list[float]:
    """Runs taken in turns, best of REPEATS per server: the machine is shared, and the least
    disturbed run is the one that measures the server rather than its neighbours."""
    counts = [calibrate(server.port, sessions, size) for server in servers]
    best = [0.0] * len(servers)
    for _ in range(REPEATS):
        for i, server in enumerate(servers):
            best[i] = max(best[i], push(server.port, sessions, size, counts[i]))
    return best


def backlog(db: Path) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM mails WHERE verdict IS NULL").fetchone()[0])


def decide_rate(db: Path, left: int, limit: float = DRAIN_SECONDS) -> float:
    """Decisions per second while the backlog drains (watched for at most `limit` seconds)."""
    started = time.perf_counter()
    now_left = left
    while now_left and time.perf_counter() - started < limit:
        time.sleep(0.1)
        now_left = backlog(db)
    return (left - now_left) / (time.perf_counter() - started)


def median_rates(servers: list[Server], sessions: int, size: int, rounds: int) -> list[list[float]]:
    """`rounds` runs per server, taken in turns (a round measures every server once); the
    rates per round, so ratios can be taken within a round (the same minute of a shared
    machine) before their median. Runs of CORES_SECONDS: a second is too short to outlast a
    neighbour's burst on a shared machine."""
    counts = [calibrate(server.port, sessions, size, CORES_SECONDS) for server in servers]
    return [
        [push(s.port, sessions, size, count) for s, count in zip(servers, counts, strict=True)]
        for _ in range(rounds)
    ]


# -- several worker processes (ESCALATOR_WORKERS) ---------------------------------------------

CORES_CASES = ((1, 2_000), (20, 2_000), (20, 100_000))
CORES_ROUNDS = 3
CORES_SECONDS = 3.0


def report_cores(tmp: Path, workers: int, rounds: int = CORES_ROUNDS) -> None:
    """The whole `escalator serve` with one process and with `workers`, against the no-op
    server in the same rounds: medians of `rounds` rates and of the per-round ratios."""
    print(f"whole serve, 1 process vs ESCALATOR_WORKERS={workers}: median of {rounds} rounds, "
          "ratio = median of the per-round ratios to the no-op")  # fmt: skip
    print(f"{'sessions':>8} {'size':>7} {'no-op':>7} {'serve':>7} {'ratio':>6} "
          f"{'serve x' + str(workers):>8} {'ratio':>6}")  # fmt: skip
    for n, (sessions, size) in enumerate(CORES_CASES):
        servers = [start_noop(), start_escalator(tmp / f"c1-{n}"),
                   start_escalator(tmp / f"c{workers}-{n}", workers)]  # fmt: skip
        try:
            rounds_ = median_rates(servers, sessions, size, rounds)
        finally:
            for server in servers:
                server.stop()
        noop, one, many = (statistics.median(r[i] for r in rounds_) for i in range(3))
        ratio_one = statistics.median(r[1] / r[0] for r in rounds_)
        ratio_many = statistics.median(r[2] / r[0] for r in rounds_)
        print(f"{sessions:>8} {size // 1000:>5}KB {noop:>7.0f} {one:>7.0f} {ratio_one:>6.2f} "
              f"{many:>8.0f} {ratio_many:>6.2f}")  # fmt: skip


# -- memory -----------------------------------------------------------------------------------


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """The processes `pid` started (the decide children, multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue  # gone meanwhile
        if stat and int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_rss_kib(pid: int) -> int:
    """RSS of `pid` and its children, summed (shared pages counted in each)."""
    total = 0
    for member in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            total += rss_kib(member)
    return total


def peak_rss_under_big_mails(data_dir: Path, sessions: int = 20, size: int = 10_000_000) -> str:
    server = start_escalator(data_dir)
    time.sleep(SETTLE_SECONDS)  # the decide children finish starting: idle means idle
    before, tree_before = rss_kib(server.proc.pid), tree_rss_kib(server.proc.pid)
    peak, tree_peak = [before], [tree_before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(server.proc.pid))
            tree_peak[0] = max(tree_peak[0], tree_rss_kib(server.proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rate = push(server.port, sessions, size, sessions)
    started = time.perf_counter()
    while server.db and backlog(server.db) and time.perf_counter() - started < 30:
        time.sleep(0.1)
    drain = time.perf_counter() - started
    time.sleep(SETTLE_SECONDS)  # memory handed back after the burst, if it is
    done.set()
    sampler.join()
    after, tree_after = rss_kib(server.proc.pid), tree_rss_kib(server.proc.pid)
    hwm = rss_kib(server.proc.pid, "VmHWM")
    server.stop()
    return (
        f"RSS with {sessions} concurrent {size / 1e6:.0f} MB mails: idle {before / 1024:.0f} MiB, "
        f"peak {max(peak[0], hwm) / 1024:.0f} MiB, after {after / 1024:.0f} MiB "
        f"({rate:.1f} mails/s, decided {drain:.1f} s after the last 250)\n"
        f"the same, serve and its decide children together: idle {tree_before / 1024:.0f} MiB, "
        f"peak {tree_peak[0] / 1024:.0f} MiB, after {tree_after / 1024:.0f} MiB"
    )


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noop-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ingress-server", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="skip the 10 MB memory run")
    parser.add_argument("--memory", action="store_true", help="only the 10 MB memory run")
    parser.add_argument(
        "--cores", action="store_true", help="only the several-worker-processes table"
    )
    parser.add_argument("--workers", type=int, default=2, help="ESCALATOR_WORKERS of that table")
    args = parser.parse_args()
    if args.noop_server:
        run_noop_server(args.noop_server)
        return
    if args.ingress_server:
        run_ingress_only(int(args.ingress_server[0]), args.ingress_server[1])
        return
    if not Path(SMTP_SOURCE).exists():
        raise SystemExit("smtp-source not found: apt-get install postfix")
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        if args.memory:
            print(peak_rss_under_big_mails(Path(tmp) / "var-big"))
            return
        if not args.cores:
            report(Path(tmp), quick=args.quick)
        report_cores(Path(tmp), args.workers)


def report(tmp: Path, quick: bool) -> None:
    print("mails/s accepted (smtp-source, one connection per mail); backlog = undecided at the end")
    print(f"{'sessions':>8} {'size':>7} {'no-op':>7} {'ingress':>8} {'ratio':>6} {'serve':>7} "
          f"{'ratio':>6}  undecided at the end, then decided/s: ingress / serve")  # fmt: skip
    for n, (sessions, size) in enumerate(CASES):
        servers = [start_noop(), start_ingress(tmp / f"ingress{n}"), start_escalator(tmp / f"s{n}")]
        try:
            baseline, ingress, serve = best_rates(servers, sessions, size)
            (left_i, pace_i), (left_s, pace_s) = (pace(server) for server in servers[1:])
        finally:
            for server in servers:
                server.stop()
        print(
            f"{sessions:>8} {size // 1000:>5}KB {baseline:>7.0f} {ingress:>8.0f} "
            f"{ingress / baseline:>6.2f} {serve:>7.0f} {serve / baseline:>6.2f}  "
            f"{left_i}, {pace_i:.0f}/s / {left_s}, {pace_s:.0f}/s"
        )
    if not quick:
        print(peak_rss_under_big_mails(tmp / "var-big"))


def pace(server: Server) -> tuple[int, float]:
    """(undecided now, decisions/s while that backlog drains)."""
    assert server.db is not None
    left = backlog(server.db)
    return left, decide_rate(server.db, left)


if __name__ == "__main__":
    main()
