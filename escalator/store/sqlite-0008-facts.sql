-- Schema version 8 (facts): what the decide worker read from the mail, stored with its decision
-- (escalator/core/facts.py: sender, subject, Message-ID, references, the conversation's words,
-- the text the review shows). Additive and nullable: rows decided before it are backfilled by
-- the service at start (escalator/decider/backfill.py); retention blanks it with the raw bytes.

ALTER TABLE mails ADD COLUMN facts TEXT;
