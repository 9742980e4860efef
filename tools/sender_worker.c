/*
 * sender_worker - one sending thread: render, submit, record.
 *
 * A worker owns a ledger handle and an SMTP connection. It takes the next
 * seq from the shared queue: a retry that is due, else the next fresh seq
 * in order. It reads the recipient and renders the message with its
 * Mailonce-Token, Message-ID and Date headers. Then it submits the
 * message for that one recipient and records the outcome:
 *
 * - 250: ledger_mark_queued with the queue id of the reply. A 250 for a
 *   message the milter discarded as a duplicate changes nothing, because
 *   the earlier handoff counts.
 * - 4xx, or a connection lost during or after the content: the attempt
 *   is counted (ledger_note_attempt) and the seq waits RetryDelay,
 *   doubled for each earlier attempt, until MaxAttempts attempts failed;
 *   then it is marked error, unless the milter has an unconfirmed
 *   handoff of it: that seq stays accepted for a later run.
 * - A failure before any reply or content (no connection, a connection
 *   lost during the envelope) counts no attempt: the seq waits a moment
 *   and is tried again, and several such failures in a row stop the run,
 *   since the MTA is down and every seq would fail alike.
 * - 5xx, and a recipient whose message cannot be rendered: error, with
 *   the reply or the reason kept as last_error.
 *
 * A seq that is no longer pending (or accepted, where the run re-injects
 * those) when the worker reads it has been dealt with elsewhere and is
 * left alone. A ledger failure before the message is sent stops the run
 * and nothing is sent; one after a 250 is a warning and stops the run, and
 * "mailoncectl restart" confirms that seq later.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

#include "alloc.h"
#include "fields.h"
#include "log.h"
#include "sender.h"
#include "smtp.h"

#define SENDER_SESSION_FAILURES_MAX 5 /* sessions that failed to open, in a row */

struct worker {
	struct sender *s;
	struct ledger *ledger;
	struct smtp_client *smtp;
};

/* worker_fail - stop the run from a worker. */
static void worker_fail(struct sender *s, int exit_code)
{
	pthread_mutex_lock(&s->lock);
	sender_fail_locked(s, exit_code);
	pthread_mutex_unlock(&s->lock);
}

/* worker_take_retry - remove and return the index of a due retry, or -1 (lock held). */
static int worker_take_retry(struct sender *s, int64_t now, int64_t *earliest,
                             struct sender_retry *item)
{
	size_t i, best = 0;

	if (s->nretries == 0)
		return -1;
	for (i = 1; i < s->nretries; i++)
		if (s->retries[i].due_ms < s->retries[best].due_ms)
			best = i;
	*earliest = s->retries[best].due_ms;
	if (s->retries[best].due_ms > now)
		return -1;
	*item = s->retries[best];
	s->retries[best] = s->retries[--s->nretries];
	return 0;
}

/* worker_take - wait for the next seq to send; 0 when the worker must exit. */
static int worker_take(struct sender *s, struct sender_retry *item)
{
	struct timespec until;
	int64_t now, earliest, wake;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->stop || s->quit) {
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
		now = sender_now_ms();
		earliest = now + 1000;
		if (worker_take_retry(s, now, &earliest, item) == 0)
			break;
		if (s->next < s->nseqs) {
			item->seq = s->seqs[s->next++];
			item->attempts = -1;
			item->due_ms = 0;
			break;
		}

		/* The condition variable runs on the real-time clock. */
		wake = earliest < now + 1000 ? earliest : now + 1000;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (wake - now) / 1000;
		until.tv_nsec += ((wake - now) % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &until);
	}
	s->in_flight++;
	pthread_mutex_unlock(&s->lock);
	return 1;
}

/* worker_retry_later - put item back for a later attempt (lock held). */
static void worker_retry_later(struct sender *s, const struct sender_retry *item)
{
	if (s->nretries == s->retries_cap) {
		s->retries_cap = s->retries_cap ? s->retries_cap * 2 : 16;
		s->retries = xrealloc(s->retries, s->retries_cap * sizeof(*s->retries));
	}
	s->retries[s->nretries++] = *item;
}

/* worker_has_header - whether the header section of msg has a field name. */
static int worker_has_header(const char *msg, size_t len, const char *name)
{
	size_t namelen = strlen(name), pos = 0;
	const char *eol;

	while (pos < len && msg[pos] != '\r' && msg[pos] != '\n') {
		if (len - pos > namelen && strncasecmp(msg + pos, name, namelen) == 0 &&
		    msg[pos + namelen] == ':')
			return 1;
		eol = memchr(msg + pos, '\n', len - pos);
		if (eol == NULL)
			break;
		pos = (size_t)(eol - msg) + 1;
	}
	return 0;
}

/*
 * worker_render - the message for r with the headers the sender adds.
 * NULL with err when the recipient cannot be rendered.
 */
static char *worker_render(struct worker *w, const struct ledger_recipient *r, size_t *len,
                           char *err, size_t errlen)
{
	struct sender *s = w->s;
	struct buf out = BUF_INIT;
	struct fields f;
	const char *reason;
	char *body, *token, date[64];
	size_t blen;
	time_t now = time(NULL);
	struct tm tm;

	fields_init(&f);
	if (fields_from_json(r->fields ? r->fields : "{}", &f) < 0) {
		snprintf(err, errlen, "the stored fields are not a flat JSON object");
		return NULL;
	}
	body = template_render(s->template, &f, &blen, err, errlen);
	fields_free(&f);
	if (body == NULL)
		return NULL;
	token = token_build(s->keys, NULL, s->mailing_id, r->seq, r->address, &reason);
	if (token == NULL) {
		snprintf(err, errlen, "cannot make the token: %s", reason);
		free(body);
		return NULL;
	}

	/* Message-ID is stable per (mailing, seq), so a re-sent copy has the same one. */
	buf_printf(&out, "%s: %s\r\n", TOKEN_HEADER, token);
	if (!worker_has_header(body, blen, "Message-ID"))
		buf_printf(&out, "Message-ID: <mailonce.%s.%" PRIu64 "@%s>\r\n", s->mailing_id,
		           r->seq, s->conf->helo_name);
	if (!worker_has_header(body, blen, "Date")) {
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", localtime_r(&now, &tm));
		buf_printf(&out, "Date: %s\r\n", date);
	}
	buf_append(&out, body, blen);
	free(body);
	free(token);
	*len = out.len;
	return buf_steal(&out);
}

/* worker_ledger_failed - stop the run after a ledger call failed. */
static void worker_ledger_failed(struct worker *w, uint64_t seq, const char *what, int exit_code)
{
	msg_warn("NOQUEUE: mailing=%s seq=%" PRIu64 ": %s failed: %s", w->s->mailing_id, seq, what,
	         ledger_errmsg(w->ledger));
	worker_fail(w->s, exit_code);
}

/* worker_error - mark seq error with reason; a ledger failure stops the run. */
static void worker_error(struct worker *w, uint64_t seq, const char *queue_id, const char *reason)
{
	struct sender *s = w->s;
	char text[300];

	if (ledger_mark_error(w->ledger, s->mailing_id, seq, reason) != LEDGER_OK) {
		worker_ledger_failed(w, seq, "recording the error", EX_UNAVAILABLE);
		return;
	}
	msg_warn("%s: mailing=%s seq=%" PRIu64 " status=error reason=%s",
	         queue_id[0] ? queue_id : "NOQUEUE", s->mailing_id, seq,
	         log_escape(text, sizeof(text), reason));
	pthread_mutex_lock(&s->lock);
	s->errors++;
	pthread_mutex_unlock(&s->lock);
}

/* worker_sent - record a 250 for seq. */
static void worker_sent(struct worker *w, uint64_t seq, const struct smtp_result *res)
{
	struct sender *s = w->s;
	const char *qid = res->queue_id[0] ? res->queue_id : "NOQUEUE";
	enum ledger_rc rc;
	int duplicate = 0;

	rc = ledger_mark_queued(w->ledger, s->mailing_id, seq, res->queue_id, &duplicate);
	if (rc == LEDGER_REFUSED) {
		msg_warn("%s: mailing=%s seq=%" PRIu64
		         ": the MTA queued the message but the ledger "
		         "has no handoff for it; check that mailonce-milter is listed in "
		         "smtpd_milters of the Postfix that SubmitTo reaches",
		         qid, s->mailing_id, seq);
		worker_fail(s, EX_CONFIG);
		return;
	}
	if (rc != LEDGER_OK) {
		/* The milter has the handoff; the restart helper confirms it. */
		msg_warn("%s: mailing=%s seq=%" PRIu64 ": queued, but recording that failed: %s; "
		         "\"mailoncectl restart\" confirms it later",
		         qid, s->mailing_id, seq, ledger_errmsg(w->ledger));
		worker_fail(s, EX_TEMPFAIL);
		return;
	}
	if (duplicate)
		msg_info("%s: mailing=%s seq=%" PRIu64 " action=none reason=duplicate", qid,
		         s->mailing_id, seq);
	else
		msg_debug("%s: mailing=%s seq=%" PRIu64 " status=queued", qid, s->mailing_id, seq);

	pthread_mutex_lock(&s->lock);
	if (duplicate)
		s->duplicates++;
	else
		s->sent++;
	s->session_failures = 0;
	pthread_mutex_unlock(&s->lock);
}

/* worker_no_session - the MTA could not be talked to: wait, count no attempt. */
static void worker_no_session(struct worker *w, struct sender_retry *item,
                              const struct smtp_result *res)
{
	struct sender *s = w->s;
	char text[300];

	pthread_mutex_lock(&s->lock);
	s->session_failures++;
	item->due_ms = sender_now_ms() + 1000 * (int64_t)s->session_failures;
	worker_retry_later(s, item);
	if (s->session_failures >= SENDER_SESSION_FAILURES_MAX) {
		msg_warn("mailing=%s: cannot open an SMTP session: %s; check that Postfix runs "
		         "and SubmitTo is right",
		         s->mailing_id, log_escape(text, sizeof(text), res->error));
		sender_fail_locked(s, EX_TEMPFAIL);
	}
	pthread_mutex_unlock(&s->lock);
}

/*
 * worker_unconfirmed - whether seq has a handoff the milter accepted and
 * the Postfix log has not yet confirmed. The milter replies 4xx to its
 * retries until the log decides, so giving up on such a seq must not
 * mark it error: its first copy may well be in the queue, or it may need
 * one more handoff once the log shows it was never committed.
 */
static int worker_unconfirmed(struct worker *w, uint64_t seq)
{
	struct ledger_recipient r;
	int accepted;

	memset(&r, 0, sizeof(r));
	if (ledger_recipient_get(w->ledger, w->s->mailing_id, seq, &r) != LEDGER_OK)
		return 0;
	accepted = r.status == RCPT_ACCEPTED;
	ledger_recipient_clear(&r);
	return accepted;
}

/* worker_deferred - count a temporary failure; retry later or give up. */
static void worker_deferred(struct worker *w, struct sender_retry *item,
                            const struct smtp_result *res)
{
	struct sender *s = w->s;
	char reason[400], text[300];
	int delay;

	if (ledger_note_attempt(w->ledger, s->mailing_id, item->seq, res->error) != LEDGER_OK) {
		worker_ledger_failed(w, item->seq, "counting the attempt", EX_UNAVAILABLE);
		return;
	}
	item->attempts++;
	if (item->attempts >= s->conf->max_attempts && worker_unconfirmed(w, item->seq)) {
		msg_info("NOQUEUE: mailing=%s seq=%" PRIu64 " action=leave reason=\"earlier "
		         "handoff not yet confirmed\"; mailoncectl restart tries it again",
		         s->mailing_id, item->seq);
		return;
	}
	if (item->attempts >= s->conf->max_attempts) {
		snprintf(reason, sizeof(reason), "gave up after %d attempts: %s", item->attempts,
		         res->error);
		worker_error(w, item->seq, "", reason);
		return;
	}

	delay = smtp_retry_delay(s->conf->retry_delay, item->attempts);
	msg_info("NOQUEUE: mailing=%s seq=%" PRIu64 " action=retry attempt=%d delay=%ds "
	         "reason=%s",
	         s->mailing_id, item->seq, item->attempts, delay,
	         log_escape(text, sizeof(text), res->error));
	pthread_mutex_lock(&s->lock);
	item->due_ms = sender_now_ms() + (int64_t)delay * 1000;
	worker_retry_later(s, item);
	s->deferrals++;
	s->session_failures = 0;
	pthread_mutex_unlock(&s->lock);
}

/* worker_wanted - whether r still needs this handoff. */
static int worker_wanted(const struct sender *s, const struct ledger_recipient *r,
                         const struct sender_retry *item)
{
	if (r->status == RCPT_PENDING)
		return 1;

	/* Our own retry of a seq the milter accepted: the milter decides. */
	return r->status == RCPT_ACCEPTED && (s->with_accepted || item->attempts >= 0);
}

/* worker_handle - send one seq and record what happened. */
static void worker_handle(struct worker *w, struct sender_retry *item)
{
	struct sender *s = w->s;
	struct ledger_recipient r;
	struct smtp_result res;
	char err[400], *msg;
	size_t len;

	memset(&r, 0, sizeof(r));
	if (ledger_recipient_get(w->ledger, s->mailing_id, item->seq, &r) != LEDGER_OK) {
		worker_ledger_failed(w, item->seq, "reading the recipient", EX_UNAVAILABLE);
		return;
	}
	if (!worker_wanted(s, &r, item)) {
		pthread_mutex_lock(&s->lock);
		s->handled_elsewhere++;
		pthread_mutex_unlock(&s->lock);
		ledger_recipient_clear(&r);
		return;
	}
	if (item->attempts < 0)
		item->attempts = r.attempts;

	msg = worker_render(w, &r, &len, err, sizeof(err));
	if (msg == NULL) {
		worker_error(w, item->seq, "", err);
		ledger_recipient_clear(&r);
		return;
	}
	smtp_send(w->smtp, s->envelope_from, r.address, msg, len, &res);
	free(msg);
	ledger_recipient_clear(&r);

	if (res.status == SMTP_SENT)
		worker_sent(w, item->seq, &res);
	else if (res.status == SMTP_PERMFAIL)
		worker_error(w, item->seq, res.queue_id, res.error);
	else if (res.reply.code == 0 && !res.data_sent)
		worker_no_session(w, item, &res);
	else
		worker_deferred(w, item, &res);
}

/* worker_open - the worker's own ledger handle and SMTP client; -1 on failure. */
static int worker_open(struct worker *w)
{
	const struct conf *conf = w->s->conf;
	struct ledger_options opts;
	struct smtp_options smtp;
	char err[512];

	opts.busy_timeout = conf->busy_timeout;
	opts.create = 0;
	w->ledger = ledger_open(conf->database, &opts, err, sizeof(err));
	if (w->ledger == NULL) {
		msg_warn("mailing=%s: cannot open the ledger for a worker: %s", w->s->mailing_id,
		         err);
		return -1;
	}
	memset(&smtp, 0, sizeof(smtp));
	smtp.target = conf->submit_to;
	smtp.helo_name = conf->helo_name;
	w->smtp = smtp_client_new(&smtp);
	return 0;
}

void *sender_worker_main(void *arg)
{
	struct worker w = {arg, NULL, NULL};
	struct sender_retry item;
	struct sender *s = w.s;

	if (worker_open(&w) < 0) {
		worker_fail(s, EX_UNAVAILABLE);
		return NULL;
	}
	while (worker_take(s, &item)) {
		worker_handle(&w, &item);
		pthread_mutex_lock(&s->lock);
		s->in_flight--;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	smtp_client_free(w.smtp);
	ledger_close(w.ledger);
	return NULL;
}
