-- PostgreSQL schema version 5 (issue 16), as SQLite's version 6: review sessions signed out
-- before they expire, by the digest of their cookie; deleted once they would have expired.

CREATE TABLE revoked_sessions (
    session_key TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
