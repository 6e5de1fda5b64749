-- Schema version 10 (issue 16, storms): per storm key (sender + normalised subject, or thread),
-- the first mail of the storm open inside the window, its thread root (the page's dedup key) and
-- how many mails joined it. Rows older than a day are deleted as new mails join.

CREATE TABLE storms (
    key TEXT PRIMARY KEY,
    first_mail_id INTEGER NOT NULL,
    root TEXT NOT NULL,
    first_at TEXT NOT NULL,
    count INTEGER NOT NULL
);

CREATE INDEX storms_age ON storms (first_at);
