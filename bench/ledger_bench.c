/*
 * ledger_bench - how many handoffs per second the ledger records on this disk.
 *
 * Usage: ledger_bench [-n COUNT] [-d DIR]
 *
 * Creates a fresh ledger in DIR (default: the current directory), opened
 * by ledger_open as the milter opens it (WAL mode, synchronous=FULL), and
 * times ledger_record_handoff in two phases of COUNT calls each:
 *
 *	new		seqs 1..COUNT of one mailing, never seen before: each
 *			call creates the recipient and records an accepted
 *			handoff;
 *	duplicate	the same seqs again with the same recipient and body
 *			digest but another queue id: each call finds the
 *			earlier handoff and records a duplicate.
 *
 * Every call is one transaction, so each costs at least one fsync of the
 * WAL. The program prints one line per phase: calls per second, mean and
 * 95th percentile time per call. It checks every decision and exits 1 if
 * one is not what the phase expects, because a fast but wrong ledger
 * must not look like a good result. The ledger file and its WAL are removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "ledger.h"
#include "log.h"

#define BENCH_MAILING "bench-ledger"
#define BENCH_SERVER  "bench1"
#define BENCH_DIGEST  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* now_seconds - a monotonic clock in seconds */
static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * run_phase - call ledger_record_handoff for seqs 1..count and time each call
 * into per_call. Returns how many calls returned another decision than expect.
 */
static long run_phase(struct ledger *ledger, long count, const char *queue_prefix,
                      enum handoff_decision expect, double *per_call)
{
	struct ledger_handoff h;
	struct ledger_handoff_result res;
	char rcpt[64];
	char queue_id[LEDGER_QUEUE_ID_MAX + 1];
	long wrong = 0;
	long i;

	memset(&h, 0, sizeof(h));
	h.mailing_id = BENCH_MAILING;
	h.client = "127.0.0.1";
	h.digest = BENCH_DIGEST;
	h.server_id = BENCH_SERVER;
	h.rcpt = rcpt;
	h.queue_id = queue_id;
	h.confirm_commits = 0;
	h.confirm_timeout = 600;

	for (i = 0; i < count; i++) {
		double t0;
		enum ledger_rc rc;

		h.seq = (uint64_t)i + 1;
		h.now = (int64_t)time(NULL);
		snprintf(rcpt, sizeof(rcpt), "user%ld@example.bench.test", i + 1);
		snprintf(queue_id, sizeof(queue_id), "%s%ld", queue_prefix, i + 1);

		t0 = now_seconds();
		rc = ledger_record_handoff(ledger, &h, &res);
		per_call[i] = now_seconds() - t0;

		if (rc != LEDGER_OK)
			msg_fatal(EX_IOERR, "ledger_record_handoff failed for seq %ld: %s: %s",
			          i + 1, ledger_rc_name(rc), ledger_errmsg(ledger));
		if (res.decision != expect)
			wrong++;
	}
	return wrong;
}

/* report - print one line: calls per second, mean and p95 per call */
static void report(const char *phase, long count, double *per_call)
{
	double total = 0;
	long i;

	for (i = 0; i < count; i++)
		total += per_call[i];
	qsort(per_call, (size_t)count, sizeof(per_call[0]), cmp_double);
	printf("%-10s %7ld calls %9.1f calls/s  mean %7.3f ms  p95 %7.3f ms\n", phase, count,
	       count / total, total / count * 1000, per_call[(count * 95 + 99) / 100 - 1] * 1000);
}

/* remove_ledger - delete the ledger file and the files SQLite keeps beside it */
static void remove_ledger(const char *path)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char *name = xasprintf("%s%s", path, suffixes[i]);

		if (unlink(name) != 0 && errno != ENOENT)
			msg_warn("cannot remove %s: %s", name, strerror(errno));
		free(name);
	}
}

/* parse_count - the value of -n, a positive number of calls */
static long parse_count(const char *text)
{
	char *end;
	long count;

	errno = 0;
	count = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || count < 1 || count > 100000000)
		msg_fatal(EX_USAGE, "invalid -n %s: expected a number of calls from 1 to 100000000",
		          text);
	return count;
}

static void usage(void)
{
	fprintf(stderr, "usage: ledger_bench [-n COUNT] [-d DIR]\n");
	exit(EX_USAGE);
}

int main(int argc, char **argv)
{
	struct ledger_options opts = {.busy_timeout = 5000, .create = 1};
	struct ledger *ledger;
	const char *dir = ".";
	char err[512];
	char *path;
	double *per_call;
	long count = 2000;
	long wrong;
	int c;

	log_init("ledger_bench", LOG_DEST_STDERR, 0);
	while ((c = getopt(argc, argv, "n:d:")) != -1) {
		if (c == 'n')
			count = parse_count(optarg);
		else if (c == 'd')
			dir = optarg;
		else
			usage();
	}
	if (count < 1 || optind != argc)
		usage();

	path = xasprintf("%s/ledger-bench-%ld.db", dir, (long)getpid());
	remove_ledger(path);
	ledger = ledger_open(path, &opts, err, sizeof(err));
	if (ledger == NULL)
		msg_fatal(EX_CANTCREAT, "%s", err);
	per_call = xmalloc((size_t)count * sizeof(per_call[0]));

	wrong = run_phase(ledger, count, "NEW", HANDOFF_ACCEPT, per_call);
	report("new", count, per_call);
	if (wrong == 0) {
		wrong = run_phase(ledger, count, "DUP", HANDOFF_DUPLICATE, per_call);
		report("duplicate", count, per_call);
	}

	ledger_close(ledger);
	remove_ledger(path);
	free(path);
	free(per_call);
	if (wrong != 0) {
		fprintf(stderr, "ledger_bench: %ld calls got an unexpected decision\n", wrong);
		return 1;
	}
	return 0;
}
