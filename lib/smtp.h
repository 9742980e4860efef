/*
 * smtp - a blocking SMTP client that hands one message at a time to the
 * local MTA, and the pure functions it is built from.
 *
 * The client connects to "inet:HOST:PORT" or "unix:/path" and nowhere
 * else, greets with EHLO (HELO when EHLO is refused), and sends each
 * message to exactly one recipient. See smtp.c for the protocol details
 * and for what each result means.
 */
#ifndef MAILONCE_SMTP_H
#define MAILONCE_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

#define SMTP_ENHANCED_MAX   15    /* "5.999.999" fits with room to spare */
#define SMTP_REPLY_TEXT_MAX 1024  /* longer reply text is cut */
#define SMTP_REPLY_MAX      65536 /* a longer reply is malformed */
#define SMTP_QUEUE_ID_MAX   32

/* One server reply, possibly of several lines. */
struct smtp_reply {
	int code;                             /* 200..599 */
	char enhanced[SMTP_ENHANCED_MAX + 1]; /* "2.0.0", or "" when absent */
	char text[SMTP_REPLY_TEXT_MAX];       /* lines joined by "\n", codes removed */
};

/*
 * smtp_reply_parse - parse one complete reply at the start of data.
 * Returns 1 and sets *consumed when a whole reply is there, 0 when more
 * input is needed, -1 when the input is not an SMTP reply.
 */
int smtp_reply_parse(const char *data, size_t len, struct smtp_reply *reply, size_t *consumed);

/*
 * smtp_enhanced_parse - the RFC 3463 status code at the start of text
 * whose class must be class_digit. Returns the number of characters it
 * takes up (trailing blank included), or 0 when there is none.
 */
size_t smtp_enhanced_parse(const char *text, int class_digit, char *out, size_t outlen);

/* smtp_queued_as - copy the id of "queued as ID" in text. Returns 0 or -1. */
int smtp_queued_as(const char *text, char *out, size_t outlen);

/* smtp_reply_format - "CODE ENHANCED TEXT" on one line, for logs and the ledger. */
char *smtp_reply_format(const struct smtp_reply *reply, char *out, size_t outlen);

/*
 * smtp_data_encode - append msg to out as the content of a DATA command.
 * Every line end becomes CRLF, a bare CR or LF included. A line that
 * starts with "." gets a second one. A last line without an end gets
 * CRLF, and the closing ".\r\n" follows.
 */
void smtp_data_encode(struct buf *out, const char *msg, size_t len);

/* smtp_has_8bit - 1 when msg has a byte above 127. */
int smtp_has_8bit(const char *msg, size_t len);

/*
 * smtp_retry_delay - seconds to wait before retry number attempt (1 for
 * the first retry): base doubled for each earlier retry, at most
 * SMTP_RETRY_DELAY_MAX.
 */
#define SMTP_RETRY_DELAY_MAX 3600
int smtp_retry_delay(int base, int attempt);

/* The client. */

struct smtp_options {
	const char *target;    /* inet:HOST:PORT or unix:/path */
	const char *helo_name; /* EHLO argument */
	int connect_timeout;   /* seconds; also the greeting */
	int command_timeout;   /* seconds per command reply */
	int data_timeout;      /* seconds for the reply to the final "." */
};

enum smtp_status {
	SMTP_SENT,     /* 250 to the final "." */
	SMTP_TEMPFAIL, /* 4xx, lost connection, timeout: try again later */
	SMTP_PERMFAIL, /* 5xx or a message the server cannot take */
};

struct smtp_result {
	enum smtp_status status;
	struct smtp_reply reply;              /* the deciding reply; code 0 for a local failure */
	char error[256];                      /* the failure as one line, "" after SMTP_SENT */
	char queue_id[SMTP_QUEUE_ID_MAX + 1]; /* from "queued as", may be "" */
	int data_sent; /* the final "." went out: the MTA may have the message */
};

struct smtp_client;

/* smtp_client_new - a client that connects on first use; options are copied. */
struct smtp_client *smtp_client_new(const struct smtp_options *opts);

/* smtp_client_free - send QUIT when connected, close and free. */
void smtp_client_free(struct smtp_client *client);

/*
 * smtp_send - hand msg (len bytes, any line ends) to the server for one
 * recipient, connecting first when needed. Fills *res and returns its
 * status.
 */
enum smtp_status smtp_send(struct smtp_client *client, const char *from, const char *rcpt,
                           const char *msg, size_t len, struct smtp_result *res);

#endif
