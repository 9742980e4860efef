/*
 * ctl_send - "mailoncectl send": hand the pending messages of a mailing
 * to the MTA.
 *
 *	mailoncectl send M [--concurrency N] [--batch-size N]
 *
 * Moves a draft mailing to sending and sends every pending seq through
 * the sending engine (sender.c): one recipient per message over SubmitTo,
 * N connections at a time (Concurrency by default). --batch-size splits
 * the mailing into batches of N seqs once, so several senders can share
 * it; each claims batches with a lease.
 *
 * Exit codes: EX_OK when the mailing is complete. EX_TEMPFAIL when work
 * is left: interrupted, another sender holds a lease, or the MTA is down.
 * EX_DATAERR for an unknown or cancelled mailing, EX_USAGE for bad
 * arguments. EX_UNAVAILABLE or EX_CONFIG for a ledger or setup failure.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "ctl.h"
#include "sender.h"
#include "token.h"

#define SEND_USAGE "M [--concurrency N] [--batch-size N]"

/* ctl_parse_count - a positive decimal number up to max; 0 or -1. */
static int ctl_parse_count(const char *text, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

int ctl_cmd_send(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"concurrency", required_argument, NULL, 'n'},
	        {"batch-size", required_argument, NULL, 'b'},
	        {NULL, 0, NULL, 0},
	};
	struct sender_options opts;
	uint64_t value;
	int ch;

	memset(&opts, 0, sizeof(opts));
	while ((ch = getopt_long(argc, argv, "n:b:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (ctl_parse_count(optarg, 64, &value) < 0)
				return ctl_usage_error("send", SEND_USAGE,
				                       "--concurrency must be 1 to 64, not \"%s\"",
				                       optarg);
			opts.concurrency = (int)value;
			break;
		case 'b':
			if (ctl_parse_count(optarg, INT64_MAX, &value) < 0)
				return ctl_usage_error("send", SEND_USAGE,
				                       "--batch-size must be a positive number of "
				                       "recipients, not \"%s\"",
				                       optarg);
			opts.batch_size = value;
			break;
		default:
			return ctl_usage_error("send", SEND_USAGE, "unknown option");
		}
	}
	if (optind >= argc)
		return ctl_usage_error("send", SEND_USAGE, "missing the mailing id");
	if (optind + 1 < argc)
		return ctl_usage_error("send", SEND_USAGE, "unexpected argument \"%s\"",
		                       argv[optind + 1]);
	if (!token_mailing_valid(argv[optind]))
		return ctl_usage_error(
		        "send", SEND_USAGE,
		        "invalid mailing id \"%s\": use 1 to 64 of A-Z a-z 0-9 . _ -",
		        argv[optind]);

	ctl_need_conf(ctl);
	ctl_need_keys(ctl);
	sender_signals_install();
	return sender_run(ctl, argv[optind], &opts);
}
