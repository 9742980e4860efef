/*
 * follow - apply the Postfix mail log to the ledger.
 *
 *	follower_new		a follower of one log file with a ledger handle.
 *	follower_catch_up	applies every complete line up to the end.
 *	follower_run		catches up every FOLLOW_POLL_MS until stopped.
 *	follow_start/stop	the same in a thread of mailonce-milter.
 *
 * Position: the ledger keeps, under the name of the log (MailLog), the
 * inode of the file being read and the offset after the last line
 * applied. A line with an event (see maillog.h) goes to
 * ledger_apply_queue_event together with the offset after it, so the
 * event and the position commit in one transaction. Other lines only move
 * the offset, which is saved every SAVE_EVERY lines and at the end of
 * each pass. After a crash those lines are read again, which is harmless
 * because they change nothing.
 *
 * Rotation: when the file at MailLog has another inode than the saved
 * one, the old file was renamed or removed. If MailLog.0 or MailLog.1 is
 * the saved inode, its rest is applied first, and the follower moves to
 * the new file once the new file has data (until then the writer may
 * still append to the old one). If the old file is gone, what it held
 * after the saved offset is lost: that is warned about. A file shorter
 * than the saved offset was truncated in place (copytruncate); reading
 * starts again at 0. A first start with no saved position reads the log
 * from the beginning.
 *
 * Errors: a log that cannot be opened or a failed ledger call is logged
 * as one warning, with no repeats until it works again, and the pass
 * ends; the next pass starts over from the last saved position. Nothing
 * here exits.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "follow.h"
#include "log.h"
#include "maillog.h"

/* Lines of no interest read between two saves of the position. */
#define SAVE_EVERY 1000

struct follower {
	struct ledger *ledger;
	char *path;
	int loaded;                         /* position read from the ledger */
	uint64_t inode;                     /* of the file being read; 0 before the first file */
	uint64_t offset;                    /* after the last line applied or skipped */
	int64_t line_time;                  /* timestamp of that line */
	uint64_t saved_inode, saved_offset; /* position stored in the ledger */
	int ledger_failing;                 /* a ledger warning was logged */
	int open_failing;                   /* a warning about opening the log was logged */
	struct follow_counts counts;
};

/* follower_new - a follower of log_path; reads its position on first use. */
struct follower *follower_new(struct ledger *ledger, const char *log_path)
{
	struct follower *f = xcalloc(1, sizeof(*f));

	f->ledger = ledger;
	f->path = xstrdup(log_path);
	return f;
}

void follower_free(struct follower *f)
{
	if (f == NULL)
		return;
	free(f->path);
	free(f);
}

const struct follow_counts *follower_counts(const struct follower *f)
{
	return &f->counts;
}

/* ledger_failed - warn about a failed ledger call unless already warned. */
static int ledger_failed(struct follower *f, const char *what, enum ledger_rc rc)
{
	if (!f->ledger_failing)
		msg_warn("%s: %s failed: %s: %s; retrying every %d ms", f->path, what,
		         ledger_rc_name(rc), ledger_errmsg(f->ledger), FOLLOW_POLL_MS);
	f->ledger_failing = 1;
	return -1;
}

/* load_position - where the last run stopped; 0 and 0 when it never ran. */
static int load_position(struct follower *f)
{
	enum ledger_rc rc;

	rc = ledger_log_position(f->ledger, f->path, &f->inode, &f->offset, &f->line_time);
	if (rc == LEDGER_NOTFOUND) {
		f->inode = f->offset = 0;
		f->line_time = 0;
	} else if (rc != LEDGER_OK) {
		return ledger_failed(f, "reading the log position", rc);
	}
	f->saved_inode = f->inode;
	f->saved_offset = f->offset;
	f->loaded = 1;
	if (f->inode == 0)
		msg_info("%s: no saved position; following from the start of the log", f->path);
	else
		msg_info("%s: following from the saved position: inode %" PRIu64 " offset %" PRIu64,
		         f->path, f->inode, f->offset);
	return 0;
}

/* save_position - store the position unless the ledger already has it. */
static int save_position(struct follower *f)
{
	enum ledger_rc rc;

	if (f->inode == f->saved_inode && f->offset == f->saved_offset)
		return 0;
	rc = ledger_save_log_position(f->ledger, f->path, f->inode, f->offset, f->line_time);
	if (rc != LEDGER_OK)
		return ledger_failed(f, "saving the log position", rc);
	f->saved_inode = f->inode;
	f->saved_offset = f->offset;
	return 0;
}

/* queue_event_of - the ledger's name for a parsed event. */
static enum queue_event queue_event_of(enum maillog_event event)
{
	switch (event) {
	case MAILLOG_COMMITTED:
		return QEVENT_COMMITTED;
	case MAILLOG_NOT_COMMITTED:
		return QEVENT_NOT_COMMITTED;
	case MAILLOG_DELIVERED:
		return QEVENT_DELIVERED;
	case MAILLOG_BOUNCED:
		return QEVENT_BOUNCED;
	case MAILLOG_DEFERRED:
		return QEVENT_DEFERRED;
	case MAILLOG_NONE:
		break;
	}
	msg_panic("queue_event_of: no queue event for %s", maillog_event_name(event));
}

/* apply_line - apply one complete line that ends at offset end. */
static int apply_line(struct follower *f, const char *line, size_t len, uint64_t end, time_t now,
                      unsigned *unsaved)
{
	struct maillog_record rec;
	enum ledger_rc rc;
	int matched = 0;

	f->counts.lines++;
	if (maillog_parse(line, len, now, &rec) == MAILLOG_NONE) {
		f->offset = end;
		if (rec.time >= 0)
			f->line_time = rec.time;
		if (++*unsaved >= SAVE_EVERY) {
			*unsaved = 0;
			return save_position(f);
		}
		return 0;
	}

	/* The event and the position after it commit together. */
	rc = ledger_apply_queue_event(f->ledger, rec.queue_id, rec.time, queue_event_of(rec.event),
	                              rec.text, f->path, f->inode, end, &matched);
	if (rc != LEDGER_OK)
		return ledger_failed(f, "applying a log line", rc);
	f->offset = f->saved_offset = end;
	f->saved_inode = f->inode;
	f->line_time = rec.time;
	*unsaved = 0;
	f->counts.events++;
	f->counts.matched += matched != 0;
	msg_debug("%s: event=%s matched=%d offset=%" PRIu64, rec.queue_id,
	          maillog_event_name(rec.event), matched, end);
	return 0;
}

/* read_lines - apply the complete lines of fp from f->offset to its end. */
static int read_lines(struct follower *f, FILE *fp, time_t now)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned unsaved = 0;
	int ret = 0;

	if (fseeko(fp, (off_t)f->offset, SEEK_SET) < 0) {
		msg_warn("%s: seek to offset %" PRIu64 " failed: %s", f->path, f->offset,
		         strerror(errno));
		return -1;
	}

	/* A last line without its newline is still being written: leave it. */
	while ((len = getline(&line, &cap, fp)) > 0 && line[len - 1] == '\n') {
		ret = apply_line(f, line, (size_t)len, f->offset + (uint64_t)len, now, &unsaved);
		if (ret < 0)
			break;
	}
	free(line);
	if (ret == 0)
		ret = save_position(f);
	return ret;
}

/* open_rotated - MailLog.0 or MailLog.1 if it is the file with inode. */
static FILE *open_rotated(const struct follower *f, uint64_t inode)
{
	static const char *const suffixes[] = {".0", ".1"};
	struct stat st;
	FILE *fp;

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char *name = xasprintf("%s%s", f->path, suffixes[i]);

		fp = fopen(name, "r");
		free(name);
		if (fp == NULL)
			continue;
		if (fstat(fileno(fp), &st) == 0 && (uint64_t)st.st_ino == inode)
			return fp;
		fclose(fp);
	}
	return NULL;
}

/*
 * finish_rotated - the log at MailLog is a new file: apply the rest of the
 * old one, then start the new one at 0. Returns 1 when the follower moved
 * to the new file, 0 when it waits for the writer to reopen, -1 on error.
 */
static int finish_rotated(struct follower *f, const struct stat *cur, time_t now)
{
	FILE *old = open_rotated(f, f->inode);

	if (old != NULL) {
		int ret = read_lines(f, old, now);

		fclose(old);
		if (ret < 0)
			return -1;

		/* Until the new file has data the writer may still append to the old one. */
		if (cur->st_size == 0)
			return 0;
	} else {
		msg_warn("%s: the log was replaced and inode %" PRIu64
		         " is neither %s.0 nor %s.1; lines it got after offset %" PRIu64
		         " are not applied",
		         f->path, f->inode, f->path, f->path, f->offset);
	}
	msg_info("%s: log rotated, now reading inode %" PRIu64, f->path, (uint64_t)cur->st_ino);
	f->inode = (uint64_t)cur->st_ino;
	f->offset = 0;
	f->counts.rotations++;
	return 1;
}

/* open_log - open MailLog, warning once while it cannot be opened. */
static FILE *open_log(struct follower *f, struct stat *st)
{
	FILE *fp = fopen(f->path, "r");

	if (fp == NULL || fstat(fileno(fp), st) < 0) {
		if (!f->open_failing)
			msg_warn("%s: cannot open the mail log: %s; check MailLog", f->path,
			         strerror(errno));
		f->open_failing = 1;
		if (fp != NULL)
			fclose(fp);
		return NULL;
	}
	if (f->open_failing)
		msg_info("%s: the mail log can be read again", f->path);
	f->open_failing = 0;
	return fp;
}

/* follower_catch_up - apply the log up to its current end. */
int follower_catch_up(struct follower *f, time_t now)
{
	struct stat st;
	FILE *fp;
	int ret;

	if (!f->loaded && load_position(f) < 0)
		return -1;
	if ((fp = open_log(f, &st)) == NULL)
		return -1;

	/* Another file at the path: finish the old one first. */
	if (f->inode != 0 && (uint64_t)st.st_ino != f->inode) {
		ret = finish_rotated(f, &st, now);
		if (ret <= 0) {
			fclose(fp);
			return ret;
		}
	} else if (f->inode == (uint64_t)st.st_ino && (uint64_t)st.st_size < f->offset) {
		msg_warn("%s: the log is shorter (%lld bytes) than the saved offset %" PRIu64
		         "; it was truncated, reading again from its start",
		         f->path, (long long)st.st_size, f->offset);
		f->offset = 0;
		f->counts.truncations++;
	}
	f->inode = (uint64_t)st.st_ino;

	ret = read_lines(f, fp, now);
	fclose(fp);
	if (ret == 0 && f->ledger_failing) {
		msg_info("%s: the ledger works again", f->path);
		f->ledger_failing = 0;
	}
	return ret;
}

/* follower_run - catch up now and every FOLLOW_POLL_MS until *stop. */
int follower_run(struct follower *f, int once, volatile sig_atomic_t *stop)
{
	struct timespec poll = {0, FOLLOW_POLL_MS * 1000000L};
	int ret;

	for (;;) {
		ret = follower_catch_up(f, time(NULL));
		if (once || (stop != NULL && *stop))
			return ret;
		nanosleep(&poll, NULL);
		if (stop != NULL && *stop)
			return ret;
	}
}

/* The follower thread of mailonce-milter. */
static struct {
	int running;
	pthread_t thread;
	struct ledger *ledger;
	struct follower *follower;
	volatile sig_atomic_t stop;
} follow_thread;

static void *follow_main(void *arg)
{
	(void)arg;
	follower_run(follow_thread.follower, 0, &follow_thread.stop);
	return NULL;
}

/* follow_start - start the follower thread for conf->mail_log. */
int follow_start(const struct conf *conf, char *err, size_t errlen)
{
	struct ledger_options opts = {conf->busy_timeout, 0};
	sigset_t block, saved;
	char lerr[256];
	int rc;

	if (follow_thread.running) {
		snprintf(err, errlen, "the mail log follower is already running");
		return -1;
	}
	if (conf->mail_log == NULL || conf->mail_log[0] == '\0') {
		snprintf(err, errlen, "MailLog is not set: no mail log to follow");
		return -1;
	}
	follow_thread.ledger = ledger_open(conf->database, &opts, lerr, sizeof(lerr));
	if (follow_thread.ledger == NULL) {
		snprintf(err, errlen, "mail log follower: %s", lerr);
		return -1;
	}
	follow_thread.follower = follower_new(follow_thread.ledger, conf->mail_log);
	follow_thread.stop = 0;

	/*
	 * The thread inherits the caller's signal mask; it blocks the
	 * signals that the milter's main loop handles, so SIGHUP and SIGTERM
	 * always reach that loop.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	rc = pthread_create(&follow_thread.thread, NULL, follow_main, NULL);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the mail log follower thread: %s",
		         strerror(rc));
		follower_free(follow_thread.follower);
		ledger_close(follow_thread.ledger);
		return -1;
	}
	follow_thread.running = 1;
	return 0;
}

/* follow_stop - ask the thread to stop, wait for it and free what it used. */
void follow_stop(void)
{
	if (!follow_thread.running)
		return;
	follow_thread.stop = 1;
	pthread_join(follow_thread.thread, NULL);
	follower_free(follow_thread.follower);
	ledger_close(follow_thread.ledger);
	follow_thread.follower = NULL;
	follow_thread.ledger = NULL;
	follow_thread.running = 0;
}
