-- Schema version 8 (issue 15, the doubt path): the "doubt" action kind, a notice that a held
-- reject may be an incident (alarm-channel post or low-urgency PagerDuty event).

ALTER TABLE actions DROP CONSTRAINT actions_kind_check;
ALTER TABLE actions ADD CONSTRAINT actions_kind_check
    CHECK (kind IN ('page', 'alarm', 'ack', 'reply', 'review', 'doubt'));
