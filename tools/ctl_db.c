/*
 * ctl_db - the ledger and configuration commands of mailoncectl.
 *
 *	mailoncectl db init
 *		creates the ledger named by Database, or upgrades an older
 *		schema to the one of this build, and prints the path and
 *		the schema version.
 *
 *	mailoncectl check
 *		reads the configuration, loads KeyFile (which also checks
 *		its permissions), prints the configuration in effect, one
 *		"Key value" per line, and, when the ledger file exists,
 *		compares every stored counter of every mailing with the
 *		recipient rows. Ends with "configuration OK" when all of
 *		that passed.
 *
 * Exit codes: EX_CONFIG for a configuration or key file problem, with the
 * "FILE:LINE: ..." message; EX_DATAERR when a counter does not match,
 * after one line per mismatch; EX_UNAVAILABLE when the ledger cannot be
 * opened or read.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/stat.h>

#include "alloc.h"
#include "ctl.h"
#include "log.h"

#define DB_USAGE "init"

/* ctl_cmd_db - "db init": create or upgrade the ledger */
int ctl_cmd_db(struct ctl *ctl, int argc, char **argv)
{
	struct ledger *ledger;
	struct conf *conf;
	struct stat st;
	int existed;

	if (argc < 2)
		return ctl_usage_error("db", DB_USAGE, "missing the action");
	if (strcmp(argv[1], "init") != 0)
		return ctl_usage_error("db", DB_USAGE,
		                       "invalid action \"%s\"; the only action is init", argv[1]);
	if (argc > 2)
		return ctl_usage_error("db", DB_USAGE, "unexpected argument \"%s\"", argv[2]);

	conf = ctl_need_conf(ctl);
	existed = stat(conf->database, &st) == 0;
	ledger = ctl_need_ledger(ctl, 1);
	printf("%s %s at schema version %d\n", existed ? "ledger" : "created ledger",
	       conf->database, ledger_schema_version(ledger));
	return EX_OK;
}

/* ctl_print_mismatch - one line for a stored counter that differs from the rows */
static void ctl_print_mismatch(const char *mailing_id, const char *counter, int64_t stored,
                               int64_t counted, void *ctx)
{
	printf("counter mismatch: mailing=%s counter=%s stored=%" PRId64 " counted=%" PRId64 "\n",
	       mailing_id, counter, stored, counted);
}

/* ctl_check_ledger - compare the counters of every mailing; an exit code */
static int ctl_check_ledger(struct ctl *ctl)
{
	const char *path = ctl->conf.database;
	struct ledger *ledger;
	enum ledger_rc rc;
	struct stat st;
	int mismatches = 0;

	/* A check must not create the ledger as a side effect. */
	if (stat(path, &st) != 0) {
		if (errno != ENOENT) {
			fprintf(stderr, "mailoncectl check: %s: %s\n", path, strerror(errno));
			return EX_UNAVAILABLE;
		}
		printf("ledger %s does not exist yet; \"mailoncectl db init\" creates it\n", path);
		return EX_OK;
	}

	ledger = ctl_need_ledger(ctl, 0);
	rc = ledger_check_counters(ledger, NULL, ctl_print_mismatch, NULL, &mismatches);
	if (rc != LEDGER_OK) {
		fprintf(stderr, "mailoncectl check: cannot read the counters in %s: %s\n", path,
		        ledger_errmsg(ledger));
		return EX_UNAVAILABLE;
	}
	if (mismatches > 0) {
		printf("ledger %s: %d stored counter%s differ%s from the recipient rows\n", path,
		       mismatches, mismatches == 1 ? "" : "s", mismatches == 1 ? "s" : "");
		return EX_DATAERR;
	}
	printf("ledger %s: schema version %d, every stored counter matches the recipient rows\n",
	       path, ledger_schema_version(ledger));
	return EX_OK;
}

/*
 * check_environment - what the daemons would find wrong outside the file:
 * a UserID that does not exist is an error, commit confirmation without
 * a log to follow a warning.
 */
static int check_environment(const struct conf *conf)
{
	char *user;
	char *group;
	int rc = EX_OK;

	if (conf->user_id != NULL && conf->user_id[0] != '\0') {
		user = xstrdup(conf->user_id);
		group = strchr(user, ':');
		if (group != NULL)
			*group++ = '\0';
		if (getpwnam(user) == NULL) {
			fprintf(stderr, "UserID %s: no such user; create it or change UserID\n", user);
			rc = EX_NOUSER;
		} else if (group != NULL && getgrnam(group) == NULL) {
			fprintf(stderr, "UserID %s: no such group %s\n", conf->user_id, group);
			rc = EX_NOUSER;
		}
		free(user);
	}
	if (conf->confirm_commits && (conf->mail_log == NULL || conf->mail_log[0] == '\0'))
		fprintf(stderr, "warning: ConfirmCommits is on but MailLog is not set: no commit "
		                "can be confirmed, so every retry of an accepted message gets 451; "
		                "set MailLog to the Postfix log or turn ConfirmCommits off\n");
	return rc;
}

/* ctl_cmd_check - check the configuration, the key file and the ledger counters */
int ctl_cmd_check(struct ctl *ctl, int argc, char **argv)
{
	struct keyring *keys;
	char err[512];
	int rc;

	if (argc > 1)
		return ctl_usage_error("check", "", "unexpected argument \"%s\"", argv[1]);

	/* The message alone, as "FILE:LINE: ...", so editors can jump to it. */
	conf_init(&ctl->conf);
	ctl->conf_loaded = 1;
	if (conf_load(&ctl->conf, ctl->conf_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}

	keys = keyring_load(ctl->conf.key_file, err, sizeof(err));
	if (keys == NULL) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	ctl->keys = keys;

	conf_print(&ctl->conf, stdout);
	printf("key file %s: signing key %s\n", ctl->conf.key_file, keyring_signing_id(keys));
	rc = check_environment(&ctl->conf);
	if (rc != EX_OK)
		return rc;

	rc = ctl_check_ledger(ctl);
	if (rc != EX_OK)
		return rc;
	printf("configuration OK\n");
	return EX_OK;
}
