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
-- thread, mails about one escalation) go one at a time in receipt order: only the first still
-- pending of its kind and thread is claimed, so a later one never overtakes it (side by side,
-- on another replica, or while it waits for a retry).
WITH pending AS (
    SELECT id, kind, first_due_at, due_at, claimed_until, payload->>'from_addr' AS sender,
        payload ? 'notice' AS notice,
        row_number() OVER (
            PARTITION BY kind, payload ? 'notice', payload->>'thread'
            ORDER BY first_due_at, mail_id, id
        ) AS place
    FROM actions
    WHERE state = 'pending'),
due AS (
    SELECT id, kind, first_due_at, row_number() OVER (
        PARTITION BY kind, sender ORDER BY first_due_at, id
    ) AS turn
    FROM pending
    WHERE due_at <= :now AND (claimed_until IS NULL OR claimed_until <= :now)
      AND (NOT notice OR place = 1)),
picked AS (
    -- The conditions again on the locked row: under READ COMMITTED a row another claimer
    -- committed meanwhile is re-read and re-checked here (the CTE above saw the old version);
    -- without them both claimers would lease it, and a page would leave twice.
    SELECT a.id FROM actions a JOIN due ON due.id = a.id
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

-- insert_mail --
-- A mail as the SMTP session hands it over, committed before its 250.
INSERT INTO mails (received_at, mail_from, rcpt_tos, client_address, tls, message_id, subject,
                   from_addr, size, raw, content_digest)
VALUES (:received_at, :mail_from, :rcpt_tos, :client_address, :tls, :message_id, :subject,
        :from_addr, :size, :raw, :content_digest)
RETURNING id
