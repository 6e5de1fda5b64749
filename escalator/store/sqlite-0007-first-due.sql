-- Schema version 7 (issue 14.6): an action's first due time, which a retry never moves, so the
-- outbox's age and "pages failing for N s" are measured from when the work was first due.

ALTER TABLE actions ADD COLUMN first_due_at TEXT;

UPDATE actions SET first_due_at = due_at;
