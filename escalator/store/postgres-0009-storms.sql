-- PostgreSQL schema version 9 (issue 16, storms), as SQLite's version 10: per storm key (sender +
-- normalised subject, or thread), the storm's first mail, its thread root and the mails counted.

CREATE TABLE storms (
    key TEXT PRIMARY KEY,
    first_mail_id BIGINT NOT NULL,
    root TEXT NOT NULL,
    first_at TIMESTAMPTZ NOT NULL,
    count BIGINT NOT NULL
);

CREATE INDEX storms_age ON storms (first_at);
