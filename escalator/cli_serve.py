"""`escalator serve`: run the SMTP listener and the workers until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from escalator.settings import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="accept mail over SMTP and process it")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from escalator import app

    settings = load_settings()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    asyncio.run(app.serve(settings))
    return 0
