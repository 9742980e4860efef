/*
 * mailoncectl - admin and sender command of mailonce.
 *
 * Usage: mailoncectl [-c FILE] [-v] COMMAND [ARGS]
 *
 * This file only parses the global options and dispatches; each command
 * lives in its own ctl_*.c file. Commands return sysexits.h codes.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"

struct ctl_command {
	const char *name;
	int (*run)(struct ctl *, int, char **);
	const char *summary;
};

static const struct ctl_command ctl_commands[] = {
	{"keygen", ctl_cmd_keygen, "create a key file or add a new signing key"},
	{"token", ctl_cmd_token, "print or verify the token of one message"},
	{"db", ctl_cmd_db, "create or upgrade the ledger (db init)"},
	{"check", ctl_cmd_check, "check the configuration and the ledger counters"},
	{"create", ctl_cmd_create, "register a mailing from a template and a CSV list"},
	{"send", ctl_cmd_send, "send the pending messages of a mailing"},
	{"restart", ctl_cmd_restart, "resume the incomplete mailings of this server"},
	{"status", ctl_cmd_status, "show the counters of mailings and recipients"},
	{"follow", ctl_cmd_follow, "apply the Postfix log to the ledger (--once: to its end)"},
};

static const struct option ctl_long_options[] = {
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static void ctl_print_usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: mailoncectl [-c FILE] [-v] COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		fprintf(fp, "  %-8s %s\n", ctl_commands[i].name, ctl_commands[i].summary);
	fprintf(fp, "\n-c FILE  configuration file (default %s)\n", CONF_DEFAULT_PATH);
}

int ctl_usage_error(const char *name, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mailoncectl %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: mailoncectl %s %s\n", name, usage);
	return EX_USAGE;
}

struct conf *ctl_need_conf(struct ctl *ctl)
{
	char err[512];

	if (ctl->conf_loaded)
		return &ctl->conf;
	conf_init(&ctl->conf);
	if (conf_load(&ctl->conf, ctl->conf_path, err, sizeof(err)) != 0)
		msg_fatal(EX_CONFIG, "%s", err);
	ctl->conf_loaded = 1;
	if (ctl->verbose)
		log_set_verbose(1);
	return &ctl->conf;
}

struct ledger *ctl_need_ledger(struct ctl *ctl, int create)
{
	struct ledger_options opts;
	char err[512];

	if (ctl->ledger)
		return ctl->ledger;
	ctl_need_conf(ctl);
	opts.busy_timeout = ctl->conf.busy_timeout;
	opts.create = create;
	ctl->ledger = ledger_open(ctl->conf.database, &opts, err, sizeof(err));
	if (ctl->ledger == NULL)
		msg_fatal(EX_UNAVAILABLE, "%s", err);
	return ctl->ledger;
}

struct keyring *ctl_need_keys(struct ctl *ctl)
{
	char err[512];

	if (ctl->keys)
		return ctl->keys;
	ctl_need_conf(ctl);
	ctl->keys = keyring_load(ctl->conf.key_file, err, sizeof(err));
	if (ctl->keys == NULL)
		msg_fatal(EX_CONFIG, "%s", err);
	return ctl->keys;
}

static void ctl_release(struct ctl *ctl)
{
	if (ctl->ledger)
		ledger_close(ctl->ledger);
	if (ctl->keys)
		keyring_free(ctl->keys);
	if (ctl->conf_loaded)
		conf_free(&ctl->conf);
}

int main(int argc, char **argv)
{
	struct ctl ctl;
	size_t i;
	int ch;
	int rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.conf_path = CONF_DEFAULT_PATH;
	log_init("mailoncectl", LOG_DEST_STDERR, 0);

	/* "+" stops at the command, whose options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:vVh", ctl_long_options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl.conf_path = optarg;
			break;
		case 'v':
			ctl.verbose = 1;
			log_set_verbose(1);
			break;
		case 'V':
			printf("mailoncectl %s\n", PACKAGE_VERSION);
			return EX_OK;
		case 'h':
			ctl_print_usage(stdout);
			return EX_OK;
		default:
			ctl_print_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		ctl_print_usage(stderr);
		return EX_USAGE;
	}

	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++) {
		if (strcmp(argv[optind], ctl_commands[i].name) != 0)
			continue;
		argc -= optind;
		argv += optind;
		/*
		 * 0, not 1: glibc then also resets the "+" mode (stop at the
		 * first argument) of the options above, so each command's own
		 * option string decides whether options may follow arguments.
		 */
		optind = 0;
		rc = ctl_commands[i].run(&ctl, argc, argv);
		ctl_release(&ctl);
		return rc;
	}
	fprintf(stderr, "mailoncectl: unknown command \"%s\"; run mailoncectl -h for the list\n",
		argv[optind]);
	return EX_USAGE;
}
