-- The store's queries that SQLite and PostgreSQL run as written (format: store/queries.py).
-- Names whose SQL differs between the two are in sqlite-queries.sql and postgres-queries.sql.

-- insert_action --
-- One outbox action; first_due_at keeps the first due time when a retry moves due_at.
INSERT INTO actions (mail_id, kind, state, due_at, first_due_at, last_error, payload, dedup_key,
                     created_at, updated_at)
VALUES (:mail_id, :kind, :state, :due_at, :due_at, :last_error, :payload, :dedup_key, :now, :now)
RETURNING id

-- insert_audit --
-- Who did what to which mail.
INSERT INTO audit (at, who, what, mail_id, note) VALUES (:at, :who, :what, :mail_id, :note)

-- first_sent_result --
-- The result of the first SENT action of a kind under a dedup key (a Slack post: its thread).
SELECT result FROM actions
WHERE dedup_key = :dedup_key AND kind = :kind AND state = 'sent' AND result IS NOT NULL
ORDER BY id LIMIT 1

-- insert_webhook_event --
-- A PagerDuty webhook event, once per event id (deliveries repeat).
INSERT INTO webhook_events (event_id, received_at, occurred_at, event_type, incident_id)
VALUES (:event_id, :received_at, :occurred_at, :event_type, :incident_id)
ON CONFLICT (event_id) DO NOTHING

-- link_webhook_event --
-- The mail whose page opened the event's incident.
UPDATE webhook_events SET mail_id = :mail_id WHERE event_id = :event_id

-- page_by_incident_key --
-- Our page that opened an incident, by its dedup key (PagerDuty's incident_key).
SELECT mail_id, dedup_key, payload FROM actions
WHERE kind = 'page' AND dedup_key = :incident_key
ORDER BY id LIMIT 1

-- page_by_incident_id --
-- Our page that opened an incident, by the incident id an earlier event taught us.
SELECT a.mail_id, a.dedup_key, a.payload
FROM incident_states s JOIN actions a ON a.mail_id = s.mail_id AND a.kind = 'page'
WHERE s.incident_id = :incident_id
ORDER BY a.id LIMIT 1

-- first_reply --
-- A mail's reply to its sender (where it went, and whether it was refused).
SELECT payload, state FROM actions WHERE mail_id = :mail_id AND kind = 'reply' ORDER BY id LIMIT 1

-- incident_state --
-- What PagerDuty said so far of the incident a mail's page opened.
SELECT state FROM incident_states WHERE mail_id = :mail_id

-- save_incident_state --
-- The incident's newest state for the mail whose page opened it.
INSERT INTO incident_states (mail_id, incident_id, incident_key, status, state, updated_at)
VALUES (:mail_id, :incident_id, :incident_key, :status, :state, :now)
ON CONFLICT (mail_id) DO UPDATE SET incident_id = excluded.incident_id,
    status = excluded.status, state = excluded.state, updated_at = excluded.updated_at

-- take_mark --
-- Something done once across replicas; no row changed: it was already done.
INSERT INTO loop_marks (mark, at) VALUES (:mark, :at) ON CONFLICT (mark) DO NOTHING

-- drop_mark --
DELETE FROM loop_marks WHERE mark = :mark

-- actions_of_mail --
-- A mail's actions, oldest first.
SELECT * FROM actions WHERE mail_id = :mail_id ORDER BY id

-- claim_mail_pages --
-- The page path (issue 12): a mail's pages due by :due_by, claimed until :until in the
-- transaction that records its decision (an undecided mail had no actions: all are its own).
UPDATE actions SET claimed_until = :until, attempts = attempts + 1, updated_at = :now
WHERE mail_id = :mail_id AND kind = 'page' AND state = 'pending' AND due_at <= :due_by
RETURNING *

-- finish_action --
-- An action ends: sent, dry run, failed or skipped, with its error and result.
UPDATE actions SET state = :state, last_error = :error, result = :result, claimed_until = NULL,
    updated_at = :now
WHERE id = :id

-- retry_action --
-- A pending action waits for another attempt at :due_at (its first due time stays).
UPDATE actions SET due_at = :due_at, last_error = :error, claimed_until = NULL, updated_at = :now
WHERE id = :id AND state = 'pending'

-- replay_action --
-- A failed action pending again, due now, with a fresh retry horizon (first_due_at = now).
UPDATE actions SET state = 'pending', due_at = :now, first_due_at = :now, last_error = :note,
    claimed_until = NULL, updated_at = :now
WHERE id = :id AND state = 'failed'
RETURNING *

-- hurry_retries --
-- Pending actions of a kind waiting for a retry become due now.
UPDATE actions SET due_at = :now
WHERE state = 'pending' AND kind = :kind AND due_at > :now AND first_due_at <= :now
  AND last_error IS NOT NULL

-- settle_failing --
-- A mail's pending actions of a kind that failed at least once and are not in flight: skipped.
UPDATE actions SET state = 'skipped', last_error = :note, updated_at = :now
WHERE mail_id = :mail_id AND kind = :kind AND state = 'pending' AND last_error IS NOT NULL
  AND (claimed_until IS NULL OR claimed_until <= :now)

-- outbox_summary --
-- Pending actions by kind at :now (store.OutboxSummary says what each column means).
SELECT kind, COUNT(*) AS pending,
       MIN(CASE WHEN first_due_at <= :now THEN first_due_at END) AS oldest,
       SUM(CASE WHEN first_due_at > :now THEN 1 ELSE 0 END) AS later,
       MIN(CASE WHEN due_at <= :now THEN due_at END) AS stalled,
       MIN(CASE WHEN first_due_at <= :now AND last_error IS NOT NULL THEN first_due_at END)
           AS failing
FROM actions WHERE state = 'pending' GROUP BY kind

-- drop_old_reply_slots --
DELETE FROM reply_slots WHERE replied_at < :before

-- own_reply_slot --
-- This action's slot, when an earlier attempt of it was granted one (a retried send keeps it).
SELECT replied_at FROM reply_slots WHERE action_id = :action_id

-- count_reply_slots --
-- Replies granted to an address since :since, of one verdict ('' for any), and the oldest.
SELECT COUNT(*) AS granted, MIN(replied_at) AS first_at FROM reply_slots
WHERE address = :address AND replied_at >= :since AND (verdict = :verdict OR :verdict = '')

-- add_reply_slot --
INSERT INTO reply_slots (action_id, address, verdict, replied_at)
VALUES (:action_id, :address, :verdict, :at)

-- drop_old_storms --
DELETE FROM storms WHERE first_at < :before

-- save_storm --
-- One key naming the storm a mail opened or joined.
INSERT INTO storms (key, first_mail_id, root, first_at, count)
VALUES (:key, :first_mail_id, :root, :first_at, :count)
ON CONFLICT (key) DO UPDATE SET first_mail_id = excluded.first_mail_id, root = excluded.root,
    first_at = excluded.first_at, count = excluded.count

-- mail_columns --
-- The columns of a MailRow but its raw bytes (which each query adds, or NULL AS raw).
id, received_at, mail_from, rcpt_tos, client_address, tls, message_id, subject, from_addr, size,
verdict, reasons, slack_channel, "window", decision, decided_at, review, raw_purged_at, facts

-- duplicate_of --
-- The first mail with this content digest received since :since (a retry of it).
SELECT id FROM mails WHERE content_digest = :digest AND received_at >= :since ORDER BY id LIMIT 1

-- undecided_fairly --
-- Undecided mails' ids and sizes. Fair (issue 12/16): each envelope sender's oldest before
-- anyone's second, so a storm's backlog never holds another sender's mail back; one sender's
-- mails keep their order.
SELECT id, size FROM (
    SELECT id, size, row_number() OVER (PARTITION BY lower(mail_from) ORDER BY id) AS turn
    FROM mails WHERE verdict IS NULL) AS undecided
ORDER BY turn, id LIMIT :limit

-- mail --
SELECT {mail_columns}, raw FROM mails WHERE id = :id

-- mail_without_raw --
-- One mail for those who read its decision and facts, not its bytes (the dispatcher).
SELECT {mail_columns}, NULL AS raw FROM mails WHERE id = :id

-- mail_by_message_id --
-- The newest mail with this Message-ID (without <>).
SELECT {mail_columns}, NULL AS raw FROM mails
WHERE message_id = :message_id ORDER BY id DESC LIMIT 1

-- all_mails --
SELECT {mail_columns}, NULL AS raw FROM mails ORDER BY id

-- all_actions --
SELECT * FROM actions ORDER BY id

-- record_decision --
-- A mail's decision and facts, only while it is undecided (a second decider writes nothing).
UPDATE mails SET decision = :decision, verdict = :verdict, reasons = :reasons,
    slack_channel = :slack_channel, "window" = :window, decided_at = :decided_at,
    review = COALESCE(review, :review), facts = :facts
WHERE id = :id AND verdict IS NULL

-- redecide --
-- A released mail's new decision (its decided_at and facts stay).
UPDATE mails SET decision = :decision, verdict = :verdict, reasons = :reasons,
    slack_channel = :slack_channel, "window" = :window
WHERE id = :id

-- mails_without_facts --
-- Decided mails after :after whose raw bytes are kept but whose facts were never stored.
SELECT {mail_columns}, raw FROM mails
WHERE id > :after AND facts IS NULL AND raw IS NOT NULL AND verdict IS NOT NULL
ORDER BY id LIMIT :limit

-- set_facts --
-- A backfilled mail's facts, only while it has none and keeps its raw bytes.
UPDATE mails SET facts = :facts WHERE id = :id AND facts IS NULL AND raw IS NOT NULL

-- set_review --
UPDATE mails SET review = :review WHERE id = :id

-- end_hold --
-- A held mail released or dismissed; no row changed: it was not held (any more).
UPDATE mails SET review = :review WHERE id = :id AND review = 'held'

-- mails_in_review --
-- Mails in a review state, newest first, with raw bytes.
SELECT {mail_columns}, raw FROM mails
WHERE review = :review ORDER BY received_at DESC, id DESC LIMIT :limit

-- recent_escalations --
-- Escalated mails (released ones included), newest first.
SELECT {mail_columns}, NULL AS raw FROM mails
WHERE verdict = 'escalate' ORDER BY received_at DESC, id DESC LIMIT :limit

-- escalations_near --
-- Escalated mails received from :since to :until, newest first: the outage rule's candidates
-- (issue 11), read for every new escalation (store/review.py reads other senders' in full).
SELECT {mail_columns}, NULL AS raw FROM mails
WHERE verdict = 'escalate' AND received_at >= :since AND received_at <= :until
ORDER BY received_at DESC, id DESC LIMIT :limit

-- audit_log --
SELECT * FROM audit ORDER BY id

-- audit_of_mail --
SELECT * FROM audit WHERE mail_id = :mail_id ORDER BY id

-- purge_raw --
-- Retention: raw bytes (and the facts read from them) of mails received before :before.
UPDATE mails SET raw = NULL, facts = NULL, raw_purged_at = :now
WHERE raw IS NOT NULL AND received_at < :before

-- purge_actions --
DELETE FROM actions WHERE mail_id IN (SELECT id FROM mails WHERE received_at < :before)

-- purge_audit --
DELETE FROM audit
WHERE at < :before OR mail_id IN (SELECT id FROM mails WHERE received_at < :before)

-- purge_mails --
DELETE FROM mails WHERE received_at < :before

-- drop_expired_sessions --
DELETE FROM revoked_sessions WHERE expires_at < :now

-- revoke_session --
INSERT INTO revoked_sessions (session_key, expires_at) VALUES (:session_key, :expires_at)
ON CONFLICT (session_key) DO NOTHING

-- session_revoked --
SELECT 1 AS hit FROM revoked_sessions WHERE session_key = :session_key
