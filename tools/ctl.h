/*
 * ctl - what the mailoncectl subcommands share.
 *
 * Each subcommand is a function "int ctl_cmd_NAME(struct ctl *, int argc,
 * char **argv)" that gets its own arguments (argv[0] is the subcommand
 * name, parsed with getopt) and returns a sysexits.h exit code. The
 * helpers below load what a subcommand needs on first use and end the
 * program with a message naming the file and the fix when they cannot.
 */
#ifndef MAILONCE_CTL_H
#define MAILONCE_CTL_H

#include "conf.h"
#include "ledger.h"
#include "token.h"

struct ctl {
	const char *conf_path; /* -c, or CONF_DEFAULT_PATH */
	int verbose;           /* -v */
	int conf_loaded;
	struct conf conf;
	struct ledger *ledger;
	struct keyring *keys;
};

/* ctl_need_conf - load the configuration once; exit EX_CONFIG on error. */
struct conf *ctl_need_conf(struct ctl *ctl);

/* ctl_need_ledger - open the ledger of the configuration; exit on error. */
struct ledger *ctl_need_ledger(struct ctl *ctl, int create);

/* ctl_need_keys - load KeyFile; exit EX_CONFIG naming the file on error. */
struct keyring *ctl_need_keys(struct ctl *ctl);

/* ctl_usage_error - print "mailoncectl NAME: message" and the usage. */
int ctl_usage_error(const char *name, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int ctl_cmd_keygen(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_token(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_db(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_check(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_create(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_send(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_restart(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_status(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_follow(struct ctl *ctl, int argc, char **argv);

#endif
