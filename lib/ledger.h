/*
 * ledger - the storage API of mailonce: mailings, recipients and handoffs.
 *
 * The interface names no SQLite type, so another backend (PostgreSQL for a
 * fleet sharing one ledger) can sit behind it. The SQLite backend opens
 * the file in WAL mode with synchronous=FULL, a busy timeout and foreign
 * keys on, and upgrades an older schema in one transaction at open; a
 * schema newer than this build is refused.
 *
 * Guarantees:
 * - Every function that changes data is one transaction: it commits all
 *   of its change or none of it.
 * - A recipient's status changes only through the functions here, and only
 *   along these transitions:
 *
 *       pending -> accepted -> queued -> delivered
 *          |          |          |---> bounced
 *          |          |          `---> deferred -> delivered | bounced
 *          |--> skipped   `--> pending   (the commit never happened)
 *          `--> error
 *
 *   The mailing counters move in the same transaction as the status:
 *   num_sent counts queued, deferred, delivered and bounced. num_errors
 *   counts error and num_skipped skipped; num_delivered and num_bounced
 *   count their status. num_profiles is the number of recipient rows.
 * - A refused transition returns LEDGER_REFUSED and changes nothing.
 *
 * Errors: functions return enum ledger_rc; ledger_errmsg() has the text of
 * the last LEDGER_BUSY or LEDGER_FAILED (the operation and SQLite's
 * message), and of most refusals. Nothing here logs or exits.
 * A struct ledger is used by one thread at a time; open one per thread.
 */
#ifndef MAILONCE_LEDGER_H
#define MAILONCE_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#define LEDGER_ID_MAX	    64  /* mailing and server ids */
#define LEDGER_QUEUE_ID_MAX 32  /* Postfix long queue ids are under 20 */
#define LEDGER_DIGEST_HEX   64  /* SHA-256 in hex */

enum ledger_rc {
	LEDGER_OK = 0,
	LEDGER_NOTFOUND, /* no such mailing or recipient */
	LEDGER_REFUSED,  /* not allowed in the current status or state */
	LEDGER_EXISTS,   /* the id is taken by different content */
	LEDGER_BUSY,     /* locked past the busy timeout */
	LEDGER_FAILED,   /* any other database error: I/O, full disk, corrupt */
};

enum rcpt_status {
	RCPT_PENDING,
	RCPT_ACCEPTED,
	RCPT_QUEUED,
	RCPT_DELIVERED,
	RCPT_BOUNCED,
	RCPT_DEFERRED,
	RCPT_SKIPPED,
	RCPT_ERROR,
};
#define RCPT_STATUS_COUNT 8

enum mailing_state {
	MAILING_DRAFT,
	MAILING_SENDING,
	MAILING_PAUSED,
	MAILING_COMPLETE,
	MAILING_CANCELLED,
};

struct ledger;

struct ledger_options {
	int busy_timeout; /* milliseconds */
	int create;       /* create the file and schema when missing */
};

const char *rcpt_status_name(enum rcpt_status status);
int rcpt_status_parse(const char *name, enum rcpt_status *status);
const char *mailing_state_name(enum mailing_state state);
int mailing_state_parse(const char *name, enum mailing_state *state);
const char *ledger_rc_name(enum ledger_rc rc);

/* ledger_open - open (and upgrade) a ledger. NULL with err on failure. */
struct ledger *ledger_open(const char *path, const struct ledger_options *opts, char *err,
			   size_t errlen);
void ledger_close(struct ledger *ledger);
const char *ledger_errmsg(const struct ledger *ledger);
int ledger_schema_version(struct ledger *ledger);

/* Servers. */

/* ledger_server_register - insert or refresh this server's row. */
enum ledger_rc ledger_server_register(struct ledger *ledger, const char *server_id,
				      const char *host);

/* Mailings. */

struct ledger_mailing {
	char mailing_id[LEDGER_ID_MAX + 1];
	char server_id[LEDGER_ID_MAX + 1];
	enum mailing_state state;
	int64_t num_profiles, num_sent, num_errors, num_skipped;
	int64_t num_delivered, num_bounced;
	/* Counted from rows, not stored. */
	int64_t num_pending, num_accepted, num_queued, num_deferred;
	int64_t num_duplicates, num_conflicts;
	char *template;      /* owned; freed by ledger_mailing_clear */
	char *envelope_from; /* owned */
	int64_t created_at, updated_at;
};

struct ledger_new_recipient {
	const char *address;
	const char *fields;     /* personalisation fields, JSON object text */
	enum rcpt_status status; /* RCPT_PENDING or RCPT_SKIPPED */
	const char *reason;     /* why skipped, kept as last_error */
};

/*
 * ledger_mailing_create - insert a mailing in state draft with recipients
 * seq 1..n in array order. input_digest identifies the inputs: the same
 * id with the same digest is LEDGER_OK with *existed = 1 and no change;
 * with another digest it is LEDGER_EXISTS.
 */
enum ledger_rc ledger_mailing_create(struct ledger *ledger, const char *mailing_id,
				     const char *server_id, const char *template,
				     const char *envelope_from, const char *input_digest,
				     const struct ledger_new_recipient *rcpts, size_t n,
				     int *existed);

/* ledger_mailing_get - fill *out; call ledger_mailing_clear afterwards. */
enum ledger_rc ledger_mailing_get(struct ledger *ledger, const char *mailing_id,
				  struct ledger_mailing *out);
void ledger_mailing_clear(struct ledger_mailing *m);

/*
 * ledger_mailing_set_state - move a mailing: draft -> sending,
 * sending <-> paused, any unfinished state -> cancelled,
 * sending -> complete (only when no recipient is pending or accepted).
 * Setting the current state again is LEDGER_OK.
 */
enum ledger_rc ledger_mailing_set_state(struct ledger *ledger, const char *mailing_id,
					enum mailing_state state);

/*
 * ledger_mailing_try_complete - mark a sending mailing complete when no
 * recipient is pending or accepted. *complete is set to 1 when it is.
 */
enum ledger_rc ledger_mailing_try_complete(struct ledger *ledger, const char *mailing_id,
					   int *complete);

/* Callback for list functions; return non-zero to stop early. */
typedef int (*ledger_mailing_fn)(const struct ledger_mailing *m, void *ctx);

/*
 * ledger_mailings_list - every mailing, or those owned by one of
 * server_ids (NULL-terminated) and in a state other than complete or
 * cancelled when unfinished_only is set, oldest first. fn may call the
 * ledger, for example to migrate the mailing it is given.
 */
enum ledger_rc ledger_mailings_list(struct ledger *ledger, const char *const *server_ids,
				    int unfinished_only, ledger_mailing_fn fn, void *ctx);

/*
 * ledger_mailing_migrate - give an unfinished mailing of from_server to
 * to_server, with a migration row, in one transaction. LEDGER_REFUSED if
 * it is not owned by from_server.
 */
enum ledger_rc ledger_mailing_migrate(struct ledger *ledger, const char *mailing_id,
				      const char *from_server, const char *to_server);

/* Recipients. */

struct ledger_recipient {
	char mailing_id[LEDGER_ID_MAX + 1];
	uint64_t seq;
	char *address; /* owned */
	char *fields;  /* owned, JSON object text */
	enum rcpt_status status;
	char queue_id[LEDGER_QUEUE_ID_MAX + 1];
	int attempts;
	char *last_error; /* owned, may be NULL */
	int64_t updated_at;
};

void ledger_recipient_clear(struct ledger_recipient *r);

enum ledger_rc ledger_recipient_get(struct ledger *ledger, const char *mailing_id, uint64_t seq,
				    struct ledger_recipient *out);

typedef int (*ledger_recipient_fn)(const struct ledger_recipient *r, void *ctx);

/*
 * ledger_recipients_list - every recipient of a mailing in seq order. fn
 * runs while the query is open, so it must not call this ledger handle.
 */
enum ledger_rc ledger_recipients_list(struct ledger *ledger, const char *mailing_id,
				      ledger_recipient_fn fn, void *ctx);

/*
 * ledger_work_list - the seqs in [first, last] (last 0: no upper bound)
 * that still need a handoff, in seq order, at most max of them: pending
 * ones, and accepted ones too when with_accepted is set (the restart
 * helper re-injects those; the milter then sorts out which were in fact
 * committed). Writes the seqs to out and their count to *n.
 */
enum ledger_rc ledger_work_list(struct ledger *ledger, const char *mailing_id, uint64_t first,
				uint64_t last, int with_accepted, uint64_t *out, size_t max,
				size_t *n);

/*
 * ledger_mark_queued - the sender read "250 ... queued as queue_id".
 * accepted -> queued when queue_id is the accepted handoff's;
 * already queued or later: LEDGER_OK, nothing changes. When the 250 was
 * for a handoff the milter decided was a duplicate, nothing changes and
 * *duplicate is set. A pending recipient is LEDGER_REFUSED (the milter
 * did not record the message: misconfiguration).
 */
enum ledger_rc ledger_mark_queued(struct ledger *ledger, const char *mailing_id, uint64_t seq,
				  const char *queue_id, int *duplicate);

/*
 * ledger_mark_error - a permanent refusal or retries given up: pending or
 * accepted -> error, with the reply kept as last_error.
 */
enum ledger_rc ledger_mark_error(struct ledger *ledger, const char *mailing_id, uint64_t seq,
				 const char *reply);

/* ledger_note_attempt - count a failed attempt and keep its reply. */
enum ledger_rc ledger_note_attempt(struct ledger *ledger, const char *mailing_id, uint64_t seq,
				   const char *reply);

/* ledger_mark_skipped - pending -> skipped with a reason. */
enum ledger_rc ledger_mark_skipped(struct ledger *ledger, const char *mailing_id, uint64_t seq,
				   const char *reason);

/* Handoffs: the milter's decision, one transaction each. */

enum handoff_decision {
	HANDOFF_ACCEPT,     /* recorded as accepted: pass the message */
	HANDOFF_DUPLICATE,  /* an earlier handoff of (M,S) counts */
	HANDOFF_CONFLICT,   /* same (M,S), other body digest or recipient */
	HANDOFF_CONFIRMING, /* earlier attempt not yet confirmed: tempfail */
	HANDOFF_PAUSED,     /* mailing paused: tempfail */
	HANDOFF_CANCELLED,  /* mailing cancelled: reject */
	HANDOFF_CLOSED,     /* recipient skipped or error: reject */
};

const char *handoff_decision_name(enum handoff_decision d);
int handoff_decision_parse(const char *name, enum handoff_decision *d);

struct ledger_handoff {
	const char *mailing_id;
	uint64_t seq;
	const char *rcpt;      /* envelope recipient, lower-cased, no <> */
	const char *queue_id;  /* Postfix {i} */
	const char *client;    /* client address or name, for the audit row */
	const char *digest;    /* hex SHA-256 of the body */
	const char *server_id; /* owner of a mailing first seen here */
	int64_t now;           /* seconds since the epoch */
	int confirm_commits;   /* ConfirmCommits: check an accepted seq's commit */
	int confirm_timeout;   /* ConfirmTimeout, seconds */
};

struct ledger_handoff_result {
	enum handoff_decision decision;
	enum rcpt_status prior;                    /* status before the decision */
	char first_queue_id[LEDGER_QUEUE_ID_MAX + 1]; /* the handoff that counts */
	int64_t first_at;
	const char *detail; /* static text, e.g. "body digest differs" */
};

/*
 * ledger_record_handoff - decide what to do with a tracked message and
 * record the decision as a handoff row, in one transaction. A mailing or
 * seq the ledger has never seen (an application that makes its own
 * tokens) is created on the spot, owned by h->server_id. Any return other
 * than LEDGER_OK means nothing was recorded and the message must not be
 * accepted.
 */
enum ledger_rc ledger_record_handoff(struct ledger *ledger, const struct ledger_handoff *h,
				     struct ledger_handoff_result *res);

/* Commit evidence and delivery outcomes from the Postfix log. */

enum queue_event {
	QEVENT_COMMITTED,     /* qmgr saw the queue file */
	QEVENT_NOT_COMMITTED, /* rejected or discarded before commit */
	QEVENT_DELIVERED,
	QEVENT_BOUNCED,
	QEVENT_DEFERRED,
};

/*
 * ledger_apply_queue_event - apply one log event about queue_id seen at
 * time at. The handoff it belongs to is the accepted handoff with that
 * queue id whose attempt time is closest before at (60 s of clock skew
 * allowed, at most 8 days earlier), never the queue id alone. If log_name
 * is not NULL, the follower's position (log_inode, log_offset) is saved
 * in the same transaction, so a restarted follower resumes after the last
 * applied line. An event applied twice moves no status or counter twice.
 * *matched is 1 when a handoff was found. Unknown queue ids are
 * LEDGER_OK with *matched = 0.
 */
enum ledger_rc ledger_apply_queue_event(struct ledger *ledger, const char *queue_id, int64_t at,
					enum queue_event event, const char *text,
					const char *log_name, uint64_t log_inode,
					uint64_t log_offset, int *matched);

/*
 * ledger_log_position - the saved position of the follower of log_name;
 * LEDGER_NOTFOUND with zeros when none was saved.
 */
enum ledger_rc ledger_log_position(struct ledger *ledger, const char *log_name,
				   uint64_t *inode, uint64_t *offset, int64_t *line_time);

/* ledger_save_log_position - save the position alone (lines of no interest). */
enum ledger_rc ledger_save_log_position(struct ledger *ledger, const char *log_name,
					uint64_t inode, uint64_t offset, int64_t line_time);

/* Leases on batches (a whole mailing is batch 1 unless split). */

/*
 * ledger_batches_define - split a mailing into batches of size seqs
 * (size 0: one batch). Done once; LEDGER_EXISTS if already split other-
 * wise.
 */
enum ledger_rc ledger_batches_define(struct ledger *ledger, const char *mailing_id,
				     uint64_t size);

/*
 * ledger_lease_acquire - claim a batch of the mailing whose lease is free
 * or expired (or already held by holder), until now + seconds. Fills
 * batch_no, first and last seq. LEDGER_NOTFOUND when no batch is free.
 */
enum ledger_rc ledger_lease_acquire(struct ledger *ledger, const char *mailing_id,
				    const char *holder, int64_t now, int seconds,
				    int64_t *batch_no, uint64_t *first, uint64_t *last);

/* ledger_lease_renew - extend a lease holder holds; LEDGER_REFUSED if lost. */
enum ledger_rc ledger_lease_renew(struct ledger *ledger, const char *mailing_id,
				  int64_t batch_no, const char *holder, int64_t now, int seconds);

/* ledger_lease_release - give a batch back, marking it done if done is set. */
enum ledger_rc ledger_lease_release(struct ledger *ledger, const char *mailing_id,
				    int64_t batch_no, const char *holder, int done);

/* One batch and its lease, as ledger_batches_list reports it. */
struct ledger_batch {
	int64_t batch_no;
	uint64_t first_seq, last_seq;
	const char *state;  /* "free", "leased" or "done" */
	const char *holder; /* NULL unless leased */
	int64_t lease_until; /* seconds since the epoch; 0 unless leased */
};

typedef int (*ledger_batch_fn)(const struct ledger_batch *b, void *ctx);

/*
 * ledger_batches_list - every batch of a mailing in batch_no order, so a
 * sender that found no free batch can report which sender leases each
 * batch and until when. The strings are valid during the call only.
 */
enum ledger_rc ledger_batches_list(struct ledger *ledger, const char *mailing_id,
				   ledger_batch_fn fn, void *ctx);

/* Suppression list. */
enum ledger_rc ledger_suppression_add(struct ledger *ledger, const char *address,
				      const char *reason);
enum ledger_rc ledger_suppression_remove(struct ledger *ledger, const char *address);
/* ledger_suppressed - *reason (owned, may be NULL) set when listed. */
enum ledger_rc ledger_suppressed(struct ledger *ledger, const char *address, int *listed,
				 char **reason);

/* Consistency. */

typedef void (*ledger_mismatch_fn)(const char *mailing_id, const char *counter,
				   int64_t stored, int64_t counted, void *ctx);

/*
 * ledger_check_counters - compare every stored counter of the mailing (all
 * mailings when mailing_id is NULL) with the row counts; calls fn (which
 * may be NULL and must not call this ledger handle) for each difference
 * and sets *mismatches to their number.
 */
enum ledger_rc ledger_check_counters(struct ledger *ledger, const char *mailing_id,
				     ledger_mismatch_fn fn, void *ctx, int *mismatches);

#endif
