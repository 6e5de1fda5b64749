-- Schema version 3 (conversations): what the dispatcher must remember across restarts and
-- replicas. `reply_guard` holds, per lowercase address, the reject reply that took the address's
-- 10-minute slot (the RFC 3834 loop guard); `actions_by_key` finds the first alarm of a
-- conversation, whose Slack ts a follow-up's alarm threads under.

CREATE TABLE reply_guard (
    address TEXT PRIMARY KEY,
    action_id INTEGER NOT NULL,
    replied_at TEXT NOT NULL
);

CREATE INDEX reply_guard_age ON reply_guard (replied_at);
CREATE INDEX actions_by_key ON actions (dedup_key, id);
