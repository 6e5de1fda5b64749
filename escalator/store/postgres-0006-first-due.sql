-- PostgreSQL schema version 6 (issue 14.6), as SQLite's version 7: an action's first due time,
-- which a retry never moves, so the outbox's age is measured from when the work was first due.

ALTER TABLE actions ADD COLUMN first_due_at TIMESTAMPTZ;

UPDATE actions SET first_due_at = due_at;
