-- Schema version 5 (issue 11, the on-call loop). `webhook_events`: every PagerDuty webhook event
-- id seen once (deliveries repeat), with the mail it concerned (NULL: not an incident escalator
-- opened). `incident_states`: what PagerDuty said of the incident a mail's page opened (the state
-- JSON holds status, who acknowledged and when). `loop_marks`: things done once across replicas
-- (a handover slot posted, an unanswered alarm paged, a reminder posted).

CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    event_type TEXT NOT NULL,
    incident_id TEXT,
    mail_id INTEGER
);

CREATE INDEX webhook_events_age ON webhook_events (received_at);

CREATE TABLE incident_states (
    mail_id INTEGER PRIMARY KEY,
    incident_id TEXT,
    incident_key TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,               -- JSON (escalator.store.loop.state_json)
    updated_at TEXT NOT NULL
);

CREATE INDEX incident_states_by_id ON incident_states (incident_id);
CREATE INDEX incident_states_by_key ON incident_states (incident_key);

CREATE TABLE loop_marks (
    mark TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
