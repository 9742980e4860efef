/*
 * conf - the one reader of mailonce.conf, shared by every program.
 *
 * Syntax: one "Key value" pair per line, and keys are case-insensitive.
 * A "#" that starts a line or follows white space starts a comment, and
 * blank lines are ignored. A value runs to the end of the line with the
 * surrounding white space removed. A key given twice is an error except for list keys
 * (MigrateFrom), whose values accumulate.
 *
 * conf_load reports the first problem as "FILE:LINE: message" (an unknown
 * key, a bad value, a repeated key) or "FILE: missing required key K",
 * and never exits. Values are checked here, at load time, so a daemon
 * never finds a typo while it runs.
 */
#ifndef MAILONCE_CONF_H
#define MAILONCE_CONF_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define CONF_DEFAULT_PATH SYSCONFDIR "/mailonce/mailonce.conf"

/* Action the milter takes on a message. Each *Action key allows a subset. */
enum conf_action {
	ACTION_ACCEPT,   /* pass it on untracked (BadTokenAction only) */
	ACTION_DISCARD,  /* 250 to the client, no delivery at all */
	ACTION_REJECT,   /* 5xx */
	ACTION_TEMPFAIL, /* 4xx, the client retries */
	ACTION_HOLD,     /* accept into the Postfix hold queue */
	ACTION_TAG,      /* deliver with a header that marks it */
};

struct conf {
	char *path;

	/* Identity and storage. */
	char *server_id;  /* ServerID, required */
	char *database;   /* Database, required: path of the SQLite ledger */
	char *key_file;   /* KeyFile, required */
	int busy_timeout; /* BusyTimeout, milliseconds */

	/* Daemon. */
	char *socket;   /* Socket, libmilter syntax */
	char *user_id;  /* UserID, user[:group] to run as after binding */
	mode_t umask;   /* UMask */
	char *pid_file; /* PidFile */
	int verbose;    /* LogVerbose */

	/* Milter rules. */
	int strip_token;                  /* StripToken */
	enum conf_action duplicate_action; /* discard, reject, hold, tag */
	enum conf_action bad_token_action; /* reject, tempfail, accept */
	enum conf_action ledger_error_action; /* tempfail, reject */
	enum conf_action conflict_action; /* discard, reject, hold, tempfail */
	int confirm_commits;              /* ConfirmCommits */
	int confirm_timeout;              /* ConfirmTimeout, seconds */
	char *mail_log;                   /* MailLog, Postfix log to follow */

	/* Sender. */
	char *submit_to;  /* SubmitTo: inet:HOST:PORT or unix:/path */
	char *helo_name;  /* HeloName */
	int concurrency;  /* Concurrency, SMTP connections */
	int max_attempts; /* MaxAttempts per seq for 4xx replies */
	int retry_delay;  /* RetryDelay, seconds before the first retry */
	int lease_time;   /* LeaseTime, seconds */
	char **migrate_from; /* MigrateFrom, NULL-terminated */
	size_t migrate_from_count;
};

/* conf_init - set every key to its default; required keys become NULL. */
void conf_init(struct conf *conf);

/*
 * conf_load - read path over the defaults. Returns 0, or -1 with the
 * problem in err (see above). On error conf still contains defaults and
 * whatever was read before the bad line, and must be freed.
 */
int conf_load(struct conf *conf, const char *path, char *err, size_t errlen);

/* conf_free - release what conf_load allocated. */
void conf_free(struct conf *conf);

/* conf_print - write the effective configuration, one "Key value" a line. */
void conf_print(const struct conf *conf, FILE *fp);

const char *conf_action_name(enum conf_action action);

/*
 * conf_parse_duration - "30", "30s", "5m", "2h", "1d" to seconds.
 * Returns 0, or -1 for anything else (also negative or overflowing).
 */
int conf_parse_duration(const char *text, int *seconds);

/* conf_parse_bool - yes/no, true/false, on/off, 1/0. Returns 0 or -1. */
int conf_parse_bool(const char *text, int *value);

#endif
