/*
 * ctl_restart - "mailoncectl restart": the restart helper run at boot.
 *
 *	mailoncectl restart [--dry-run]
 *
 * Finds the unfinished mailings owned by ServerID or by a server listed
 * in MigrateFrom. A mailing of a MigrateFrom server is first given to
 * ServerID, whatever its state (ledger_mailing_migrate, which writes the
 * migration row in the same transaction). Every mailing in state sending
 * is then resumed by the sending engine with the accepted-unconfirmed
 * seqs included: those were handed off but never seen committed, and the
 * milter drops each one Postfix did commit. Mailings in state draft or
 * paused are listed and left alone, because no send was started for them.
 *
 * The helper waits up to LeaseTime for leases held by others, which is
 * how long the lease of a sender that died before the reboot can last.
 * --dry-run prints what would be done and changes nothing.
 *
 * Exit codes: EX_OK when every mailing it resumed is complete,
 * EX_TEMPFAIL when work is left, another sysexits.h code for a ledger or
 * configuration failure (the worst one seen).
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "ctl.h"
#include "log.h"
#include "sender.h"

#define RESTART_USAGE "[--dry-run]"

/* One unfinished mailing found. */
struct restart_item {
	char mailing_id[LEDGER_ID_MAX + 1];
	char owner[LEDGER_ID_MAX + 1];
	enum mailing_state state;
	int64_t pending, accepted;
};

struct restart_list {
	struct restart_item *items;
	size_t n;
};

/* restart_collect - remember one mailing of the list. */
static int restart_collect(const struct ledger_mailing *m, void *ctx)
{
	struct restart_list *list = ctx;
	struct restart_item *it;

	list->items = xrealloc(list->items, (list->n + 1) * sizeof(*list->items));
	it = &list->items[list->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->mailing_id, sizeof(it->mailing_id), "%s", m->mailing_id);
	snprintf(it->owner, sizeof(it->owner), "%s", m->server_id);
	it->state = m->state;
	it->pending = m->num_pending;
	it->accepted = m->num_accepted;
	return 0;
}

/* restart_worse - the exit code of the more serious failure. */
static int restart_worse(int a, int b)
{
	if (a == EX_OK || a == EX_TEMPFAIL)
		return b == EX_OK ? a : b;
	return a;
}

/* restart_migrate - take over a mailing of a MigrateFrom server. */
static int restart_migrate(struct ctl *ctl, struct restart_item *it, int dry_run)
{
	const char *to = ctl->conf.server_id;

	if (strcmp(it->owner, to) == 0)
		return EX_OK;
	if (dry_run) {
		printf("%s: would move from server %s to %s\n", it->mailing_id, it->owner, to);
		return EX_OK;
	}
	if (ledger_mailing_migrate(ctl->ledger, it->mailing_id, it->owner, to) != LEDGER_OK) {
		fprintf(stderr,
		        "mailoncectl restart: mailing %s: cannot move it from %s to %s: "
		        "%s\n",
		        it->mailing_id, it->owner, to, ledger_errmsg(ctl->ledger));
		return EX_UNAVAILABLE;
	}
	msg_info("mailing=%s migrated from=%s to=%s", it->mailing_id, it->owner, to);
	printf("%s: moved from server %s to %s\n", it->mailing_id, it->owner, to);
	return EX_OK;
}

/* restart_one - report one mailing and resume it when it is sending. */
static int restart_one(struct ctl *ctl, struct restart_item *it, int dry_run)
{
	struct sender_options opts;
	int rc;

	printf("%s: state %s, owner %s, pending %" PRId64 ", accepted-unconfirmed %" PRId64 "\n",
	       it->mailing_id, mailing_state_name(it->state), it->owner, it->pending, it->accepted);
	rc = restart_migrate(ctl, it, dry_run);
	if (rc != EX_OK)
		return rc;
	if (it->state != MAILING_SENDING) {
		printf("%s: left alone (not sending)\n", it->mailing_id);
		return EX_OK;
	}
	if (dry_run) {
		printf("%s: would re-inject %" PRId64 " seqs\n", it->mailing_id,
		       it->pending + it->accepted);
		return EX_OK;
	}

	memset(&opts, 0, sizeof(opts));
	opts.with_accepted = 1;
	opts.wait_for_leases = 1;
	return sender_run(ctl, it->mailing_id, &opts);
}

/* restart_server_ids - ServerID and the MigrateFrom servers, NULL-terminated. */
static const char **restart_server_ids(const struct conf *conf)
{
	const char **ids = xcalloc(conf->migrate_from_count + 2, sizeof(*ids));
	size_t i;

	ids[0] = conf->server_id;
	for (i = 0; i < conf->migrate_from_count; i++)
		ids[i + 1] = conf->migrate_from[i];
	return ids;
}

int ctl_cmd_restart(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"dry-run", no_argument, NULL, 'n'},
	        {NULL, 0, NULL, 0},
	};
	struct restart_list list = {NULL, 0};
	const char **ids;
	int ch, dry_run = 0, rc = EX_OK;
	size_t i;

	while ((ch = getopt_long(argc, argv, "n", longopts, NULL)) != -1) {
		if (ch != 'n')
			return ctl_usage_error("restart", RESTART_USAGE, "unknown option");
		dry_run = 1;
	}
	if (optind < argc)
		return ctl_usage_error("restart", RESTART_USAGE, "unexpected argument \"%s\"",
		                       argv[optind]);

	ctl_need_conf(ctl);
	ctl_need_ledger(ctl, 0);
	if (!dry_run)
		ctl_need_keys(ctl);
	sender_signals_install();

	ids = restart_server_ids(&ctl->conf);
	if (ledger_mailings_list(ctl->ledger, ids, 1, restart_collect, &list) != LEDGER_OK) {
		fprintf(stderr, "mailoncectl restart: cannot list the mailings: %s\n",
		        ledger_errmsg(ctl->ledger));
		free(ids);
		return EX_UNAVAILABLE;
	}
	if (list.n == 0)
		printf("no unfinished mailings for server %s\n", ctl->conf.server_id);

	for (i = 0; i < list.n && !sender_stop_requested(); i++)
		rc = restart_worse(rc, restart_one(ctl, &list.items[i], dry_run));
	if (i < list.n)
		rc = restart_worse(rc, EX_TEMPFAIL);

	free(list.items);
	free(ids);
	return rc;
}
