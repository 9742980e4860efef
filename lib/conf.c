/*
 * conf - the one reader of mailonce.conf, shared by every program.
 *
 * Every key is one row of conf_keys below: its name, its type, where its
 * value lives in struct conf, its default as it would be written in the
 * file, and the limits its value must meet. conf_init, conf_load and
 * conf_print all walk that table, so a key added there is read, checked,
 * defaulted and printed with no other change. mailonce.conf(5) and the
 * example file document the same rows, and conf_test checks that they do.
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
	CONF_LIST,        /* MigrateFrom, the only list key */
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
	size_t offset;   /* of the value in struct conf */
	const char *def; /* as written in the file; NULL means not set */
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
         ACT(ACTION_DISCARD) | ACT(ACTION_REJECT) | ACT(ACTION_HOLD) | ACT(ACTION_TEMPFAIL), NULL},
        {"ConfirmCommits", CONF_BOOL, OFF(confirm_commits), "yes", 0, 0, 0, 0, NULL},
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
        [ACTION_ACCEPT] = "accept",     [ACTION_DISCARD] = "discard", [ACTION_REJECT] = "reject",
        [ACTION_TEMPFAIL] = "tempfail", [ACTION_HOLD] = "hold",       [ACTION_TAG] = "tag",
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

	/* The digits before "ms" read as a plain number of seconds would. */
	if (len > 2 && strcmp(text + len - 2, "ms") == 0) {
		if (strspn(text, "0123456789") != len - 2)
			return -1;
		digits = xstrndup(text, len - 2);
		rc = conf_parse_duration(digits, ms);
		free(digits);
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

/* conf_has_space - whether s contains white space or a control character */
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

/* conf_list_add - append id to MigrateFrom unless it is there already */
static void conf_list_add(struct conf *conf, const char *id)
{
	size_t i;

	for (i = 0; i < conf->migrate_from_count; i++)
		if (strcmp(conf->migrate_from[i], id) == 0)
			return;
	conf->migrate_from =
	        xrealloc(conf->migrate_from, (conf->migrate_from_count + 2) * sizeof(char *));
	conf->migrate_from[conf->migrate_from_count++] = xstrdup(id);
	conf->migrate_from[conf->migrate_from_count] = NULL;
}

/*
 * conf_set_list - add the ids in value, separated by commas or white
 * space. All of them are checked before any is added, so a bad line
 * leaves the list as it was. On error *bad is the first bad id (to free).
 */
static const char *conf_set_list(struct conf *conf, const struct conf_key *key, const char *value,
                                 char **bad)
{
	static const char seps[] = ", \t";
	const char *p;
	const char *advice;
	size_t len;
	int pass;
	int count = 0;

	for (pass = 0; pass < 2; pass++) {
		for (p = value + strspn(value, seps); *p != '\0';
		     p += len + strspn(p + len, seps)) {
			char *id;

			len = strcspn(p, seps);
			id = xstrndup(p, len);
			if (pass == 0 && (advice = key->check(id)) != NULL) {
				*bad = id;
				return advice;
			}
			if (pass == 1)
				conf_list_add(conf, id);
			free(id);
			count++;
		}
		if (count == 0)
			return "use one or more server ids separated by commas or spaces";
	}
	return NULL;
}

/* conf_advise_action - "use a, b or c" for the actions a key allows */
static const char *conf_advise_action(const struct conf_key *key, char *buf, size_t buflen)
{
	size_t i;
	size_t left = 0;
	size_t len;

	for (i = 0; i < CONF_ACTION_COUNT; i++)
		left += (key->actions & ACT(i)) != 0;

	len = (size_t)snprintf(buf, buflen, "use");
	for (i = 0; i < CONF_ACTION_COUNT && len < buflen; i++) {
		const char *joint = "";

		if (!(key->actions & ACT(i)))
			continue;
		left--;
		if (left > 1)
			joint = ",";
		else if (left == 1)
			joint = " or";
		len += (size_t)snprintf(buf + len, buflen - len, " %s%s", conf_action_names[i],
		                        joint);
	}
	return buf;
}

/* conf_set_action - parse an action name that the key allows */
static const char *conf_set_action(struct conf *conf, const struct conf_key *key, const char *value,
                                   char *buf, size_t buflen)
{
	size_t i;

	for (i = 0; i < CONF_ACTION_COUNT; i++) {
		if ((key->actions & ACT(i)) && strcasecmp(value, conf_action_names[i]) == 0) {
			*(enum conf_action *)conf_field(conf, key) = (enum conf_action)i;
			return NULL;
		}
	}
	return conf_advise_action(key, buf, buflen);
}

/* conf_set_number - parse a whole number or a duration within the key's limits */
static const char *conf_set_number(struct conf *conf, const struct conf_key *key, const char *value,
                                   char *buf, size_t buflen)
{
	char low[32];
	char high[32];
	char *end = NULL;
	long number;
	int parsed;

	if (key->type == CONF_INT) {
		errno = 0;
		number = isdigit((unsigned char)*value) ? strtol(value, &end, 10) : LONG_MIN;
		if (end == NULL || *end != '\0' || errno != 0 || number < key->min ||
		    number > key->max) {
			snprintf(buf, buflen, "use a whole number from %ld to %ld", key->min,
			         key->max);
			return buf;
		}
		*(int *)conf_field(conf, key) = (int)number;
		return NULL;
	}

	if (key->type == CONF_DURATION_MS ? conf_parse_duration_ms(value, &parsed) != 0
	                                  : conf_parse_duration(value, &parsed) != 0)
		return key->type == CONF_DURATION_MS
		               ? "use a duration such as 250ms, 5s or 1m"
		               : "use a duration such as 30 or 30s (seconds), 5m, 2h or 1d";

	if (parsed < key->min || parsed > key->max) {
		conf_format_duration(low, sizeof(low), key->min, key->type == CONF_DURATION_MS);
		conf_format_duration(high, sizeof(high), key->max, key->type == CONF_DURATION_MS);
		if (key->max == INT_MAX)
			snprintf(buf, buflen, "use a duration of at least %s", low);
		else
			snprintf(buf, buflen, "use a duration from %s to %s", low, high);
		return buf;
	}
	*(int *)conf_field(conf, key) = parsed;
	return NULL;
}

/*
 * conf_set - store value for key. Returns NULL, or the advice for the
 * error message ("use yes or no"), with *bad set when the bad part is not
 * the whole value (to free).
 */
static const char *conf_set(struct conf *conf, const struct conf_key *key, const char *value,
                            char *buf, size_t buflen, char **bad)
{
	const char *advice;
	char **string;

	switch (key->type) {
	case CONF_STRING:
		if (key->check != NULL && (advice = key->check(value)) != NULL)
			return advice;
		string = conf_field(conf, key);
		free(*string);
		*string = xstrdup(value);
		return NULL;
	case CONF_BOOL:
		if (conf_parse_bool(value, conf_field(conf, key)) != 0)
			return "use yes or no";
		return NULL;
	case CONF_INT:
	case CONF_DURATION:
	case CONF_DURATION_MS:
		return conf_set_number(conf, key, value, buf, buflen);
	case CONF_MODE:
		if (conf_parse_mode(value, conf_field(conf, key)) != 0)
			return "use an octal mode from 000 to 777, such as 007";
		return NULL;
	case CONF_ACTION:
		return conf_set_action(conf, key, value, buf, buflen);
	case CONF_LIST:
		return conf_set_list(conf, key, value, bad);
	}
	msg_panic("conf_set: key %s has unknown type %d", key->name, (int)key->type);
}

/* conf_init - set every key to its default */
void conf_init(struct conf *conf)
{
	const struct conf_key *key;
	const char *advice;
	char buf[160];
	char *bad = NULL;

	memset(conf, 0, sizeof(*conf));
	for (key = conf_keys; key < conf_keys + CONF_KEY_COUNT; key++) {
		if (key->def == NULL)
			continue;
		advice = conf_set(conf, key, key->def, buf, sizeof(buf), &bad);
		if (advice != NULL)
			msg_panic("conf_init: default \"%s\" of %s is invalid: %s", key->def,
			          key->name, advice);
	}
}

/* conf_free - release what conf_init and conf_load allocated */
void conf_free(struct conf *conf)
{
	const struct conf_key *key;
	size_t i;

	for (key = conf_keys; key < conf_keys + CONF_KEY_COUNT; key++) {
		if (key->type == CONF_STRING)
			free(*(char **)conf_field(conf, key));
	}
	for (i = 0; i < conf->migrate_from_count; i++)
		free(conf->migrate_from[i]);
	free(conf->migrate_from);
	free(conf->path);
	memset(conf, 0, sizeof(*conf));
}

/* conf_find_key - the table row of a key name, in any case */
static const struct conf_key *conf_find_key(const char *name)
{
	const struct conf_key *key;

	for (key = conf_keys; key < conf_keys + CONF_KEY_COUNT; key++)
		if (strcasecmp(key->name, name) == 0)
			return key;
	return NULL;
}

/* conf_error - write "PATH:LINE: message" (or "PATH: message" for line 0) to err */
static int conf_error(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static int conf_error(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errlen == 0)
		return -1;
	if (line > 0)
		n = snprintf(err, errlen, "%s:%d: ", path, line);
	else
		n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * conf_split_line - find the key and value of a line, in place. Returns
 * 0 for a blank or comment line, 1 with *key and *value (value may be
 * empty) otherwise.
 */
static int conf_split_line(char *line, char **key, char **value)
{
	char *p = line;
	char *end;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	while (*p != '\0' && !isspace((unsigned char)*p))
		p++;
	if (*p != '\0')
		*p++ = '\0';

	/* A "#" after white space starts a comment; one inside a word does not. */
	while (isspace((unsigned char)*p))
		p++;
	*value = p;
	for (end = p; *end != '\0'; end++) {
		if (*end == '#' && (end == p || isspace((unsigned char)end[-1]))) {
			*end = '\0';
			break;
		}
	}
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return 1;
}

/* conf_load_line - apply one line and record in lines[] where its key was set */
static int conf_load_line(struct conf *conf, char *line, int lineno, int *lines, char *err,
                          size_t errlen)
{
	const struct conf_key *key;
	const char *advice;
	char *name;
	char *value;
	char *bad = NULL;
	char buf[160];
	char shown[128];
	int rc;

	if (conf_split_line(line, &name, &value) == 0)
		return 0;

	key = conf_find_key(name);
	if (key == NULL && strchr(name, '=') != NULL)
		return conf_error(err, errlen, conf->path, lineno,
		                  "\"%s\" is not \"Key value\"; separate the key from its value "
		                  "with white space",
		                  log_escape(shown, sizeof(shown), name));
	if (key == NULL)
		return conf_error(err, errlen, conf->path, lineno,
		                  "unknown key \"%s\"; see mailonce.conf(5) for the keys",
		                  log_escape(shown, sizeof(shown), name));
	if (*value == '\0')
		return conf_error(err, errlen, conf->path, lineno, "missing value for %s",
		                  key->name);
	if (key->type != CONF_LIST && lines[key - conf_keys] != 0)
		return conf_error(err, errlen, conf->path, lineno,
		                  "duplicate key %s, first set on line %d; keep one of them",
		                  key->name, lines[key - conf_keys]);

	advice = conf_set(conf, key, value, buf, sizeof(buf), &bad);
	if (advice == NULL) {
		lines[key - conf_keys] = lineno;
		return 0;
	}
	rc = conf_error(err, errlen, conf->path, lineno, "invalid value \"%s\" for %s: %s",
	                log_escape(shown, sizeof(shown), bad ? bad : value), key->name, advice);
	free(bad);
	return rc;
}

/* conf_check_all - the checks that need the whole file: required keys */
static int conf_check_all(struct conf *conf, char *err, size_t errlen)
{
	const struct conf_key *key;
	size_t i;

	for (key = conf_keys; key < conf_keys + CONF_KEY_COUNT; key++) {
		if (key->required && *(char **)conf_field(conf, key) == NULL)
			return conf_error(err, errlen, conf->path, 0, "missing required key %s",
			                  key->name);
	}

	/* Adopting one's own mailings would hide a wrong ServerID. */
	for (i = 0; i < conf->migrate_from_count; i++) {
		if (strcmp(conf->migrate_from[i], conf->server_id) == 0)
			return conf_error(err, errlen, conf->path, 0,
			                  "MigrateFrom lists %s, which is the ServerID of this "
			                  "server; remove it from MigrateFrom",
			                  conf->server_id);
	}
	return 0;
}

/* conf_load - read path over the values conf already has */
int conf_load(struct conf *conf, const char *path, char *err, size_t errlen)
{
	int lines[CONF_KEY_COUNT] = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;
	int rc = 0;
	FILE *fp;

	free(conf->path);
	conf->path = xstrdup(path);
	fp = fopen(path, "r");
	if (fp == NULL)
		return conf_error(err, errlen, path, 0, "cannot open: %s", strerror(errno));

	while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (strlen(line) != (size_t)len)
			rc = conf_error(err, errlen, path, lineno,
			                "the line contains a NUL byte; is this a text file?");
		else
			rc = conf_load_line(conf, line, lineno, lines, err, errlen);
	}
	if (rc == 0 && ferror(fp))
		rc = conf_error(err, errlen, path, 0, "read error: %s", strerror(errno));
	free(line);
	fclose(fp);

	if (rc == 0)
		rc = conf_check_all(conf, err, errlen);
	return rc;
}

/* conf_print_value - write the value of one key as the file would hold it */
static void conf_print_value(const struct conf *conf, const struct conf_key *key, FILE *fp)
{
	const void *field = conf_field_const(conf, key);
	char text[32];
	size_t i;

	switch (key->type) {
	case CONF_STRING:
		fputs(*(char *const *)field, fp);
		break;
	case CONF_BOOL:
		fputs(*(const int *)field ? "yes" : "no", fp);
		break;
	case CONF_INT:
		fprintf(fp, "%d", *(const int *)field);
		break;
	case CONF_DURATION:
	case CONF_DURATION_MS:
		conf_format_duration(text, sizeof(text), *(const int *)field,
		                     key->type == CONF_DURATION_MS);
		fputs(text, fp);
		break;
	case CONF_MODE:
		fprintf(fp, "%03o", (unsigned)*(const mode_t *)field);
		break;
	case CONF_ACTION:
		fputs(conf_action_name(*(const enum conf_action *)field), fp);
		break;
	case CONF_LIST:
		for (i = 0; i < conf->migrate_from_count; i++)
			fprintf(fp, "%s%s", i ? " " : "", conf->migrate_from[i]);
		break;
	}
}

/* conf_print - write the effective configuration, one "Key value" a line */
void conf_print(const struct conf *conf, FILE *fp)
{
	const struct conf_key *key;
	int unset;

	for (key = conf_keys; key < conf_keys + CONF_KEY_COUNT; key++) {
		if (key->type == CONF_STRING)
			unset = *(char *const *)conf_field_const(conf, key) == NULL;
		else if (key->type == CONF_LIST)
			unset = conf->migrate_from_count == 0;
		else
			unset = 0;

		if (unset) {
			fprintf(fp, "# %s (not set)\n", key->name);
			continue;
		}
		fprintf(fp, "%s ", key->name);
		conf_print_value(conf, key, fp);
		fputc('\n', fp);
	}
}
