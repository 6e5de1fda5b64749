"""`escalator replay ACTION_ID`: send a failed action again, with a fresh retry horizon.

For after an outage that outlasted the horizon (PagerDuty down for an hour: the page failed and
a "page manually" alarm went out). The action goes back to pending, due now; the running
service's dispatcher sends it with the same dedup key, so PagerDuty still sees one incident.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from escalator.cli.review import operator, with_store
from escalator.errors import PermanentError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser("replay", help="send a failed action again (audited)")
    replay.add_argument("action_id", type=int, metavar="ACTION_ID")
    replay.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    who = operator()
    action = with_store(
        lambda store, _: store.replay_action(args.action_id, who, datetime.now(UTC))
    )
    if action is None:
        raise PermanentError(
            f"action {args.action_id} is not a failed action (see `escalator list`); "
            "only failed actions are replayed"
        )
    print(f"action {action.id} ({action.kind} of mail {action.mail_id}) is due again now")
    return 0
