-- PostgreSQL schema version 11, as SQLite's version 11 (issue 16, a reply budget per sender):
-- `reply_slots` holds every reply granted, by action, with its lowercase address and verdict;
-- the reject loop guard and the sender's reply budget count from it. It replaces `reply_guard`,
-- whose rows move over. Two replicas granting replies to one address take turns on an advisory
-- lock (lock_reply_address in postgres-queries.sql).

CREATE TABLE reply_slots (
    action_id BIGINT PRIMARY KEY,
    address TEXT NOT NULL,
    verdict TEXT NOT NULL,
    replied_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX reply_slots_by_address ON reply_slots (address, replied_at);
CREATE INDEX reply_slots_age ON reply_slots (replied_at);

INSERT INTO reply_slots (action_id, address, verdict, replied_at)
SELECT action_id, address, 'reject', replied_at FROM reply_guard;

DROP TABLE reply_guard;
