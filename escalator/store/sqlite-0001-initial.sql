-- Schema version 1: mails (raw bytes + envelope + decision), the actions outbox, the audit trail.
-- Times are ISO-8601 UTC text with microseconds, so text order is time order.

CREATE TABLE mails (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_tos TEXT NOT NULL,            -- JSON list, as given at RCPT
    client_address TEXT,
    tls INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,                   -- without <>, NULL when the mail has none
    subject TEXT NOT NULL DEFAULT '',
    from_addr TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    decision TEXT,                     -- the decision contract JSON
    verdict TEXT CHECK (verdict IN ('escalate', 'reject')),
    reasons TEXT,                      -- JSON list
    slack_channel TEXT,
    window TEXT,
    decided_at TEXT,
    review TEXT CHECK (review IN ('held', 'released', 'dismissed')),
    raw BLOB                           -- last, so listings never read its overflow pages
);

CREATE INDEX mails_duplicate ON mails (message_id, mail_from, received_at)
    WHERE message_id IS NOT NULL;
CREATE INDEX mails_undecided ON mails (id) WHERE verdict IS NULL;

CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    mail_id INTEGER NOT NULL REFERENCES mails (id),
    kind TEXT NOT NULL CHECK (kind IN ('page', 'alarm', 'ack', 'reply')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dry_run', 'failed', 'skipped')),
    due_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload TEXT NOT NULL,             -- JSON object
    dedup_key TEXT NOT NULL,
    claimed_until TEXT,
    result TEXT,                       -- JSON object from the dispatcher
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX actions_by_mail ON actions (mail_id);
CREATE INDEX actions_due ON actions (due_at) WHERE state = 'pending';

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    what TEXT NOT NULL,
    mail_id INTEGER REFERENCES mails (id),
    note TEXT
);

CREATE INDEX audit_by_mail ON audit (mail_id);
