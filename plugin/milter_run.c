/*
 * milter_run - run libmilter and act on signals.
 *
 * smfi_main starts a signal thread of its own that waits with sigwait for
 * SIGHUP, SIGTERM and SIGINT and stops the milter on any of them, SIGHUP
 * included (measured with libmilter 8.17.1: a SIGHUP made smfi_main
 * return after about 5 s). To make SIGHUP reload the rules instead:
 *
 * - smfi_main runs in a second thread with the three signals blocked, and
 *   every libmilter thread inherits that mask;
 * - the main thread keeps them unblocked, with handlers that write the
 *   signal number to a pipe that the main loop reads;
 * - this file defines sigwait, which the dynamic linker binds in place of
 *   the C library's for libmilter's call, and which leaves the three
 *   signals out of the set it waits for.
 *
 * So the main thread is the only one that can take these signals. Without
 * the sigwait replacement, the kernel hands a signal to libmilter's thread
 * whenever the main thread already has one pending: a burst of 500
 * SIGHUPs stopped the milter. With it, the same burst and 200 more SIGHUPs
 * 5 ms apart left it running (Linux 6.18, glibc 2.36). A burst gives
 * fewer reloads than signals, because pending signals of one kind merge.
 *
 * SIGTERM and SIGINT call smfi_stop: libmilter accepts no new connection,
 * lets running callbacks finish and smfi_main returns.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "log.h"
#include "milter.h"

/* The byte the milter thread writes when smfi_main has returned. */
#define RUN_MILTER_DONE 0

static int run_pipe[2] = {-1, -1};

/*
 * sigwait - the wait of libmilter's signal thread, minus our signals
 *
 * The thread that calls it (in this program only libmilter's) never gets
 * SIGHUP, SIGTERM or SIGINT, so it never stops the milter behind the main
 * loop's back. It never returns an error either, because libmilter stops
 * the milter after a few failed waits.
 */
int sigwait(const sigset_t *set, int *sig)
{
	sigset_t rest = *set;
	int got;

	sigdelset(&rest, SIGHUP);
	sigdelset(&rest, SIGTERM);
	sigdelset(&rest, SIGINT);
	for (;;) {
		if (sigisemptyset(&rest)) {
			pause();
			continue;
		}
		got = sigwaitinfo(&rest, NULL);
		if (got > 0) {
			*sig = got;
			return 0;
		}
	}
}

/* run_on_signal - hand the signal to the main loop; async-signal-safe */
static void run_on_signal(int sig)
{
	int saved_errno = errno;
	char byte = (char)sig;

	if (write(run_pipe[1], &byte, 1) < 0) {
		/* The pipe is full: a signal of each kind is already queued. */
	}
	errno = saved_errno;
}

/* run_milter_thread - smfi_main, then tell the main loop it returned */
static void *run_milter_thread(void *arg)
{
	int *result = arg;
	char byte = RUN_MILTER_DONE;

	*result = smfi_main();
	if (write(run_pipe[1], &byte, 1) < 0)
		msg_warn("cannot wake the main thread after smfi_main returned: %m");
	return NULL;
}

/* run_signals - the set the main thread handles */
static void run_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* run_start - start smfi_main with the signals blocked, then take them here */
static pthread_t run_start(int *result)
{
	struct sigaction sa;
	sigset_t set;
	pthread_t thread;
	int err;

	if (pipe2(run_pipe, O_CLOEXEC) != 0)
		msg_fatal(EX_OSERR, "pipe: %m");
	run_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	err = pthread_create(&thread, NULL, run_milter_thread, result);
	if (err != 0)
		msg_fatal(EX_OSERR, "cannot start the milter thread: %s", strerror(err));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = run_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return thread;
}

/*
 * milter_run - serve until a stop signal; returns the exit code
 *
 * conf is the configuration the daemon started with; a SIGHUP reloads the
 * rules from path and leaves everything else as conf has it.
 */
int milter_run(const char *path, const struct conf *conf)
{
	int result = MI_FAILURE;
	int stopping = 0;
	pthread_t thread;
	ssize_t got;
	char byte;

	thread = run_start(&result);
	for (;;) {
		got = read(run_pipe[0], &byte, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got != 1 || byte == RUN_MILTER_DONE)
			break;
		if (byte == SIGHUP) {
			msg_info("SIGHUP: reloading the rules from %s", path);
			milter_rules_reload(path, conf);
		} else if (!stopping) {
			msg_info("%s: stopping; running callbacks may finish",
			         byte == SIGTERM ? "SIGTERM" : "SIGINT");
			stopping = 1;
			smfi_stop();
		}
	}
	pthread_join(thread, NULL);

	if (result != MI_SUCCESS) {
		msg_warn("smfi_main failed; see the libmilter messages above");
		return EX_UNAVAILABLE;
	}
	if (!stopping) {
		msg_warn("libmilter stopped without a stop request (it may have taken a signal "
		         "itself); exiting so that the service manager restarts the daemon");
		return EX_TEMPFAIL;
	}
	return EX_OK;
}
