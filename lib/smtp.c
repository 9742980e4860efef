/*
 * smtp - a blocking SMTP client for handing messages to the local MTA.
 *
 * smtp_send() sends one message to one recipient. On the first call, and
 * after any failure that closed the connection, it connects to the
 * configured target with a timeout, reads the greeting and sends EHLO
 * (HELO when the server rejects EHLO with 5xx), noting PIPELINING,
 * 8BITMIME and SIZE. Each message after the first on a connection starts
 * with RSET, so a half-finished earlier transaction cannot leak into it.
 * With PIPELINING, RSET, MAIL, RCPT and DATA go out in one write and the
 * replies are read in order; without it each command waits for its reply.
 * MAIL carries BODY=8BITMIME when the server offers it and the message
 * has 8-bit bytes, and SIZE= when the server offers SIZE. A message
 * larger than the server's SIZE limit is a permanent failure that is
 * never sent.
 *
 * Results:
 * - SMTP_SENT: the server answered 250 to the final "."; queue_id holds
 *   the id of "queued as ID" when the text has one.
 * - SMTP_TEMPFAIL: a 4xx reply, a timeout, a lost connection or a reply
 *   that is not SMTP. Everything except a plain 4xx to one command also
 *   closes the connection, and the next call opens a new one. A 421
 *   always closes it. data_sent tells whether the final "." went out, in
 *   which case the server may have taken the message (the RFC 1047
 *   window); the caller's retry is then a new transaction.
 * - SMTP_PERMFAIL: a 5xx reply to MAIL, RCPT, DATA or the final ".", or
 *   a message over the SIZE limit.
 *
 * Every wait is bounded by poll() with the timeouts of smtp_options. No
 * function here logs or exits; failures are described in res->error.
 * A client is used by one thread at a time.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "smtp.h"

#define SMTP_EXT_PIPELINING 0x1
#define SMTP_EXT_8BITMIME   0x2
#define SMTP_EXT_SIZE       0x4

struct smtp_client {
	char *target;
	char *helo_name;
	int connect_timeout;
	int command_timeout;
	int data_timeout;

	int fd;              /* -1 when not connected */
	int extensions;      /* SMTP_EXT_* of the current connection */
	uint64_t size_limit; /* SIZE argument, 0 when none */
	int used;            /* a transaction ran on this connection: RSET first */
	struct buf in;       /* bytes read and not yet parsed */
	size_t in_pos;
};

/* Pure functions. */

/* smtp_line_end - offset just past the line end in data, or 0 when none. */
static size_t smtp_line_end(const char *data, size_t len, size_t *text_end)
{
	const char *lf = len > 0 ? memchr(data, '\n', len) : NULL;

	if (lf == NULL)
		return 0;
	*text_end = (size_t)(lf - data);
	if (*text_end > 0 && data[*text_end - 1] == '\r')
		(*text_end)--;
	return (size_t)(lf - data) + 1;
}

/* smtp_text_append - add one line of reply text, cutting at the buffer size. */
static void smtp_text_append(struct smtp_reply *reply, const char *text, size_t len)
{
	size_t used = strlen(reply->text);
	size_t room;

	if (used > 0 && used + 1 < sizeof(reply->text))
		reply->text[used++] = '\n';
	room = sizeof(reply->text) - 1 - used;
	if (len > room)
		len = room;
	memcpy(reply->text + used, text, len);
	reply->text[used + len] = '\0';
}

size_t smtp_enhanced_parse(const char *text, int class_digit, char *out, size_t outlen)
{
	const char *p = text;
	int part;
	size_t n;

	if (*p != class_digit || p[1] != '.')
		return 0;
	p += 2;

	/* subject "." detail, each 1 to 3 digits (RFC 3463). */
	for (part = 0; part < 2; part++) {
		for (n = 0; n < 3 && p[n] >= '0' && p[n] <= '9'; n++)
			;
		if (n == 0 || (p[n] >= '0' && p[n] <= '9'))
			return 0;
		p += n;
		if (part == 0) {
			if (*p != '.')
				return 0;
			p++;
		}
	}
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return 0;

	n = (size_t)(p - text);
	if (n >= outlen)
		return 0;
	memcpy(out, text, n);
	out[n] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	return (size_t)(p - text);
}

/* smtp_reply_line - add one "DDD-text" line to reply; -1 when malformed. */
static int smtp_reply_line(const char *line, size_t len, int first, struct smtp_reply *reply,
                           int *last)
{
	char text[SMTP_REPLY_TEXT_MAX];
	char enhanced[SMTP_ENHANCED_MAX + 1];
	size_t skip;
	int code;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (!first && code != reply->code)
		return -1;
	reply->code = code;
	*last = (len == 3 || line[3] == ' ');

	/* Keep the text as a C string; the enhanced code is kept once. */
	len = len > 4 ? len - 4 : 0;
	if (len >= sizeof(text))
		len = sizeof(text) - 1;
	memcpy(text, line + 4, len);
	text[len] = '\0';
	skip = smtp_enhanced_parse(text, line[0], enhanced, sizeof(enhanced));
	if (skip > 0 && first)
		memcpy(reply->enhanced, enhanced, sizeof(enhanced));
	if (skip > 0 && strcmp(enhanced, reply->enhanced) != 0)
		skip = 0;
	smtp_text_append(reply, text + skip, strlen(text + skip));
	return 0;
}

int smtp_reply_parse(const char *data, size_t len, struct smtp_reply *reply, size_t *consumed)
{
	size_t pos = 0;
	size_t next, text_end;
	int last = 0;

	memset(reply, 0, sizeof(*reply));
	while (!last) {
		next = smtp_line_end(data + pos, len - pos, &text_end);
		if (next == 0)
			return len > SMTP_REPLY_MAX ? -1 : 0;
		if (memchr(data + pos, '\0', text_end) != NULL)
			return -1;
		if (smtp_reply_line(data + pos, text_end, pos == 0, reply, &last) < 0)
			return -1;
		pos += next;
		if (pos > SMTP_REPLY_MAX)
			return -1;
	}
	*consumed = pos;
	return 1;
}

int smtp_queued_as(const char *text, char *out, size_t outlen)
{
	static const char marker[] = "queued as ";
	const char *p;
	size_t n;

	for (p = text; *p; p++)
		if (strncasecmp(p, marker, sizeof(marker) - 1) == 0)
			break;
	if (*p == '\0')
		return -1;
	p += sizeof(marker) - 1;

	/* Postfix queue ids, short (hex) and long, are letters and digits. */
	for (n = 0; (p[n] >= '0' && p[n] <= '9') || (p[n] >= 'A' && p[n] <= 'Z') ||
	            (p[n] >= 'a' && p[n] <= 'z');
	     n++)
		;
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

char *smtp_reply_format(const struct smtp_reply *reply, char *out, size_t outlen)
{
	char *p;

	snprintf(out, outlen, "%d%s%s %s", reply->code, reply->enhanced[0] ? " " : "",
	         reply->enhanced, reply->text);
	for (p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return out;
}

void smtp_data_encode(struct buf *out, const char *msg, size_t len)
{
	size_t i = 0;
	int line_start = 1;

	while (i < len) {
		if (line_start && msg[i] == '.')
			buf_putc(out, '.');
		line_start = 0;

		if (msg[i] == '\r' || msg[i] == '\n') {
			/* CRLF, bare CR and bare LF all end one line. */
			if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
				i++;
			buf_append(out, "\r\n", 2);
			line_start = 1;
		} else {
			buf_putc(out, msg[i]);
		}
		i++;
	}
	if (!line_start)
		buf_append(out, "\r\n", 2);
	buf_append(out, ".\r\n", 3);
}

int smtp_has_8bit(const char *msg, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)msg[i] > 127)
			return 1;
	return 0;
}

int smtp_retry_delay(int base, int attempt)
{
	long delay = base > 0 ? base : 1;
	int i;

	for (i = 1; i < attempt && delay < SMTP_RETRY_DELAY_MAX; i++)
		delay *= 2;
	return delay > SMTP_RETRY_DELAY_MAX ? SMTP_RETRY_DELAY_MAX : (int)delay;
}

/* Connection handling. */

/* smtp_now_ms - a monotonic clock in milliseconds. */
static int64_t smtp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* smtp_wait - poll fd for events until deadline; 0, or -1 with errno. */
static int smtp_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int64_t left;
	int n;

	for (;;) {
		left = deadline - smtp_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = fd;
		pfd.events = events;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* smtp_fail - fill res with a failure and return its status. */
static enum smtp_status smtp_fail(struct smtp_result *res, enum smtp_status status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

static enum smtp_status smtp_fail(struct smtp_result *res, enum smtp_status status, const char *fmt,
                                  ...)
{
	va_list ap;

	res->status = status;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
	return status;
}

/* smtp_disconnect - close the connection without a word. */
static void smtp_disconnect(struct smtp_client *client)
{
	if (client->fd >= 0)
		close(client->fd);
	client->fd = -1;
	client->used = 0;
	client->extensions = 0;
	client->size_limit = 0;
	buf_reset(&client->in);
	client->in_pos = 0;
}

struct smtp_client *smtp_client_new(const struct smtp_options *opts)
{
	struct smtp_client *client = xcalloc(1, sizeof(*client));

	client->target = xstrdup(opts->target);
	client->helo_name = xstrdup(opts->helo_name);
	client->connect_timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 30;
	client->command_timeout = opts->command_timeout > 0 ? opts->command_timeout : 300;
	client->data_timeout = opts->data_timeout > 0 ? opts->data_timeout : 600;
	client->fd = -1;
	return client;
}

/* smtp_connect_fd - a non-blocking connect to addr, waiting until deadline. */
static int smtp_connect_fd(int family, const struct sockaddr *addr, socklen_t addrlen,
                           int64_t deadline, char *err, size_t errlen)
{
	int fd, soerr = 0;
	socklen_t soerrlen = sizeof(soerr);

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, addr, addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (smtp_wait(fd, POLLOUT, deadline) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerrlen) < 0 || soerr != 0) {
		snprintf(err, errlen, "%s", strerror(soerr ? soerr : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* smtp_connect_unix - connect to the socket path of "unix:/path". */
static int smtp_connect_unix(const char *path, int64_t deadline, char *err, size_t errlen)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path is too long");
		return -1;
	}
	strcpy(sun.sun_path, path);
	return smtp_connect_fd(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), deadline, err,
	                       errlen);
}

/* smtp_connect_inet - connect to "HOST:PORT" ("[v6addr]:PORT" too). */
static int smtp_connect_inet(const char *spec, int64_t deadline, char *err, size_t errlen)
{
	struct addrinfo hints, *list, *ai;
	const char *colon = strrchr(spec, ':');
	char *host;
	int fd = -1, gai;

	if (colon == NULL || colon == spec || colon[1] == '\0') {
		snprintf(err, errlen, "expected inet:HOST:PORT");
		return -1;
	}
	host = xstrndup(spec, (size_t)(colon - spec));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	gai = getaddrinfo(host, colon + 1, &hints, &list);
	free(host);
	if (gai != 0) {
		snprintf(err, errlen, "%s", gai_strerror(gai));
		return -1;
	}
	for (ai = list; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = smtp_connect_fd(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, err,
		                     errlen);
	freeaddrinfo(list);
	return fd;
}

/* smtp_write_all - write len bytes before deadline; 0, or -1 with errno. */
static int smtp_write_all(struct smtp_client *client, const char *data, size_t len,
                          int64_t deadline)
{
	ssize_t n;

	while (len > 0) {
		n = send(client->fd, data, len, MSG_NOSIGNAL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (smtp_wait(client->fd, POLLOUT, deadline) < 0)
			return -1;
	}
	return 0;
}

/*
 * smtp_read_reply - read the next reply within timeout seconds. Returns
 * 0, or -1 with err set; on -1 the connection is no longer usable.
 */
static int smtp_read_reply(struct smtp_client *client, int timeout, struct smtp_reply *reply,
                           char *err, size_t errlen)
{
	int64_t deadline = smtp_now_ms() + (int64_t)timeout * 1000;
	char chunk[4096];
	size_t consumed;
	ssize_t n;
	int rc;

	for (;;) {
		if (client->in.data == NULL)
			rc = 0;
		else
			rc = smtp_reply_parse(client->in.data + client->in_pos,
			                      client->in.len - client->in_pos, reply, &consumed);
		if (rc > 0) {
			client->in_pos += consumed;
			return 0;
		}
		if (rc < 0) {
			snprintf(err, errlen, "malformed reply from the server");
			return -1;
		}

		/* Drop what was parsed before reading on. */
		if (client->in_pos > 0) {
			memmove(client->in.data, client->in.data + client->in_pos,
			        client->in.len - client->in_pos);
			client->in.len -= client->in_pos;
			client->in_pos = 0;
		}
		n = recv(client->fd, chunk, sizeof(chunk), 0);
		if (n > 0) {
			buf_append(&client->in, chunk, (size_t)n);
			continue;
		}
		if (n == 0) {
			snprintf(err, errlen, "connection closed by the server");
			return -1;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(err, errlen, "read failed: %s", strerror(errno));
			return -1;
		}
		if (smtp_wait(client->fd, POLLIN, deadline) < 0) {
			snprintf(err, errlen, "timed out after %d s waiting for a reply", timeout);
			return -1;
		}
	}
}

/* smtp_command - send one command line and read its reply; 0 or -1. */
static int smtp_command(struct smtp_client *client, const char *line, struct smtp_reply *reply,
                        char *err, size_t errlen)
{
	int64_t deadline = smtp_now_ms() + (int64_t)client->command_timeout * 1000;

	if (smtp_write_all(client, line, strlen(line), deadline) < 0) {
		snprintf(err, errlen, "write failed: %s", strerror(errno));
		return -1;
	}
	return smtp_read_reply(client, client->command_timeout, reply, err, errlen);
}

/* smtp_learn_extensions - note what an EHLO reply offers. */
static void smtp_learn_extensions(struct smtp_client *client, const char *text)
{
	const char *line = strchr(text, '\n');

	/* The first line is the greeting; each later line is a keyword. */
	while (line != NULL) {
		line++;
		if (strncasecmp(line, "PIPELINING", 10) == 0 && (line[10] == '\n' || !line[10]))
			client->extensions |= SMTP_EXT_PIPELINING;
		else if (strncasecmp(line, "8BITMIME", 8) == 0 && (line[8] == '\n' || !line[8]))
			client->extensions |= SMTP_EXT_8BITMIME;
		else if (strncasecmp(line, "SIZE", 4) == 0 &&
		         (line[4] == ' ' || line[4] == '\n' || !line[4])) {
			client->extensions |= SMTP_EXT_SIZE;
			client->size_limit = strtoull(line + 4, NULL, 10);
		}
		line = strchr(line, '\n');
	}
}

/* smtp_open - connect, read the greeting and send EHLO or HELO. */
static enum smtp_status smtp_open(struct smtp_client *client, struct smtp_result *res)
{
	int64_t deadline = smtp_now_ms() + (int64_t)client->connect_timeout * 1000;
	char err[200], line[SMTP_REPLY_TEXT_MAX + 32];
	struct smtp_reply *reply = &res->reply;

	if (strncmp(client->target, "unix:", 5) == 0)
		client->fd = smtp_connect_unix(client->target + 5, deadline, err, sizeof(err));
	else if (strncmp(client->target, "inet:", 5) == 0)
		client->fd = smtp_connect_inet(client->target + 5, deadline, err, sizeof(err));
	else
		return smtp_fail(res, SMTP_TEMPFAIL, "unsupported SMTP target %s", client->target);
	if (client->fd < 0)
		return smtp_fail(res, SMTP_TEMPFAIL, "connect to %s failed: %s", client->target,
		                 err);

	if (smtp_read_reply(client, client->connect_timeout, reply, err, sizeof(err)) < 0)
		goto lost;
	if (reply->code != 220)
		goto refused;

	snprintf(line, sizeof(line), "EHLO %s\r\n", client->helo_name);
	if (smtp_command(client, line, reply, err, sizeof(err)) < 0)
		goto lost;
	if (reply->code >= 500) {
		snprintf(line, sizeof(line), "HELO %s\r\n", client->helo_name);
		if (smtp_command(client, line, reply, err, sizeof(err)) < 0)
			goto lost;
	} else if (reply->code == 250) {
		smtp_learn_extensions(client, reply->text);
	}
	if (reply->code != 250)
		goto refused;
	return SMTP_SENT;

lost:
	smtp_disconnect(client);
	memset(reply, 0, sizeof(*reply));
	return smtp_fail(res, SMTP_TEMPFAIL, "%s: %s", client->target, err);

refused:
	/* Whatever the code, the session is unusable: the message can wait. */
	smtp_disconnect(client);
	return smtp_fail(res, SMTP_TEMPFAIL, "%s refused the session: %s", client->target,
	                 smtp_reply_format(reply, line, sizeof(line)));
}

void smtp_client_free(struct smtp_client *client)
{
	struct smtp_reply reply;
	char err[200];

	if (client == NULL)
		return;
	if (client->fd >= 0) {
		/* Best effort: the server's reply changes nothing. */
		client->command_timeout = 5;
		(void)smtp_command(client, "QUIT\r\n", &reply, err, sizeof(err));
		smtp_disconnect(client);
	}
	free(client->target);
	free(client->helo_name);
	buf_free(&client->in);
	free(client);
}

/* smtp_reply_fail - the result a failed reply stands for; 421 also closes. */
static enum smtp_status smtp_reply_fail(struct smtp_client *client, struct smtp_result *res,
                                        const struct smtp_reply *reply, const char *command)
{
	char text[SMTP_REPLY_TEXT_MAX + 32];
	enum smtp_status status;

	res->reply = *reply;
	if (reply->code == 421 || reply->code < 400)
		smtp_disconnect(client);
	status = reply->code >= 500 ? SMTP_PERMFAIL : SMTP_TEMPFAIL;
	return smtp_fail(res, status, "%s: %s", command,
	                 smtp_reply_format(reply, text, sizeof(text)));
}

/* The commands of one transaction before the message content. */
struct smtp_step {
	char *line;
	const char *name; /* for messages: "MAIL", "RCPT", ... */
	int expect;       /* 250 or 354; RCPT also takes 251 */
};

/* smtp_steps_build - the command lines of the envelope; returns their count. */
static int smtp_steps_build(struct smtp_client *client, const char *from, const char *rcpt,
                            size_t len, int eightbit, struct smtp_step *steps)
{
	char size_arg[40] = "";
	int n = 0;

	if (client->used) {
		steps[n].line = xstrdup("RSET\r\n");
		steps[n].name = "RSET";
		steps[n++].expect = 250;
	}
	if (client->extensions & SMTP_EXT_SIZE)
		snprintf(size_arg, sizeof(size_arg), " SIZE=%zu", len);
	steps[n].line = xasprintf(
	        "MAIL FROM:<%s>%s%s\r\n", from,
	        eightbit && (client->extensions & SMTP_EXT_8BITMIME) ? " BODY=8BITMIME" : "",
	        size_arg);
	steps[n].name = "MAIL FROM";
	steps[n++].expect = 250;
	steps[n].line = xasprintf("RCPT TO:<%s>\r\n", rcpt);
	steps[n].name = "RCPT TO";
	steps[n++].expect = 250;
	steps[n].line = xstrdup("DATA\r\n");
	steps[n].name = "DATA";
	steps[n++].expect = 354;
	return n;
}

/* smtp_step_ok - whether reply is the one step expects. */
static int smtp_step_ok(const struct smtp_step *step, const struct smtp_reply *reply)
{
	return reply->code == step->expect || (step->expect == 250 && reply->code == 251);
}

/*
 * smtp_envelope - send the envelope commands and DATA, read the replies.
 * SMTP_SENT means the server waits for the content.
 */
static enum smtp_status smtp_envelope(struct smtp_client *client, struct smtp_step *steps, int n,
                                      struct smtp_result *res)
{
	int64_t deadline = smtp_now_ms() + (int64_t)client->command_timeout * 1000;
	struct smtp_reply reply;
	struct buf out = BUF_INIT;
	int pipelined = (client->extensions & SMTP_EXT_PIPELINING) != 0;
	int failed = -1, i, rc;
	char err[200];

	client->used = 1;
	if (pipelined) {
		for (i = 0; i < n; i++)
			buf_puts(&out, steps[i].line);
		rc = smtp_write_all(client, out.data, out.len, deadline);
		buf_free(&out);
		if (rc < 0) {
			snprintf(err, sizeof(err), "write failed: %s", strerror(errno));
			goto lost;
		}
	}

	/* Read every reply in order; without PIPELINING stop at the first failure. */
	for (i = 0; i < n; i++) {
		if (!pipelined)
			rc = smtp_command(client, steps[i].line, &reply, err, sizeof(err));
		else
			rc = smtp_read_reply(client, client->command_timeout, &reply, err,
			                     sizeof(err));
		if (rc < 0)
			goto lost;
		if (reply.code == 421 || (reply.code < 400 && !smtp_step_ok(&steps[i], &reply)))
			return smtp_reply_fail(client, res, &reply, steps[i].name);
		if (smtp_step_ok(&steps[i], &reply))
			continue;
		if (failed < 0) {
			failed = i;
			res->reply = reply;
		}
		if (!pipelined)
			break;
	}
	if (failed < 0)
		return SMTP_SENT;

	/* A server that took DATA after a failed RCPT gets an empty message. */
	if (pipelined && reply.code == 354) {
		if (smtp_command(client, ".\r\n", &reply, err, sizeof(err)) < 0)
			smtp_disconnect(client);
	}
	reply = res->reply;
	if (strcmp(steps[failed].name, "RSET") == 0)
		smtp_disconnect(client);
	return smtp_reply_fail(client, res, &reply, steps[failed].name);

lost:
	smtp_disconnect(client);
	return smtp_fail(res, SMTP_TEMPFAIL, "%s: %s", client->target, err);
}

/* smtp_content - send the message and read the reply to the final ".". */
static enum smtp_status smtp_content(struct smtp_client *client, const char *msg, size_t len,
                                     struct smtp_result *res)
{
	int64_t deadline = smtp_now_ms() + (int64_t)client->data_timeout * 1000;
	struct smtp_reply reply;
	struct buf data = BUF_INIT;
	char err[200];
	int rc;

	smtp_data_encode(&data, msg, len);
	rc = smtp_write_all(client, data.data, data.len, deadline);
	buf_free(&data);
	if (rc < 0) {
		smtp_disconnect(client);
		return smtp_fail(res, SMTP_TEMPFAIL,
		                 "%s: write failed while sending the message: %s", client->target,
		                 strerror(errno));
	}
	res->data_sent = 1;

	if (smtp_read_reply(client, client->data_timeout, &reply, err, sizeof(err)) < 0) {
		smtp_disconnect(client);
		return smtp_fail(res, SMTP_TEMPFAIL,
		                 "%s: %s after the final \".\" (the server may have the message)",
		                 client->target, err);
	}
	if (reply.code < 200 || reply.code >= 300)
		return smtp_reply_fail(client, res, &reply, "end of data");

	res->reply = reply;
	res->status = SMTP_SENT;
	if (smtp_queued_as(reply.text, res->queue_id, sizeof(res->queue_id)) < 0)
		res->queue_id[0] = '\0';
	return SMTP_SENT;
}

/* smtp_address_ok - no bytes that would break the command line. */
static int smtp_address_ok(const char *addr)
{
	return strpbrk(addr, "\r\n<>") == NULL && strlen(addr) < 512;
}

enum smtp_status smtp_send(struct smtp_client *client, const char *from, const char *rcpt,
                           const char *msg, size_t len, struct smtp_result *res)
{
	struct smtp_step steps[4];
	enum smtp_status status;
	int n, i;

	memset(res, 0, sizeof(*res));
	if (!smtp_address_ok(from) || !smtp_address_ok(rcpt))
		return smtp_fail(res, SMTP_PERMFAIL, "invalid envelope address");

	if (client->fd < 0) {
		if (smtp_open(client, res) != SMTP_SENT)
			return res->status;
		memset(&res->reply, 0, sizeof(res->reply));
	}
	if (client->size_limit > 0 && len > client->size_limit)
		return smtp_fail(res, SMTP_PERMFAIL,
		                 "message of %zu bytes exceeds the server's SIZE limit of %llu",
		                 len, (unsigned long long)client->size_limit);

	n = smtp_steps_build(client, from, rcpt, len, smtp_has_8bit(msg, len), steps);
	status = smtp_envelope(client, steps, n, res);
	for (i = 0; i < n; i++)
		free(steps[i].line);
	if (status != SMTP_SENT)
		return status;
	return smtp_content(client, msg, len, res);
}
