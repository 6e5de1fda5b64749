-- PostgreSQL schema version 10: the outbox claim reads a thread's earlier pending notice through
-- an index, whatever the table's statistics (claim_due in postgres-queries.sql). Without it, on
-- a table not yet analysed, the planner took the thread-order condition for a handful of rows
-- and re-ran the whole pending window once per row: 4-5.5 s for a 1,200-action backlog.
-- Autovacuum analyses the outbox after 2% of it changed (the default, 10%, lets a storm's
-- backlog build up unseen).

CREATE INDEX actions_pending_notices
    ON actions (kind, (coalesce(payload->>'thread', '')), first_due_at, mail_id, id)
    WHERE state = 'pending' AND payload ? 'notice';

ALTER TABLE actions SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
