/*
 * ledger_common - names of the ledger's statuses, states, decisions and
 * return codes, shared by every backend.
 *
 * The names are the values stored in the database and printed by the
 * tools, so they never change. The parse functions return 0 on success
 * and -1 for an unknown name, leaving the output untouched.
 */
#include "config.h"

#include <string.h>

#include "ledger.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const status_names[] = {
        "pending", "accepted", "queued", "delivered", "bounced", "deferred", "skipped", "error",
};

static const char *const state_names[] = {
        "draft", "sending", "paused", "complete", "cancelled",
};

static const char *const decision_names[] = {
        "accept", "duplicate", "conflict", "confirming", "paused", "cancelled", "closed",
};

static const char *const rc_names[] = {
        "ok", "not found", "refused", "exists", "busy", "failed",
};

/* name_find - index of name in names, or -1 */
static int name_find(const char *const *names, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

const char *rcpt_status_name(enum rcpt_status status)
{
	return (unsigned)status < COUNT(status_names) ? status_names[status] : "invalid";
}

int rcpt_status_parse(const char *name, enum rcpt_status *status)
{
	int i = name_find(status_names, COUNT(status_names), name);

	if (i < 0)
		return -1;
	*status = (enum rcpt_status)i;
	return 0;
}

const char *mailing_state_name(enum mailing_state state)
{
	return (unsigned)state < COUNT(state_names) ? state_names[state] : "invalid";
}

int mailing_state_parse(const char *name, enum mailing_state *state)
{
	int i = name_find(state_names, COUNT(state_names), name);

	if (i < 0)
		return -1;
	*state = (enum mailing_state)i;
	return 0;
}

const char *handoff_decision_name(enum handoff_decision d)
{
	return (unsigned)d < COUNT(decision_names) ? decision_names[d] : "invalid";
}

int handoff_decision_parse(const char *name, enum handoff_decision *d)
{
	int i = name_find(decision_names, COUNT(decision_names), name);

	if (i < 0)
		return -1;
	*d = (enum handoff_decision)i;
	return 0;
}

const char *ledger_rc_name(enum ledger_rc rc)
{
	return (unsigned)rc < COUNT(rc_names) ? rc_names[rc] : "invalid";
}
