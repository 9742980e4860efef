/*
 * ctl_follow - the mail log follower of mailoncectl.
 *
 *	mailoncectl follow [--once]
 *		reads the Postfix log named by MailLog and records in the
 *		ledger which queue ids were committed, never committed,
 *		delivered, bounced or deferred, from where the last run
 *		stopped. Without --once it keeps following the log until
 *		SIGINT or SIGTERM, as the thread of mailonce-milter does.
 *		With --once it reads to the end of the log, prints its
 *		counters and exits.
 *
 * Run it by hand only when mailonce-milter does not follow the log
 * itself: two followers of one log apply each line once between them but
 * compete for the ledger.
 *
 * Exit codes: EX_CONFIG when MailLog is not set; EX_NOINPUT when the log
 * cannot be opened and EX_TEMPFAIL when the ledger failed, both with
 * --once only (the loop retries instead).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "ctl.h"
#include "follow.h"
#include "log.h"

#define FOLLOW_USAGE "[--once]"

static volatile sig_atomic_t follow_stop_requested;

static void follow_on_signal(int sig)
{
	(void)sig;
	follow_stop_requested = 1;
}

/* follow_catch_signals - SIGINT and SIGTERM end the loop after the current pass. */
static void follow_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = follow_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ctl_cmd_follow - "follow [--once]": apply the mail log to the ledger */
int ctl_cmd_follow(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"once", no_argument, NULL, 'o'},
	        {NULL, 0, NULL, 0},
	};
	const struct follow_counts *counts;
	struct follower *follower;
	struct conf *conf;
	struct stat st;
	int once = 0, ch, ret;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch != 'o')
			return ctl_usage_error("follow", FOLLOW_USAGE, "unknown option \"%s\"",
			                       argv[optind - 1]);
		once = 1;
	}
	if (optind < argc)
		return ctl_usage_error("follow", FOLLOW_USAGE, "unexpected argument \"%s\"",
		                       argv[optind]);

	conf = ctl_need_conf(ctl);
	if (conf->mail_log == NULL || conf->mail_log[0] == '\0') {
		fprintf(stderr,
		        "mailoncectl follow: MailLog is not set in %s; set it to the "
		        "Postfix log (maillog_file or the syslog file)\n",
		        ctl->conf_path);
		return EX_CONFIG;
	}
	if (once && stat(conf->mail_log, &st) < 0) {
		fprintf(stderr, "mailoncectl follow: MailLog %s: %s\n", conf->mail_log,
		        strerror(errno));
		return EX_NOINPUT;
	}

	follower = follower_new(ctl_need_ledger(ctl, 0), conf->mail_log);
	if (!once)
		follow_catch_signals();
	ret = follower_run(follower, once, &follow_stop_requested);

	counts = follower_counts(follower);
	if (once)
		printf("%s: lines=%" PRIu64 " events=%" PRIu64 " matched=%" PRIu64
		       " rotations=%" PRIu64 " truncations=%" PRIu64 "\n",
		       conf->mail_log, counts->lines, counts->events, counts->matched,
		       counts->rotations, counts->truncations);
	follower_free(follower);
	if (once && ret < 0)
		return EX_TEMPFAIL;
	return EX_OK;
}
