/*
 * handoff - decide what the milter does with a tracked message.
 *
 * handoff_decide() maps the ledger's facts about (mailing, seq) to one
 * decision. It reads nothing else and changes nothing; the ledger applies
 * the verdict. The rules, first match wins:
 *
 *	mailing paused				PAUSED
 *	mailing cancelled			CANCELLED
 *	recipient skipped or error		CLOSED
 *	recorded address is another one		CONFLICT "recipient differs"
 *	recipient pending			ACCEPT
 *	accepted or later, other body digest	CONFLICT "body digest differs"
 *	queued, deferred, delivered, bounced	DUPLICATE
 *	accepted, commits not confirmed		DUPLICATE
 *	accepted, commit seen			DUPLICATE
 *	accepted, commit seen not to happen	ACCEPT anew
 *	accepted, commit unknown, and the log
 *	  was read to ConfirmTimeout past the
 *	  handoff without a commit line		ACCEPT anew
 *	accepted, commit unknown otherwise	CONFIRMING
 *
 * A draft or complete mailing is decided by its recipient alone: an
 * application that makes its own tokens may send before or after the
 * mailing's own run.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "handoff.h"

static const char *const commit_names[] = {"unknown", "committed", "not_committed"};

const char *handoff_commit_name(enum handoff_commit commit)
{
	if ((unsigned)commit >= sizeof(commit_names) / sizeof(commit_names[0]))
		return "invalid";
	return commit_names[commit];
}

int handoff_commit_parse(const char *name, enum handoff_commit *commit)
{
	for (size_t i = 0; i < sizeof(commit_names) / sizeof(commit_names[0]); i++) {
		if (strcmp(name, commit_names[i]) == 0) {
			*commit = (enum handoff_commit)i;
			return 0;
		}
	}
	return -1;
}

/* handoff_decide_accepted - the rules for a recipient already accepted */
static void handoff_decide_accepted(const struct handoff_facts *f, struct handoff_verdict *v)
{
	if (!f->confirm_commits) {
		v->decision = HANDOFF_DUPLICATE;
		v->detail = "already accepted";
		return;
	}

	switch (f->commit) {
	case COMMIT_COMMITTED:
		v->decision = HANDOFF_DUPLICATE;
		v->detail = "already accepted and committed";
		return;
	case COMMIT_NOT_COMMITTED:
		v->decision = HANDOFF_ACCEPT;
		v->accept_anew = 1;
		v->detail = "earlier handoff was not committed";
		return;
	case COMMIT_UNKNOWN:
		break;
	}

	/*
	 * Postfix logs the commit of a queue file within moments; a log read
	 * ConfirmTimeout beyond the handoff without that line means the
	 * commit never happened.
	 */
	if (f->log_time > 0 && f->log_time >= f->accepted_at + f->confirm_timeout) {
		v->decision = HANDOFF_ACCEPT;
		v->accept_anew = 1;
		v->detail = "no commit of earlier handoff in the log";
		return;
	}
	v->decision = HANDOFF_CONFIRMING;
	v->detail = "commit of earlier handoff not yet confirmed";
}

/* handoff_decide - map the facts about (mailing, seq) to a decision */
void handoff_decide(const struct handoff_facts *f, struct handoff_verdict *v)
{
	v->accept_anew = 0;

	if (f->state == MAILING_PAUSED) {
		v->decision = HANDOFF_PAUSED;
		v->detail = "mailing paused";
		return;
	}
	if (f->state == MAILING_CANCELLED) {
		v->decision = HANDOFF_CANCELLED;
		v->detail = "mailing cancelled";
		return;
	}
	if (f->status == RCPT_SKIPPED || f->status == RCPT_ERROR) {
		v->decision = HANDOFF_CLOSED;
		v->detail = f->status == RCPT_SKIPPED ? "recipient skipped" : "recipient failed";
		return;
	}
	if (strcasecmp(f->address, f->rcpt) != 0) {
		v->decision = HANDOFF_CONFLICT;
		v->detail = "recipient differs";
		return;
	}
	if (f->status == RCPT_PENDING) {
		v->decision = HANDOFF_ACCEPT;
		v->detail = "first handoff";
		return;
	}

	/* The same (mailing, seq) must carry the same message. */
	if (f->accepted_digest != NULL && f->digest != NULL &&
	    strcasecmp(f->accepted_digest, f->digest) != 0) {
		v->decision = HANDOFF_CONFLICT;
		v->detail = "body digest differs";
		return;
	}

	if (f->status != RCPT_ACCEPTED) {
		v->decision = HANDOFF_DUPLICATE;
		v->detail = "already queued";
		return;
	}
	handoff_decide_accepted(f, v);
}
