"""The `escalator` command. The only place that turns outcomes into exit codes.

Each subcommand lives in its own module (cli/*.py) with a `register(commands)` function that
adds its parser and handler; a handler returns an exit code. `main` maps escalator's errors to
a one-line message: status 2 for a usage or configuration error, 1 for any other failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from escalator.cli import check, handover, probe, replay, review, serve
from escalator.cli import list as list_command
from escalator.errors import ConfigError, EscalatorError

Command = Callable[[argparse.Namespace], int]

COMMAND_MODULES = (check, serve, list_command, review, replay, probe, handover)

DESCRIPTION = (
    "escalator: the SMTP server behind the escalation and critical-incident addresses. "
    "It stores each mail before answering 250, decides escalate or reject, pages on-call, "
    "alarms Slack, replies to the sender and holds rejects for review."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="escalator", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command = args.handler
    return reported(lambda: handler(args))


def reported(call: Callable[[], int]) -> int:
    """`call`'s exit status; escalator's errors said in one line, as status 2 or 1 (the
    supervisor's child processes end the same way)."""
    try:
        return call()
    except ConfigError as exc:
        print(f"escalator: configuration error: {exc}", file=sys.stderr)
        return 2
    except EscalatorError as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
