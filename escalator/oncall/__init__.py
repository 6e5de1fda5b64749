"""The on-call loop (issue 11): PagerDuty's answers relayed to the reporter, unanswered
escalations chased, the one-hour reminder, and the handover digests."""
