-- PostgreSQL schema version 2 (conversations), as SQLite's version 3: `reply_guard` holds, per
-- lowercase address, the reject reply that took the address's 10-minute slot (the RFC 3834 loop
-- guard); `actions_by_key` finds the first alarm of a conversation (its Slack thread).

CREATE TABLE reply_guard (
    address TEXT PRIMARY KEY,
    action_id BIGINT NOT NULL,
    replied_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX reply_guard_age ON reply_guard (replied_at);
CREATE INDEX actions_by_key ON actions (dedup_key, id);
