-- Schema version 7 (facts): what the decide worker read from the mail, stored with its decision
-- (escalator/core/facts.py). Additive and nullable: rows decided before it are backfilled by the
-- service at start (escalator/decider/backfill.py); retention blanks it with the raw bytes.

ALTER TABLE mails ADD COLUMN facts JSONB;
