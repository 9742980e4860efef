/*
 * ledger_sqlite - the SQLite ledger backend: opening, schema upgrades,
 * the statement cache and the transaction helpers the other ledger_*.c
 * files build on.
 *
 * ledger_open() opens the file in WAL mode with synchronous=FULL, the
 * configured busy timeout and foreign keys on, then brings the schema up
 * to the newest version compiled in (schema/sqlite, embedded as
 * ledger_schema[]): every missing step and its schema_version row run in
 * one transaction, so a crash leaves the old schema whole. A file whose
 * schema is newer than this build is refused.
 *
 * Every SQL statement is prepared once per handle, on first use, and
 * kept until ledger_close(). Every function that changes data is one
 * transaction begun with BEGIN IMMEDIATE, so that two writers queue on
 * the write lock (up to the busy timeout) rather than fail when a read
 * lock turns into a write lock.
 *
 * Errors: SQLITE_BUSY and SQLITE_LOCKED become LEDGER_BUSY, every other
 * SQLite error LEDGER_FAILED; either way the transaction is rolled back
 * and ledger_errmsg() names the operation and SQLite's message. Nothing
 * here logs or exits, except that memory exhaustion ends the program
 * through the alloc module.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "ledger.h"
#include "ledger_sqlite.h"
#include "schema_sql.h"

int64_t ledger_now(void)
{
	return (int64_t)time(NULL);
}

const char *ledger_errmsg(const struct ledger *l)
{
	return l->errmsg;
}

/* ledger_db_error - record a failed SQLite call and map it to a ledger_rc */
enum ledger_rc ledger_db_error(struct ledger *l, const char *op, int sqlite_rc)
{
	int primary = sqlite_rc & 0xff;

	if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
		snprintf(
		        l->errmsg, sizeof(l->errmsg),
		        "%s: %s after waiting %d ms; another process holds the ledger's write lock",
		        op, sqlite3_errmsg(l->db), l->busy_timeout);
		return LEDGER_BUSY;
	}
	snprintf(l->errmsg, sizeof(l->errmsg), "%s: %s", op, sqlite3_errmsg(l->db));
	return LEDGER_FAILED;
}

/* ledger_refuse - set the message of a refusal and return rc */
enum ledger_rc ledger_refuse(struct ledger *l, enum ledger_rc rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->errmsg, sizeof(l->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

/* ledger_stmt - the cached statement for id, prepared from sql on first use */
sqlite3_stmt *ledger_stmt(struct ledger *l, enum ledger_stmt_id id, const char *sql)
{
	sqlite3_stmt *st = l->stmt[id];
	int rc;

	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	rc = sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		l->prepare_rc = ledger_db_error(l, "preparing a statement", rc);
		return NULL;
	}
	l->stmt[id] = st;
	return st;
}

/* ledger_exec - run a statement that returns no rows, then reset it */
enum ledger_rc ledger_exec(struct ledger *l, sqlite3_stmt *st, const char *op)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return ledger_db_error(l, op, rc);
	return LEDGER_OK;
}

/*
 * ledger_row - step a query. Returns 1 with a row to read, or 0 at the end
 * (*rc LEDGER_OK) or on an error (*rc set to it). The caller resets the
 * statement when done.
 */
int ledger_row(struct ledger *l, sqlite3_stmt *st, const char *op, enum ledger_rc *rc)
{
	int step = sqlite3_step(st);

	if (step == SQLITE_ROW) {
		*rc = LEDGER_OK;
		return 1;
	}
	if (step == SQLITE_DONE) {
		*rc = LEDGER_OK;
		return 0;
	}
	*rc = ledger_db_error(l, op, step);
	sqlite3_reset(st);
	return 0;
}

/* ledger_begin - start a write transaction, waiting up to the busy timeout */
enum ledger_rc ledger_begin(struct ledger *l, const char *op)
{
	sqlite3_stmt *st = ledger_stmt(l, STMT_BEGIN, "BEGIN IMMEDIATE");

	if (st == NULL)
		return l->prepare_rc;
	return ledger_exec(l, st, op);
}

/* ledger_rollback - undo the open transaction, if SQLite has not already */
static void ledger_rollback(struct ledger *l)
{
	sqlite3_stmt *st;

	if (sqlite3_get_autocommit(l->db))
		return;
	st = ledger_stmt(l, STMT_ROLLBACK, "ROLLBACK");
	if (st != NULL) {
		sqlite3_step(st);
		sqlite3_reset(st);
	}
}

/*
 * ledger_finish - commit when rc is LEDGER_OK, roll back otherwise; the
 * result is rc, or the commit's error.
 */
enum ledger_rc ledger_finish(struct ledger *l, enum ledger_rc rc, const char *op)
{
	char msg[sizeof(l->errmsg)];
	sqlite3_stmt *st;

	/* An unfinished query would keep its read snapshot past the commit. */
	for (int i = 0; i < STMT_COUNT; i++) {
		if (l->stmt[i] != NULL)
			sqlite3_reset(l->stmt[i]);
	}

	if (rc != LEDGER_OK) {
		memcpy(msg, l->errmsg, sizeof(msg));
		ledger_rollback(l);
		memcpy(l->errmsg, msg, sizeof(msg));
		return rc;
	}
	st = ledger_stmt(l, STMT_COMMIT, "COMMIT");
	if (st == NULL) {
		rc = l->prepare_rc;
	} else {
		rc = ledger_exec(l, st, op);
	}
	if (rc != LEDGER_OK) {
		memcpy(msg, l->errmsg, sizeof(msg));
		ledger_rollback(l);
		memcpy(l->errmsg, msg, sizeof(msg));
	}
	return rc;
}

void ledger_bind_text(sqlite3_stmt *st, int col, const char *text)
{
	if (text == NULL)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_text(st, col, text, -1, SQLITE_STATIC);
}

/* ledger_column_dup - a copy of a text column, NULL for SQL NULL */
char *ledger_column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	return text ? xstrdup((const char *)text) : NULL;
}

/* ledger_column_copy - copy a text column into dst, cut to size - 1 bytes */
void ledger_column_copy(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", text ? (const char *)text : "");
}

/* schema_current - the ledger's schema version, 0 for an empty file */
static int schema_current(sqlite3 *db, int *version)
{
	sqlite3_stmt *st;
	int rc;

	*version = 0;
	rc = sqlite3_prepare_v2(db,
	                        "SELECT 1 FROM sqlite_master"
	                        " WHERE type = 'table' AND name = 'schema_version'",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return SQLITE_OK;
	if (rc != SQLITE_ROW)
		return rc;

	rc = sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
	                        NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* schema_apply - run every step newer than version and record it */
static int schema_apply(sqlite3 *db, int version)
{
	sqlite3_stmt *st;
	int rc;

	for (int i = 0; i < ledger_schema_count; i++) {
		if (ledger_schema[i].version <= version)
			continue;
		rc = sqlite3_exec(db, ledger_schema[i].sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return rc;
		rc = sqlite3_prepare_v2(db,
		                        "INSERT INTO schema_version (version, applied_at)"
		                        " VALUES (?1, ?2)",
		                        -1, &st, NULL);
		if (rc != SQLITE_OK)
			return rc;
		sqlite3_bind_int(st, 1, ledger_schema[i].version);
		sqlite3_bind_int64(st, 2, ledger_now());
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return rc;
	}
	return SQLITE_OK;
}

/*
 * schema_upgrade - bring the schema to the newest version compiled in.
 * Returns 0, or -1 with err filled.
 */
static int schema_upgrade(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	int latest = ledger_schema[ledger_schema_count - 1].version;
	int version;
	int rc;

	/* The usual case, an up-to-date file, needs no write lock. */
	rc = schema_current(db, &version);
	if (rc == SQLITE_OK && version == latest)
		return 0;

	/* Check again under the write lock: another process may be upgrading. */
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = schema_current(db, &version);
	if (rc == SQLITE_OK && version > latest) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		snprintf(err, errlen,
		         "%s: schema version %d is newer than this build supports (%d);"
		         " upgrade mailonce",
		         path, version, latest);
		return -1;
	}
	if (rc == SQLITE_OK)
		rc = schema_apply(db, version);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot upgrade the ledger schema from version %d: %s",
		         path, version, sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/*
 * ledger_configure - set the connection options every ledger handle uses.
 * Returns 0, or -1 with err filled.
 */
static int ledger_configure(sqlite3 *db, const struct ledger_options *opts, const char *path,
                            char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, opts->busy_timeout);

	/*
	 * journal_mode returns the mode in force. A memory database or a file
	 * system without shared memory keeps another mode, and the ledger
	 * refuses it: without WAL, readers would block the milter's writes.
	 */
	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto failed;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		snprintf(err, errlen,
		         "%s: journal mode %s is in force where WAL is needed;"
		         " put the ledger on a local file system",
		         path, (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		goto failed;

	rc = sqlite3_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", NULL, NULL,
	                  NULL);
	if (rc == SQLITE_OK)
		return 0;
failed:
	snprintf(err, errlen,
	         "%s: cannot set up the ledger (WAL mode, synchronous, foreign keys):"
	         " %s",
	         path, sqlite3_errmsg(db));
	return -1;
}

/* ledger_open - open (and upgrade) a ledger. NULL with err on failure. */
struct ledger *ledger_open(const char *path, const struct ledger_options *opts, char *err,
                           size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	struct ledger *l;
	sqlite3 *db = NULL;
	int rc;

	if (opts->create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open the ledger: %s%s", path,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
		         opts->create ? "" : " (it must exist already)");
		sqlite3_close(db);
		return NULL;
	}

	if (ledger_configure(db, opts, path, err, errlen) != 0 ||
	    schema_upgrade(db, path, err, errlen) != 0) {
		sqlite3_close(db);
		return NULL;
	}

	l = xcalloc(1, sizeof(*l));
	l->db = db;
	l->busy_timeout = opts->busy_timeout;
	return l;
}

void ledger_close(struct ledger *l)
{
	if (l == NULL)
		return;
	for (int i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(l->stmt[i]);
	sqlite3_close(l->db);
	free(l);
}

/* ledger_schema_version - the schema version of the open file, -1 on error */
int ledger_schema_version(struct ledger *l)
{
	int version;
	int rc = schema_current(l->db, &version);

	if (rc != SQLITE_OK) {
		ledger_db_error(l, "reading the schema version", rc);
		return -1;
	}
	return version;
}
