/*
 * sender - the sending engine behind "mailoncectl send" and "restart".
 *
 * sender.c runs one mailing: it claims batches with a lease, feeds their
 * seqs to worker threads and shows progress. sender_worker.c is one
 * worker: it renders a seq, submits it over its own SMTP connection and
 * records the outcome with its own ledger handle. The state they share
 * is struct sender, guarded by its mutex.
 */
#ifndef MAILONCE_SENDER_H
#define MAILONCE_SENDER_H

#include <pthread.h>
#include <stdint.h>

#include "ctl.h"
#include "template.h"

struct sender_options {
	int concurrency;     /* SMTP connections; 0 takes Concurrency */
	uint64_t batch_size; /* split into batches of this size; 0 keeps the split */
	int with_accepted;   /* also re-inject accepted-unconfirmed seqs */
	int wait_for_leases; /* wait up to LeaseTime for leases held by others */
};

/*
 * sender_run - send what is left of mailing_id, with progress and a
 * summary line. Returns EX_OK when the mailing is complete. EX_TEMPFAIL
 * means work is left: a signal stopped the run, another sender holds a
 * lease, or the MTA is down. EX_DATAERR is an unknown mailing; other
 * sysexits.h codes are ledger or configuration failures.
 */
int sender_run(struct ctl *ctl, const char *mailing_id, const struct sender_options *opts);

/* sender_signals_install - make SIGINT and SIGTERM stop a run cleanly. */
void sender_signals_install(void);

/* sender_stop_requested - 1 once SIGINT or SIGTERM arrived. */
int sender_stop_requested(void);

/* A seq waiting for its next attempt after a temporary failure. */
struct sender_retry {
	uint64_t seq;
	int attempts;   /* failed attempts so far, earlier runs included */
	int64_t due_ms; /* monotonic time of the next attempt */
};

/* State shared by the coordinator and the workers. */
struct sender {
	struct ctl *ctl;
	const struct conf *conf;
	const char *mailing_id;
	const char *envelope_from;
	const struct template *template;
	const struct keyring *keys;
	int with_accepted;
	int concurrency;

	pthread_mutex_t lock;
	pthread_cond_t cond;

	/* Work of the current batch: fresh seqs in order, then retries. */
	uint64_t *seqs;
	size_t nseqs, next;
	struct sender_retry *retries;
	size_t nretries, retries_cap;
	int in_flight;

	/* Why the run ends early: no new seqs are taken once stop is set. */
	int stop;
	int exit_code;        /* sysexits.h code of a failure, EX_OK if none */
	int session_failures; /* consecutive SMTP sessions that could not open */
	int quit;             /* the coordinator is done: workers exit */

	/* Counts of this run. */
	int64_t sent, errors, duplicates, deferrals;
	int64_t handled_elsewhere; /* no longer pending when a worker read it */
};

/* sender_worker_main - thread body of one worker; arg is struct sender. */
void *sender_worker_main(void *arg);

/* sender_fail_locked - stop the run, keeping the first failure's exit code (lock held). */
void sender_fail_locked(struct sender *s, int exit_code);

/* sender_now_ms - monotonic clock in milliseconds. */
int64_t sender_now_ms(void);

#endif
