/*
 * ledger_sqlite - what the files of the SQLite ledger backend share: the
 * handle, its cache of prepared statements, transaction helpers and the
 * recipient transition used by every status change.
 *
 * Internal to the backend; programs include ledger.h only.
 */
#ifndef MAILONCE_LEDGER_SQLITE_H
#define MAILONCE_LEDGER_SQLITE_H

#include <sqlite3.h>
#include <stdint.h>

#include "ledger.h"

/* One slot per SQL statement; each is prepared once, on first use. */
enum ledger_stmt_id {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SERVER_REGISTER,
	STMT_MAILING_FIND,
	STMT_MAILING_INSERT,
	STMT_MAILING_GET,
	STMT_MAILING_STATUS_COUNTS,
	STMT_MAILING_DECISION_COUNTS,
	STMT_MAILING_SET_STATE,
	STMT_MAILING_OPEN_COUNT,
	STMT_MAILING_IDS,
	STMT_MAILING_MIGRATE,
	STMT_MIGRATION_INSERT,
	STMT_MAILING_COUNTERS,
	STMT_RCPT_INSERT,
	STMT_RCPT_GET,
	STMT_RCPT_LIST,
	STMT_RCPT_STATE,
	STMT_RCPT_MOVE,
	STMT_RCPT_ACCEPT,
	STMT_RCPT_NOTE,
	STMT_WORK_LIST,
	STMT_HANDOFF_INSERT,
	STMT_HANDOFF_COMMIT_GET,
	STMT_HANDOFF_COMMIT_SET,
	STMT_HANDOFF_BY_QUEUE_ID,
	STMT_HANDOFF_OF_RCPT,
	STMT_LOG_TIME,
	STMT_LOG_GET,
	STMT_LOG_SAVE,
	STMT_BATCH_COUNT,
	STMT_BATCH_INSERT,
	STMT_BATCH_MAX_SEQ,
	STMT_BATCH_HELD,
	STMT_BATCH_FREE,
	STMT_BATCH_TAKE,
	STMT_BATCH_RENEW,
	STMT_BATCH_RELEASE,
	STMT_SUPPRESS_ADD,
	STMT_SUPPRESS_REMOVE,
	STMT_SUPPRESS_GET,
	STMT_CHECK_COUNTERS,
	STMT_COUNT
};

struct ledger {
	sqlite3 *db;
	sqlite3_stmt *stmt[STMT_COUNT];
	enum ledger_rc prepare_rc; /* why ledger_stmt returned NULL */
	int busy_timeout;          /* milliseconds, for messages */
	char errmsg[512];
};

/* A recipient's row as the transitions need it. */
struct ledger_rcpt_state {
	enum rcpt_status status;
	char *address; /* owned */
	char queue_id[LEDGER_QUEUE_ID_MAX + 1];
	char digest[LEDGER_DIGEST_HEX + 1];
	int has_digest;
	int64_t accepted_at;
	int64_t accepted_handoff; /* handoff id, 0 if none */
};

sqlite3_stmt *ledger_stmt(struct ledger *l, enum ledger_stmt_id id, const char *sql);
enum ledger_rc ledger_db_error(struct ledger *l, const char *op, int sqlite_rc);
enum ledger_rc ledger_refuse(struct ledger *l, enum ledger_rc rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
enum ledger_rc ledger_exec(struct ledger *l, sqlite3_stmt *st, const char *op);
int ledger_row(struct ledger *l, sqlite3_stmt *st, const char *op, enum ledger_rc *rc);
enum ledger_rc ledger_begin(struct ledger *l, const char *op);
enum ledger_rc ledger_finish(struct ledger *l, enum ledger_rc rc, const char *op);
int64_t ledger_now(void);

void ledger_bind_text(sqlite3_stmt *st, int col, const char *text);
char *ledger_column_dup(sqlite3_stmt *st, int col);
void ledger_column_copy(sqlite3_stmt *st, int col, char *dst, size_t size);

enum ledger_rc ledger_rcpt_read(struct ledger *l, const char *mailing_id, uint64_t seq,
                                struct ledger_rcpt_state *out, int *found);
void ledger_rcpt_state_clear(struct ledger_rcpt_state *r);
enum ledger_rc ledger_rcpt_move(struct ledger *l, const char *mailing_id, uint64_t seq,
                                enum rcpt_status from, enum rcpt_status to, int64_t now);
enum ledger_rc ledger_rcpt_note(struct ledger *l, const char *mailing_id, uint64_t seq,
                                int attempts, const char *text, int64_t now);
enum ledger_rc ledger_handoff_set_commit(struct ledger *l, int64_t handoff_id,
                                         const char *commit_state);
int ledger_transition_allowed(enum rcpt_status from, enum rcpt_status to);
enum ledger_rc ledger_mailing_find(struct ledger *l, const char *mailing_id, int *found,
                                   enum mailing_state *state, char *server_id, char **input_digest);
enum ledger_rc ledger_mailing_insert(struct ledger *l, const char *mailing_id,
                                     const char *server_id, enum mailing_state state,
                                     const char *template, const char *envelope_from,
                                     const char *input_digest, int64_t now);
enum ledger_rc ledger_rcpt_insert(struct ledger *l, const char *mailing_id, uint64_t seq,
                                  const struct ledger_new_recipient *nr, int64_t now);
enum ledger_rc ledger_counters_move(struct ledger *l, const char *mailing_id, int from,
                                    enum rcpt_status to, int64_t now);

#endif
