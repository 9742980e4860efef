/*
 * ctl_status - "mailoncectl status": counters of mailings and recipients.
 *
 *	mailoncectl status [M] [--json] [--recipients]
 *
 * Without M: one line per mailing (id, state, owner and the main
 * counters). With M: every counter of that mailing. The ledger stores
 * profiles, sent, errors, skipped, delivered and bounced, and counts
 * pending, accepted-unconfirmed, queued, deferred, duplicates suppressed
 * and conflicts from the rows. --recipients adds one row per seq with its
 * address, status, queue id, attempts and last error. --json
 * prints the same as one JSON document; strings are escaped, and bytes
 * that are not UTF-8 become U+FFFD.
 *
 * Exit codes: EX_OK, EX_DATAERR for an unknown mailing, EX_UNAVAILABLE
 * when the ledger cannot be read, EX_USAGE for bad arguments.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "ctl.h"
#include "log.h"

#define STATUS_USAGE "[M] [--json] [--recipients]"

struct status_ctx {
	int json;
	int count; /* rows printed, for JSON commas */
};

/* utf8_length - length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_length(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF are invalid. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* json_string - print s as a JSON string, or null for NULL. */
static void json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (s == NULL) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	while (*p) {
		n = utf8_length(p);
		if (n == 0) {
			fputs("\\ufffd", stdout);
			p++;
		} else if (*p == '"' || *p == '\\') {
			printf("\\%c", *p++);
		} else if (*p == '\n') {
			fputs("\\n", stdout);
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			printf("\\u%04x", *p++);
		} else {
			fwrite(p, 1, n, stdout);
			p += n;
		}
	}
	putchar('"');
}

/* status_line - one line of the mailing list. */
static int status_line(const struct ledger_mailing *m, void *ctx)
{
	struct status_ctx *c = ctx;

	if (c->json) {
		printf("%s\n  {\"mailing\": ", c->count++ ? "," : "");
		json_string(m->mailing_id);
		printf(", \"state\": \"%s\", \"owner\": ", mailing_state_name(m->state));
		json_string(m->server_id);
		printf(", \"num_profiles\": %" PRId64 ", \"sent\": %" PRId64
		       ", \"errors\": %" PRId64 ", \"skipped\": %" PRId64 ", \"pending\": %" PRId64
		       ", \"accepted_unconfirmed\": %" PRId64 "}",
		       m->num_profiles, m->num_sent, m->num_errors, m->num_skipped, m->num_pending,
		       m->num_accepted);
		return 0;
	}
	if (c->count++ == 0)
		printf("%-24s %-9s %-16s %9s %9s %7s %7s %9s %8s\n", "MAILING", "STATE", "OWNER",
		       "PROFILES", "SENT", "ERRORS", "SKIPPED", "PENDING", "ACCEPTED");
	printf("%-24s %-9s %-16s %9" PRId64 " %9" PRId64 " %7" PRId64 " %7" PRId64 " %9" PRId64
	       " %8" PRId64 "\n",
	       m->mailing_id, mailing_state_name(m->state), m->server_id, m->num_profiles,
	       m->num_sent, m->num_errors, m->num_skipped, m->num_pending, m->num_accepted);
	return 0;
}

/* status_all - one line per mailing. */
static int status_all(struct ctl *ctl, int json)
{
	struct status_ctx c = {json, 0};

	if (json)
		printf("[");
	if (ledger_mailings_list(ctl->ledger, NULL, 0, status_line, &c) != LEDGER_OK) {
		fprintf(stderr, "mailoncectl status: cannot list the mailings: %s\n",
		        ledger_errmsg(ctl->ledger));
		return EX_UNAVAILABLE;
	}
	if (json)
		printf("%s]\n", c.count ? "\n" : "");
	else if (c.count == 0)
		printf("no mailings\n");
	return EX_OK;
}

/* status_time - a timestamp as local time, for the text form. */
static const char *status_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0)
		return "-";
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
	return buf;
}

/* The counters of one mailing, in the order they are printed. */
struct status_counter {
	const char *text; /* label of the text form */
	const char *json; /* key of the JSON form */
	int64_t value;
};

/* status_mailing - every counter of one mailing. */
static void status_mailing(const struct ledger_mailing *m, int json)
{
	const struct status_counter counters[] = {
	        {"num_profiles", "num_profiles", m->num_profiles},
	        {"sent", "sent", m->num_sent},
	        {"errors", "errors", m->num_errors},
	        {"skipped", "skipped", m->num_skipped},
	        {"pending", "pending", m->num_pending},
	        {"accepted-unconfirmed", "accepted_unconfirmed", m->num_accepted},
	        {"queued", "queued", m->num_queued},
	        {"delivered", "delivered", m->num_delivered},
	        {"bounced", "bounced", m->num_bounced},
	        {"deferred", "deferred", m->num_deferred},
	        {"duplicates suppressed", "duplicates_suppressed", m->num_duplicates},
	        {"conflicts", "conflicts", m->num_conflicts},
	};
	char t1[32], t2[32];
	size_t i;

	if (json) {
		printf("{\"mailing\": ");
		json_string(m->mailing_id);
		printf(", \"state\": \"%s\", \"owner\": ", mailing_state_name(m->state));
		json_string(m->server_id);
		printf(", \"envelope_from\": ");
		json_string(m->envelope_from);
		printf(", \"created_at\": %" PRId64 ", \"updated_at\": %" PRId64, m->created_at,
		       m->updated_at);
		for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
			printf(", \"%s\": %" PRId64, counters[i].json, counters[i].value);
		return;
	}
	printf("mailing: %s\nstate: %s\nowner: %s\nenvelope from: %s\ncreated: %s\nupdated: %s\n",
	       m->mailing_id, mailing_state_name(m->state), m->server_id,
	       m->envelope_from ? m->envelope_from : "", status_time(m->created_at, t1, sizeof(t1)),
	       status_time(m->updated_at, t2, sizeof(t2)));
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		printf("%s: %" PRId64 "\n", counters[i].text, counters[i].value);
}

/* status_recipient - one row per seq. */
static int status_recipient(const struct ledger_recipient *r, void *ctx)
{
	struct status_ctx *c = ctx;
	char err[400];

	if (c->json) {
		printf("%s\n    {\"seq\": %" PRIu64 ", \"address\": ", c->count++ ? "," : "",
		       r->seq);
		json_string(r->address);
		printf(", \"status\": \"%s\", \"queue_id\": ", rcpt_status_name(r->status));
		json_string(r->queue_id[0] ? r->queue_id : NULL);
		printf(", \"attempts\": %d, \"last_error\": ", r->attempts);
		json_string(r->last_error);
		printf("}");
		return 0;
	}
	if (c->count++ == 0)
		printf("\n%-8s %-32s %-9s %-16s %8s %s\n", "SEQ", "ADDRESS", "STATUS", "QUEUE_ID",
		       "ATTEMPTS", "LAST_ERROR");
	printf("%-8" PRIu64 " %-32s %-9s %-16s %8d %s\n", r->seq, r->address,
	       rcpt_status_name(r->status), r->queue_id[0] ? r->queue_id : "-", r->attempts,
	       r->last_error ? log_escape(err, sizeof(err), r->last_error) : "-");
	return 0;
}

/* status_one - the counters of M, and its recipients when asked. */
static int status_one(struct ctl *ctl, const char *mailing_id, int json, int recipients)
{
	struct status_ctx c = {json, 0};
	struct ledger_mailing m;
	enum ledger_rc rc;

	memset(&m, 0, sizeof(m));
	rc = ledger_mailing_get(ctl->ledger, mailing_id, &m);
	if (rc == LEDGER_NOTFOUND) {
		fprintf(stderr,
		        "mailoncectl status: mailing %s not found; \"mailoncectl status\" "
		        "lists the mailings\n",
		        mailing_id);
		return EX_DATAERR;
	}
	if (rc != LEDGER_OK)
		goto failed;

	status_mailing(&m, json);
	ledger_mailing_clear(&m);
	if (recipients) {
		if (json)
			printf(", \"recipients\": [");
		if (ledger_recipients_list(ctl->ledger, mailing_id, status_recipient, &c) !=
		    LEDGER_OK) {
			fflush(stdout);
			goto failed;
		}
		if (json)
			printf("%s]", c.count ? "\n  " : "");
	}
	if (json)
		printf("}\n");
	return EX_OK;

failed:
	fprintf(stderr, "mailoncectl status: mailing %s: %s\n", mailing_id,
	        ledger_errmsg(ctl->ledger));
	return EX_UNAVAILABLE;
}

int ctl_cmd_status(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"recipients", no_argument, NULL, 'r'},
	        {NULL, 0, NULL, 0},
	};
	int ch, json = 0, recipients = 0;

	while ((ch = getopt_long(argc, argv, "jr", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'r':
			recipients = 1;
			break;
		default:
			return ctl_usage_error("status", STATUS_USAGE, "unknown option");
		}
	}
	if (optind + 1 < argc)
		return ctl_usage_error("status", STATUS_USAGE, "unexpected argument \"%s\"",
		                       argv[optind + 1]);
	if (recipients && optind >= argc)
		return ctl_usage_error("status", STATUS_USAGE,
		                       "--recipients needs the mailing id M");
	if (optind < argc && !token_mailing_valid(argv[optind]))
		return ctl_usage_error(
		        "status", STATUS_USAGE,
		        "invalid mailing id \"%s\": use 1 to 64 of A-Z a-z 0-9 . _ -",
		        argv[optind]);

	ctl_need_ledger(ctl, 0);
	if (optind >= argc)
		return status_all(ctl, json);
	return status_one(ctl, argv[optind], json, recipients);
}
