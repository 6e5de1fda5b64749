-- Schema version 6 (issue 16): review sessions signed out before they expire. A session cookie
-- is only as good as its signature and expiry until its digest is listed here; rows are
-- deleted once the session would have expired anyway.

CREATE TABLE revoked_sessions (
    session_key TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
