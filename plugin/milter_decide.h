/*
 * milter_decide - map a verdict on a tracked message to what the milter does.
 *
 * Nothing here calls libmilter, the ledger or the log: each function fills
 * a struct milter_outcome that the callbacks carry out and log, so the
 * whole table of decisions and actions can be tested on its own.
 */
#ifndef MAILONCE_MILTER_DECIDE_H
#define MAILONCE_MILTER_DECIDE_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "ledger.h"

#define MILTER_DUPLICATE_HEADER "Mailonce-Duplicate"
#define MILTER_REPLY_MAX        512
#define MILTER_HEADER_MAX       256
#define MILTER_LOG_MAX          2048

/* The rule settings, the part of the configuration that SIGHUP reloads. */
struct milter_rules {
	int strip_token;
	enum conf_action duplicate_action;
	enum conf_action bad_token_action;
	enum conf_action ledger_error_action;
	enum conf_action conflict_action;
	int confirm_commits;
	int confirm_timeout;
	int verbose;
};

/* The reply to the end-of-message callback, without libmilter's types. */
enum milter_status {
	MILTER_CONTINUE,
	MILTER_DISCARD,
	MILTER_REJECT,
	MILTER_TEMPFAIL,
};

/* The message a verdict is about. Every string in it may be hostile. */
struct milter_subject {
	const char *queue_id; /* Postfix {i}; NULL logs as NOQUEUE */
	const char *rcpt;     /* first envelope recipient, or NULL */
	size_t nrcpt;         /* number of envelope recipients */
	const char *mailing;  /* from the token; NULL when it did not parse */
	uint64_t seq;
};

struct milter_outcome {
	enum milter_status status;
	int strip;                    /* delete the Mailonce-Token headers */
	int hold;                     /* smfi_quarantine with quarantine */
	char rcode[4];                /* "550"; empty: no smfi_setreply */
	char xcode[8];                /* "5.7.1" */
	char reply[MILTER_REPLY_MAX]; /* SMTP reply text, safe for smfi_setreply */
	char quarantine[MILTER_REPLY_MAX];
	char tag[MILTER_HEADER_MAX]; /* Mailonce-Duplicate value; empty: none */
	char log[MILTER_LOG_MAX];    /* the one log line, every value escaped */
};

/* milter_decide_bad_token - apply BadTokenAction for a token that fails. */
void milter_decide_bad_token(const struct milter_rules *rules, const struct milter_subject *subj,
                             const char *reason, struct milter_outcome *out);

/* milter_decide_ledger_error - apply LedgerErrorAction when nothing was recorded. */
void milter_decide_ledger_error(const struct milter_rules *rules, const struct milter_subject *subj,
                                const char *errmsg, struct milter_outcome *out);

/* milter_decide_handoff - act on the ledger's decision for a tracked message. */
void milter_decide_handoff(const struct milter_rules *rules, const struct milter_subject *subj,
                           const struct ledger_handoff_result *res, struct milter_outcome *out);

#endif
