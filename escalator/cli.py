"""The `escalator` command. The only place that turns outcomes into exit codes.

Each subcommand is a small function taking the parsed arguments and returning an exit code;
`main` maps escalator's errors to a one-line message and status 2 (usage/config) or 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from escalator.errors import ConfigError, EscalatorError

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="escalator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(commands)
    return parser


def _register_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from escalator import cli_check

    cli_check.register(commands)


_REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _register_check,
]


def _register_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from escalator import cli_serve

    cli_serve.register(commands)


def _register_list(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from escalator import cli_list

    cli_list.register(commands)


_REGISTRARS += [_register_serve, _register_list]


def _register_review(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from escalator import cli_review

    cli_review.register(commands)


_REGISTRARS += [_register_review]


def _register_probe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from escalator import cli_probe

    cli_probe.register(commands)


_REGISTRARS += [_register_probe]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"escalator: configuration error: {exc}", file=sys.stderr)
        return 2
    except EscalatorError as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
