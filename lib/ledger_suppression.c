/*
 * ledger_suppression - the list of addresses never to mail (SQLite
 * backend).
 *
 * Addresses are stored and compared lower-cased (ASCII only: the domain
 * part is case-insensitive, and mail systems treat local parts that way
 * in practice). Adding a listed address again replaces its reason.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>

#include "alloc.h"
#include "ledger.h"
#include "ledger_sqlite.h"

/* address_key - a lower-cased copy of address; free it */
static char *address_key(const char *address)
{
	char *key = xstrdup(address);

	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return key;
}

enum ledger_rc ledger_suppression_add(struct ledger *l, const char *address, const char *reason)
{
	sqlite3_stmt *st;
	enum ledger_rc rc = ledger_begin(l, "adding to the suppression list");
	char *key;

	if (rc != LEDGER_OK)
		return rc;
	st = ledger_stmt(l, STMT_SUPPRESS_ADD,
	                 "INSERT INTO suppression (address, reason, added_at) VALUES (?1, ?2, ?3)"
	                 " ON CONFLICT (address) DO UPDATE SET reason = excluded.reason");
	if (st == NULL)
		return ledger_finish(l, l->prepare_rc, "adding to the suppression list");
	key = address_key(address);
	ledger_bind_text(st, 1, key);
	ledger_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, ledger_now());
	rc = ledger_exec(l, st, "adding to the suppression list");
	free(key);
	return ledger_finish(l, rc, "adding to the suppression list");
}

/* ledger_suppression_remove - LEDGER_NOTFOUND when the address is not listed */
enum ledger_rc ledger_suppression_remove(struct ledger *l, const char *address)
{
	sqlite3_stmt *st;
	enum ledger_rc rc = ledger_begin(l, "removing from the suppression list");
	char *key;

	if (rc != LEDGER_OK)
		return rc;
	st = ledger_stmt(l, STMT_SUPPRESS_REMOVE, "DELETE FROM suppression WHERE address = ?1");
	if (st == NULL)
		return ledger_finish(l, l->prepare_rc, "removing from the suppression list");
	key = address_key(address);
	ledger_bind_text(st, 1, key);
	rc = ledger_exec(l, st, "removing from the suppression list");
	if (rc == LEDGER_OK && sqlite3_changes(l->db) == 0)
		rc = ledger_refuse(l, LEDGER_NOTFOUND, "%s is not on the suppression list", key);
	free(key);
	return ledger_finish(l, rc, "removing from the suppression list");
}

enum ledger_rc ledger_suppressed(struct ledger *l, const char *address, int *listed, char **reason)
{
	sqlite3_stmt *st;
	enum ledger_rc rc;
	char *key;

	*listed = 0;
	if (reason != NULL)
		*reason = NULL;
	st = ledger_stmt(l, STMT_SUPPRESS_GET, "SELECT reason FROM suppression WHERE address = ?1");
	if (st == NULL)
		return l->prepare_rc;
	key = address_key(address);
	ledger_bind_text(st, 1, key);
	if (ledger_row(l, st, "reading the suppression list", &rc)) {
		*listed = 1;
		if (reason != NULL)
			*reason = ledger_column_dup(st, 0);
	}
	sqlite3_reset(st);
	free(key);
	return rc;
}
