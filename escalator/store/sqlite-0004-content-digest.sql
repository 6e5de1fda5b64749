-- Schema version 4 (content digest): a duplicate is the same content, not the same Message-ID
-- (escalator/store/digest.py). Additive: older rows keep NULL and are never a duplicate's match.

ALTER TABLE mails ADD COLUMN content_digest TEXT;

CREATE INDEX mails_by_digest ON mails (content_digest, received_at)
    WHERE content_digest IS NOT NULL;
