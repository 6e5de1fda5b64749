-- SQLite's own version of the store's queries whose SQL differs (format: store/queries.py).
-- A list parameter is bound as JSON text and read with json_each.

-- incident_states_of --
-- The incident states of these mails (:mail_ids, a list).
SELECT mail_id, state FROM incident_states
WHERE mail_id IN (SELECT value FROM json_each(:mail_ids))

-- marks_in --
-- Which of these marks (:marks, a list) are set.
SELECT mark FROM loop_marks WHERE mark IN (SELECT value FROM json_each(:marks))

-- claim_due --
-- Lease due pending actions until :until, counting the attempt. One UPDATE under BEGIN
-- IMMEDIATE: no other writer can claim the same row. Fair (issue 12/16): pages first, then each
-- sender's oldest before anyone's second. A thread's notices go one at a time in receipt order:
-- only the first still pending of its kind and thread is claimed (postgres-queries.sql says why).
UPDATE actions SET claimed_until = :until, attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id, kind, first_due_at, row_number() OVER (
            PARTITION BY kind, sender ORDER BY first_due_at, id
        ) AS turn
        FROM (
            SELECT id, kind, first_due_at, due_at, claimed_until,
                json_extract(payload, '$.from_addr') AS sender,
                json_type(payload, '$.notice') IS NOT NULL AS notice,
                row_number() OVER (
                    PARTITION BY kind, json_type(payload, '$.notice') IS NOT NULL,
                        json_extract(payload, '$.thread')
                    ORDER BY first_due_at, mail_id, id
                ) AS place
            FROM actions
            WHERE state = 'pending')
        WHERE due_at <= :now AND (claimed_until IS NULL OR claimed_until <= :now)
          AND (NOT notice OR place = 1))
    ORDER BY kind <> 'page', turn, first_due_at, id LIMIT :limit)
RETURNING *

-- renew_claims --
-- The dispatcher's heartbeat: a longer lease for these (:ids) claimed, still pending actions.
UPDATE actions SET claimed_until = :until
WHERE state = 'pending' AND claimed_until IS NOT NULL
  AND id IN (SELECT value FROM json_each(:ids))

-- release_claims --
-- Claimed actions (:ids) never started, handed back: no lease, the claim's attempt not counted.
UPDATE actions SET claimed_until = NULL, attempts = MAX(attempts - 1, 0), updated_at = :now
WHERE state = 'pending' AND id IN (SELECT value FROM json_each(:ids))

-- storm_row --
-- The storm a key names (SQLite's writer is alone: nothing to lock).
SELECT first_mail_id, root, first_at, count FROM storms WHERE key = :key

-- lock_digest --
-- Nothing: BEGIN IMMEDIATE already makes every SQLite writer take its turn.

-- lock_reply_address --
-- Nothing: BEGIN IMMEDIATE already makes every SQLite writer take its turn.

-- insert_mail --
-- A mail as the SMTP session hands it over, committed before its 250. :raw is bound as its
-- length: SQLiteDb writes the bytes into the zeroblob (_BLOB_WRITES), since bound, SQLite would
-- copy them and its cached statement would keep that copy until the next mail.
INSERT INTO mails (received_at, mail_from, rcpt_tos, client_address, tls, message_id, subject,
                   from_addr, size, raw, content_digest)
VALUES (:received_at, :mail_from, :rcpt_tos, :client_address, :tls, :message_id, :subject,
        :from_addr, :size, zeroblob(:raw), :content_digest)
RETURNING id

-- mails_by_ids --
-- These mails (:ids, a list) with their raw bytes: a decide batch read at once (issue 16).
SELECT {mail_columns}, raw FROM mails WHERE id IN (SELECT value FROM json_each(:ids))
