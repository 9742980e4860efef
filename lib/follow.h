/*
 * follow - read the Postfix mail log and tell the ledger what became of
 * each accepted message: committed, never committed, delivered, bounced
 * or deferred.
 *
 * Where it runs: as a thread of mailonce-milter, started with
 * follow_start when MailLog is set, and in the foreground as "mailoncectl
 * follow [--once]" (--once reads to the end of the log and returns, for
 * catching up by hand and for tests). It runs inside the milter because
 * the milter's decisions depend on it. With ConfirmCommits on, the retry
 * of an accepted message that the log has not yet shown committed gets
 * 451. A follower that is not running therefore makes every such retry
 * wait for ConfirmTimeout. A separate service could be forgotten or fall behind;
 * one service is simpler to run. The thread opens its own ledger handle,
 * because a struct ledger serves one thread at a time.
 *
 * Guarantees: each line that reports an event is applied in the same
 * ledger transaction that saves the position after it, so a crash or a
 * restart neither loses nor repeats a line. Only complete lines are read;
 * a last line without its newline waits for the rest.
 */
#ifndef MAILONCE_FOLLOW_H
#define MAILONCE_FOLLOW_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"
#include "ledger.h"

/* Poll interval for growth of the log, in milliseconds. */
#define FOLLOW_POLL_MS 200

/* Counters of a follower since it was created. */
struct follow_counts {
	uint64_t lines;       /* complete lines read */
	uint64_t events;      /* lines applied with ledger_apply_queue_event */
	uint64_t matched;     /* events that belonged to a handoff */
	uint64_t rotations;   /* renamed logs finished and left */
	uint64_t truncations; /* logs found shorter than the saved offset */
};

struct follower;

/* follower_new - a follower of log_path that uses ledger (not owned). */
struct follower *follower_new(struct ledger *ledger, const char *log_path);
void follower_free(struct follower *f);

/*
 * follower_catch_up - apply every complete line up to the current end of
 * the log, finishing a rotated log first. now supplies the year of classic
 * syslog timestamps. Returns 0; -1 when the log cannot be read or the
 * ledger failed (logged once until it works again, and the next call
 * starts over from the last saved line).
 */
int follower_catch_up(struct follower *f, time_t now);

const struct follow_counts *follower_counts(const struct follower *f);

/*
 * follower_run - catch up every FOLLOW_POLL_MS until *stop is set; with
 * once set, catch up one time and return. Returns the last result of
 * follower_catch_up.
 */
int follower_run(struct follower *f, int once, volatile sig_atomic_t *stop);

/*
 * follow_start - run a follower of conf->mail_log in a thread with its own
 * ledger handle. Returns 0, or -1 with the reason in err (MailLog not
 * set, ledger not opened, thread not created).
 */
int follow_start(const struct conf *conf, char *err, size_t errlen);

/* follow_stop - stop the thread of follow_start and wait for it; no-op if none. */
void follow_stop(void);

#endif
