"""A table of labelled mails, decided as a careful human reader of the escalation inbox would.

Each case is a realistic mail written as compact RFC 5322 text, with the expected verdict, the
primary reject reason and the Slack channel (the labels of ../shared/corpus/samples/README.md).
The comment above each case states the behaviour it pins. Cases come in pairs, worded
differently, so that a fix for one is a general rule and not a match on that mail's words.
"""

from __future__ import annotations

import base64
import quopri
from dataclasses import dataclass

import pytest

from escalator.core.mail import parse_mail
from escalator.core.model import Reason, Verdict
from escalator.core.rules import parse_rules
from escalator.core.triage import TriagePolicy, triage
from escalator.policy import default_rules_text

RULES = parse_rules(default_rules_text(), "built-in rules.toml")
ESCALATE = (Verdict.ESCALATE, None)
AUTOMATED = (Verdict.REJECT, Reason.AUTOMATED_MESSAGE)
NOT_ALLOWED = (Verdict.REJECT, Reason.SENDER_NOT_ALLOWED)
NOT_IMPACTING = (Verdict.REJECT, Reason.NOT_SERVICE_IMPACTING)
NO_CHANNEL = (Verdict.REJECT, Reason.MISSING_SLACK_CHANNEL)
NO_FACTS = (Verdict.REJECT, Reason.MISSING_INCIDENT_FACTS)
SENDER = "Priya Nair <priya.nair@justice.gov.uk>"


@dataclass(frozen=True)
class Case:
    name: str
    expect: tuple[Verdict, Reason | None]
    channel: str | None
    raw: bytes
    allowed_senders: tuple[str, ...] = ()
    trusted_list_ids: tuple[str, ...] = ()


def eml(
    subject: str,
    body: str,
    *,
    sender: str = SENDER,
    headers: str = "",
    content_type: str = 'text/plain; charset="utf-8"',
    encoding: str = "8bit",
) -> bytes:
    """A one-part mail; `headers` are extra header lines, `body` is already encoded."""
    head = (
        f"From: {sender}\n"
        "To: Cloud Platform Escalations <cloud-platform-escalations@digital.justice.gov.uk>\n"
        f"Subject: {subject}\n"
        "Date: Sat, 28 Nov 2026 20:55:00 +0000\n"
        "Message-ID: <case@example.justice.gov.uk>\n"
        f"{headers}"
        "MIME-Version: 1.0\n"
        f"Content-Type: {content_type}\n"
        f"Content-Transfer-Encoding: {encoding}\n"
    )
    return (head + "\n" + body.lstrip("\n")).encode("utf-8")


def multipart(subject: str, boundary: str, parts: str, *, kind: str = "mixed", **kw: str) -> bytes:
    return eml(
        subject,
        parts,
        content_type=f'multipart/{kind}; boundary="{boundary}"',
        encoding="7bit",
        **kw,
    )


OUTAGE = """
Hi,

Since 20:30 the Apply for civil legal aid service returns a 503 to every provider. Live
users cannot submit applications and the pods are in CrashLoopBackOff after the node update.
"""

CASES: list[Case] = [
    # --- escalations, and the channel forms ------------------------------------------------
    # A live outage with facts and a #channel is escalated; the channel is lower-cased.
    Case(
        "outage-hash-channel",
        ESCALATE,
        "laa-apply-incident",
        eml("Apply for civil legal aid down", OUTAGE + "\nPlease use #LAA-Apply-Incident.\n"),
    ),
    # "Slack channel: name" without # counts as the channel.
    Case(
        "slack-channel-label",
        ESCALATE,
        "book-a-visit-live",
        eml(
            "Book a prison visit - bookings failing",
            """
Hello,

Visitors have been unable to book prison visits since 19:10. The booking page times out after
30 seconds and we are seeing a spike of 504s on the public site.

Slack channel: book-a-visit-live

Thanks
Tom""",
        ),
    ),
    # Slack markup with a name gives the name.
    Case(
        "markup-with-name",
        ESCALATE,
        "prison-api-incident",
        eml(
            "Prison API errors",
            """
The Prison API in production is returning 500 errors for roughly half of requests, so
NOMIS-backed screens in every prison are failing to load. Started 20:40.
Comms in <#C07AB12CD34|prison-api-incident> please.
""",
        ),
    ),
    # Slack markup without a name gives the channel ID in upper case.
    Case(
        "markup-id-only",
        ESCALATE,
        "C07ZX98YW65",
        eml(
            "Court store - production outage",
            """
Court Store is down in production: uploads fail with "connection refused" and court staff
cannot retrieve hearing bundles for tomorrow's lists.
We're coordinating in <#C07ZX98YW65>.
""",
        ),
    ),
    # A Slack archive link is the channel, given as its ID in upper case.
    Case(
        "archive-link-id",
        ESCALATE,
        "C09LMN4PQ2R",
        eml(
            "Payments failing on Pay for a criminal fine",
            """
Hi team,

Card payments on the live fines service have failed since 18:02 - the payment provider callback
gets a 502 from our ingress. Members of the public cannot pay fines online.

Incident channel: https://mojdt.slack.com/archives/c09lmn4pq2r
""",
        ),
    ),
    # A link whose visible text is #name, in an HTML-only Outlook mail, gives the name.
    Case(
        "html-link-text",
        ESCALATE,
        "cfo-incident",
        eml(
            "Cannot log in to Create and vary a licence",
            """
<html><head><style>p.MsoNormal {margin:0cm;}</style></head><body>
<div class=3D"WordSection1">
<p class=3D"MsoNormal">Hi,</p>
<p class=3D"MsoNormal">Since 20:15 probation officers can&#8217;t log in to Create and vary a
licence in production&nbsp;&#8211; the sign-in page shows a blank screen.</p>
<table><tr><td>Service</td><td>Create and vary a licence</td></tr>
<tr><td>Impact</td><td>All probation regions</td></tr></table>
<p class=3D"MsoNormal">Further updates in <a href=3D"https://mojdt.slack.com/archives/C0123ABCD9">
#CFO-Incident</a></p>
</div></body></html>""",
            content_type='text/html; charset="utf-8"',
            encoding="quoted-printable",
        ),
    ),
    # A channel named only in the subject counts.
    Case(
        "subject-only-channel",
        ESCALATE,
        "hmpps-auth-incident",
        eml(
            "HMPPS Auth outage [#hmpps-auth-incident]",
            """
HMPPS Auth token endpoint is timing out in production, so every HMPPS service that signs
users in is unusable. Started about 20:35, affects all prisons and probation.
""",
        ),
    ),
    # Several channels: the further-comms one beats where it was raised.
    Case(
        "raised-vs-further",
        ESCALATE,
        "visits-incident",
        eml(
            "Visits booking outage",
            """
We posted in #ask-cloud-platform an hour ago and nobody picked it up.

Prison visit booking has been down since 19:00 - every booking gets a 500 and visitors are
phoning the prisons instead.

Let's continue in #visits-incident please.
""",
        ),
    ),
    # Several channels: the further-comms one beats where alerts go, whatever the order.
    Case(
        "alerts-vs-further",
        ESCALATE,
        "ppud-outage",
        eml(
            "PPUD automation down",
            """
Please join #ppud-outage for updates.

The PPUD automation API is not responding in production; recalls cannot be recorded.
Our alerts go to #ppud-alerts and have been firing since 20:10.
""",
        ),
    ),
    # A channel in the signature's "Team channel:" line loses to the incident channel.
    Case(
        "signature-team-channel",
        ESCALATE,
        "nomis-api-incident",
        eml(
            "NOMIS API down",
            """
Hi,

The NOMIS API is returning 502 Bad Gateway for all calls since 20:20; prison staff can't see
prisoner records.

Updates: #nomis-api-incident

Regards,
Ola Bamidele
Syscon team
Team channel: #syscon-team
""",
        ),
    ),
    # Only a signature's "Team channel:" line names a channel: where the team sits, not where
    # this incident is talked about (blind set e, issue 15); the reject is held in doubt.
    Case(
        "signature-only-channel",
        NO_CHANNEL,
        None,
        eml(
            "Prisoner transfers failing",
            """
Hi,

Prisoner transfers between establishments are failing in production since 19:45 with a
timeout from the movements API, so reception staff cannot receive prisoners.

Regards,
Ola Bamidele
Team channel: #syscon-team
""",
        ),
    ),
    # A channel mentioned only in a quoted earlier message loses to the one in the new text.
    Case(
        "quoted-channel-loses",
        ESCALATE,
        "probation-search-incident",
        eml(
            "Re: Probation search not returning results",
            """
It is still failing - production search returns no results for any CRN, so officers cannot
find cases. Moving the conversation to #probation-search-incident.

On Sat, 28 Nov 2026 at 20:10, Ken Adams <ken.adams@justice.gov.uk> wrote:
> Have you asked in #probation-search-dev?
> Ken
""",
        ),
    ),
    # #1234 is a PR number, not a channel; the real channel is found after it.
    Case(
        "pr-number-not-channel",
        ESCALATE,
        "manage-recalls-live",
        eml(
            "Manage recalls outage after deploy",
            """
Our deploy of PR #4821 went out at 20:00 and since then Manage a recall is down in production:
every page shows a 500 and caseworkers can't process recalls. Rolling back hasn't helped.
#manage-recalls-live
""",
        ),
    ),
    # When #ask-cloud-platform is the only channel named, it is the answer.
    Case(
        "only-ask-cloud-platform",
        ESCALATE,
        "ask-cloud-platform",
        eml(
            "Production ingress returning 404 for our domain",
            """
Hi,

Since 20:25 our production domain (check-money.service.justice.gov.uk) returns 404 from the
ingress for every path. The public cannot use the service. I've raised it in
#ask-cloud-platform too but it's late on a Saturday.
""",
        ),
    ),
    # An outage caused by a merged PR is an incident, not a PR chase.
    Case(
        "pr-caused-outage",
        ESCALATE,
        "crime-portal-incident",
        eml(
            "Crime portal outage - PR merged this afternoon",
            """
Hi,

The pull request that changed our ingress annotations was merged at 17:00 and since then the
live Crime Portal has been unreachable for all court users. Could you revert the PR please?
Comms in #crime-portal-incident.
""",
        ),
    ),
    # The same, worded around an issue rather than a PR: a live problem tracked in an issue.
    Case(
        "issue-tracked-outage",
        ESCALATE,
        "delius-incident",
        eml(
            "Delius outage - see GitHub issue",
            """
We opened issue #512 an hour ago but this is now an outage: nDelius is not loading for
probation staff in production, login hangs and then times out. Please treat as P1.
Slack: #delius-incident
""",
        ),
    ),
    # A security breach in production is escalated.
    Case(
        "security-breach",
        ESCALATE,
        "sec-incident-0412",
        eml(
            "Possible credentials leak - production",
            """
We have found that an AWS access key for our production namespace was committed to a public
GitHub repository two hours ago and has been used from an unknown IP. We believe the account is
compromised. Coordinating in #sec-incident-0412.
""",
        ),
    ),
    # Data loss in production is escalated.
    Case(
        "data-loss",
        ESCALATE,
        "cica-incident",
        eml(
            "CICA - applications lost",
            """
Since the database failover at 19:30 the production CICA apply service has lost the last two
hours of submitted applications; the rows are missing from the database. Applicants are being
told their claim was received. Channel #cica-incident.
""",
        ),
    ),
    # Severe degradation (slowness, timeouts) on live is escalated.
    Case(
        "severe-degradation",
        ESCALATE,
        "mlra-incident",
        eml(
            "MLRA extremely slow",
            """
MLRA is extremely slow for all Legal Aid Agency caseworkers - most pages take over a minute
and many requests time out. It has been like this since 20:00 and work has stopped.
#mlra-incident
""",
        ),
    ),
    # Written without the usual outage words: users are blocked from a live service.
    Case(
        "plain-words-outage",
        ESCALATE,
        "opg-lpa-incident",
        eml(
            "Nobody can sign in to Make a lasting power of attorney",
            """
Hi,

Since about half eight tonight nobody can sign in to Make a lasting power of attorney. The
sign-in button just spins and nothing happens. We have 40 complaints from the public already.

Please use #opg-lpa-incident
""",
        ),
    ),
    # A follow-up saying the problem continues is still an incident ("any update" is not a
    # status chase when the outage is ongoing).
    Case(
        "ongoing-any-update",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Re: Apply for civil legal aid down",
            """
This is still down for all providers - any update? We're in #laa-apply-incident.

On Sat, 28 Nov 2026 at 20:31, Priya Nair <priya.nair@justice.gov.uk> wrote:
> Since 20:30 the Apply service returns a 503 to every provider.
""",
        ),
    ),
    # A mail that mentions staging only as the place where things still work is a live outage.
    Case(
        "staging-as-comparison",
        ESCALATE,
        "hmpps-manage-users",
        eml(
            "Manage users - 500 on every page",
            """
Since tonight's release the Manage users service returns a 500 on every page for everyone. It
worked fine in staging before we released. Rolled back, still broken.

Slack channel: #hmpps-manage-users
""",
        ),
    ),
    # Mentions the dev channel and a past test run, but the outage is in production.
    Case(
        "prod-outage-dev-channel",
        ESCALATE,
        "prisoner-content-hub-dev",
        eml(
            "Content hub down in prisons",
            """
The prisoner content hub is down in production - tablets in every prison show "service
unavailable". Nothing has changed on our side since Thursday.

We're talking about it in #prisoner-content-hub-dev
""",
        ),
    ),
    # --- channel traps: no channel ---------------------------------------------------------
    # @person is not a channel.
    Case(
        "at-person",
        NO_CHANNEL,
        None,
        eml(
            "Court case service outage",
            """
The Prepare a case for sentence service is down in production: court users get a 502 on the
case list. Please DM me on Slack @sara.okafor for anything you need.
""",
        ),
    ),
    # A Teams bridge is not a Slack channel.
    Case(
        "teams-bridge",
        NO_CHANNEL,
        None,
        eml(
            "P1 - Refer and monitor an intervention unavailable",
            """
Refer and monitor an intervention is unavailable in production; probation practitioners
cannot make referrals. Join the Teams bridge: https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc
""",
        ),
    ),
    # A phone number is not a channel.
    Case(
        "phone-only",
        NO_CHANNEL,
        None,
        eml(
            "Urgent - prison visits outage",
            """
Visit bookings are failing for all prisons since 20:00 with a 500 error on submit. Families
cannot book. Call me on 07700 900 123 if you need anything.
""",
        ),
    ),
    # "our usual channel" is not a channel.
    Case(
        "usual-channel",
        NO_CHANNEL,
        None,
        eml(
            "Sentence calculation broken",
            """
Calculate release dates is broken in production: every calculation returns an error and
custody staff cannot release people today. Talk to us in our usual channel.
""",
        ),
    ),
    # --- missing facts -----------------------------------------------------------------------
    # "call me" with a channel and nothing else: no facts.
    Case(
        "call-me",
        NO_FACTS,
        "pathfinder-live",
        eml(
            "URGENT",
            """
Can someone call me asap please. #pathfinder-live

Sent from my iPhone
""",
        ),
    ),
    # An empty body with a channel in the subject: no facts.
    Case("empty-body", NO_FACTS, "hmpps-incident", eml("#hmpps-incident", "\n")),
    # Just a link and a channel: no facts.
    Case(
        "just-a-link",
        NO_FACTS,
        "epf-live",
        eml(
            "Please look",
            """
https://grafana.live.cloud-platform.service.justice.gov.uk/d/abc123/ingress?orgId=1

#epf-live
""",
        ),
    ),
    # --- automated mail ----------------------------------------------------------------------
    # Auto-Submitted: auto-generated wins even on an incident-looking alert.
    Case(
        "auto-submitted-alert",
        AUTOMATED,
        "laa-alerts",
        eml(
            "[FIRING:1] KubePodCrashLooping production",
            """
Pod laa-apply-7c9f is in CrashLoopBackOff in namespace laa-apply-production. Service down.
Alerts: #laa-alerts
""",
            headers="Auto-Submitted: auto-generated\n",
            sender="Alertmanager <alerts@justice.gov.uk>",
        ),
    ),
    # Precedence: bulk is automated.
    Case(
        "precedence-bulk",
        AUTOMATED,
        None,
        eml(
            "Weekly platform newsletter",
            """
The production clusters were unavailable for 3 minutes on Tuesday due to an upgrade.
""",
            headers="Precedence: bulk\n",
        ),
    ),
    # X-Autoreply is automated, whatever the subject says.
    Case(
        "x-autoreply",
        AUTOMATED,
        None,
        eml(
            "Re: Production outage",
            """
I am on leave until Monday. For anything urgent about the outage contact the service desk.
""",
            headers="X-Autoreply: yes\n",
        ),
    ),
    # A List-Id from an unknown list is automated.
    Case(
        "list-id-untrusted",
        AUTOMATED,
        "laa-apply-incident",
        eml(
            "[dev-announce] Digest",
            OUTAGE + "#laa-apply-incident\n",
            headers="List-Id: Developer announcements <dev-announce.lists.example.org>\n",
        ),
    ),
    # A List-Id of the deployment's trusted front group is an ordinary person's mail.
    Case(
        "list-id-trusted",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "[escalations] Apply for civil legal aid down",
            OUTAGE + "#laa-apply-incident\n",
            headers="List-Id: <cloud-platform-escalations.digital.justice.gov.uk>\n"
            "Precedence: list\n",
        ),
        trusted_list_ids=("cloud-platform-escalations.digital.justice.gov.uk",),
    ),
    # A bounce from MAILER-DAEMON is automated.
    Case(
        "mailer-daemon",
        AUTOMATED,
        None,
        eml(
            "Undelivered Mail Returned to Sender",
            """
This is the mail system at host mx.example.org. I'm sorry to have to inform you that your
message could not be delivered. The service is down.
""",
            sender="MAILER-DAEMON@mx.example.org (Mail Delivery System)",
        ),
    ),
    # A null Return-Path is automated even with an ordinary-looking sender and subject.
    Case(
        "null-return-path",
        AUTOMATED,
        None,
        eml(
            "Your message",
            """
Your message to the production escalation address could not be delivered: mailbox full.
""",
            headers="Return-Path: <>\n",
            sender="Mail Server <mail@example.org>",
        ),
    ),
    # multipart/report (a DSN) is automated.
    Case(
        "multipart-report",
        AUTOMATED,
        None,
        multipart(
            "Delivery Status Notification (Failure)",
            "dsn",
            """
--dsn
Content-Type: text/plain

Delivery to the following recipient failed permanently: ops@example.org
--dsn
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Final-Recipient: rfc822; ops@example.org
Action: failed
Status: 5.1.1
--dsn--
""",
            kind='report; report-type="delivery-status"',
            sender="Google <mail-noreply@google.com>",
        ),
    ),
    # An "Automatic reply:" subject alone marks an out-of-office reply.
    Case(
        "automatic-reply-subject",
        AUTOMATED,
        "hmpps-support",
        eml(
            "Automatic reply: Prison API errors",
            """
Thank you for your email. I am out of the office until 1 December with limited access to
email. For urgent production issues contact #hmpps-support.
""",
        ),
    ),
    # --- sender allowlist --------------------------------------------------------------------
    # A sender of an allowed domain may escalate.
    Case(
        "allowed-domain",
        ESCALATE,
        "laa-apply-incident",
        eml("Apply down", OUTAGE + "#laa-apply-incident\n"),
        allowed_senders=("justice.gov.uk",),
    ),
    # A subdomain of an allowed domain is allowed.
    Case(
        "allowed-subdomain",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Apply down",
            OUTAGE + "#laa-apply-incident\n",
            sender="Dev <dev@digital.justice.gov.uk>",
        ),
        allowed_senders=("@justice.gov.uk",),
    ),
    # Any other domain is refused, even one that merely ends with the same letters.
    Case(
        "lookalike-domain",
        NOT_ALLOWED,
        "laa-apply-incident",
        eml(
            "Apply down",
            OUTAGE + "#laa-apply-incident\n",
            sender="Mallory <mallory@notjustice.gov.uk>",
        ),
        allowed_senders=("justice.gov.uk",),
    ),
    # --- not service-impacting ---------------------------------------------------------------
    # Chasing a PR, in alarming words and with a channel, is not an incident.
    Case(
        "pr-chase-urgent",
        NOT_IMPACTING,
        "hmpps-book-secure-move",
        eml(
            "URGENT: PR needs approval",
            """
URGENT!!! Please can someone review and approve our pull request for the new namespace today,
https://github.com/ministryofjustice/cloud-platform-environments/pull/27450 - we are blocked.
#hmpps-book-secure-move
""",
        ),
    ),
    # Chasing a PR, worded as a nudge.
    Case(
        "pr-nudge",
        NOT_IMPACTING,
        None,
        eml(
            "Gentle nudge",
            """
Hi all, just a gentle nudge on PR 27398 (adds an S3 bucket for the data team) - it has been
sitting there since Tuesday waiting for a Cloud Platform approval. Thanks!
""",
        ),
    ),
    # Asking for the status of a ticket is not an incident.
    Case(
        "ticket-status",
        NOT_IMPACTING,
        None,
        eml(
            "Any update on my ticket?",
            """
Hello, I raised a ticket last week about moving our DNS zone to Route 53 and haven't heard
back. Could you let me know where it is in the queue?
""",
        ),
    ),
    # Asking for the status of a GitHub issue, differently worded.
    Case(
        "issue-status",
        NOT_IMPACTING,
        "laa-crime-apply",
        eml(
            "cloud-platform issue 6123",
            """
Hi, what's the latest on issue 6123 (our certificate renewal request)? It has been open for a
fortnight with no reply. #laa-crime-apply
""",
        ),
    ),
    # How-to questions are not incidents.
    Case(
        "how-to",
        NOT_IMPACTING,
        None,
        eml(
            "How do we rotate our RDS password?",
            """
Hi, how do we rotate the master password of our production RDS instance without downtime? Is
there a runbook for this?
""",
        ),
    ),
    # A how-to worded without "how": asking for guidance.
    Case(
        "guidance-request",
        NOT_IMPACTING,
        "opg-digital",
        eml(
            "Advice on ingress timeouts",
            """
We'd like some advice on the right ingress annotation to allow uploads of larger files in our
production namespace, ideally before our go-live in January. #opg-digital
""",
        ),
    ),
    # An access request is not an incident.
    Case(
        "access-request",
        NOT_IMPACTING,
        None,
        eml(
            "Access to the live cluster",
            """
Please could you give me access to the live cluster for our namespace? I've just joined the
team and need to run kubectl get pods.
""",
        ),
    ),
    # Access request worded as "add me to the GitHub team".
    Case(
        "access-github-team",
        NOT_IMPACTING,
        None,
        eml(
            "GitHub team",
            """
Could someone add me to the webops GitHub team so that I can approve our environment changes?
My GitHub username is jdoe-moj.
""",
        ),
    ),
    # A cost question is not an incident.
    Case(
        "cost-question",
        NOT_IMPACTING,
        None,
        eml(
            "AWS costs for our namespace",
            """
Our finance team wants to know how much our production namespace costs each month, including
the RDS and the ElastiCache. Where can we see the figures?
""",
        ),
    ),
    # A feature request is not an incident.
    Case(
        "feature-request",
        NOT_IMPACTING,
        None,
        eml(
            "Support for Postgres 17",
            """
Would it be possible for Cloud Platform to support PostgreSQL 17 in the RDS module? We'd like
to upgrade our production database next quarter.
""",
        ),
    ),
    # Planned work notified in advance is not an incident.
    Case(
        "planned-work",
        NOT_IMPACTING,
        None,
        eml(
            "Planned maintenance - Tuesday",
            """
FYI we have planned maintenance on our production database on Tuesday 1 December 19:00-21:00,
the service will show a maintenance page. No action needed from you.
""",
        ),
    ),
    # A question after an incident that is over is not an incident.
    Case(
        "post-incident-question",
        NOT_IMPACTING,
        "laa-apply-incident",
        eml(
            "Re: Apply outage on Thursday",
            """
Thanks for fixing Thursday's outage - it has been resolved since 23:00. Could you share the
root cause analysis with us for our incident review? #laa-apply-incident
""",
        ),
    ),
    # A post-incident question, differently worded.
    Case(
        "postmortem-request",
        NOT_IMPACTING,
        None,
        eml(
            "Last night's ingress problem",
            """
Hi, the 502s we saw last night are fixed now. Will there be a post-mortem, and is there
anything we should change in our ingress config to avoid it?
""",
        ),
    ),
    # A problem in a non-production environment is not service-impacting.
    Case(
        "uat-down",
        NOT_IMPACTING,
        "cfo-uat",
        eml(
            "UAT is down!!!",
            """
Our UAT environment is completely down - every page returns a 503 and the testers are blocked.
Can someone look urgently? #cfo-uat
""",
        ),
    ),
    # A dev namespace problem, differently worded.
    Case(
        "dev-namespace",
        NOT_IMPACTING,
        None,
        eml(
            "Pods crashing",
            """
Our pods in the hmpps-tier-dev namespace are crashlooping with OOMKilled since this morning.
Nothing is deployed to production yet.
""",
        ),
    ),
    # An explicit "no impact" statement makes a production warning not service-impacting.
    Case(
        "no-impact-statement",
        NOT_IMPACTING,
        "ppud-dev",
        eml(
            "Production certificate expiring",
            """
Our production certificate for ppud.justice.gov.uk expires in 10 days and cert-manager hasn't
renewed it. No impact on users yet. Could you check the issuer? #ppud-dev
""",
        ),
    ),
    # "no customer impact", differently worded, on a warning that is not failing.
    Case(
        "not-affected-statement",
        NOT_IMPACTING,
        None,
        eml(
            "Disk usage warning on prod",
            """
The disk usage alert on our production Elasticsearch domain fired at 80%. Users aren't
impacted and search works as normal; could you tell us how to add a node?
""",
        ),
    ),
    # --- reading the mail ------------------------------------------------------------------
    # Outlook's "From: … Sent: …" quote: only the new text is read; the quoted channel loses.
    Case(
        "outlook-quote",
        ESCALATE,
        "laa-ccms-incident",
        eml(
            "RE: CCMS connectivity",
            """
CCMS is now down for all providers - the connection to the Oracle back end has failed since
20:40. We've opened #laa-ccms-incident for this.

________________________________
From: Ade Johnson <ade.johnson@justice.gov.uk>
Sent: 28 November 2026 19:02
To: Cloud Platform Escalations
Subject: CCMS connectivity

Heads up, we may see slowness tonight. See #laa-ccms-dev.
""",
        ),
    ),
    # "> " quoted lines with an earlier channel are not the new text's channel.
    Case(
        "gt-quote",
        ESCALATE,
        "hmpps-incident-1128",
        eml(
            "Re: Digital prison services",
            """
Update: DPS is completely down now, all prisons report "service unavailable". Incident
channel #hmpps-incident-1128.

> We're seeing some errors, discussing in #dps-dev
> Ben
""",
        ),
    ),
    # An inline forwarded report from users is read: a forwarded outage is escalated.
    Case(
        "forwarded-inline",
        ESCALATE,
        "cica-incident",
        eml(
            "Fwd: Cannot submit claims",
            """
Forwarding the report below from our contact centre. Comms in #cica-incident.

---------- Forwarded message ---------
From: Contact Centre <contact@cica.gov.uk>
Date: Sat, 28 Nov 2026 at 20:41
Subject: Cannot submit claims

Applicants are phoning to say the live claim form fails on submit with an error page. This has
been happening for every caller since 20:15.
""",
        ),
    ),
    # An attached message/rfc822 is read as forwarded text.
    Case(
        "forwarded-attached",
        ESCALATE,
        "modernisation-platform-incident",
        multipart(
            "Fwd: outage report",
            "outer",
            """
--outer
Content-Type: text/plain; charset="utf-8"

See the attached report from the service team. Please use #modernisation-platform-incident.

--outer
Content-Type: message/rfc822

From: Service Desk <desk@justice.gov.uk>
Subject: Production outage
Content-Type: text/plain; charset="utf-8"

The production Jira service is down: users get a 504 gateway timeout on every page since 20:05.
--outer--
""",
        ),
    ),
    # ISO-8859-1 quoted-printable body with an RFC 2047 subject is decoded and read.
    Case(
        "latin1-qp-rfc2047",
        ESCALATE,
        "hmcts-cafe-live",
        eml(
            "=?iso-8859-1?q?Panne_du_service_=96_production?=",
            quopri.encodestring(
                "Bonjour, the production caf\u00e9 booking site is down: every request returns a"
                " 503 and users can't book. Comms: #hmcts-cafe-live\n".encode("iso-8859-1")
            ).decode("ascii"),
            content_type='text/plain; charset="iso-8859-1"',
            encoding="quoted-printable",
            sender="=?iso-8859-1?q?Zolt=E1n_Varga?= <zoltan.varga@justice.gov.uk>",
        ),
    ),
    # A base64 body is decoded and read.
    Case(
        "base64-body",
        ESCALATE,
        "laa-maat-incident",
        eml(
            "MAAT outage",
            base64.encodebytes(
                b"MAAT is not loading for caseworkers in production since 20:20; every search "
                b"times out and court applications are piling up.\nSlack channel: "
                b"laa-maat-incident\n"
            ).decode("ascii"),
            encoding="base64",
        ),
    ),
    # An RFC 2047 subject carrying the only channel is decoded and the channel found.
    Case(
        "rfc2047-subject-channel",
        ESCALATE,
        "probation-incident",
        eml(
            "=?utf-8?b?"
            + base64.b64encode("Outage \u2013 #probation-incident".encode()).decode()
            + "?=",
            """
Manage supervisions is down in production: probation practitioners get an error on every
page and cannot record contacts. Started at 20:30.
""",
        ),
    ),
]


# Second wordings of the behaviours above, and further traps.
CASES += [
    # A sender address not on an address-only allowlist is refused, even in the same domain.
    Case(
        "allowlist-address-only",
        NOT_ALLOWED,
        None,
        eml(
            "Prison API down",
            """
The Prison API in production is down: every call returns 503 and prison staff can't log in
to DPS. Started 20:45. Please call me on 07700 900 321.
""",
            sender="Someone Else <someone.else@partner.example.com>",
        ),
        allowed_senders=("oncall@partner.example.com",),
    ),
    # The exact allowed address may escalate.
    Case(
        "allowlist-exact-address",
        ESCALATE,
        "partner-incident",
        eml(
            "Prison API down",
            """
The Prison API in production is down: every call returns 503 and prison staff can't log in
to DPS. Started 20:45. Comms in #partner-incident.
""",
            sender="On Call <OnCall@Partner.Example.com>",
        ),
        allowed_senders=("oncall@partner.example.com",),
    ),
    # Staging mentioned as where the release was tested; the failure is for every user now.
    Case(
        "tested-in-staging",
        ESCALATE,
        "laa-documents",
        eml(
            "Document upload broken after release",
            """
Since our 20:00 release, document upload fails for every user with a 500. It was tested in
staging and was ok there. Rolling back now but need help with the S3 permissions.
#laa-documents
""",
        ),
    ),
    # A service that is not live yet has no live users: its failures are not service-impacting.
    Case(
        "not-live-yet",
        NOT_IMPACTING,
        "opg-new-service",
        eml(
            "Ingress 502 on our new service",
            """
Our new service isn't live yet, but the ingress returns a 502 for the preprod host since this
afternoon and we can't work out why. #opg-new-service
""",
        ),
    ),
    # A staging outage with a statement that production is fine is not service-impacting.
    Case(
        "staging-down-prod-fine",
        NOT_IMPACTING,
        "hmpps-tier",
        eml(
            "Staging cluster unreachable!!!",
            """
Our staging namespace is unreachable - all pods are failing their readiness checks and our
testers are blocked. Production is unaffected. #hmpps-tier
""",
        ),
    ),
    # A pre-production cluster problem, worded without "environment".
    Case(
        "preprod-cluster",
        NOT_IMPACTING,
        None,
        eml(
            "Preprod DB connection errors",
            """
Since this morning our apps on preprod can't connect to the RDS instance - connection refused.
Can you check the security group?
""",
        ),
    ),
    # "Live is down, staging is fine" is an outage, not a "no impact" statement.
    Case(
        "live-down-staging-fine",
        ESCALATE,
        "epf-incident",
        eml(
            "EPF outage",
            """
Live is down, staging is fine. Every request to the production EPF site returns 502 since
20:30 and providers cannot claim. #epf-incident
""",
        ),
    ),
    # Deleted data in a live database is data loss, worded without "data".
    Case(
        "records-deleted",
        ESCALATE,
        "delius-incident",
        eml(
            "Case notes deleted",
            """
A migration that ran at 19:00 has deleted all the case notes written today from the live
database. Probation practitioners are asking where their notes went. #delius-incident
""",
        ),
    ),
    # A GOV.UK error page quoted by the sender is a symptom.
    Case(
        "govuk-error-page",
        ESCALATE,
        "civil-apply-live",
        eml(
            "Apply service",
            """
Members of the public are ringing us to say they see "Sorry, there is a problem with the
service" whenever they try to submit a claim tonight. #civil-apply-live
""",
        ),
    ),
    # A how-to question naming a single problem word stays a how-to.
    Case(
        "howto-with-one-symptom-word",
        NOT_IMPACTING,
        None,
        eml(
            "Notify rate limits",
            """
Quick question: what's the recommended way to handle 429 responses from the Notify API in
our production namespace? We'd like to add retries before our launch in the spring.
""",
        ),
    ),
    # A feature request worded as a plan question.
    Case(
        "feature-plan",
        NOT_IMPACTING,
        None,
        eml(
            "Managed Redis 7",
            """
Is there any plan to offer ElastiCache Redis 7 through the Cloud Platform modules? Our
production service would benefit from the new features next year.
""",
        ),
    ),
    # A cost question worded around the bill.
    Case(
        "cost-bill",
        NOT_IMPACTING,
        "laa-finance",
        eml(
            "Our AWS bill",
            """
Our AWS bill for the live namespace went up by two thousand pounds last month. Can you help
us understand the spend on NAT gateways? #laa-finance
""",
        ),
    ),
    # Planned work announced with a heads-up.
    Case(
        "planned-heads-up",
        NOT_IMPACTING,
        None,
        eml(
            "Heads-up: Sunday migration",
            """
Heads-up: we'll be migrating our production database to Aurora on Sunday 06:00-08:00, with a
maintenance page for users during that window.
""",
        ),
    ),
    # Fixed once but happening again is an ongoing incident.
    Case(
        "resolved-but-again",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Re: Apply 502s",
            """
It was fixed last night but it's happening again: 502s on every request for all providers
since 20:50. #laa-apply-incident
""",
        ),
    ),
    # Precedence: list without a List-Id is still automated.
    Case(
        "precedence-list",
        AUTOMATED,
        None,
        eml("Platform digest", OUTAGE, headers="Precedence: list\n"),
    ),
    # A no-reply sender is a machine.
    Case(
        "noreply-sender",
        AUTOMATED,
        None,
        eml("Service check failed", OUTAGE, sender="Pingdom <no-reply@pingdom.com>"),
    ),
    # An "Out of Office" subject is an auto-reply.
    Case(
        "out-of-office-subject",
        AUTOMATED,
        None,
        eml(
            "Out of Office: Re: Apply for civil legal aid down",
            """
I'm out of the office until Monday 30 November.
""",
        ),
    ),
    # Auto-Submitted: no is a person's mail.
    Case(
        "auto-submitted-no",
        ESCALATE,
        "laa-apply-incident",
        eml("Apply down", OUTAGE + "#laa-apply-incident\n", headers="Auto-Submitted: no\n"),
    ),
    # A JIRA key after # is a ticket, not a channel.
    Case(
        "jira-key-not-channel",
        NO_CHANNEL,
        None,
        eml(
            "Bulk scan outage - ticket #LAA-2231",
            """
Bulk scan is down in production: scanned documents are not arriving and caseworkers cannot
process any applications since 19:30. See ticket #LAA-2231 and PR #311.
""",
        ),
    ),
    # "our Slack channel is name" names a channel without # or a colon.
    Case(
        "slack-channel-is",
        ESCALATE,
        "tribunals-incident",
        eml(
            "Tribunal hearings app down",
            """
The tribunal hearings app is down in production and judges cannot open case files. Our slack
channel is tribunals-incident if you need us.
""",
        ),
    ),
    # A Microsoft Teams channel, even labelled "channel:", is not a Slack channel.
    Case(
        "teams-channel-label",
        NO_CHANNEL,
        None,
        eml(
            "Outage - Legal aid means assessment",
            """
The means assessment service is unavailable in production, every provider gets a 503. We are
coordinating in Microsoft Teams, Teams channel: LAA-Major-Incident
""",
        ),
    ),
    # @channel and @here are Slack mentions, not channel names.
    Case(
        "at-here",
        NO_CHANNEL,
        None,
        eml(
            "Outage",
            """
The production Court Store API is not responding and court staff cannot download bundles.
I've posted @here and @channel in our team space already.
""",
        ),
    ),
    # A channel only in the forwarded part of a forwarded report still counts.
    Case(
        "forwarded-channel",
        ESCALATE,
        "hmcts-pcs-incident",
        eml(
            "Fwd: Possession claims down",
            """
Please help - see below.

---------- Forwarded message ---------
From: Service Owner <owner@justice.gov.uk>
Subject: Possession claims down

Possession claims online is down in production for all landlords since 20:00. Comms in
#hmcts-pcs-incident.
""",
        ),
    ),
    # A channel only in a quoted earlier message still counts.
    Case(
        "quoted-only-channel",
        ESCALATE,
        "hmpps-incident-1128",
        eml(
            "Re: DPS errors",
            """
It's now completely down for all prisons, nobody can log in to DPS.

On Sat, 28 Nov 2026 at 20:31, Ben Ode <ben.ode@justice.gov.uk> wrote:
> We're seeing errors, comms in #hmpps-incident-1128
""",
        ),
    ),
    # An HTML Outlook reply: the quoted earlier message (divRplyFwdMsg) loses to the new text.
    Case(
        "html-outlook-reply",
        ESCALATE,
        "ccms-live-incident",
        eml(
            "RE: CCMS slowness",
            """
<html><body><div>CCMS is now unavailable to all providers, the login page returns 504.<br>
Please use #ccms-live-incident for updates.</div>
<hr><div id="divRplyFwdMsg"><b>From:</b> Ade Johnson<br><b>Sent:</b> 28 November 2026 19:02<br>
<b>Subject:</b> CCMS slowness</div>
<div>We may see slowness tonight, we're in #ccms-dev</div></body></html>
""",
            content_type='text/html; charset="utf-8"',
        ),
    ),
    # Only a channel invitation, without what is wrong: no facts.
    Case(
        "join-channel-only",
        NO_FACTS,
        "laa-major-incident",
        eml(
            "P1",
            """
Hi, please join #laa-major-incident now.

Thanks
""",
        ),
    ),
    # An HTML mail with just a link and a channel: no facts.
    Case(
        "html-just-link",
        NO_FACTS,
        "opg-live",
        eml(
            "see this",
            """
<html><body><p><a href="https://grafana.example.org/d/x">https://grafana.example.org/d/x</a></p>
<p>#opg-live</p></body></html>
""",
            content_type='text/html; charset="utf-8"',
        ),
    ),
]


# Chasers, comparisons and replies where a word-level rule would misread the mail.
CASES += [
    # Asking for an update while users are still blocked is an ongoing incident, not a chase.
    Case(
        "any-update-users-blocked",
        ESCALATE,
        "mlra-incident",
        eml(
            "Any update?",
            """
Any update on this? Caseworkers still cannot log in to MLRA and the queue is growing.
#mlra-incident
""",
        ),
    ),
    # A ticket-status question about a service that is still down, differently worded.
    Case(
        "ticket-progress-still-down",
        ESCALATE,
        "laa-cwa-incident",
        eml(
            "Re: ticket 4411",
            """
Is there any progress on ticket 4411? CWA is still down for providers, they have been unable
to submit claims all evening. #laa-cwa-incident
""",
        ),
    ),
    # A live payments failure that mentions the billing team is not a cost question.
    Case(
        "incident-mentions-billing",
        ESCALATE,
        "fines-incident",
        eml(
            "Fine payments failing",
            """
Card payments on the live fines service are failing and the payment page shows errors; our
billing team has had 30 complaints in an hour. #fines-incident
""",
        ),
    ),
    # "Our dev team" are people: the outage they noticed is live.
    Case(
        "dev-team-noticed",
        ESCALATE,
        "check-my-diary-live",
        eml(
            "Site has been down since 8pm",
            """
Our dev team noticed the Check my diary site has been down since 8pm; the load balancer
health checks fail and officers get a 502. #check-my-diary-live
""",
        ),
    ),
    # A broken dev environment that only delays a production release is not service-impacting.
    Case(
        "dev-blocks-release",
        NOT_IMPACTING,
        "laa-dev",
        eml(
            "URGENT - dev environment down",
            """
Our dev environment is down - all pods are crashlooping - and it blocks our production release
tonight. Please help urgently! #laa-dev
""",
        ),
    ),
    # A thank-you reply after a fix is not a new incident, even quoting the outage.
    Case(
        "thanks-fixed-reply",
        NOT_IMPACTING,
        "laa-apply-incident",
        eml(
            "Re: Apply for civil legal aid down",
            """
Thanks, that's fixed it! Really appreciate the quick help on a Saturday night.

On Sat, 28 Nov 2026 at 20:31, Priya Nair <priya.nair@justice.gov.uk> wrote:
> The Apply service returns a 503 to every provider. #laa-apply-incident
""",
        ),
    ),
    # Asking for the RCA of a resolved outage is post-incident, though it "still" needs it.
    Case(
        "rca-still-needed",
        NOT_IMPACTING,
        None,
        eml(
            "Tuesday's outage",
            """
The outage on Tuesday has been resolved, but we still need the RCA for our programme board.
Who can write it up?
""",
        ),
    ),
    # An Alertmanager notification is a machine's alert.
    Case(
        "alertmanager-subject",
        AUTOMATED,
        "laa-alerts",
        eml(
            "[FIRING:2] HighErrorRate laa-apply-production",
            """
Labels: alertname=HighErrorRate severity=critical namespace=laa-apply-production
Annotations: 5xx rate above 20% for 5 minutes. Service down. Channel #laa-alerts
""",
            sender="Alerts <alerts@laa.example.org>",
        ),
    ),
    # A Slack web-client link gives the channel ID, like an archive link.
    Case(
        "slack-client-link",
        ESCALATE,
        "C05ABCDE12",
        eml(
            "Book video link outage",
            """
Book a video link is down in production: courts cannot book hearings with prisons, every
submission returns 500. Comms here: https://app.slack.com/client/T02DYEB3A/C05ABCDE12
""",
        ),
    ),
    # An incident reference after # is not a channel.
    Case(
        "incident-ref-not-channel",
        NO_CHANNEL,
        None,
        eml(
            "Incident #INC0012345 - Make a recall decision down",
            """
Make a recall decision is down in production since 19:50 and probation practitioners cannot
record decisions. Logged with the service desk as #INC0012345, priority #P1.
""",
        ),
    ),
    # "Slack channel: to follow" promises a channel but names none.
    Case(
        "channel-to-follow",
        NO_CHANNEL,
        None,
        eml(
            "Prison visits outage",
            """
Prison visits booking is failing with 500 errors for all visitors since 20:10.
Slack channel: to follow
""",
        ),
    ),
    # Negated problem words ("no errors", "nothing is broken") are not symptoms.
    Case(
        "negated-symptoms-advice",
        NOT_IMPACTING,
        "hmpps-tier",
        eml(
            "Advice on autoscaling",
            """
There are no errors in the logs and nothing is broken, but we'd like advice on tuning the HPA
for our production deployment. #hmpps-tier
""",
        ),
    ),
    # People blocked plus the problem itself outweigh a how-to phrase in the same mail.
    Case(
        "blocked-people-with-howto",
        ESCALATE,
        "laa-evidence-incident",
        eml(
            "Evidence upload broken since upgrade",
            """
Since the cluster upgrade at 19:00 solicitors are unable to upload evidence on the live
service. How do we get the old ingress class back? #laa-evidence-incident
""",
        ),
    ),
]


# Planned work against incidents caused by it; outage signs against excluded requests.
CASES += [
    # An incident caused by last night's planned maintenance is an incident, not planned work.
    Case(
        "caused-by-planned-maintenance",
        ESCALATE,
        "mlra-incident",
        eml(
            "MLRA searches",
            """
Since last night's planned maintenance, every search in MLRA times out after 60 seconds and
caseworkers have stopped processing applications. #mlra-incident
""",
        ),
    ),
    # Planned maintenance announced ahead, with the service "will be unavailable", is planned work.
    Case(
        "planned-will-be-unavailable",
        NOT_IMPACTING,
        "laa-ccms",
        eml(
            "CCMS maintenance Tuesday",
            """
FYI we have scheduled maintenance on CCMS on Tuesday 1 December 19:00-21:00. The service will
be unavailable to providers during that time. #laa-ccms
""",
        ),
    ),
    # A PR that needs approval to fix an ongoing production outage is part of the incident.
    Case(
        "fix-pr-during-outage",
        ESCALATE,
        "visits-incident",
        eml(
            "Fix PR needs approval - production down",
            """
Production is down since 20:10 after the cert rotation. Our fix PR #812 needs approval
urgently, please. #visits-incident
""",
        ),
    ),
    # A how-to question while the service is unavailable is an incident.
    Case(
        "howto-while-unavailable",
        ESCALATE,
        "book-a-secure-move",
        eml(
            "How do we restart the ingress?",
            """
Book a secure move is unavailable for all suppliers. How do we restart our ingress controller
pods? #book-a-secure-move
""",
        ),
    ),
]


# Reading wrapped, replied and forwarded text as a person would.
CASES += [
    # A Gmail attribution wrapped over two lines still starts the quote: its channel loses.
    Case(
        "wrapped-attribution",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Re: Apply for civil legal aid down",
            """
Still down for every provider 30 minutes later. Further comms in #laa-apply-incident please.

On Sat, 28 Nov 2026 at 20:31, Priya Nair <priya.nair@justice.gov.uk>
wrote:
> The service is down. See #laa-apply-dev
""",
        ),
    ),
    # An Outlook forward ("FW:", "From: … Sent: …") carries the facts the forwarder relies on.
    Case(
        "outlook-forward-facts",
        ESCALATE,
        "cica-incident",
        eml(
            "FW: Contact centre calls",
            """
Please see below - urgent. #cica-incident

From: Contact Centre <contact@cica.gov.uk>
Sent: 28 November 2026 20:41
To: Ops
Subject: Cannot submit claims

Applicants have been phoning all evening: the live claim form shows "Sorry, there is a problem
with the service" on submit.
""",
        ),
    ),
    # Hard-wrapped text: an explicit "no impact" split across lines is still read as one phrase.
    Case(
        "wrapped-no-impact",
        NOT_IMPACTING,
        "hmpps-book-video-link",
        eml(
            "Cert renewal failed",
            """
The cert-manager renewal for our production certificate failed this evening; the current one is
valid for another 20 days, so there is no user
impact. Could you look on Monday? #hmpps-book-video-link
""",
        ),
    ),
]


# "No impact" statements against partial outages, and hashtags that are not channels.
CASES += [
    # "The site is up, but every login fails" is a partial outage, not a no-impact statement.
    Case(
        "up-but-logins-fail",
        ESCALATE,
        "opg-sirius-incident",
        eml(
            "Sirius logins failing",
            """
The live Sirius site is up, but every login fails with an error and case workers can't get
in since 20:10. #opg-sirius-incident
""",
        ),
    ),
    # "Not an outage as such, but half of requests fail" is a partial outage.
    Case(
        "not-an-outage-but",
        ESCALATE,
        "hmpps-auth-incident",
        eml(
            "Intermittent 502s on HMPPS Auth",
            """
It's not an outage as such, but half of the sign-in requests to HMPPS Auth fail with 502 and
prison staff are being logged out. #hmpps-auth-incident
""",
        ),
    ),
    # "The fix isn't live yet" is an incident update, not a service that has no live users.
    Case(
        "fix-not-live-yet",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Re: Apply 503s",
            """
The fix isn't live yet and Apply is still returning 503 to providers. Can someone help us push
the image? #laa-apply-incident
""",
        ),
    ),
    # "Everything is fine now" after a flap is not an incident.
    Case(
        "everything-fine-now",
        NOT_IMPACTING,
        None,
        eml(
            "Pingdom flapped overnight",
            """
Our Pingdom check for the production site flapped a few times overnight, but everything is fine
now. Could you tell us if there was a platform change at 03:00?
""",
        ),
    ),
    # "#urgent" is a hashtag for emphasis: the mail names no channel.
    Case(
        "hashtag-urgent",
        NO_CHANNEL,
        None,
        eml(
            "#urgent Make a recall decision down",
            """
Make a recall decision is down in production since 19:50; probation practitioners cannot open
recall cases. Please ring the duty manager. #urgent #P1
""",
        ),
    ),
]


CASES += [
    # "Production is fine, but testers are blocked" in UAT: the "but" is about non-production.
    Case(
        "prod-fine-but-uat-blocked",
        NOT_IMPACTING,
        "laa-crime-uat",
        eml(
            "CRITICAL - UAT database dropped!!!",
            """
Production is fine, but our UAT testers are completely blocked: the UAT database was dropped
by a migration and the app can't start. Can you restore last night's snapshot? #laa-crime-uat
""",
        ),
    ),
]


# Excluded requests worded without the obvious keywords.
CASES += [
    # A PR given only as a GitHub link, asked to be approved, is a PR chase.
    Case(
        "pr-link-approve",
        NOT_IMPACTING,
        None,
        eml(
            "Approval please",
            """
Hi, could someone approve
https://github.com/ministryofjustice/cloud-platform-environments/pull/27455 please? It is
blocking our release on Monday.
""",
        ),
    ),
    # "Have a look at my PR" is a PR chase.
    Case(
        "pr-have-a-look",
        NOT_IMPACTING,
        "laa-get-access",
        eml(
            "PR for new namespace",
            """
Could someone have a look at my PR for the laa-get-access namespace when you get a chance?
#laa-get-access
""",
        ),
    ),
    # "It would be great if the platform offered…" is a feature request.
    Case(
        "would-be-great-if",
        NOT_IMPACTING,
        None,
        eml(
            "Idea",
            """
It would be great if the platform offered a managed OpenSearch dashboard per namespace; at the
moment we run our own and it takes a lot of effort to keep it patched.
""",
        ),
    ),
    # "What's the process for…" is a how-to question.
    Case(
        "whats-the-process",
        NOT_IMPACTING,
        None,
        eml(
            "New domain",
            """
What's the process for getting a new service.justice.gov.uk domain pointed at our production
ingress? We'd like it in place for the launch.
""",
        ),
    ),
    # Asking for an incident report after the event is post-incident.
    Case(
        "incident-report-request",
        NOT_IMPACTING,
        None,
        eml(
            "Last week's outage",
            """
Following last week's outage of the live cluster, please can you share the incident report
with our service owner?
""",
        ),
    ),
    # Announcing a planned change in "we're planning to" words is planned work.
    Case(
        "planning-to-upgrade",
        NOT_IMPACTING,
        "hmpps-ims",
        eml(
            "RDS upgrade Tuesday",
            """
We're planning to upgrade our production RDS instance from Postgres 14 to 16 on Tuesday
evening. Is there anything we should know beforehand? #hmpps-ims
""",
        ),
    ),
    # A request for permission, with "can't" only describing the missing access, is access.
    Case(
        "cant-access-console",
        NOT_IMPACTING,
        None,
        eml(
            "AWS console access",
            """
I can't access the AWS console for our account since I moved teams. Can I be given access to
the laa-production account please?
""",
        ),
    ),
]

# Missing facts and missing channels in other words.
CASES += [
    # A P1 announcement that says nothing about what is wrong has no facts.
    Case(
        "p1-join-channel",
        NO_FACTS,
        "maw-incident",
        eml(
            "Major incident",
            """
Major incident declared for Manage a workforce. Bridge and updates in #maw-incident.
""",
        ),
    ),
    # Only an alerts channel is named: it is still the channel of an outage report.
    Case(
        "alerts-channel-only",
        ESCALATE,
        "hmpps-alerts",
        eml(
            "Prison API outage",
            """
The production Prison API is down since 20:40 and prison staff cannot see any prisoner
records. Our alerts go to #hmpps-alerts.
""",
        ),
    ),
    # Facts without any listed problem word are still facts when there are enough of them.
    Case(
        "facts-without-keywords",
        ESCALATE,
        "visits-incident",
        eml(
            "Visits booked to the wrong prison",
            """
Since 20:00 every visit booked online is being recorded against the wrong prison, so families
will turn up at establishments that do not expect them tomorrow morning. #visits-incident
""",
        ),
    ),
]


CASES += [
    # Urgency and "join the channel" words, however many, are not facts about what is wrong.
    Case(
        "p1-filler-words",
        NO_FACTS,
        "laa-p1",
        eml(
            "P1",
            """
Hi all, we have a P1 incident at the moment, please join the channel as soon as you possibly
can and call me if you need anything, thanks. #laa-p1
""",
        ),
    ),
    # Shouting for someone on the bridge is still no fact about the problem.
    Case(
        "bridge-right-now",
        NO_FACTS,
        "cfo-major",
        eml(
            "URGENT!!!",
            """
URGENT!!! Need someone from Cloud Platform on the bridge right now please, this is a critical
priority incident for us. Details in #cfo-major
""",
        ),
    ),
    # One short sentence of real facts, without any listed problem word, is enough.
    Case(
        "short-facts-no-keywords",
        ESCALATE,
        "visits-incident",
        eml(
            "Visits",
            """
Prison visits booking sends every family to the wrong prison since 8pm. #visits-incident
""",
        ),
    ),
]


CASES += [
    # A person's subject that merely starts with "Away" is not an out-of-office label.
    Case(
        "away-in-sentence",
        ESCALATE,
        "hmpps-incident",
        eml(
            "Away from desk but Prison API is down",
            """
I'm away from my desk but getting reports: the Prison API is down in production and prison
staff cannot see any prisoner records. #hmpps-incident
""",
        ),
    ),
    # An "OOO:" label is an out-of-office reply.
    Case(
        "ooo-label",
        AUTOMATED,
        None,
        eml(
            "OOO: back on Monday",
            """
I'm out until Monday with no access to email.
""",
        ),
    ),
    # Outlook's plain text puts a link's address after its text: "#name<https://…/archives/C…>"
    # gives the name, as the link text does in HTML.
    Case(
        "outlook-plain-link",
        ESCALATE,
        "laa-crime-incident",
        eml(
            "Crime apply outage",
            """
Crime Apply is down in production and providers cannot submit applications since 20:05.
Further comms in #laa-crime-incident<https://mojdt.slack.com/archives/C07ABCDEF12>
""",
        ),
    ),
    # A disclaimer's "breach" and "unauthorised" are not a security incident: a PR chase stays one.
    Case(
        "disclaimer-words",
        NOT_IMPACTING,
        None,
        eml(
            "Chasing our PR",
            """
Hi, just chasing our PR for the new RDS instance, it has been open since Monday.

Thanks,
Sam

This e-mail and any attachments is intended only for the attention of the addressee(s). Its
unauthorised use, disclosure, storage or copying is a breach of policy and is not permitted.
""",
        ),
    ),
]


CASES += [
    # "Restored … and since then …" describes a new, ongoing problem, not a resolved one.
    Case(
        "restored-but-erroring",
        ESCALATE,
        "cica-incident",
        eml(
            "CICA after database restore",
            """
The CICA database was restored from backup at 19:00 and since then the live application shows
an error page to every applicant. #cica-incident
""",
        ),
    ),
    # "Fixed … but now returns …": the fix broke something else that is happening now.
    Case(
        "fixed-now-returns",
        ESCALATE,
        "ppud-incident",
        eml(
            "Re: PPUD certificate",
            """
The certificate has been fixed, but the PPUD API now returns 403 to every caller and recall
documents cannot be sent. #ppud-incident
""",
        ),
    ),
]


CASES += [
    # A fix "in dev" beside an outage of the site: the outage is live, dev is where the fix is.
    Case(
        "fix-in-dev",
        ESCALATE,
        "opg-use-incident",
        eml(
            "Use a lasting power of attorney",
            """
The Use a lasting power of attorney site has been down since 8pm, every page is unavailable. We
have a fix in dev but can't deploy it because the pipeline is stuck. #opg-use-incident
""",
        ),
    ),
    # "Deployed to staging first" beside an outage, differently worded.
    Case(
        "staging-first",
        ESCALATE,
        "hmpps-incident",
        eml(
            "Manage offences outage",
            """
We deployed to staging first as usual, then to live at 19:00; since then Manage offences is
unreachable and sentence calculations fail. #hmpps-incident
""",
        ),
    ),
]


CASES += [
    # "The site works fine at the moment" about an expiring certificate: no impact yet.
    Case(
        "site-works-fine-cert",
        NOT_IMPACTING,
        "find-moj-data",
        eml(
            "Certificate expires Friday",
            """
Our certificate for find-moj-data.service.justice.gov.uk expires on Friday and cert-manager
has not renewed it. The site works fine at the moment. Could you take a look? #find-moj-data
""",
        ),
    ),
    # A question about an outage that is over ("it's all fine now") is post-incident.
    Case(
        "question-about-earlier-outage",
        NOT_IMPACTING,
        "ccq-dev",
        eml(
            "Question re: outage earlier",
            """
Hi, earlier today our service was unavailable for 20 minutes between 13:00 and 13:20. It's all
fine now. Was this a platform issue? Would be good to understand what happened. #ccq-dev
""",
        ),
    ),
]


CASES += [
    # Asking whether a platform change caused it, while the service is down, is an incident.
    Case(
        "was-this-platform-live",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Was this a platform change?",
            """
Was this caused by a platform change tonight? Apply has been down since 20:30 and no provider
can log in. No idea what happened on our side. #laa-apply-incident
""",
        ),
    ),
]


CASES += [
    # "Any news?" in reply to an outage report is about that outage: the quoted facts count.
    Case(
        "any-news-reply",
        ESCALATE,
        "laa-apply-incident",
        eml(
            "Re: Re: Apply",
            """
Any news?

On 28 Nov 2026, at 20:10, Ben Ode <ben.ode@justice.gov.uk> wrote:
> Apply is down for every provider, 503 on all pages. #laa-apply-incident
""",
        ),
    ),
    # "NOMIS down" in a subject is an outage sign; "scale down" in a body is not.
    Case(
        "name-down-subject",
        ESCALATE,
        "nomis-incident",
        eml(
            "NOMIS down",
            """
Prison staff report NOMIS has not loaded since 20:20 in any establishment. #nomis-incident
""",
        ),
    ),
    # Asking for routine work ("could you restore a backup… no rush") is not an incident.
    Case(
        "restore-backup-no-rush",
        NOT_IMPACTING,
        "hmpps-data",
        eml(
            "Data request",
            """
Hi, could you please restore yesterday's backup of our production database to a new instance
so we can compare some records? No rush. #hmpps-data
""",
        ),
    ),
    # Routine work asked differently ("please rotate"), with one problem word as its reason.
    Case(
        "please-rotate-key",
        NOT_IMPACTING,
        None,
        eml(
            "Key rotation",
            """
Please rotate the IRSA role credentials for our production namespace; our security review
flagged the old key as exposed in a screenshot last month.
""",
        ),
    ),
]


CASES += [
    # Taking a service down for maintenance, announced ahead, is planned work.
    Case(
        "take-down-for-maintenance",
        NOT_IMPACTING,
        None,
        eml(
            "Maintenance on Sunday",
            """
Heads-up: we will take the service down for maintenance on Sunday 06:00-07:00 while we upgrade
the database. Nothing needed from you.
""",
        ),
    ),
]


CASES += [
    # Status codes in the plural ("502s") are symptoms, in flowed text too.
    Case(
        "plural-status-codes",
        ESCALATE,
        "maw-incident",
        eml(
            "Help",
            """
Our staging environment is fine but production users are
getting 502s on every page of Manage a workforce since 20:00.
#maw-incident
""",
            content_type='text/plain; charset="utf-8"; format=flowed',
        ),
    ),
]


CASES += [
    # "Not down yet" is not an outage sign; the mail still states facts about a live degradation.
    Case(
        "not-down-yet",
        ESCALATE,
        "ims-incident",
        eml(
            "Prod RDS CPU",
            """
Hello, our prod RDS CPU is at 95% and climbing, response times have doubled in the last hour.
Not down yet but it will be soon at this rate. #ims-incident
""",
        ),
    ),
    # "We need the egress opened for production by Monday" is routine work, not an incident.
    Case(
        "need-egress-opened",
        NOT_IMPACTING,
        "laa-integrations",
        eml(
            "Firewall change",
            """
We need the egress opened to the new partner IP 203.0.113.10 for production by Monday or the
integration launch slips. #laa-integrations
""",
        ),
    ),
    # "Not down" beside a how-to question is no outage sign: the question stays a question.
    Case(
        "not-down-question",
        NOT_IMPACTING,
        "hmpps-tier",
        eml(
            "HPA tuning",
            """
The tier service is not down, but could you advise how to tune the HPA so it scales earlier in
the morning peak? #hmpps-tier
""",
        ),
    ),
]


def _policy(case: Case) -> TriagePolicy:
    return TriagePolicy(RULES, case.allowed_senders, case.trusted_list_ids)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_is_decided_as_labelled(case: Case) -> None:
    """Each labelled mail gets its verdict, primary reason and channel."""
    result = triage(parse_mail(case.raw), _policy(case))
    got = (result.verdict, result.primary_reason, result.slack_channel)
    expected = (*case.expect, case.channel)
    assert got == expected, [(e.rule, e.matched, e.where) for e in result.evidence]


def test_table_covers_every_reason_and_is_big_enough() -> None:
    """The table holds at least 45 mails and labels each reject reason at least twice."""
    assert len(CASES) >= 45
    assert len({case.name for case in CASES}) == len(CASES)
    for reason in Reason:
        assert sum(case.expect[1] is reason for case in CASES) >= 2, reason
