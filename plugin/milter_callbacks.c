/*
 * milter_callbacks - the libmilter callbacks of mailonce-milter.
 *
 * milter_callbacks_register hands the callbacks to libmilter together with
 * the key ring that verifies tokens and this server's id; both must stay
 * valid until smfi_main returns.
 *
 * Per connection, a struct milter_conn hangs off smfi_setpriv. The first
 * callback of a connection (negotiate or connect) makes it, and close
 * frees it. Close can also come for a connection that never saw connect.
 * Per message, it collects the envelope recipients, every Mailonce-Token
 * header and a SHA-256 of the body; MAIL FROM, abort and the end of
 * message reset that part, so a second message on the same connection
 * starts clean.
 *
 * Every decision is taken at end of message, never at RCPT: Postfix's
 * sendmail(1) path simulates RCPT and treats a milter that rejects it as
 * misconfigured. A message without a token header is passed untouched and
 * the ledger is not asked. A tracked message is passed only when the
 * ledger recorded it as accepted, or when DuplicateAction or
 * ConflictAction puts it on hold or tags it.
 *
 * Each tracked decision and each bad token gives one log line with the
 * queue id first (milter_decide.c builds it). A failed header change or
 * quarantine is logged as a warning; when the message was to be held or
 * tagged it is refused with a tempfail instead, so that it is not delivered
 * unmarked.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>

#include <libmilter/mfapi.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "log.h"
#include "milter.h"

#define MILTER_ACTIONS (SMFIF_CHGHDRS | SMFIF_ADDHDRS | SMFIF_QUARANTINE)
#define CLIENT_MAX     256

/*
 * Steps Postfix may skip: HELO, unknown commands and end of headers are
 * not used, and connect, MAIL, RCPT and headers never need a reply. DATA
 * is not used either, but it is kept with a reply: Postfix sends the DATA
 * macros and then the first header in two small writes, and with nothing
 * coming back over TCP its Nagle algorithm delays the header until this
 * side's delayed ACK, about 40 ms a message (measured in bench/). The
 * header value is read without its leading space (the token grammar
 * allows white space anyway), so SMFIP_HDR_LEADSPC is not requested.
 */
#define MILTER_SKIP_STEPS (SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NOEOH)
#define MILTER_NO_REPLY   (SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR)

struct milter_conn {
	unsigned long protocol;  /* SMFIP_* flags agreed with the MTA */
	char client[CLIENT_MAX]; /* client address, for the handoff row */

	/* The current message. */
	char *rcpt; /* first envelope recipient, without <> */
	size_t nrcpt;
	char *token; /* value of the first Mailonce-Token header */
	int ntoken;
	EVP_MD_CTX *body_digest;
	int digest_started;
};

static const struct keyring *cb_keys;
static const char *cb_server_id;

/* conn_get - the connection state, made on first use */
static struct milter_conn *conn_get(SMFICTX *ctx)
{
	struct milter_conn *conn = smfi_getpriv(ctx);

	if (conn != NULL)
		return conn;
	conn = xcalloc(1, sizeof(*conn));
	snprintf(conn->client, sizeof(conn->client), "unknown");
	conn->body_digest = EVP_MD_CTX_new();
	if (conn->body_digest == NULL)
		msg_fatal(EX_OSERR, "out of memory: cannot allocate a SHA-256 context");
	if (smfi_setpriv(ctx, conn) != MI_SUCCESS) {
		msg_warn("smfi_setpriv failed; the connection state is lost");
		EVP_MD_CTX_free(conn->body_digest);
		free(conn);
		return NULL;
	}
	return conn;
}

/* message_reset - forget the current message */
static void message_reset(struct milter_conn *conn)
{
	free(conn->rcpt);
	free(conn->token);
	conn->rcpt = NULL;
	conn->token = NULL;
	conn->nrcpt = 0;
	conn->ntoken = 0;
	conn->digest_started = 0;
}

/* no_reply - the status of a callback whose reply the MTA may not want */
static sfsistat no_reply(const struct milter_conn *conn, unsigned long flag)
{
	return conn != NULL && (conn->protocol & flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* cb_negotiate - ask for the header changes we make and skip unused steps */
static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
	struct milter_conn *conn;

	if ((f0 & MILTER_ACTIONS) != MILTER_ACTIONS) {
		msg_warn("the MTA does not allow header changes and quarantine "
		         "(offered actions 0x%lx); not filtering this connection",
		         f0);
		return SMFIS_REJECT;
	}
	conn = conn_get(ctx);
	if (conn == NULL)
		return SMFIS_TEMPFAIL;

	conn->protocol = f1 & (MILTER_SKIP_STEPS | MILTER_NO_REPLY | SMFIP_SKIP);
	*pf0 = MILTER_ACTIONS;
	*pf1 = conn->protocol;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

/* cb_connect - keep the client address for the audit row */
static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct milter_conn *conn = conn_get(ctx);
	const void *addr = NULL;
	int family = hostaddr != NULL ? hostaddr->sa_family : AF_UNSPEC;

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	if (family == AF_INET)
		addr = &((struct sockaddr_in *)(void *)hostaddr)->sin_addr;
	else if (family == AF_INET6)
		addr = &((struct sockaddr_in6 *)(void *)hostaddr)->sin6_addr;

	/* Mail from sendmail(1) has no address; Postfix names it localhost. */
	if (addr == NULL || inet_ntop(family, addr, conn->client, sizeof(conn->client)) == NULL)
		snprintf(conn->client, sizeof(conn->client), "%s",
		         hostname != NULL ? hostname : "unknown");
	return no_reply(conn, SMFIP_NR_CONN);
}

/* cb_envfrom - a new message starts */
static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct milter_conn *conn = conn_get(ctx);

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	message_reset(conn);
	return no_reply(conn, SMFIP_NR_MAIL);
}

/* cb_envrcpt - count the recipients and keep the first, without <> */
static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct milter_conn *conn = conn_get(ctx);
	const char *addr = argv != NULL && argv[0] != NULL ? argv[0] : "";
	size_t len = strlen(addr);

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	conn->nrcpt++;
	if (conn->rcpt == NULL) {
		if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>')
			conn->rcpt = xstrndup(addr + 1, len - 2);
		else
			conn->rcpt = xstrdup(addr);
	}
	return no_reply(conn, SMFIP_NR_RCPT);
}

/* cb_header - count the token headers and keep the first one's value */
static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct milter_conn *conn = conn_get(ctx);

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	if (name != NULL && strcasecmp(name, TOKEN_HEADER) == 0) {
		conn->ntoken++;
		if (conn->token == NULL)
			conn->token = xstrdup(value != NULL ? value : "");
	}
	return no_reply(conn, SMFIP_NR_HDR);
}

/* digest_start - begin the body digest once per message */
static void digest_start(struct milter_conn *conn)
{
	if (conn->digest_started)
		return;
	if (EVP_DigestInit_ex(conn->body_digest, EVP_sha256(), NULL) != 1)
		msg_fatal(EX_SOFTWARE, "EVP_DigestInit_ex(SHA-256) failed: OpenSSL cannot hash");
	conn->digest_started = 1;
}

/* cb_body - hash the body of a tracked message; skip the rest otherwise */
static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct milter_conn *conn = conn_get(ctx);

	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	if (conn->ntoken == 0)
		return (conn->protocol & SMFIP_SKIP) ? SMFIS_SKIP : SMFIS_CONTINUE;
	digest_start(conn);
	if (EVP_DigestUpdate(conn->body_digest, chunk, len) != 1)
		msg_fatal(EX_SOFTWARE, "EVP_DigestUpdate(SHA-256) failed: OpenSSL cannot hash");
	return SMFIS_CONTINUE;
}

/* digest_finish - the hex SHA-256 of the body seen so far */
static void digest_finish(struct milter_conn *conn, char hex[LEDGER_DIGEST_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned int i;

	digest_start(conn);
	if (EVP_DigestFinal_ex(conn->body_digest, md, &mdlen) != 1 || mdlen * 2 > LEDGER_DIGEST_HEX)
		msg_fatal(EX_SOFTWARE, "EVP_DigestFinal_ex(SHA-256) failed: OpenSSL cannot hash");
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * mdlen] = '\0';
	conn->digest_started = 0;
}

/* eom_record - record the handoff in the ledger and map the result to an outcome */
static void eom_record(struct milter_conn *conn, const struct milter_rules *rules,
                       const struct milter_subject *subj, struct milter_outcome *out)
{
	struct ledger_handoff_result res;
	struct ledger_handoff h;
	struct ledger *ledger;
	char digest[LEDGER_DIGEST_HEX + 1];
	char err[512];
	char *rcpt;
	enum ledger_rc rc;

	digest_finish(conn, digest);
	ledger = milter_pool_get(err, sizeof(err));
	if (ledger == NULL) {
		milter_decide_ledger_error(rules, subj, err, out);
		return;
	}

	rcpt = token_normalize_rcpt(conn->rcpt);
	memset(&h, 0, sizeof(h));
	h.mailing_id = subj->mailing;
	h.seq = subj->seq;
	h.rcpt = rcpt;
	h.queue_id = subj->queue_id;
	h.client = conn->client;
	h.digest = digest;
	h.server_id = cb_server_id;
	h.now = (int64_t)time(NULL);
	h.confirm_commits = rules->confirm_commits;
	h.confirm_timeout = rules->confirm_timeout;

	memset(&res, 0, sizeof(res));
	rc = ledger_record_handoff(ledger, &h, &res);
	if (rc == LEDGER_OK) {
		milter_decide_handoff(rules, subj, &res, out);
	} else {
		snprintf(err, sizeof(err), "%s: %s", ledger_rc_name(rc), ledger_errmsg(ledger));
		milter_decide_ledger_error(rules, subj, err, out);
	}
	milter_pool_put(ledger, rc);
	free(rcpt);
}

/*
 * eom_decide - check the token and the envelope, then ask the ledger
 *
 * tok receives the parsed token; subj->mailing points into it afterwards.
 */
static void eom_decide(struct milter_conn *conn, const struct milter_rules *rules,
                       struct token *tok, struct milter_subject *subj, struct milter_outcome *out)
{
	const char *reason;

	if (conn->ntoken > 1) {
		milter_decide_bad_token(rules, subj, "more than one Mailonce-Token header", out);
		return;
	}
	if (token_parse(conn->token, tok, &reason) != 0) {
		milter_decide_bad_token(rules, subj, reason, out);
		return;
	}
	if (conn->nrcpt != 1) {
		milter_decide_bad_token(rules, subj,
		                        conn->nrcpt == 0 ? "no envelope recipient"
		                                         : "more than one envelope recipient",
		                        out);
		return;
	}
	if (token_verify(cb_keys, tok, conn->rcpt, &reason) != 0) {
		milter_decide_bad_token(rules, subj, reason, out);
		return;
	}

	subj->mailing = tok->mailing;
	subj->seq = tok->seq;
	if (subj->queue_id == NULL) {
		/* Postfix sends {i} at end of message unless milter_end_of_data_macros drops it. */
		milter_decide_ledger_error(rules, subj,
		                           "the MTA sent no queue id: add i to "
		                           "milter_end_of_data_macros",
		                           out);
		return;
	}
	eom_record(conn, rules, subj, out);
}

/* eom_strip - delete every Mailonce-Token header, last one first */
static int eom_strip(SMFICTX *ctx, const struct milter_conn *conn, const char *queue_id)
{
	static char name[] = TOKEN_HEADER;
	int i;

	/* From the last, so a deletion never shifts the index of the next. */
	for (i = conn->ntoken; i >= 1; i--) {
		if (smfi_chgheader(ctx, name, i, NULL) != MI_SUCCESS) {
			msg_warn("%s: removing %s header %d failed; the recipient sees the token",
			         queue_id, TOKEN_HEADER, i);
			return -1;
		}
	}
	return 0;
}

/* eom_apply - carry out an outcome; returns the status for libmilter */
static sfsistat eom_apply(SMFICTX *ctx, const struct milter_conn *conn,
                          const struct milter_outcome *out, const char *queue_id)
{
	static char tag_name[] = MILTER_DUPLICATE_HEADER;

	if (out->strip)
		(void)eom_strip(ctx, conn, queue_id);
	if (out->tag[0] != '\0' && smfi_addheader(ctx, tag_name, (char *)out->tag) != MI_SUCCESS) {
		msg_warn("%s: adding the %s header failed; replying with a tempfail instead",
		         queue_id, MILTER_DUPLICATE_HEADER);
		return SMFIS_TEMPFAIL;
	}
	if (out->hold && smfi_quarantine(ctx, (char *)out->quarantine) != MI_SUCCESS) {
		msg_warn("%s: quarantine failed; replying with a tempfail instead", queue_id);
		return SMFIS_TEMPFAIL;
	}
	if (out->rcode[0] != '\0' && smfi_setreply(ctx, (char *)out->rcode, (char *)out->xcode,
	                                           (char *)out->reply) != MI_SUCCESS)
		msg_warn("%s: smfi_setreply failed; the MTA uses its default reply text", queue_id);

	switch (out->status) {
	case MILTER_CONTINUE:
		return SMFIS_CONTINUE;
	case MILTER_DISCARD:
		return SMFIS_DISCARD;
	case MILTER_REJECT:
		return SMFIS_REJECT;
	case MILTER_TEMPFAIL:
		return SMFIS_TEMPFAIL;
	}
	msg_panic("eom_apply: unknown status %d", (int)out->status);
}

/* queue_id_escaped - the queue id for a log line */
static const char *queue_id_escaped(SMFICTX *ctx, char *buf, size_t size)
{
	const char *queue_id = smfi_getsymval(ctx, "i");

	return log_escape(buf, size, queue_id != NULL ? queue_id : "NOQUEUE");
}

/* cb_eom - decide on the message: the only place a message is refused */
static sfsistat cb_eom(SMFICTX *ctx)
{
	struct milter_conn *conn = conn_get(ctx);
	struct milter_outcome out;
	struct milter_subject subj;
	struct milter_rules rules;
	struct token tok;
	char qid[LEDGER_QUEUE_ID_MAX * 4 + 1];
	sfsistat status;

	if (conn == NULL)
		return SMFIS_TEMPFAIL;

	/* Untracked mail: no ledger, no change. */
	if (conn->ntoken == 0) {
		if (log_verbose())
			msg_debug("%s: no %s header; passed untouched",
			          queue_id_escaped(ctx, qid, sizeof(qid)), TOKEN_HEADER);
		message_reset(conn);
		return SMFIS_CONTINUE;
	}

	milter_rules_get(&rules);
	memset(&subj, 0, sizeof(subj));
	subj.queue_id = smfi_getsymval(ctx, "i");
	subj.rcpt = conn->rcpt;
	subj.nrcpt = conn->nrcpt;
	eom_decide(conn, &rules, &tok, &subj, &out);
	msg_info("%s", out.log);

	status = eom_apply(ctx, conn, &out, queue_id_escaped(ctx, qid, sizeof(qid)));
	message_reset(conn);
	return status;
}

/* cb_abort - the client gave up on the message */
static sfsistat cb_abort(SMFICTX *ctx)
{
	struct milter_conn *conn = smfi_getpriv(ctx);

	if (conn != NULL)
		message_reset(conn);
	return SMFIS_CONTINUE;
}

/* cb_close - free the connection state, which may never have been made */
static sfsistat cb_close(SMFICTX *ctx)
{
	struct milter_conn *conn = smfi_getpriv(ctx);

	if (conn == NULL)
		return SMFIS_CONTINUE;
	message_reset(conn);
	EVP_MD_CTX_free(conn->body_digest);
	free(conn);
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

/* milter_callbacks_register - hand the callbacks to libmilter */
int milter_callbacks_register(const struct keyring *ring, const char *server_id)
{
	static char name[] = MILTER_NAME;
	struct smfiDesc desc;

	cb_keys = ring;
	cb_server_id = server_id;

	memset(&desc, 0, sizeof(desc));
	desc.xxfi_name = name;
	desc.xxfi_version = SMFI_VERSION;
	desc.xxfi_flags = MILTER_ACTIONS;
	desc.xxfi_connect = cb_connect;
	desc.xxfi_envfrom = cb_envfrom;
	desc.xxfi_envrcpt = cb_envrcpt;
	desc.xxfi_header = cb_header;
	desc.xxfi_body = cb_body;
	desc.xxfi_eom = cb_eom;
	desc.xxfi_abort = cb_abort;
	desc.xxfi_close = cb_close;
	desc.xxfi_negotiate = cb_negotiate;
	return smfi_register(desc) == MI_SUCCESS ? 0 : -1;
}
