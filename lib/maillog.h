/*
 * maillog - parse one line of the Postfix mail log.
 *
 * A pure function of its input and the current time: no I/O, no global
 * state, safe in any thread. maillog.c lists the line formats it parses.
 */
#ifndef MAILONCE_MAILLOG_H
#define MAILONCE_MAILLOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ledger.h"

#define MAILLOG_PROGRAM_MAX 64
#define MAILLOG_DSN_MAX     15
#define MAILLOG_TEXT_MAX    512

enum maillog_event {
	MAILLOG_NONE,          /* any line not about a commit or a delivery */
	MAILLOG_COMMITTED,     /* qmgr "from=<...>, size=N, nrcpt=N (queue active)" */
	MAILLOG_NOT_COMMITTED, /* cleanup rejected or discarded the message */
	MAILLOG_DELIVERED,     /* "status=sent" */
	MAILLOG_BOUNCED,       /* "status=bounced" or "status=expired" */
	MAILLOG_DEFERRED,      /* "status=deferred" */
};

/* One parsed line; fields the line does not have are empty, 0 or -1. */
struct maillog_record {
	enum maillog_event event;
	int64_t time; /* seconds since the epoch, -1 when the timestamp is invalid */
	char program[MAILLOG_PROGRAM_MAX + 1]; /* "postfix/qmgr", "postfix-out/smtp" */
	long pid;
	char queue_id[LEDGER_QUEUE_ID_MAX + 1];
	char dsn[MAILLOG_DSN_MAX + 1];   /* "5.1.1" for delivery events */
	char text[MAILLOG_TEXT_MAX + 1]; /* the reply or reason, cut to fit */
};

/*
 * maillog_parse - parse the len bytes of line (no newline needed) into
 * *rec and return rec->event. now is the current time, which supplies the
 * year that classic syslog timestamps leave out.
 */
enum maillog_event maillog_parse(const char *line, size_t len, time_t now,
                                 struct maillog_record *rec);

/* maillog_event_name - "committed", "delivered", ... for log lines and tests. */
const char *maillog_event_name(enum maillog_event event);

#endif
