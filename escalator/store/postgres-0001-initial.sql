-- PostgreSQL schema version 1: the same model as the SQLite store at its version 2 (mails with
-- raw bytes, envelope, decision and review state; the actions outbox; the audit trail).

CREATE TABLE mails (
    id BIGSERIAL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_tos JSONB NOT NULL,
    client_address TEXT,
    tls BOOLEAN NOT NULL DEFAULT FALSE,
    message_id TEXT,
    subject TEXT NOT NULL DEFAULT '',
    from_addr TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    decision JSONB,
    verdict TEXT CHECK (verdict IN ('escalate', 'reject')),
    reasons JSONB,
    slack_channel TEXT,
    "window" TEXT,
    decided_at TIMESTAMPTZ,
    review TEXT CHECK (review IN ('held', 'released', 'dismissed')),
    raw_purged_at TIMESTAMPTZ,
    raw BYTEA
);

CREATE INDEX mails_duplicate ON mails (message_id, mail_from, received_at)
    WHERE message_id IS NOT NULL;
CREATE INDEX mails_undecided ON mails (id) WHERE verdict IS NULL;
CREATE INDEX mails_review ON mails (review, id) WHERE review IS NOT NULL;
CREATE INDEX mails_received ON mails (received_at);

CREATE TABLE actions (
    id BIGSERIAL PRIMARY KEY,
    mail_id BIGINT NOT NULL REFERENCES mails (id),
    kind TEXT NOT NULL CHECK (kind IN ('page', 'alarm', 'ack', 'reply', 'review')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dry_run', 'failed', 'skipped')),
    due_at TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload JSONB NOT NULL,
    dedup_key TEXT NOT NULL,
    claimed_until TIMESTAMPTZ,
    result JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX actions_by_mail ON actions (mail_id);
CREATE INDEX actions_due ON actions (due_at) WHERE state = 'pending';

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    who TEXT NOT NULL,
    what TEXT NOT NULL,
    mail_id BIGINT REFERENCES mails (id),
    note TEXT
);

CREATE INDEX audit_by_mail ON audit (mail_id);
