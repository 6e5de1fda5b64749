"""`escalator serve`: run the SMTP listener and the workers until SIGTERM; with
ESCALATOR_WORKERS > 1, that many worker processes under a supervisor (escalator/supervisor.py)."""

from __future__ import annotations

import argparse
import asyncio

from escalator.logs import configure_logging
from escalator.settings import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="accept mail over SMTP and process it")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_format)
    if settings.workers > 1:
        from escalator.supervisor import Supervisor

        return Supervisor(settings, settings.workers).run()
    from escalator import app

    asyncio.run(app.serve(settings))
    return 0
