-- Schema version 2 (support review): when a mail's raw body was purged, and the "review" action
-- kind (a post in the review channel). SQLite cannot alter a CHECK, so `actions` is rebuilt.

ALTER TABLE mails ADD COLUMN raw_purged_at TEXT;

CREATE TABLE actions_v2 (
    id INTEGER PRIMARY KEY,
    mail_id INTEGER NOT NULL REFERENCES mails (id),
    kind TEXT NOT NULL CHECK (kind IN ('page', 'alarm', 'ack', 'reply', 'review')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dry_run', 'failed', 'skipped')),
    due_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    claimed_until TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

INSERT INTO actions_v2 SELECT id, mail_id, kind, state, due_at, attempts, last_error, payload,
    dedup_key, claimed_until, result, created_at, updated_at FROM actions;
DROP TABLE actions;
ALTER TABLE actions_v2 RENAME TO actions;

CREATE INDEX actions_by_mail ON actions (mail_id);
CREATE INDEX actions_due ON actions (due_at) WHERE state = 'pending';
CREATE INDEX mails_review ON mails (review, id) WHERE review IS NOT NULL;
CREATE INDEX mails_received ON mails (received_at);
