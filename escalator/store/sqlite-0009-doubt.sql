-- Schema version 9 (issue 15, the doubt path): the "doubt" action kind, a notice that a held
-- reject may be an incident (alarm-channel post or low-urgency PagerDuty event). SQLite cannot
-- alter a CHECK, so `actions` is rebuilt with every column and index it has by now.

CREATE TABLE actions_v9 (
    id INTEGER PRIMARY KEY,
    mail_id INTEGER NOT NULL REFERENCES mails (id),
    kind TEXT NOT NULL CHECK (kind IN ('page', 'alarm', 'ack', 'reply', 'review', 'doubt')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dry_run', 'failed', 'skipped')),
    due_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    claimed_until TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    first_due_at TEXT
);

INSERT INTO actions_v9 SELECT id, mail_id, kind, state, due_at, attempts, last_error, payload,
    dedup_key, claimed_until, result, created_at, updated_at, first_due_at FROM actions;
DROP TABLE actions;
ALTER TABLE actions_v9 RENAME TO actions;

CREATE INDEX actions_by_mail ON actions (mail_id);
CREATE INDEX actions_due ON actions (due_at) WHERE state = 'pending';
CREATE INDEX actions_by_key ON actions (dedup_key, id);
