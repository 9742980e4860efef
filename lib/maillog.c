/*
 * maillog - parse one line of the Postfix mail log.
 *
 *	maillog_parse	splits a line into timestamp, program, pid and queue
 *			id, and classifies the few lines that report what
 *			became of a queue file.
 *
 * Lines look like this (Postfix 3.7, maillog_file or syslog):
 *
 *	Dec 04 20:05:02 mx postfix/qmgr[9918]: 466ADA723D9: from=<a@b>, ...
 *	Dec  4 20:05:02 mx postfix/qmgr[9918]: ...        (classic syslog)
 *	2026-12-04T20:05:02.123456+00:00 mx postfix/qmgr[9918]: ...   (RFC 3339)
 *
 * The program is the syslog_name, a slash and the daemon name; the
 * syslog_name may itself contain slashes ("postfix/submission/smtpd"), so
 * the daemon is what follows the last slash. The queue id is either the
 * short form (upper-case hex) or the long form of enable_long_queue_ids
 * (a base-52 alphabet without vowels, with a "z" between time and inode).
 *
 * Events, and the lines that prove them:
 *
 *	COMMITTED	qmgr "QID: from=<...>, size=N, nrcpt=N (queue active)".
 *			qmgr opens only queue files that cleanup committed to
 *			the incoming queue, so this line comes after the commit.
 *			qmgr writes it again each time a deferred message comes
 *			back into the active queue.
 *	NOT_COMMITTED	cleanup "QID: milter-reject: ...", "QID: milter-discard:
 *			...", "QID: reject: ..." (header or body checks) and
 *			"QID: discard: ...". After these cleanup removes the
 *			queue file instead of committing it. A cleanup
 *			"milter-hold:" is not among them: that message is
 *			committed to the hold queue, and its qmgr line comes
 *			when it is released. Lines of smtpd with a queue id
 *			and "reject:" are not either: they refuse one RCPT,
 *			and the message may still be committed for the others.
 *	DELIVERED	"QID: to=<...>, ..., dsn=X.Y.Z, status=sent (TEXT)"
 *	BOUNCED		the same with status=bounced or status=expired, and
 *			qmgr "QID: from=<...>, status=expired, returned to
 *			sender" (deferred past maximal_queue_lifetime)
 *	DEFERRED	the same with status=deferred
 *
 * Every other line, and every line cut short before its last field, is
 * MAILLOG_NONE. Timestamps are local time, as Postfix and syslog write
 * them; classic syslog leaves out the year, so it is the year of now,
 * or the one before when that would put the line more than a day in the
 * future (a December line read in January).
 *
 * Errors: none are reported; a line that cannot be parsed is NONE, with
 * time -1 when even the timestamp is invalid.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maillog.h"

/* Longer lines are parsed in their first part; every field we need is early. */
#define LINE_MAX_PARSED 8192

static const char *const month_names[12] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* parse_digits - read exactly n digits at *pp; -1 if they are not there. */
static int parse_digits(const char **pp, int n)
{
	int value = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*pp)[i]))
			return -1;
		value = value * 10 + ((*pp)[i] - '0');
	}
	*pp += n;
	return value;
}

/* parse_clock - "HH:MM:SS" into tm. */
static int parse_clock(const char **pp, struct tm *tm)
{
	const char *p = *pp;

	tm->tm_hour = parse_digits(&p, 2);
	if (tm->tm_hour < 0 || tm->tm_hour > 23 || *p++ != ':')
		return -1;
	tm->tm_min = parse_digits(&p, 2);
	if (tm->tm_min < 0 || tm->tm_min > 59 || *p++ != ':')
		return -1;
	tm->tm_sec = parse_digits(&p, 2);
	if (tm->tm_sec < 0 || tm->tm_sec > 60)
		return -1;
	*pp = p;
	return 0;
}

/* parse_classic_time - "Dec  4 20:11:12" or "Dec 04 20:11:12", year from now. */
static const char *parse_classic_time(const char *p, time_t now, int64_t *when)
{
	struct tm tm, now_tm;
	time_t t;
	int month;

	for (month = 0; month < 12; month++)
		if (strncmp(p, month_names[month], 3) == 0)
			break;
	if (month == 12 || p[3] != ' ')
		return NULL;
	p += 4;

	memset(&tm, 0, sizeof(tm));
	tm.tm_mon = month;
	if (*p == ' ')
		p++;
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]))
		tm.tm_mday = parse_digits(&p, 2);
	else
		tm.tm_mday = parse_digits(&p, 1);
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || *p++ != ' ' || parse_clock(&p, &tm) < 0)
		return NULL;

	/* The year is missing: take this year unless that is in the future. */
	localtime_r(&now, &now_tm);
	tm.tm_year = now_tm.tm_year;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t != (time_t)-1 && t > now + 86400) {
		tm.tm_mon = month;
		tm.tm_year = now_tm.tm_year - 1;
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	if (t == (time_t)-1)
		return NULL;
	*when = t;
	return p;
}

/* parse_rfc3339_time - "2026-12-04T20:05:02[.frac](Z|+HH:MM|-HH:MM)". */
static const char *parse_rfc3339_time(const char *p, int64_t *when)
{
	struct tm tm;
	int off_h, off_m, sign;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = parse_digits(&p, 4) - 1900;
	if (tm.tm_year < 70 || *p++ != '-')
		return NULL;
	tm.tm_mon = parse_digits(&p, 2) - 1;
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || *p++ != '-')
		return NULL;
	tm.tm_mday = parse_digits(&p, 2);
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || *p++ != 'T' || parse_clock(&p, &tm) < 0)
		return NULL;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			continue;

	/* The offset is how far local time is ahead of UTC. */
	if (*p == 'Z') {
		p++;
		off_h = off_m = 0;
		sign = 1;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		off_h = parse_digits(&p, 2);
		if (off_h < 0 || *p++ != ':')
			return NULL;
		off_m = parse_digits(&p, 2);
		if (off_m < 0)
			return NULL;
	} else {
		return NULL;
	}
	t = timegm(&tm);
	if (t == (time_t)-1)
		return NULL;
	*when = (int64_t)t - sign * (off_h * 3600 + off_m * 60);
	return p;
}

/* parse_program - "HOST PROGRAM[PID]: " into rec; returns what follows. */
static const char *parse_program(const char *p, struct maillog_record *rec)
{
	const char *host_end, *open, *slash;
	char *end;
	size_t len;
	long pid;

	host_end = strchr(p, ' ');
	if (host_end == NULL || host_end == p)
		return NULL;
	p = host_end + 1;

	open = strchr(p, '[');
	if (open == NULL || open == p || memchr(p, ' ', (size_t)(open - p)) != NULL)
		return NULL;
	len = (size_t)(open - p);
	slash = memchr(p, '/', len);
	if (slash == NULL || slash == p || len > MAILLOG_PROGRAM_MAX || p[len - 1] == '/')
		return NULL;
	if (!isdigit((unsigned char)open[1]))
		return NULL;
	pid = strtol(open + 1, &end, 10);
	if (end[0] != ']' || end[1] != ':' || end[2] != ' ' || pid <= 0)
		return NULL;

	memcpy(rec->program, p, len);
	rec->program[len] = '\0';
	rec->pid = pid;
	return end + 3;
}

/* is_long_id_char - the base-52 alphabet of long queue ids, plus "z". */
static int is_long_id_char(int c)
{
	return isalnum(c) && strchr("AEIOUaeiou", c) == NULL;
}

/* parse_queue_id - "QID: " into rec; NULL for "NOQUEUE:", "warning:", etc. */
static const char *parse_queue_id(const char *p, struct maillog_record *rec)
{
	size_t len = 0;
	int short_form = 1, long_form = 1, has_z = 0;

	while (isalnum((unsigned char)p[len])) {
		int c = (unsigned char)p[len];

		if (!(isdigit(c) || (c >= 'A' && c <= 'F')))
			short_form = 0;
		if (!is_long_id_char(c))
			long_form = 0;
		if (c == 'z' && len > 0)
			has_z = 1;
		len++;
	}
	if (p[len] != ':' || p[len + 1] != ' ' || len > LEDGER_QUEUE_ID_MAX)
		return NULL;
	if (!(short_form && len >= 6) && !(long_form && has_z && len >= 10))
		return NULL;

	memcpy(rec->queue_id, p, len);
	rec->queue_id[len] = '\0';
	return p + len + 2;
}

/* copy_text - copy [start, end) into rec->text, cut to fit. */
static void copy_text(struct maillog_record *rec, const char *start, const char *end)
{
	size_t len = (size_t)(end - start);

	if (len > MAILLOG_TEXT_MAX)
		len = MAILLOG_TEXT_MAX;
	memcpy(rec->text, start, len);
	rec->text[len] = '\0';
}

/* skip_address - past "<...>" at p, honouring quoted local parts. */
static const char *skip_address(const char *p)
{
	int quoted = 0;

	if (*p++ != '<')
		return NULL;
	for (; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p + 1;
	}
	return NULL;
}

/*
 * is_complete_envelope - "<FROM> to=<TO>", then nothing or " proto=P
 * helo=<HELO>" and, after header or body checks, ": TEXT".
 */
static int is_complete_envelope(const char *p)
{
	const char *helo;

	if ((p = skip_address(p)) == NULL || strncmp(p, " to=", 4) != 0)
		return 0;
	if ((p = skip_address(p + 4)) == NULL)
		return 0;
	if (*p == '\0')
		return 1;
	if (strncmp(p, " proto=", 7) != 0 || (helo = strstr(p, " helo=")) == NULL)
		return 0;
	return skip_address(helo + 6) != NULL;
}

/* classify_cleanup - lines after which cleanup removes the queue file. */
static enum maillog_event classify_cleanup(const char *p, struct maillog_record *rec)
{
	static const char *const prefixes[] = {
	        "milter-reject: ",
	        "milter-discard: ",
	        "reject: ",
	        "discard: ",
	};
	const char *envelope;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t plen = strlen(prefixes[i]);

		if (strncmp(p, prefixes[i], plen) != 0)
			continue;

		/* Postfix ends each of these with the envelope; a line without it was cut. */
		envelope = strstr(p, "; from=<");
		if (envelope == NULL || !is_complete_envelope(envelope + 7))
			return MAILLOG_NONE;
		if (strncmp(prefixes[i], "milter-", 7) == 0)
			copy_text(rec, p + plen, envelope);
		else
			copy_text(rec, p + plen, p + strlen(p));
		return MAILLOG_NOT_COMMITTED;
	}
	return MAILLOG_NONE;
}

/*
 * classify_qmgr - "from=<...>, size=N, nrcpt=N (queue active)" is the
 * commit; "from=<...>, status=expired, returned to sender" is a message
 * that stayed deferred past maximal_queue_lifetime.
 */
static enum maillog_event classify_qmgr(const char *p, struct maillog_record *rec)
{
	const char *active = " (queue active)";
	const char *expired = ", status=expired, returned to sender";
	size_t len, active_len = strlen(active);

	if (strncmp(p, "from=", 5) != 0 || (p = skip_address(p + 5)) == NULL)
		return MAILLOG_NONE;
	if (strcmp(p, expired) == 0) {
		copy_text(rec, p + 9, p + strlen(p));
		return MAILLOG_BOUNCED;
	}

	len = strlen(p);
	if (strncmp(p, ", size=", 7) != 0 || strstr(p, ", nrcpt=") == NULL)
		return MAILLOG_NONE;
	if (len < active_len || strcmp(p + len - active_len, active) != 0)
		return MAILLOG_NONE;
	return MAILLOG_COMMITTED;
}

/* classify_delivery - "to=<...>, ..., dsn=X.Y.Z, status=WORD (TEXT)". */
static enum maillog_event classify_delivery(const char *p, struct maillog_record *rec)
{
	static const struct {
		const char *word;
		enum maillog_event event;
	} statuses[] = {
	        {"sent", MAILLOG_DELIVERED},
	        {"bounced", MAILLOG_BOUNCED},
	        {"expired", MAILLOG_BOUNCED},
	        {"deferred", MAILLOG_DEFERRED},
	};
	const char *dsn, *dsn_end, *status, *open;
	size_t len;

	if (strncmp(p, "to=", 3) != 0 || (p = skip_address(p + 3)) == NULL)
		return MAILLOG_NONE;

	/* After the address, fields are plain: the first ", dsn=" is the real one. */
	dsn = strstr(p, ", dsn=");
	if (dsn == NULL)
		return MAILLOG_NONE;
	dsn += 6;
	dsn_end = dsn + strspn(dsn, "0123456789.");
	if (dsn_end == dsn || dsn_end - dsn > MAILLOG_DSN_MAX)
		return MAILLOG_NONE;
	if (strncmp(dsn_end, ", status=", 9) != 0)
		return MAILLOG_NONE;
	status = dsn_end + 9;

	/* The reason in parentheses closes the line; without it the line was cut. */
	open = strstr(status, " (");
	len = strlen(status);
	if (open == NULL || status[len - 1] != ')')
		return MAILLOG_NONE;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		if ((size_t)(open - status) != strlen(statuses[i].word) ||
		    strncmp(status, statuses[i].word, (size_t)(open - status)) != 0)
			continue;
		memcpy(rec->dsn, dsn, (size_t)(dsn_end - dsn));
		rec->dsn[dsn_end - dsn] = '\0';
		copy_text(rec, open + 2, status + len - 1);
		return statuses[i].event;
	}
	return MAILLOG_NONE;
}

/* parse_header - timestamp, host, program, pid and queue id; the rest or NULL. */
static const char *parse_header(const char *p, time_t now, struct maillog_record *rec)
{
	int64_t when;

	if (isdigit((unsigned char)*p))
		p = parse_rfc3339_time(p, &when);
	else
		p = parse_classic_time(p, now, &when);
	if (p == NULL || *p++ != ' ')
		return NULL;
	rec->time = when;

	p = parse_program(p, rec);
	if (p == NULL)
		return NULL;
	return parse_queue_id(p, rec);
}

/* maillog_parse - parse one log line into *rec. */
enum maillog_event maillog_parse(const char *line, size_t len, time_t now,
                                 struct maillog_record *rec)
{
	char copy[LINE_MAX_PARSED];
	const char *p, *daemon;

	memset(rec, 0, sizeof(*rec));
	rec->event = MAILLOG_NONE;
	rec->time = -1;

	/* Work on a terminated copy without the line end; a NUL ends the line early. */
	if (len >= sizeof(copy))
		len = sizeof(copy) - 1;
	memcpy(copy, line, len);
	copy[len] = '\0';
	while (len > 0 && (copy[len - 1] == '\n' || copy[len - 1] == '\r'))
		copy[--len] = '\0';

	p = parse_header(copy, now, rec);
	if (p == NULL)
		return MAILLOG_NONE;

	daemon = strrchr(rec->program, '/') + 1;
	if (strcmp(daemon, "qmgr") == 0)
		rec->event = classify_qmgr(p, rec);
	else if (strcmp(daemon, "cleanup") == 0)
		rec->event = classify_cleanup(p, rec);
	else
		rec->event = classify_delivery(p, rec);
	if (rec->event == MAILLOG_NONE) {
		rec->dsn[0] = '\0';
		rec->text[0] = '\0';
	}
	return rec->event;
}

/* maillog_event_name - a word for each event. */
const char *maillog_event_name(enum maillog_event event)
{
	switch (event) {
	case MAILLOG_NONE:
		return "none";
	case MAILLOG_COMMITTED:
		return "committed";
	case MAILLOG_NOT_COMMITTED:
		return "not-committed";
	case MAILLOG_DELIVERED:
		return "delivered";
	case MAILLOG_BOUNCED:
		return "bounced";
	case MAILLOG_DEFERRED:
		return "deferred";
	}
	return "unknown";
}
