BEGIN TRANSACTION;
CREATE TABLE "actions" (
    id INTEGER PRIMARY KEY,
    mail_id INTEGER NOT NULL REFERENCES mails (id),
    kind TEXT NOT NULL CHECK (kind IN ('page', 'alarm', 'ack', 'reply', 'review')),
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dry_run', 'failed', 'skipped')),
    due_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    claimed_until TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
, first_due_at TEXT);
INSERT INTO "actions" VALUES(1,1,'page','pending','2026-11-29T07:00:00.000000+00:00',0,NULL,'{"notes": ["unverified sender"], "mail_id": 1, "thread": "deferred@justice.example", "message_id": "deferred@justice.example", "subject": "LAA apply down", "from_addr": "ana@digital.justice.gov.uk", "verdict": "escalate", "reasons": [], "slack_channel": "laa-apply-incident", "window": "no_cover", "page": "deferred", "page_at": "2026-11-29T07:00:00+00:00"}','deferred@justice.example',NULL,NULL,'2026-12-03T09:34:26.815551+00:00','2026-12-03T09:34:26.815551+00:00','2026-11-29T07:00:00.000000+00:00');
INSERT INTO "actions" VALUES(2,1,'alarm','failed','2026-11-28T23:30:00.000000+00:00',0,'Slack: internal_error (gave up)','{"notes": ["unverified sender"], "mail_id": 1, "thread": "deferred@justice.example", "message_id": "deferred@justice.example", "subject": "LAA apply down", "from_addr": "ana@digital.justice.gov.uk", "verdict": "escalate", "reasons": [], "slack_channel": "laa-apply-incident", "window": "no_cover"}','alarm:deferred@justice.example',NULL,NULL,'2026-12-03T09:34:26.815551+00:00','2026-12-03T09:34:27.042493+00:00','2026-11-28T23:30:00.000000+00:00');
INSERT INTO "actions" VALUES(3,1,'ack','dry_run','2026-11-28T23:30:00.000000+00:00',1,NULL,'{"notes": ["unverified sender"], "mail_id": 1, "thread": "deferred@justice.example", "message_id": "deferred@justice.example", "subject": "LAA apply down", "from_addr": "ana@digital.justice.gov.uk", "verdict": "escalate", "reasons": [], "slack_channel": "laa-apply-incident", "window": "no_cover"}','ack:deferred@justice.example',NULL,'{"channel": "laa-apply-incident", "text": "Your escalation \u201cLAA apply down\u201d reached the cloud platform team at 23:30 GMT, Sat 28 Nov. Nobody is on call from 22:00 to 07:00: on-call will be paged at 07:00 GMT, Sun 29 Nov. Reference #1.", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Your escalation \u201cLAA apply down\u201d reached the cloud platform team at 23:30 GMT, Sat 28 Nov. Nobody is on call from 22:00 to 07:00: on-call will be paged at 07:00 GMT, Sun 29 Nov. Reference #1.", "verbatim": true}}], "may_join": false}','2026-12-03T09:34:26.815551+00:00','2026-12-03T09:34:27.051948+00:00','2026-11-28T23:30:00.000000+00:00');
INSERT INTO "actions" VALUES(4,1,'reply','dry_run','2026-11-28T23:30:00.000000+00:00',1,NULL,'{"notes": ["unverified sender"], "mail_id": 1, "thread": "deferred@justice.example", "message_id": "deferred@justice.example", "subject": "LAA apply down", "from_addr": "ana@digital.justice.gov.uk", "verdict": "escalate", "reasons": [], "slack_channel": "laa-apply-incident", "window": "no_cover", "to": "ana@digital.justice.gov.uk"}','reply:deferred@justice.example',NULL,'{"to": "ana@digital.justice.gov.uk", "message": "From: Cloud platform escalations <escalations@localhost>\nTo: ana@digital.justice.gov.uk\nSubject: Re: LAA apply down\nDate: Sat, 28 Nov 2026 23:35:00 +0000\nMessage-ID: <reply-4.1@escalator.localhost>\nAuto-Submitted: auto-replied\nX-Auto-Response-Suppress: All\nIn-Reply-To: <deferred@justice.example>\nReferences: <deferred@justice.example>\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n\nHello Ana Analyst,\n\nWe received your escalation \"LAA apply down\" at 23:30 GMT, Sat 28 Nov.\n\nWhat happens next:\n- Nobody is on call between 22:00 and 07:00. The on-call engineer will be pag=\ned at 07:00 GMT, Sun 29 Nov and will then join #laa-apply-incident.\n- It has also been posted in #high-priority-alarms.\n- Outside support hours (10:00-17:00 on working days) help is on a best-endea=\nvours basis: the on-call engineer works on an incident for up to an hour. If =\nit is not resolved by then, they will tell you and put together a plan to res=\nolve it during working hours.\n- If nobody has joined #laa-apply-incident within 30 minutes of the page, sen=\nd the facts again in a new mail to this address (not a reply), saying that no=\nbody has joined: a new mail pages on-call again.\n\nPlease post updates in #laa-apply-incident rather than replying to this mail.\n\nReference: escalation #1\n\n--=20\nCloud platform escalations (automatic reply)\n"}','2026-12-03T09:34:26.815551+00:00','2026-12-03T09:34:27.063124+00:00','2026-11-28T23:30:00.000000+00:00');
INSERT INTO "actions" VALUES(5,2,'reply','dry_run','2026-11-28T23:31:00.000000+00:00',1,NULL,'{"notes": ["unverified sender"], "mail_id": 2, "thread": "original@justice.example", "message_id": "original@justice.example", "subject": "LAA apply down", "from_addr": "ana@digital.justice.gov.uk", "verdict": "reject", "reasons": ["missing_slack_channel"], "slack_channel": null, "window": "no_cover", "to": "ana@digital.justice.gov.uk"}','reply:original@justice.example',NULL,'{"to": "ana@digital.justice.gov.uk", "message": "From: Cloud platform escalations <escalations@localhost>\nTo: ana@digital.justice.gov.uk\nSubject: Re: LAA apply down\nDate: Sat, 28 Nov 2026 23:35:00 +0000\nMessage-ID: <reply-5.2@escalator.localhost>\nAuto-Submitted: auto-replied\nX-Auto-Response-Suppress: All\nIn-Reply-To: <original@justice.example>\nReferences: <original@justice.example>\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n\nHello Ana Analyst,\n\nWe received your mail \"LAA apply down\" at 23:31 GMT, Sat 28 Nov. It has not b=\neen escalated and nobody has been paged, because:\n\n- it does not name the Slack channel where the incident is discussed\n\nThis address is only for live incidents where a service is down or failing it=\ns users.\n\nIf this is a live incident, reply to this mail with the Slack channel where t=\nhe incident is being discussed (for example \"the channel is #my-service-incid=\nent\"). We will read your reply together with this mail.\n\nWhere to go instead: for questions, requests, pull requests and problems outs=\nide production, ask in #ask-cloud-platform. Support answers there during supp=\nort hours (10:00-17:00 on working days).\n\nA member of the support team will look at your mail from 10:00 GMT, Mon 30 No=\nv.\n\nReference: #2\n\n--=20\nCloud platform escalations (automatic reply)\n"}','2026-12-03T09:34:27.014194+00:00','2026-12-03T09:34:27.069102+00:00','2026-11-28T23:31:00.000000+00:00');
INSERT INTO "actions" VALUES(6,3,'reply','skipped','2026-11-28T23:32:00.000000+00:00',1,'loop guard: ana@digital.justice.gov.uk already had a reply at 2026-11-28T23:35:00+00:00','{"notes": ["unverified sender"], "mail_id": 3, "thread": "original@justice.example", "message_id": "follow-up@justice.example", "subject": "Re: x", "from_addr": "ana@digital.justice.gov.uk", "verdict": "reject", "reasons": ["missing_slack_channel"], "slack_channel": null, "window": "no_cover", "to": "ana@digital.justice.gov.uk"}','reply:follow-up@justice.example',NULL,NULL,'2026-12-03T09:34:27.040045+00:00','2026-12-03T09:34:27.056518+00:00','2026-11-28T23:32:00.000000+00:00');
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    what TEXT NOT NULL,
    mail_id INTEGER REFERENCES mails (id),
    note TEXT
);
CREATE TABLE incident_states (
    mail_id INTEGER PRIMARY KEY,
    incident_id TEXT,
    incident_key TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,               -- JSON (escalator.store.loop.state_json)
    updated_at TEXT NOT NULL
);
CREATE TABLE loop_marks (
    mark TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE mails (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_tos TEXT NOT NULL,            -- JSON list, as given at RCPT
    client_address TEXT,
    tls INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,                   -- without <>, NULL when the mail has none
    subject TEXT NOT NULL DEFAULT '',
    from_addr TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    decision TEXT,                     -- the decision contract JSON
    verdict TEXT CHECK (verdict IN ('escalate', 'reject')),
    reasons TEXT,                      -- JSON list
    slack_channel TEXT,
    window TEXT,
    decided_at TEXT,
    review TEXT CHECK (review IN ('held', 'released', 'dismissed')),
    raw BLOB                           -- last, so listings never read its overflow pages
, raw_purged_at TEXT, content_digest TEXT);
INSERT INTO "mails" VALUES(1,'2026-11-28T23:30:00.000000+00:00','ana@digital.justice.gov.uk','["escalations@localhost"]',NULL,0,'deferred@justice.example','LAA apply down','ana@digital.justice.gov.uk',310,'{"verdict": "escalate", "reasons": [], "slack_channel": "laa-apply-incident", "window": "no_cover", "page": "deferred", "page_at": "2026-11-29T07:00:00+00:00", "alarm": true, "confidence": "high", "doubts": [], "at": "2026-11-28T23:30:00+00:00", "evidence": [{"rule": "sender_unverified", "matched": "no Authentication-Results from a border MTA (ESCALATOR_AUTHSERV_ID unset)", "where": "header Authentication-Results", "reason": null}, {"rule": "channel", "matched": "laa-apply-incident", "where": "new", "reason": null}, {"rule": "outage", "matched": "apply down", "where": "subject", "reason": null}, {"rule": "outage", "matched": "nobody can", "where": "new", "reason": null}, {"rule": "symptom", "matched": "error", "where": "new", "reason": null}], "sender": {"verified": false, "address": "ana@digital.justice.gov.uk", "how": "no Authentication-Results from a border MTA (ESCALATOR_AUTHSERV_ID unset)"}}','escalate','[]','laa-apply-incident','no_cover','2026-12-03T09:34:26.815159+00:00',NULL,X'46726F6D3A20416E6120416E616C797374203C616E61406469676974616C2E6A7573746963652E676F762E756B3E0D0A546F3A20657363616C6174696F6E73406C6F63616C686F73740D0A5375626A6563743A204C4141206170706C7920646F776E0D0A4D6573736167652D49443A203C6465666572726564406A7573746963652E6578616D706C653E0D0A446174653A205361742C203238204E6F7620323032362032333A32393A3030202B303030300D0A0D0A48692C0D0A0D0A53696E63652032333A3130206576657279204C4141206170706C7920757365722067657473206120353032206572726F72206F6E207375626D69742C20736F206E6F626F64792063616E206170706C792E0D0A57652061726520696E20236C61612D6170706C792D696E636964656E742E0D0A0D0A416E610D0A',NULL,NULL);
INSERT INTO "mails" VALUES(2,'2026-11-28T23:31:00.000000+00:00','ana@digital.justice.gov.uk','["escalations@localhost"]',NULL,0,'original@justice.example','LAA apply down','ana@digital.justice.gov.uk',278,'{"verdict": "reject", "reasons": ["missing_slack_channel"], "slack_channel": null, "window": "no_cover", "page": "none", "page_at": null, "alarm": false, "confidence": "low", "doubts": [{"rule": "outage", "matched": "nobody can", "where": "new", "reason": null, "clause": "Since 23:10 every LAA apply user gets a 502 error on submit, so nobody can apply"}], "at": "2026-11-28T23:31:00+00:00", "evidence": [{"rule": "channel", "matched": "no Slack channel named", "where": "mail", "reason": "missing_slack_channel"}, {"rule": "sender_unverified", "matched": "no Authentication-Results from a border MTA (ESCALATOR_AUTHSERV_ID unset)", "where": "header Authentication-Results", "reason": null}, {"rule": "outage", "matched": "apply down", "where": "subject", "reason": null}, {"rule": "outage", "matched": "nobody can", "where": "new", "reason": null}, {"rule": "symptom", "matched": "error", "where": "new", "reason": null}], "sender": {"verified": false, "address": "ana@digital.justice.gov.uk", "how": "no Authentication-Results from a border MTA (ESCALATOR_AUTHSERV_ID unset)"}}','reject','["missing_slack_channel"]',NULL,'no_cover','2026-12-03T09:34:27.013686+00:00','held',X'46726F6D3A20416E6120416E616C797374203C616E61406469676974616C2E6A7573746963652E676F762E756B3E0D0A546F3A20657363616C6174696F6E73406C6F63616C686F73740D0A5375626A6563743A204C4141206170706C7920646F776E0D0A4D6573736167652D49443A203C6F726967696E616C406A7573746963652E6578616D706C653E0D0A446174653A205361742C203238204E6F7620323032362032333A32393A3030202B303030300D0A0D0A48692C0D0A0D0A53696E63652032333A3130206576657279204C4141206170706C7920757365722067657473206120353032206572726F72206F6E207375626D69742C20736F206E6F626F64792063616E206170706C792E0D0A0D0A416E610D0A',NULL,NULL);
INSERT INTO "mails" VALUES(3,'2026-11-28T23:32:00.000000+00:00','ana@digital.justice.gov.uk','["escalations@localhost"]',NULL,0,'follow-up@justice.example','Re: x','ana@digital.justice.gov.uk',293,'{"verdict": "reject", "reasons": ["missing_slack_channel"], "slack_channel": null, "window": "no_cover", "page": "none", "page_at": null, "alarm": false, "confidence": "low", "doubts": [{"rule": "outage", "matched": "nobody can", "where": "new", "reason": null, "clause": "Since 23:10 every LAA apply user gets a 502 error on submit, so nobody can apply"}], "at": "2026-11-28T23:32:00+00:00", "evidence": [{"rule": "channel", "matched": "no Slack channel named", "where": "mail", "reason": "missing_slack_channel"}, {"rule": "sender_unverified", "matched": "no Authentication-Results from a border MTA (ESCALATOR_AUTHSERV_ID unset)", "where": "header Authentication-Results", "reason": null}, {"rule": "outage", "matched": "nobody can", "where": "new", "reason": null, "clause": "Since 23:10 every LAA apply user gets a 502 error on submit, so nobody can apply"}, {"rule": "symptom", "matched": "broken", "where": "new", "reason": null}, {"rule": "symptom", "matched": "502", "where": "new", "reason": null}], "sender": {"verified": false, "address": "ana@digital.justice.gov.uk", "how": "no Authentication-Results from a border MTA (ESCALATOR_AUTHSERV_ID unset)"}, "merged_with": [2]}','reject','["missing_slack_channel"]',NULL,'no_cover','2026-12-03T09:34:27.037767+00:00','held',X'46726F6D3A20416E6120416E616C797374203C616E61406469676974616C2E6A7573746963652E676F762E756B3E0D0A546F3A20657363616C6174696F6E73406C6F63616C686F73740D0A5375626A6563743A2052653A20780D0A4D6573736167652D49443A203C666F6C6C6F772D7570406A7573746963652E6578616D706C653E0D0A496E2D5265706C792D546F3A203C6F726967696E616C406A7573746963652E6578616D706C653E0D0A5265666572656E6365733A203C6F726967696E616C406A7573746963652E6578616D706C653E0D0A446174653A205361742C203238204E6F7620323032362032333A32393A3030202B303030300D0A0D0A48692C0D0A0D0A416E79206E6577733F205374696C6C2062726F6B656E2E0D0A0D0A416E610D0A',NULL,NULL);
CREATE TABLE reply_guard (
    address TEXT PRIMARY KEY,
    action_id INTEGER NOT NULL,
    replied_at TEXT NOT NULL
);
INSERT INTO "reply_guard" VALUES('ana@digital.justice.gov.uk',5,'2026-11-28T23:35:00.000000+00:00');
CREATE TABLE revoked_sessions (
    session_key TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    event_type TEXT NOT NULL,
    incident_id TEXT,
    mail_id INTEGER
);
CREATE INDEX mails_duplicate ON mails (message_id, mail_from, received_at)
    WHERE message_id IS NOT NULL;
CREATE INDEX mails_undecided ON mails (id) WHERE verdict IS NULL;
CREATE INDEX audit_by_mail ON audit (mail_id);
CREATE INDEX actions_by_mail ON actions (mail_id);
CREATE INDEX actions_due ON actions (due_at) WHERE state = 'pending';
CREATE INDEX mails_review ON mails (review, id) WHERE review IS NOT NULL;
CREATE INDEX mails_received ON mails (received_at);
CREATE INDEX reply_guard_age ON reply_guard (replied_at);
CREATE INDEX actions_by_key ON actions (dedup_key, id);
CREATE INDEX mails_by_digest ON mails (content_digest, received_at)
    WHERE content_digest IS NOT NULL;
CREATE INDEX webhook_events_age ON webhook_events (received_at);
CREATE INDEX incident_states_by_id ON incident_states (incident_id);
CREATE INDEX incident_states_by_key ON incident_states (incident_key);
COMMIT;
PRAGMA user_version = 7;
