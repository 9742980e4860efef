/*
 * conf - the one reader of mailonce.conf, shared by every program.
 *
 * Every key is one row of conf_keys below: its name, its type, where its
 * value lives in struct conf, its default as it would be written in the
 * file, and the limits its value must meet. conf_init, conf_load and
 * conf_print all walk that table, so a key added there is read, checked,
 * defaulted and printed with no other change; mailonce.conf(5) and the
 * example file document the same rows.
 *
 *	conf_init	sets every key to its default; keys without one are
 *			NULL (strings) or empty (MigrateFrom).
 *	conf_load	reads a file over what conf holds.
 *	conf_free	releases every string and list.
 *	conf_print	writes one "Key value" line per key; a key without a
 *			value is written as a comment, "# Key (not set)", so
 *			the output can be read back.
 *
 * Value types: string; bool (yes/no, true/false, on/off, 1/0); whole
 * number within limits; duration in seconds ("30", "30s", "5m", "2h",
 * "1d"); duration in milliseconds, which also takes "250ms"; octal file
 * mode; one action out of those a key allows; and a list of server ids.
 *
 * Errors: conf_load stops at the first problem and writes it to err as
 * "FILE:LINE: message" or "FILE: message". Nothing here logs or exits,
 * except that a default in the table that fails its own check is our own
 * bug and panics.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "conf.h"
#include "log.h"

#define SERVER_ID_MAX 64

enum conf_type {
	CONF_STRING,
	CONF_BOOL,
	CONF_INT,
	CONF_DURATION,    /* int, seconds */
	CONF_DURATION_MS, /* int, milliseconds */
	CONF_MODE,        /* mode_t, octal */
	CONF_ACTION,      /* enum conf_action out of an allowed set */
	CONF_LIST,        /* NULL-terminated char **, count beside it */
};

/* Bits for the actions a key allows. */
#define ACT(a) (1u << (a))

/*
 * check_fn - extra test of a string value. Returns NULL when the value is
 * fine, or the advice that follows "invalid value ... for KEY: ".
 */
typedef const char *(*check_fn)(const char *value);

struct conf_key {
	const char *name;
	enum conf_type type;
	size_t offset;    /* of the value in struct conf */
	const char *def;  /* as written in the file; NULL means not set */
	int required;
	long min, max;    /* CONF_INT and durations, in the stored unit */
	unsigned actions; /* CONF_ACTION: allowed ACT() bits */
	check_fn check;   /* CONF_STRING and CONF_LIST items */
};

static const char *conf_check_server_id(const char *value);
static const char *conf_check_socket(const char *value);
static const char *conf_check_submit_to(const char *value);
static const char *conf_check_word(const char *value);

#define OFF(field) offsetof(struct conf, field)

static const struct conf_key conf_keys[] = {
	{"ServerID", CONF_STRING, OFF(server_id), NULL, 1, 0, 0, 0, conf_check_server_id},
	{"Database", CONF_STRING, OFF(database), NULL, 1, 0, 0, 0, NULL},
	{"KeyFile", CONF_STRING, OFF(key_file), NULL, 1, 0, 0, 0, NULL},
	{"BusyTimeout", CONF_DURATION_MS, OFF(busy_timeout), "5s", 0, 0, INT_MAX, 0, NULL},
	{"Socket", CONF_STRING, OFF(socket), "local:/run/mailonce/milter.sock", 0, 0, 0, 0,
	 conf_check_socket},
	{"UserID", CONF_STRING, OFF(user_id), NULL, 0, 0, 0, 0, conf_check_word},
	{"UMask", CONF_MODE, OFF(umask), "007", 0, 0, 0, 0, NULL},
	{"PidFile", CONF_STRING, OFF(pid_file), "/run/mailonce/mailonce-milter.pid", 0, 0, 0, 0,
	 NULL},
	{"LogVerbose", CONF_BOOL, OFF(verbose), "no", 0, 0, 0, 0, NULL},
	{"StripToken", CONF_BOOL, OFF(strip_token), "yes", 0, 0, 0, 0, NULL},
	{"DuplicateAction", CONF_ACTION, OFF(duplicate_action), "discard", 0, 0, 0,
	 ACT(ACTION_DISCARD) | ACT(ACTION_REJECT) | ACT(ACTION_HOLD) | ACT(ACTION_TAG), NULL},
	{"BadTokenAction", CONF_ACTION, OFF(bad_token_action), "reject", 0, 0, 0,
	 ACT(ACTION_REJECT) | ACT(ACTION_TEMPFAIL) | ACT(ACTION_ACCEPT), NULL},
	{"LedgerErrorAction", CONF_ACTION, OFF(ledger_error_action), "tempfail", 0, 0, 0,
	 ACT(ACTION_TEMPFAIL) | ACT(ACTION_REJECT), NULL},
	{"ConflictAction", CONF_ACTION, OFF(conflict_action), "discard", 0, 0, 0,
	 ACT(ACTION_DISCARD) | ACT(ACTION_REJECT) | ACT(ACTION_HOLD) | ACT(ACTION_TEMPFAIL),
	 NULL},
	{"ConfirmCommits", CONF_BOOL, OFF(confirm_commits), "no", 0, 0, 0, 0, NULL},
	{"ConfirmTimeout", CONF_DURATION, OFF(confirm_timeout), "10m", 0, 1, INT_MAX, 0, NULL},
	{"MailLog", CONF_STRING, OFF(mail_log), NULL, 0, 0, 0, 0, NULL},
	{"SubmitTo", CONF_STRING, OFF(submit_to), "inet:127.0.0.1:25", 0, 0, 0, 0,
	 conf_check_submit_to},
	{"HeloName", CONF_STRING, OFF(helo_name), "localhost", 0, 0, 0, 0, conf_check_word},
	{"Concurrency", CONF_INT, OFF(concurrency), "4", 0, 1, 64, 0, NULL},
	{"MaxAttempts", CONF_INT, OFF(max_attempts), "5", 0, 1, 100, 0, NULL},
	{"RetryDelay", CONF_DURATION, OFF(retry_delay), "5s", 0, 0, INT_MAX, 0, NULL},
	{"LeaseTime", CONF_DURATION, OFF(lease_time), "60s", 0, 1, INT_MAX, 0, NULL},
	{"MigrateFrom", CONF_LIST, OFF(migrate_from), NULL, 0, 0, 0, 0, conf_check_server_id},
};

#define CONF_KEY_COUNT (sizeof(conf_keys) / sizeof(conf_keys[0]))

static const char *const conf_action_names[] = {
	[ACTION_ACCEPT] = "accept",   [ACTION_DISCARD] = "discard", [ACTION_REJECT] = "reject",
	[ACTION_TEMPFAIL] = "tempfail", [ACTION_HOLD] = "hold",     [ACTION_TAG] = "tag",
};

#define CONF_ACTION_COUNT (sizeof(conf_action_names) / sizeof(conf_action_names[0]))

/* conf_action_name - the name of an action as written in the file */
const char *conf_action_name(enum conf_action action)
{
	if ((unsigned)action >= CONF_ACTION_COUNT)
		msg_panic("conf_action_name: unknown action %d", (int)action);
	return conf_action_names[action];
}

/* conf_parse_duration - "30", "30s", "5m", "2h", "1d" to seconds */
int conf_parse_duration(const char *text, int *seconds)
{
	const char *p = text;
	long long value = 0;
	long long unit = 1;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		value = value * 10 + (*p - '0');
		if (value > INT_MAX)
			return -1;
	}

	switch (*p) {
	case '\0':
		break;
	case 's':
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;

	if (value * unit > INT_MAX)
		return -1;
	*seconds = (int)(value * unit);
	return 0;
}

/* conf_parse_duration_ms - a duration, or a whole number followed by "ms" */
static int conf_parse_duration_ms(const char *text, int *ms)
{
	size_t len = strlen(text);
	char *digits;
	int seconds;
	int rc;

	if (len > 2 && strcmp(text + len - 2, "ms") == 0) {
		digits = xstrndup(text, len - 2);
		rc = conf_parse_duration(digits, &seconds);
		rc = rc == 0 && strspn(digits, "0123456789") == len - 2 ? 0 : -1;
		free(digits);
		if (rc == 0)
			*ms = seconds;
		return rc;
	}
	if (conf_parse_duration(text, &seconds) != 0 || seconds > INT_MAX / 1000)
		return -1;
	*ms = seconds * 1000;
	return 0;
}

/* conf_parse_bool - yes/no, true/false, on/off, 1/0 in any case */
int conf_parse_bool(const char *text, int *value)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*value = 1;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*value = 0;
			return 0;
		}
	}
	return -1;
}

/* conf_parse_mode - an octal file mode of one to four digits, at most 0777 */
static int conf_parse_mode(const char *text, mode_t *mode)
{
	size_t len = strspn(text, "01234567");
	unsigned long value;

	if (len == 0 || len > 4 || text[len] != '\0')
		return -1;
	value = strtoul(text, NULL, 8);
	if (value > 0777)
		return -1;
	*mode = (mode_t)value;
	return 0;
}

/* conf_parse_port - a decimal TCP port from 1 to 65535, digits only */
static int conf_parse_port(const char *text, size_t len)
{
	long port = 0;
	size_t i;

	if (len == 0 || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)text[i]))
			return -1;
		port = port * 10 + (text[i] - '0');
	}
	return port >= 1 && port <= 65535 ? (int)port : -1;
}

/* conf_has_space - whether s holds white space or a control character */
static int conf_has_space(const char *s)
{
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
			return 1;
	return 0;
}

static const char *conf_check_server_id(const char *value)
{
	size_t len = strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789._-");

	if (len == 0 || len > SERVER_ID_MAX || value[len] != '\0')
		return "use 1 to 64 letters, digits, dots, hyphens or underscores";
	return NULL;
}

static const char *conf_check_word(const char *value)
{
	return conf_has_space(value) ? "use a value without white space" : NULL;
}

/* conf_check_socket - a libmilter socket: unix:/path, local:/path, inet:PORT[@HOST] */
static const char *conf_check_socket(const char *value)
{
	static const char advice[] =
		"use unix:/path, local:/path or inet:PORT@HOST with a port from 1 to 65535";
	const char *rest;
	const char *at;

	if (conf_has_space(value))
		return advice;
	if (strncmp(value, "unix:", 5) == 0 || strncmp(value, "local:", 6) == 0) {
		rest = strchr(value, ':') + 1;
		return *rest != '\0' ? NULL : advice;
	}

	/* libmilter listens on every address when the host is left out. */
	if (strncmp(value, "inet:", 5) == 0)
		rest = value + 5;
	else if (strncmp(value, "inet6:", 6) == 0)
		rest = value + 6;
	else
		return advice;
	at = strchr(rest, '@');
	if (at != NULL && at[1] == '\0')
		return advice;
	if (conf_parse_port(rest, at ? (size_t)(at - rest) : strlen(rest)) < 0)
		return advice;
	return NULL;
}

/* conf_check_submit_to - inet:HOST:PORT (HOST may be [IPv6]) or unix:/path */
static const char *conf_check_submit_to(const char *value)
{
	static const char advice[] =
		"use inet:HOST:PORT with a port from 1 to 65535, or unix:/path";
	const char *rest;
	const char *colon;

	if (conf_has_space(value))
		return advice;
	if (strncmp(value, "unix:", 5) == 0)
		return value[5] == '/' && value[6] != '\0' ? NULL : advice;
	if (strncmp(value, "inet:", 5) != 0)
		return advice;

	rest = value + 5;
	colon = strrchr(rest, ':');
	if (colon == NULL || colon == rest)
		return advice;
	if (conf_parse_port(colon + 1, strlen(colon + 1)) < 0)
		return advice;
	return NULL;
}

/* conf_field - where a key's value lives in conf */
static void *conf_field(struct conf *conf, const struct conf_key *key)
{
	return (char *)conf + key->offset;
}

static const void *conf_field_const(const struct conf *conf, const struct conf_key *key)
{
	return (const char *)conf + key->offset;
}

/* conf_format_duration - write a duration in its largest whole unit */
static void conf_format_duration(char *out, size_t outlen, long value, int in_ms)
{
	static const struct {
		const char *suffix;
		long seconds;
	} units[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
	size_t i;

	if (in_ms && value % 1000 != 0) {
		snprintf(out, outlen, "%ldms", value);
		return;
	}
	if (in_ms)
		value /= 1000;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (value != 0 && value % units[i].seconds == 0)
			break;
	}
	if (i == sizeof(units) / sizeof(units[0]))
		i--;
	snprintf(out, outlen, "%ld%s", value / units[i].seconds, units[i].suffix);
}
