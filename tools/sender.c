/*
 * sender - run one mailing: leases, the work queue, progress, summary.
 *
 * sender_run moves a draft mailing to sending and then works batch after
 * batch. It leases a batch (ledger_lease_acquire, holder
 * "SERVERID:HOST:PID") and queues the seqs of the batch that still need
 * a handoff: pending ones, and accepted-unconfirmed ones for the restart
 * helper. The worker threads of sender_worker.c submit them in seq
 * order. The batch is then released, marked done only when none of its
 * seqs is pending or accepted.
 * The lease is renewed every third of LeaseTime; a lease found lost stops
 * the run, because another sender has taken the batch over.
 *
 * What keeps a killed sender harmless: a seq is marked queued only after
 * the MTA replied 250 for it, and the milter records every handoff
 * before Postfix commits it. A sender killed at any point therefore
 * leaves seqs pending (never sent, or sent and not committed) or
 * accepted (handed off, outcome unknown); "mailoncectl restart" sends
 * both again and the milter suppresses those Postfix did commit.
 *
 * SIGINT and SIGTERM stop the queue: the messages in flight finish and
 * are recorded, the lease is released, the summary is printed, and the
 * exit code is EX_TEMPFAIL while work is left. A second signal ends the
 * process at once, which the ledger survives as described above.
 *
 * Errors: a ledger failure stops the run with EX_UNAVAILABLE and a
 * message that names the mailing; nothing is sent whose outcome cannot be
 * recorded. Progress goes to stderr, the summary line to stdout.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "sender.h"

#define SENDER_CHUNK        1000 /* seqs read from the ledger at a time */
#define SENDER_TICK_MS      200  /* interval of the coordinator's checks */
#define SENDER_LOG_INTERVAL 5    /* seconds between progress lines off a TTY */

static volatile sig_atomic_t sender_signalled;

/* sender_on_signal - note the request; SA_RESETHAND lets a second one kill. */
static void sender_on_signal(int sig)
{
	sender_signalled = sig;
}

void sender_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sender_on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int sender_stop_requested(void)
{
	return sender_signalled != 0;
}

int64_t sender_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sender_fail_locked(struct sender *s, int exit_code)
{
	if (s->exit_code == EX_OK)
		s->exit_code = exit_code;
	s->stop = 1;
	pthread_cond_broadcast(&s->cond);
}

/* The lease and the batch being worked on. */
struct sender_batch {
	int64_t batch_no;
	uint64_t first, last;
	uint64_t cursor;     /* next seq to read from the ledger; past last when all read */
	int64_t renew_at;    /* monotonic ms of the next renewal */
	int64_t lease_until; /* wall clock seconds */
	int lost;            /* another sender took the batch over */
};

/* Progress display state. */
struct sender_progress {
	int tty;
	int64_t started_ms;
	int64_t last_ms;
	int64_t base_done; /* recipients finished before this run */
	int64_t total;
};

/* sender_refill - read the next seqs of the batch into the queue (lock held). */
static enum ledger_rc sender_refill(struct sender *s, struct ledger *ledger, struct sender_batch *b)
{
	uint64_t buf[SENDER_CHUNK];
	enum ledger_rc rc;
	size_t n = 0, left;

	left = s->nseqs - s->next;
	if (b->cursor > b->last || left >= SENDER_CHUNK / 2)
		return LEDGER_OK;

	rc = ledger_work_list(ledger, s->mailing_id, b->cursor, b->last, s->with_accepted, buf,
	                      SENDER_CHUNK, &n);
	if (rc != LEDGER_OK)
		return rc;
	if (n == 0) {
		b->cursor = b->last + 1;
		return LEDGER_OK;
	}
	b->cursor = buf[n - 1] + 1;

	/* Keep the unsent tail and append. */
	if (left > 0)
		memmove(s->seqs, s->seqs + s->next, left * sizeof(*s->seqs));
	s->nseqs = left;
	s->next = 0;
	s->seqs = xrealloc(s->seqs, (left + n) * sizeof(*s->seqs));
	memcpy(s->seqs + left, buf, n * sizeof(*buf));
	s->nseqs += n;
	pthread_cond_broadcast(&s->cond);
	return LEDGER_OK;
}

/* sender_renew - extend the lease when due; -1 when it is lost. */
static int sender_renew(struct sender *s, struct ledger *ledger, const char *holder,
                        struct sender_batch *b)
{
	int lease_time = s->conf->lease_time;
	enum ledger_rc rc;

	if (sender_now_ms() < b->renew_at)
		return 0;
	rc = ledger_lease_renew(ledger, s->mailing_id, b->batch_no, holder, time(NULL), lease_time);
	if (rc == LEDGER_OK) {
		b->lease_until = time(NULL) + lease_time;
		b->renew_at = sender_now_ms() + (int64_t)lease_time * 1000 / 3;
		return 0;
	}
	b->lost = rc == LEDGER_REFUSED;
	if (b->lost)
		msg_warn("mailing=%s batch=%" PRId64 ": lease lost to another sender; stopping "
		         "after the messages in flight",
		         s->mailing_id, b->batch_no);
	else
		msg_warn("mailing=%s batch=%" PRId64 ": cannot renew the lease: %s; stopping "
		         "after the messages in flight",
		         s->mailing_id, b->batch_no, ledger_errmsg(ledger));
	return -1;
}

/* sender_progress_show - the TTY line, or a log line every few seconds. */
static void sender_progress_show(struct sender *s, struct sender_progress *p, int final)
{
	int64_t now = sender_now_ms(), done, handled, eta = 0;
	double secs = (double)(now - p->started_ms) / 1000.0, rate;

	if (!final && now - p->last_ms < (p->tty ? 500 : SENDER_LOG_INTERVAL * 1000))
		return;
	p->last_ms = now;

	handled = s->sent + s->errors + s->duplicates + s->handled_elsewhere;
	done = p->base_done + s->sent + s->errors + s->handled_elsewhere;
	rate = secs > 0 ? (double)handled / secs : 0;
	if (rate > 0 && p->total > done)
		eta = (int64_t)((double)(p->total - done) / rate);
	if (p->tty)
		fprintf(stderr,
		        "\r%s: %" PRId64 "/%" PRId64 " (%d%%) %.1f msg/s ETA %02" PRId64
		        ":%02" PRId64 " errors %" PRId64 "\033[K%s",
		        s->mailing_id, done, p->total,
		        p->total > 0 ? (int)(done * 100 / p->total) : 100, rate, eta / 60, eta % 60,
		        s->errors, final ? "\n" : "");
	else if (!final)
		msg_info("mailing=%s progress=%" PRId64 "/%" PRId64 " rate=%.1f/s errors=%" PRId64,
		         s->mailing_id, done, p->total, rate, s->errors);
}

/* sender_batch_idle - whether the batch has nothing queued, waiting or in flight. */
static int sender_batch_idle(const struct sender *s, const struct sender_batch *b)
{
	return b->cursor > b->last && s->next == s->nseqs && s->nretries == 0 && s->in_flight == 0;
}

/*
 * sender_work_batch - feed one leased batch to the workers until it is
 * done or the run stops. Returns 0 when the batch ran out of work.
 */
static int sender_work_batch(struct sender *s, struct ledger *ledger, const char *holder,
                             struct sender_batch *b, struct sender_progress *p)
{
	enum ledger_rc rc;
	int idle;

	for (;;) {
		if (sender_stop_requested() && !s->stop) {
			msg_info("mailing=%s: stop requested; finishing the messages in flight",
			         s->mailing_id);
			pthread_mutex_lock(&s->lock);
			sender_fail_locked(s, EX_OK);
			pthread_mutex_unlock(&s->lock);
		}
		if (!s->stop && sender_renew(s, ledger, holder, b) < 0) {
			pthread_mutex_lock(&s->lock);
			sender_fail_locked(s, EX_TEMPFAIL);
			pthread_mutex_unlock(&s->lock);
		}

		pthread_mutex_lock(&s->lock);
		rc = s->stop ? LEDGER_OK : sender_refill(s, ledger, b);
		if (rc != LEDGER_OK) {
			msg_warn("mailing=%s: cannot read the work list: %s", s->mailing_id,
			         ledger_errmsg(ledger));
			sender_fail_locked(s, EX_UNAVAILABLE);
		}
		idle = sender_batch_idle(s, b);
		if (s->stop && s->in_flight == 0)
			idle = 1;
		sender_progress_show(s, p, 0);
		pthread_mutex_unlock(&s->lock);

		if (idle)
			return s->stop ? -1 : 0;
		usleep(SENDER_TICK_MS * 1000);
	}
}

/* sender_batch_done - whether no seq of the batch is pending or accepted. */
static int sender_batch_done(struct sender *s, struct ledger *ledger, const struct sender_batch *b)
{
	uint64_t seq;
	size_t n = 1;

	if (ledger_work_list(ledger, s->mailing_id, b->first, b->last, 1, &seq, 1, &n) != LEDGER_OK)
		return 0;
	return n == 0;
}

/* sender_release - give the batch back, done when nothing is left in it. */
static void sender_release(struct sender *s, struct ledger *ledger, const char *holder,
                           const struct sender_batch *b)
{
	int done;

	if (b->lost)
		return;
	done = sender_batch_done(s, ledger, b);
	if (ledger_lease_release(ledger, s->mailing_id, b->batch_no, holder, done) != LEDGER_OK)
		msg_warn("mailing=%s batch=%" PRId64 ": cannot release the lease: %s; it ends "
		         "by itself within %d s",
		         s->mailing_id, b->batch_no, ledger_errmsg(ledger), s->conf->lease_time);
	else
		msg_debug("mailing=%s batch=%" PRId64 " seqs=%" PRIu64 "-%" PRIu64
		          " released done=%d",
		          s->mailing_id, b->batch_no, b->first, b->last, done);
}

/* Holders of the batches that could not be leased. */
struct sender_holders {
	const char *mailing_id;
	int64_t now;
	int64_t earliest; /* first lease_until still ahead, 0 if none */
	int report;
};

/* sender_holder_note - report one batch leased by another sender. */
static int sender_holder_note(const struct ledger_batch *b, void *ctx)
{
	struct sender_holders *h = ctx;
	char when[32];
	time_t until = (time_t)b->lease_until;
	struct tm tm;

	if (strcmp(b->state, "leased") != 0 || b->lease_until < h->now)
		return 0;
	if (h->earliest == 0 || b->lease_until < h->earliest)
		h->earliest = b->lease_until;
	if (!h->report)
		return 0;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&until, &tm));
	printf("%s: batch %" PRId64 " (seqs %" PRIu64 "-%" PRIu64 ") is leased by %s until %s\n",
	       h->mailing_id, b->batch_no, b->first_seq, b->last_seq, b->holder ? b->holder : "?",
	       when);
	return 0;
}

/*
 * sender_leases_held - the time the first lease held by another sender
 * ends, 0 when none is held; prints the holders when report is set.
 */
static int64_t sender_leases_held(struct sender *s, struct ledger *ledger, int report)
{
	struct sender_holders h = {s->mailing_id, time(NULL), 0, report};

	if (ledger_batches_list(ledger, s->mailing_id, sender_holder_note, &h) != LEDGER_OK)
		msg_warn("mailing=%s: cannot list the batches: %s", s->mailing_id,
		         ledger_errmsg(ledger));
	return h.earliest;
}

/*
 * sender_acquire - lease the next batch. Returns 1 with *b filled, 0 when
 * no batch is free, -1 on a ledger failure. With wait set, leases of
 * others that end within LeaseTime are waited for (a dead sender's).
 */
static int sender_acquire(struct sender *s, struct ledger *ledger, const char *holder, int wait,
                          struct sender_batch *b)
{
	int64_t waited_until = time(NULL) + s->conf->lease_time + 2, until;
	enum ledger_rc rc;

	for (;;) {
		memset(b, 0, sizeof(*b));
		rc = ledger_lease_acquire(ledger, s->mailing_id, holder, time(NULL),
		                          s->conf->lease_time, &b->batch_no, &b->first, &b->last);
		if (rc == LEDGER_OK)
			break;
		if (rc != LEDGER_NOTFOUND) {
			msg_warn("mailing=%s: cannot lease a batch: %s", s->mailing_id,
			         ledger_errmsg(ledger));
			return -1;
		}
		until = wait ? sender_leases_held(s, ledger, 0) : 0;
		if (until == 0 || until > waited_until || sender_stop_requested())
			return 0;
		msg_info("mailing=%s: waiting until a lease held by another sender ends",
		         s->mailing_id);
		while (time(NULL) <= until && !sender_stop_requested())
			usleep(SENDER_TICK_MS * 1000);
	}

	b->cursor = b->first;
	b->lease_until = time(NULL) + s->conf->lease_time;
	b->renew_at = sender_now_ms() + (int64_t)s->conf->lease_time * 1000 / 3;
	msg_debug("mailing=%s batch=%" PRId64 " seqs=%" PRIu64 "-%" PRIu64 " leased by %s",
	          s->mailing_id, b->batch_no, b->first, b->last, holder);
	return 1;
}

/* sender_holder_name - "SERVERID:HOST:PID", the name of this process's leases. */
static char *sender_holder_name(const struct conf *conf)
{
	char host[256];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	return xasprintf("%s:%s:%ld", conf->server_id, host, (long)getpid());
}

/*
 * sender_batches - lease and work batches until none is left or the run
 * stops. Batches seen once are not worked again in this run, so a batch
 * whose accepted seqs wait for confirmation cannot keep the run busy.
 */
static void sender_batches(struct sender *s, struct ledger *ledger, int wait,
                           struct sender_progress *p)
{
	char *holder = sender_holder_name(s->conf);
	int64_t *seen = NULL;
	size_t nseen = 0, i;
	struct sender_batch b;
	int got = 0, again;

	while (!s->stop && (got = sender_acquire(s, ledger, holder, wait, &b)) > 0) {
		for (again = 0, i = 0; i < nseen; i++)
			again |= seen[i] == b.batch_no;
		if (again) {
			sender_release(s, ledger, holder, &b);
			break;
		}
		if (nseen == 0)
			p->started_ms = sender_now_ms(); /* the rate leaves out lease waits */
		seen = xrealloc(seen, (nseen + 1) * sizeof(*seen));
		seen[nseen++] = b.batch_no;

		sender_work_batch(s, ledger, holder, &b, p);
		sender_release(s, ledger, holder, &b);
	}
	if (!s->stop && got < 0) {
		pthread_mutex_lock(&s->lock);
		sender_fail_locked(s, EX_UNAVAILABLE);
		pthread_mutex_unlock(&s->lock);
	}
	free(seen);
	free(holder);
}

/*
 * sender_prepare - load the mailing and move a draft to sending. Returns
 * -1 when there is work to do, else the exit code of the command.
 */
static int sender_prepare(struct ledger *ledger, const char *mailing_id,
                          const struct sender_options *opts, struct ledger_mailing *m)
{
	enum ledger_rc rc;

	memset(m, 0, sizeof(*m));
	rc = ledger_mailing_get(ledger, mailing_id, m);
	if (rc == LEDGER_NOTFOUND) {
		fprintf(stderr,
		        "mailoncectl: mailing %s not found; \"mailoncectl status\" lists "
		        "the mailings\n",
		        mailing_id);
		return EX_DATAERR;
	}
	if (rc != LEDGER_OK)
		goto failed;

	switch (m->state) {
	case MAILING_COMPLETE:
		return EX_OK;
	case MAILING_CANCELLED:
		fprintf(stderr, "mailoncectl: mailing %s is cancelled; nothing is sent\n",
		        mailing_id);
		return EX_DATAERR;
	case MAILING_PAUSED:
		fprintf(stderr, "mailoncectl: mailing %s is paused; resume it first\n", mailing_id);
		return EX_TEMPFAIL;
	case MAILING_DRAFT:
		rc = ledger_mailing_set_state(ledger, mailing_id, MAILING_SENDING);
		if (rc != LEDGER_OK)
			goto failed;
		msg_info("mailing=%s state=sending", mailing_id);
		break;
	case MAILING_SENDING:
		break;
	}

	if (opts->batch_size > 0) {
		rc = ledger_batches_define(ledger, mailing_id, opts->batch_size);
		if (rc == LEDGER_EXISTS)
			msg_warn("mailing=%s: %s; keeping that split", mailing_id,
			         ledger_errmsg(ledger));
		else if (rc != LEDGER_OK)
			goto failed;
	}
	return -1;

failed:
	fprintf(stderr, "mailoncectl: mailing %s: ledger error: %s\n", mailing_id,
	        ledger_errmsg(ledger));
	return EX_UNAVAILABLE;
}

/* sender_workers_run - start the workers, feed them batches, and join them. */
static void sender_workers_run(struct sender *s, struct ledger *ledger, int wait,
                               struct sender_progress *p)
{
	pthread_t *threads = xcalloc((size_t)s->concurrency, sizeof(*threads));
	sigset_t block, old;
	int i, started = 0;

	/* Signals go to this thread only; workers finish what they hold. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < s->concurrency; i++) {
		if (pthread_create(&threads[i], NULL, sender_worker_main, s) != 0) {
			msg_warn("mailing=%s: cannot start worker thread %d: %s", s->mailing_id,
			         i + 1, strerror(errno));
			break;
		}
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (started > 0)
		sender_batches(s, ledger, wait, p);
	else
		sender_fail_locked(s, EX_OSERR);

	pthread_mutex_lock(&s->lock);
	s->quit = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	free(threads);
}

/* sender_finish - complete the mailing if it can be, print the summary. */
static int sender_finish(struct sender *s, struct ledger *ledger)
{
	struct ledger_mailing m;
	int complete = 0;

	if (ledger_mailing_try_complete(ledger, s->mailing_id, &complete) != LEDGER_OK ||
	    ledger_mailing_get(ledger, s->mailing_id, &m) != LEDGER_OK) {
		fprintf(stderr, "mailoncectl: mailing %s: ledger error: %s\n", s->mailing_id,
		        ledger_errmsg(ledger));
		return s->exit_code != EX_OK ? s->exit_code : EX_UNAVAILABLE;
	}
	if (complete)
		msg_info("mailing=%s state=complete", s->mailing_id);

	printf("%s: sent %" PRId64 ", errors %" PRId64 ", skipped %" PRId64 ", remaining %" PRId64
	       "\n",
	       s->mailing_id, m.num_sent, m.num_errors, m.num_skipped,
	       m.num_pending + m.num_accepted);
	if (s->duplicates > 0)
		printf("%s: %" PRId64 " messages were already handed off earlier and were not "
		       "delivered again\n",
		       s->mailing_id, s->duplicates);
	if (!complete && s->exit_code == EX_OK && m.state == MAILING_SENDING) {
		if (sender_leases_held(s, ledger, 1) == 0 && m.num_accepted > 0)
			printf("%s: %" PRId64 " handed-off messages wait until the Postfix log "
			       "(MailLog) shows whether they were committed; \"mailoncectl send "
			       "%s\" then completes the mailing\n",
			       s->mailing_id, m.num_accepted, s->mailing_id);
	}
	ledger_mailing_clear(&m);

	if (s->exit_code != EX_OK)
		return s->exit_code;
	return complete ? EX_OK : EX_TEMPFAIL;
}

/* sender_init - the shared state of a run. */
static void sender_init(struct sender *s, struct ctl *ctl, const struct ledger_mailing *m,
                        const struct template *t, const struct sender_options *opts)
{
	memset(s, 0, sizeof(*s));
	s->ctl = ctl;
	s->conf = &ctl->conf;
	s->mailing_id = m->mailing_id;
	s->envelope_from = m->envelope_from ? m->envelope_from : "";
	s->template = t;
	s->keys = ctl_need_keys(ctl);
	s->with_accepted = opts->with_accepted;
	s->concurrency = opts->concurrency > 0 ? opts->concurrency : ctl->conf.concurrency;
	if (s->concurrency < 1)
		s->concurrency = 1;
	s->exit_code = EX_OK;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
}

int sender_run(struct ctl *ctl, const char *mailing_id, const struct sender_options *opts)
{
	struct ledger *ledger = ctl_need_ledger(ctl, 0);
	struct sender_progress progress;
	struct ledger_mailing m;
	struct template *t;
	struct sender s;
	char err[512];
	int rc;

	rc = sender_prepare(ledger, mailing_id, opts, &m);
	if (rc >= 0) {
		if (rc == EX_OK)
			printf("%s: complete; sent %" PRId64 ", errors %" PRId64
			       ", skipped %" PRId64 ", remaining 0\n",
			       mailing_id, m.num_sent, m.num_errors, m.num_skipped);
		ledger_mailing_clear(&m);
		return rc;
	}
	t = template_parse(m.template ? m.template : "", m.template ? strlen(m.template) : 0, err,
	                   sizeof(err));
	if (t == NULL) {
		fprintf(stderr, "mailoncectl: mailing %s: the stored template is invalid: %s\n",
		        mailing_id, err);
		ledger_mailing_clear(&m);
		return EX_DATAERR;
	}

	sender_init(&s, ctl, &m, t, opts);
	memset(&progress, 0, sizeof(progress));
	progress.tty = isatty(STDERR_FILENO);
	progress.started_ms = sender_now_ms();
	progress.last_ms = progress.started_ms;
	progress.base_done = m.num_sent + m.num_errors + m.num_skipped;
	progress.total = m.num_profiles;

	sender_workers_run(&s, ledger, opts->wait_for_leases, &progress);
	sender_progress_show(&s, &progress, 1);
	rc = sender_finish(&s, ledger);

	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	free(s.seqs);
	free(s.retries);
	template_free(t);
	ledger_mailing_clear(&m);
	return rc;
}
