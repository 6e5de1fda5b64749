-- PostgreSQL's own version of the store's queries whose SQL differs (format: store/queries.py).
-- A list parameter is bound as an array and read with ANY.

-- incident_states_of --
-- The incident states of these mails (:mail_ids, a list).
SELECT mail_id, state FROM incident_states WHERE mail_id = ANY(:mail_ids)

-- marks_in --
-- Which of these marks (:marks, a list) are set.
SELECT mark FROM loop_marks WHERE mark = ANY(:marks)

-- claim_due --
-- Lease due pending actions until :until, counting the attempt. SKIP LOCKED: concurrent
-- claimers in other processes each get different rows. Fair (issue 12/16): pages first, then
-- each sender's oldest before anyone's second. A thread's notices (replies in one Slack
-- thread, mails about one escalation) go one at a time in receipt order: a notice is claimed
-- only when no earlier one of its kind and thread (by first due time = receipt, mail id, id)
-- is still pending, so a later one never overtakes it (side by side, on another replica, or
-- while it waits for a retry). That test is NOT EXISTS on the partial index
-- actions_pending_notices (postgres-0010), one probe per candidate: it stays linear in the
-- backlog whatever the planner thinks of the table (a window over every pending action, its
-- first form, was re-run per row on a table not yet analysed: 4-5.5 s for 1,200 actions).
-- `due` is MATERIALIZED for the same reason: computed once, never re-planned inside a loop.
WITH due AS MATERIALIZED (
    SELECT id, ctid AS version, kind, first_due_at, row_number() OVER (
        PARTITION BY kind, payload->>'from_addr' ORDER BY first_due_at, id
    ) AS turn
    FROM actions a
    WHERE state = 'pending' AND due_at <= :now
      AND (claimed_until IS NULL OR claimed_until <= :now)
      AND NOT (payload ? 'notice' AND EXISTS (
          SELECT FROM actions earlier
          WHERE earlier.state = 'pending' AND earlier.payload ? 'notice'
            AND earlier.kind = a.kind
            AND coalesce(earlier.payload->>'thread', '') = coalesce(a.payload->>'thread', '')
            AND (earlier.first_due_at, earlier.mail_id, earlier.id)
                < (a.first_due_at, a.mail_id, a.id)))),
picked AS (
    -- The conditions again on the locked row: under READ COMMITTED a row another claimer
    -- committed meanwhile is re-read and re-checked here (the CTE above saw the old version);
    -- without them both claimers would lease it, and a page would leave twice.
    SELECT a.id FROM due JOIN actions a ON a.ctid = due.version
    WHERE a.state = 'pending' AND a.due_at <= :now
      AND (a.claimed_until IS NULL OR a.claimed_until <= :now)
    ORDER BY due.kind <> 'page', due.turn, due.first_due_at, due.id LIMIT :limit
    FOR UPDATE OF a SKIP LOCKED)
UPDATE actions SET claimed_until = :until, attempts = attempts + 1, updated_at = :now
WHERE id IN (SELECT id FROM picked)
RETURNING *

-- renew_claims --
-- The dispatcher's heartbeat: a longer lease for these (:ids) claimed, still pending actions.
UPDATE actions SET claimed_until = :until
WHERE state = 'pending' AND claimed_until IS NOT NULL AND id = ANY(:ids)

-- release_claims --
-- Claimed actions (:ids) never started, handed back: no lease, the claim's attempt not counted.
UPDATE actions SET claimed_until = NULL, attempts = GREATEST(attempts - 1, 0), updated_at = :now
WHERE state = 'pending' AND id = ANY(:ids)

-- storm_row --
-- The storm a key names, locked: two replicas deciding one storm's mails take turns.
SELECT first_mail_id, root, first_at, count FROM storms WHERE key = :key FOR UPDATE

-- lock_digest --
-- Two replicas taking the same retry at once: the second waits here (until the first's commit),
-- then finds the first's mail.
SELECT pg_advisory_xact_lock(hashtextextended(:digest, 0))

-- lock_reply_address --
-- Two replicas granting replies to one address take turns (until the first's commit), so the
-- count and the insert of a grant (store/actions.py, _reply_slot) are one step.
SELECT pg_advisory_xact_lock(hashtextextended('reply:' || :address, 0))

-- insert_mail --
-- A mail as the SMTP session hands it over, committed before its 250.
INSERT INTO mails (received_at, mail_from, rcpt_tos, client_address, tls, message_id, subject,
                   from_addr, size, raw, content_digest)
VALUES (:received_at, :mail_from, :rcpt_tos, :client_address, :tls, :message_id, :subject,
        :from_addr, :size, :raw, :content_digest)
RETURNING id

-- mails_by_ids --
-- These mails (:ids, a list) with their raw bytes: a decide batch read at once (issue 16).
SELECT {mail_columns}, raw FROM mails WHERE id = ANY(:ids)
