"""Local stand-ins for the outside systems dispatch talks to, written to their documented APIs."""

from typing import Any


def wiring(pd: Any, slack: Any, relay_url: str) -> dict[str, Any]:
    """Setting overrides that point dispatch at the PagerDuty and Slack stand-ins and a relay."""
    return {
        "pagerduty_routing_key": pd.routing_key,
        "pagerduty_events_url": pd.url,
        "pagerduty_ca_file": pd.ca_file,
        "slack_bot_token": slack.token,
        "slack_api_url": slack.api_url,
        "relay_url": relay_url,
    }
