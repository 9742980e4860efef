/*
 * milter_decide - map a verdict on a tracked message to what the milter does.
 *
 *	milter_decide_bad_token	a token that is missing a part, forged,
 *				signed by an unknown key, meant for another
 *				recipient, or repeated; BadTokenAction
 *				decides.
 *	milter_decide_ledger_error
 *				the ledger recorded nothing; LedgerErrorAction
 *				decides, and it can only refuse the message.
 *	milter_decide_handoff	the ledger's decision (accept, duplicate,
 *				conflict, confirming, paused, cancelled,
 *				closed) and the matching *Action key.
 *
 * Each fills a struct milter_outcome: the status for the end-of-message
 * callback, the SMTP reply, whether to strip the token, quarantine the
 * message or add a Mailonce-Duplicate header, and the one log line that
 * records the decision with the Postfix queue id first.
 *
 * Guarantees: a tracked message leaves with MILTER_CONTINUE only when the
 * ledger returned HANDOFF_ACCEPT, or when the configured action keeps it
 * out of the mailbox (hold) or marks it (tag). Every value that comes from
 * the message or the envelope passes through log_escape before it reaches
 * the log line. Reply texts hold printable ASCII only and no "%", which
 * libmilter would take as a format character.
 *
 * Nothing here calls libmilter, the ledger or the log, and nothing fails:
 * texts too long for their buffer are cut.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "milter_decide.h"

#define ESCAPED_MAX 512

/* outcome_reset - start from "continue, change nothing, log nothing" */
static void outcome_reset(struct milter_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->status = MILTER_CONTINUE;
}

/* reply_clean - make text safe for smfi_setreply and smfi_quarantine */
static void reply_clean(char *text)
{
	for (; *text != '\0'; text++) {
		if (*text < 0x20 || *text > 0x7e || *text == '%')
			*text = '?';
	}
}

/* text_format - snprintf that never reports truncation to the caller */
static void text_format(char *dst, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void text_format(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

/* log_append - add printf-formatted text to the log line */
static void log_append(struct milter_outcome *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void log_append(struct milter_outcome *out, const char *fmt, ...)
{
	size_t len = strlen(out->log);
	va_list ap;

	if (len + 1 >= sizeof(out->log))
		return;
	va_start(ap, fmt);
	vsnprintf(out->log + len, sizeof(out->log) - len, fmt, ap);
	va_end(ap);
}

/* log_append_value - add " key=value", escaped, quoted when it has a space */
static void log_append_value(struct milter_outcome *out, const char *key, const char *value)
{
	char esc[ESCAPED_MAX];

	log_escape(esc, sizeof(esc), value != NULL ? value : "");
	if (strchr(esc, ' ') != NULL || strchr(esc, '"') != NULL || esc[0] == '\0')
		log_append(out, " %s=\"%s\"", key, esc);
	else
		log_append(out, " %s=%s", key, esc);
}

/* log_start - "QUEUEID:" and, when known, the mailing, seq and recipient */
static void log_start(struct milter_outcome *out, const struct milter_subject *subj, int tracked)
{
	char esc[ESCAPED_MAX];

	log_escape(esc, sizeof(esc), subj->queue_id != NULL ? subj->queue_id : "NOQUEUE");
	log_append(out, "%s:", esc);
	if (tracked) {
		log_escape(esc, sizeof(esc), subj->mailing != NULL ? subj->mailing : "");
		log_append(out, " mailing=%s seq=%" PRIu64, esc, subj->seq);
	}
	log_escape(esc, sizeof(esc), subj->rcpt != NULL ? subj->rcpt : "");
	log_append(out, " rcpt=<%s>", esc);
	if (subj->nrcpt > 1)
		log_append(out, " nrcpt=%zu", subj->nrcpt);
}

/* action_word - the action= value of the log line */
static const char *action_word(enum conf_action action)
{
	switch (action) {
	case ACTION_ACCEPT:
		return "accept";
	case ACTION_DISCARD:
		return "discard";
	case ACTION_REJECT:
		return "reject";
	case ACTION_TEMPFAIL:
		return "tempfail";
	case ACTION_HOLD:
		return "hold";
	case ACTION_TAG:
		return "tag";
	}
	return "tempfail";
}

/* Reply codes for an action that refuses: permanent and temporary. */
struct refusal {
	const char *perm_xcode; /* with 550 */
	const char *temp_xcode; /* with 451 */
};

/*
 * outcome_act - carry out one *Action with the given text
 *
 * The text becomes the SMTP reply of reject and tempfail and the reason of
 * hold. ACTION_ACCEPT passes the message only when allow_accept is set.
 * Otherwise it becomes a tempfail, so a bad configuration never lets a
 * tracked message through that the ledger did not accept.
 */
static enum conf_action outcome_act(struct milter_outcome *out, enum conf_action action,
                                    int allow_accept, const struct refusal *codes, const char *text,
                                    int strip)
{
	if (action == ACTION_ACCEPT && !allow_accept)
		action = ACTION_TEMPFAIL;

	switch (action) {
	case ACTION_ACCEPT:
	case ACTION_TAG:
		out->strip = strip;
		break;
	case ACTION_HOLD:
		out->strip = strip;
		out->hold = 1;
		text_format(out->quarantine, sizeof(out->quarantine), "mailonce: %s", text);
		reply_clean(out->quarantine);
		break;
	case ACTION_DISCARD:
		out->status = MILTER_DISCARD;
		break;
	case ACTION_REJECT:
		out->status = MILTER_REJECT;
		text_format(out->rcode, sizeof(out->rcode), "550");
		text_format(out->xcode, sizeof(out->xcode), "%s", codes->perm_xcode);
		break;
	case ACTION_TEMPFAIL:
	default:
		action = ACTION_TEMPFAIL;
		out->status = MILTER_TEMPFAIL;
		text_format(out->rcode, sizeof(out->rcode), "451");
		text_format(out->xcode, sizeof(out->xcode), "%s", codes->temp_xcode);
		break;
	}

	if (out->rcode[0] != '\0') {
		text_format(out->reply, sizeof(out->reply), "%s", text);
		reply_clean(out->reply);
	}
	return action;
}

void milter_decide_bad_token(const struct milter_rules *rules, const struct milter_subject *subj,
                             const char *reason, struct milter_outcome *out)
{
	static const struct refusal codes = {"5.7.1", "4.7.1"};
	enum conf_action done;
	char text[MILTER_REPLY_MAX];

	outcome_reset(out);
	text_format(text, sizeof(text), "invalid Mailonce-Token header: %s", reason);
	done = outcome_act(out, rules->bad_token_action, 1, &codes, text, rules->strip_token);

	log_start(out, subj, 0);
	log_append(out, " action=%s", action_word(done));
	log_append_value(out, "reason", reason);
}

void milter_decide_ledger_error(const struct milter_rules *rules, const struct milter_subject *subj,
                                const char *errmsg, struct milter_outcome *out)
{
	static const struct refusal codes = {"5.3.0", "4.3.0"};
	enum conf_action action = rules->ledger_error_action;
	enum conf_action done;
	char reason[MILTER_REPLY_MAX];

	/* Only a refusal keeps an unrecorded tracked message out. */
	if (action != ACTION_REJECT)
		action = ACTION_TEMPFAIL;

	outcome_reset(out);
	done = outcome_act(out, action, 0, &codes,
	                   action == ACTION_REJECT ? "ledger unavailable"
	                                           : "ledger unavailable; try again later",
	                   0);

	log_start(out, subj, 1);
	log_append(out, " action=%s", action_word(done));
	text_format(reason, sizeof(reason), "ledger unavailable: %s",
	            errmsg != NULL ? errmsg : "unknown error");
	log_append_value(out, "reason", reason);
}

/* Codes of the refusals that come from the ledger's verdict. */
static const struct refusal codes_duplicate = {"5.7.0", "4.7.0"};
static const struct refusal codes_policy = {"5.7.1", "4.7.1"};

/* first_queue_id - the queue id of the handoff that counts, or "unknown" */
static const char *first_queue_id(const struct ledger_handoff_result *res)
{
	return res->first_queue_id[0] != '\0' ? res->first_queue_id : "unknown";
}

/* decide_duplicate - apply DuplicateAction */
static enum conf_action decide_duplicate(const struct milter_rules *rules,
                                         const struct milter_subject *subj,
                                         const struct ledger_handoff_result *res,
                                         struct milter_outcome *out)
{
	char text[MILTER_REPLY_MAX];
	enum conf_action done;

	text_format(text, sizeof(text),
	            "duplicate of mailing %s seq %" PRIu64 " first accepted as queue id %s",
	            subj->mailing, subj->seq, first_queue_id(res));
	done = outcome_act(out, rules->duplicate_action, 0, &codes_duplicate, text,
	                   rules->strip_token);
	if (done == ACTION_TAG) {
		text_format(out->tag, sizeof(out->tag), "mailing=%s seq=%" PRIu64 " first=%s",
		            subj->mailing, subj->seq, first_queue_id(res));
		reply_clean(out->tag);
	}
	return done;
}

/* decide_conflict - apply ConflictAction, which has no tag */
static enum conf_action decide_conflict(const struct milter_rules *rules,
                                        const struct milter_subject *subj,
                                        const struct ledger_handoff_result *res,
                                        struct milter_outcome *out)
{
	enum conf_action action = rules->conflict_action;
	char text[MILTER_REPLY_MAX];

	if (action == ACTION_TAG)
		action = ACTION_TEMPFAIL;
	text_format(text, sizeof(text), "mailing %s seq %" PRIu64 " conflicts with queue id %s: %s",
	            subj->mailing, subj->seq, first_queue_id(res),
	            res->detail != NULL ? res->detail : "content differs");
	return outcome_act(out, action, 0, &codes_duplicate, text, rules->strip_token);
}

/* decide_refusal - the verdicts that always refuse: confirming, paused, cancelled, closed */
static enum conf_action decide_refusal(const struct milter_subject *subj,
                                       const struct ledger_handoff_result *res,
                                       struct milter_outcome *out)
{
	char text[MILTER_REPLY_MAX];
	enum conf_action action = ACTION_TEMPFAIL;

	switch (res->decision) {
	case HANDOFF_CONFIRMING:
		text_format(text, sizeof(text),
		            "earlier attempt of mailing %s seq %" PRIu64
		            " (queue id %s) is being confirmed; try again later",
		            subj->mailing, subj->seq, first_queue_id(res));
		break;
	case HANDOFF_PAUSED:
		text_format(text, sizeof(text), "mailing %s is paused; try again later",
		            subj->mailing);
		break;
	case HANDOFF_CANCELLED:
		action = ACTION_REJECT;
		text_format(text, sizeof(text), "mailing %s is cancelled", subj->mailing);
		break;
	case HANDOFF_CLOSED:
		action = ACTION_REJECT;
		text_format(text, sizeof(text), "mailing %s seq %" PRIu64 " is closed: %s",
		            subj->mailing, subj->seq,
		            res->detail != NULL ? res->detail
		                                : "the recipient was skipped or failed");
		break;
	default:
		text_format(text, sizeof(text),
		            "ledger returned an unknown decision; try again later");
		break;
	}
	return outcome_act(out, action, 0, &codes_policy, text, 0);
}

/* handoff_reason - the reason= value of the log line */
static const char *handoff_reason(const struct ledger_handoff_result *res)
{
	switch (res->decision) {
	case HANDOFF_ACCEPT:
		/* An accepted seq whose commit never happened is handed off again. */
		return res->prior == RCPT_PENDING ? "new" : "retry";
	case HANDOFF_DUPLICATE:
		return "duplicate";
	case HANDOFF_CONFLICT:
		return "conflict";
	case HANDOFF_CONFIRMING:
		return "confirming";
	case HANDOFF_PAUSED:
		return "paused";
	case HANDOFF_CANCELLED:
		return "cancelled";
	case HANDOFF_CLOSED:
		return "closed";
	}
	return "unknown";
}

void milter_decide_handoff(const struct milter_rules *rules, const struct milter_subject *subj,
                           const struct ledger_handoff_result *res, struct milter_outcome *out)
{
	struct milter_subject named = *subj;
	enum conf_action done;

	if (named.mailing == NULL)
		named.mailing = "";
	outcome_reset(out);

	switch (res->decision) {
	case HANDOFF_ACCEPT:
		out->strip = rules->strip_token;
		done = ACTION_ACCEPT;
		break;
	case HANDOFF_DUPLICATE:
		done = decide_duplicate(rules, &named, res, out);
		break;
	case HANDOFF_CONFLICT:
		done = decide_conflict(rules, &named, res, out);
		break;
	default:
		done = decide_refusal(&named, res, out);
		break;
	}

	log_start(out, &named, 1);
	log_append(out, " action=%s reason=%s", action_word(done), handoff_reason(res));
	if (res->decision != HANDOFF_ACCEPT && res->first_queue_id[0] != '\0')
		log_append_value(out, "first", res->first_queue_id);
	if (res->decision != HANDOFF_ACCEPT && res->detail != NULL)
		log_append_value(out, "detail", res->detail);
}
