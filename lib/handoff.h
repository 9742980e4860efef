/*
 * handoff - the milter's decision on a tracked message, as a pure function
 * of what the ledger stores about its mailing and sequence number.
 *
 * The ledger reads the facts and applies the verdict in one transaction.
 * The rules live here, apart from storage, so each can be tested alone.
 */
#ifndef MAILONCE_HANDOFF_H
#define MAILONCE_HANDOFF_H

#include <stdint.h>

#include "ledger.h"

/* Whether Postfix was seen to commit the queue file of a handoff. */
enum handoff_commit {
	COMMIT_UNKNOWN,
	COMMIT_COMMITTED,
	COMMIT_NOT_COMMITTED,
};

const char *handoff_commit_name(enum handoff_commit commit);
int handoff_commit_parse(const char *name, enum handoff_commit *commit);

/* The ledger's record of (mailing, seq) when a handoff of it arrives. */
struct handoff_facts {
	enum mailing_state state;
	enum rcpt_status status;
	const char *address;         /* the recipient's recorded address */
	const char *rcpt;            /* this handoff's envelope recipient */
	const char *accepted_digest; /* body digest of the accepted handoff, or NULL */
	const char *digest;          /* this handoff's body digest */
	int confirm_commits;         /* look at the accepted handoff's commit */
	enum handoff_commit commit;  /* commit state of the accepted handoff */
	int64_t accepted_at;         /* when the accepted handoff was seen */
	int64_t log_time;            /* time of the last log line read, 0 if none */
	int confirm_timeout;         /* seconds */
};

struct handoff_verdict {
	enum handoff_decision decision;
	int accept_anew;    /* move accepted -> pending before accepting again */
	const char *detail; /* static text for the audit row and the log */
};

void handoff_decide(const struct handoff_facts *facts, struct handoff_verdict *verdict);

#endif
