"""The outbox: carries out what was decided (dispatch.py), through PagerDuty (pagerduty.py), Slack
(slack.py) and the outgoing mail relay (relay.py)."""
