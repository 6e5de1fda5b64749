-- Schema version 11 (issue 16, a reply budget per sender): `reply_slots` holds every reply
-- granted, by action, with its lowercase address and verdict, so both the reject loop guard
-- (one reject reply per address per 10 minutes) and the sender's reply budget (so many replies
-- an hour, ESCALATOR_SENDER_REPLY_LIMIT) count from the store. It replaces `reply_guard`, which
-- kept one reject reply per address; its rows move over. Rows older than the longest window are
-- deleted as replies are granted.

CREATE TABLE reply_slots (
    action_id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    verdict TEXT NOT NULL,
    replied_at TEXT NOT NULL
);

CREATE INDEX reply_slots_by_address ON reply_slots (address, replied_at);
CREATE INDEX reply_slots_age ON reply_slots (replied_at);

INSERT INTO reply_slots (action_id, address, verdict, replied_at)
SELECT action_id, address, 'reject', replied_at FROM reply_guard;

DROP TABLE reply_guard;
