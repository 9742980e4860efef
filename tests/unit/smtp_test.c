/*
 * smtp_test - the SMTP client: reply parsing, queued-as extraction, DATA
 * encoding, the retry schedule, and whole sessions against a small
 * scripted server that runs in a thread on 127.0.0.1.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "smtp.h"

/* Reply parsing. */

static void reply_single_line(void **state)
{
	const char *in = "250 2.0.0 Ok: queued as 4Q7Xb12p3fz1Bk\r\n";
	struct smtp_reply r;
	size_t used = 0;

	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, &used), 1);
	assert_int_equal(used, strlen(in));
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enhanced, "2.0.0");
	assert_string_equal(r.text, "Ok: queued as 4Q7Xb12p3fz1Bk");
}

static void reply_multi_line(void **state)
{
	const char *in = "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
	                 "250 8BITMIME\r\n220 next\r\n";
	struct smtp_reply r;
	size_t used = 0;

	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, &used), 1);
	assert_int_equal(used, strlen(in) - strlen("220 next\r\n"));
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "mx.example.org\nPIPELINING\nSIZE 10240000\n8BITMIME");
}

static void reply_enhanced_every_line(void **state)
{
	const char *in = "550-5.1.1 first line\r\n550 5.1.1 second line\r\n";
	struct smtp_reply r;
	size_t used = 0;

	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, &used), 1);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "first line\nsecond line");
}

static void reply_incomplete(void **state)
{
	struct smtp_reply r;
	size_t used = 0;

	assert_int_equal(smtp_reply_parse("250-first\r\n250 sec", 18, &r, &used), 0);
	assert_int_equal(smtp_reply_parse("25", 2, &r, &used), 0);
	assert_int_equal(smtp_reply_parse("", 0, &r, &used), 0);
}

static void reply_bare_lf_and_code_only(void **state)
{
	struct smtp_reply r;
	size_t used = 0;

	assert_int_equal(smtp_reply_parse("354\n", 4, &r, &used), 1);
	assert_int_equal(used, 4);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.text, "");
}

static void reply_malformed(void **state)
{
	static const char *const bad[] = {
	        "hello\r\n",
	        "25x ok\r\n",
	        "250_ok\r\n",
	        "250-one\r\n251 two\r\n",
	        "650 out of range\r\n",
	        "150 out of range\r\n",
	        "\r\n",
	};
	struct smtp_reply r;
	size_t used, i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		used = 0;
		assert_int_equal(smtp_reply_parse(bad[i], strlen(bad[i]), &r, &used), -1);
	}
}

static void reply_enhanced_class_mismatch(void **state)
{
	const char *in = "451 5.0.0 wrong class\r\n";
	struct smtp_reply r;
	size_t used;

	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, &used), 1);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "5.0.0 wrong class");
}

static void enhanced_parse_cases(void **state)
{
	char out[16];

	assert_int_equal(smtp_enhanced_parse("4.7.1 try later", '4', out, sizeof(out)), 6);
	assert_string_equal(out, "4.7.1");
	assert_int_equal(smtp_enhanced_parse("2.123.999", '2', out, sizeof(out)), 9);
	assert_string_equal(out, "2.123.999");
	assert_int_equal(smtp_enhanced_parse("2.1234.0 x", '2', out, sizeof(out)), 0);
	assert_int_equal(smtp_enhanced_parse("2.0 x", '2', out, sizeof(out)), 0);
	assert_int_equal(smtp_enhanced_parse("2.0.0x", '2', out, sizeof(out)), 0);
	assert_int_equal(smtp_enhanced_parse("Ok", '2', out, sizeof(out)), 0);
}

static void reply_format_one_line(void **state)
{
	const char *in = "550-5.1.1 no such user\r\n550 5.1.1 really\r\n";
	struct smtp_reply r;
	char out[64];
	size_t used;

	assert_int_equal(smtp_reply_parse(in, strlen(in), &r, &used), 1);
	assert_string_equal(smtp_reply_format(&r, out, sizeof(out)),
	                    "550 5.1.1 no such user really");
}

/* Queued-as extraction. */

static void queued_as_postfix(void **state)
{
	char id[SMTP_QUEUE_ID_MAX + 1];

	assert_int_equal(smtp_queued_as("Ok: queued as 4Q7Xb12p3fz1Bk", id, sizeof(id)), 0);
	assert_string_equal(id, "4Q7Xb12p3fz1Bk");
	assert_int_equal(smtp_queued_as("Ok: queued as 3F2A1B0C9D", id, sizeof(id)), 0);
	assert_string_equal(id, "3F2A1B0C9D");
	assert_int_equal(smtp_queued_as("OK QUEUED AS ABC123 (id)", id, sizeof(id)), 0);
	assert_string_equal(id, "ABC123");
}

static void queued_as_absent_or_bad(void **state)
{
	char id[8];

	assert_int_equal(smtp_queued_as("Ok", id, sizeof(id)), -1);
	assert_int_equal(smtp_queued_as("Ok: queued as ", id, sizeof(id)), -1);
	assert_int_equal(smtp_queued_as("Ok: queued as <>", id, sizeof(id)), -1);
	/* Longer than the buffer: refused, never cut. */
	assert_int_equal(smtp_queued_as("Ok: queued as ABCDEFGHIJ", id, sizeof(id)), -1);
}

/* DATA encoding. */

static void encode_check(const char *in, const char *expected)
{
	struct buf out = BUF_INIT;

	smtp_data_encode(&out, in, strlen(in));
	assert_non_null(out.data);
	assert_string_equal(out.data, expected);
	buf_free(&out);
}

static void data_dot_stuffing(void **state)
{
	encode_check("a\r\n.b\r\n..c\r\n.\r\nd\r\n", "a\r\n..b\r\n...c\r\n..\r\nd\r\n.\r\n");
	encode_check(".first\r\n", "..first\r\n.\r\n");
	encode_check("no dot. in. middle\r\n", "no dot. in. middle\r\n.\r\n");
}

static void data_line_ends(void **state)
{
	encode_check("a\nb\rc\r\nd", "a\r\nb\r\nc\r\nd\r\n.\r\n");
	encode_check("a\n.b\n", "a\r\n..b\r\n.\r\n");
	encode_check("x\r\r\ny", "x\r\n\r\ny\r\n.\r\n");
	encode_check("", ".\r\n");
}

static void data_8bit_detection(void **state)
{
	assert_int_equal(smtp_has_8bit("plain ascii", 11), 0);
	assert_int_equal(smtp_has_8bit("caf\xc3\xa9", 5), 1);
}

/* Retry schedule. */

static void retry_delay_schedule(void **state)
{
	assert_int_equal(smtp_retry_delay(60, 1), 60);
	assert_int_equal(smtp_retry_delay(60, 2), 120);
	assert_int_equal(smtp_retry_delay(60, 3), 240);
	assert_int_equal(smtp_retry_delay(60, 6), 1920);
	assert_int_equal(smtp_retry_delay(60, 7), SMTP_RETRY_DELAY_MAX);
	assert_int_equal(smtp_retry_delay(60, 1000), SMTP_RETRY_DELAY_MAX);
	assert_int_equal(smtp_retry_delay(0, 1), 1);
	assert_int_equal(smtp_retry_delay(5000, 1), SMTP_RETRY_DELAY_MAX);
}

/*
 * A scripted SMTP server. Message numbers count MAIL commands over all
 * connections, from 0. A NULL reply means the usual success.
 */
#define FAKE_MAX 8

struct fake_server {
	int listen_fd;
	int port;
	char unix_path[108]; /* listen on this socket path instead of TCP */
	pthread_t thread;

	/* Script. */
	int pipelining;
	int reject_ehlo;
	int max_connections;
	const char *mail_replies[FAKE_MAX];
	const char *rcpt_replies[FAKE_MAX];
	const char *final_replies[FAKE_MAX]; /* "" closes without a reply */

	/* What the server saw. */
	int connections;
	int messages;
	int rsets;
	int helos;
	int pipelined;     /* MAIL arrived together with RCPT and DATA */
	int not_pipelined; /* MAIL arrived alone although PIPELINING was offered */
	char mail_lines[FAKE_MAX][256];
	char data[FAKE_MAX][512];
};

struct fake_conn {
	int fd;
	struct buf in;
};

/* fake_fill - read more input within ms; 0, or -1 on EOF, error or timeout. */
static int fake_fill(struct fake_conn *c, int ms)
{
	struct pollfd pfd = {c->fd, POLLIN, 0};
	char chunk[4096];
	ssize_t n;

	if (poll(&pfd, 1, ms) <= 0)
		return -1;
	n = recv(c->fd, chunk, sizeof(chunk), 0);
	if (n <= 0)
		return -1;
	buf_append(&c->in, chunk, (size_t)n);
	return 0;
}

/* fake_line - take one CRLF line off the input into out (without CRLF). */
static int fake_line(struct fake_conn *c, char *out, size_t outlen)
{
	char *end;
	size_t n;

	while (c->in.data == NULL || (end = strstr(c->in.data, "\r\n")) == NULL)
		if (fake_fill(c, 5000) < 0)
			return -1;
	n = (size_t)(end - c->in.data);
	snprintf(out, outlen, "%.*s", (int)n, c->in.data);
	memmove(c->in.data, end + 2, c->in.len - n - 2 + 1);
	c->in.len -= n + 2;
	return 0;
}

static void fake_say(struct fake_conn *c, const char *text)
{
	(void)send(c->fd, text, strlen(text), MSG_NOSIGNAL);
	(void)send(c->fd, "\r\n", 2, MSG_NOSIGNAL);
}

/* fake_data - read message content up to the "." line into out. */
static int fake_data(struct fake_conn *c, char *out, size_t outlen)
{
	char *end;
	size_t n, skip;

	for (;;) {
		if (c->in.data != NULL && strncmp(c->in.data, ".\r\n", 3) == 0) {
			n = 0;
			skip = 3;
			break;
		}
		end = c->in.data ? strstr(c->in.data, "\r\n.\r\n") : NULL;
		if (end != NULL) {
			n = (size_t)(end - c->in.data) + 2;
			skip = n + 3;
			break;
		}
		if (fake_fill(c, 5000) < 0)
			return -1;
	}
	snprintf(out, outlen, "%.*s", (int)n, c->in.data);
	memmove(c->in.data, c->in.data + skip, c->in.len - skip + 1);
	c->in.len -= skip;
	return 0;
}

/* fake_close - hang up after draining what the client still sends. */
static void fake_close(struct fake_conn *c)
{
	shutdown(c->fd, SHUT_WR);
	while (fake_fill(c, 1000) == 0)
		;
	close(c->fd);
}

/* fake_check_pipelining - after MAIL, were RCPT and DATA already sent? */
static void fake_check_pipelining(struct fake_server *s, struct fake_conn *c)
{
	int tries;

	for (tries = 0; tries < 4; tries++) {
		if (c->in.data != NULL && strstr(c->in.data, "DATA\r\n") != NULL) {
			s->pipelined++;
			return;
		}
		if (fake_fill(c, 250) < 0 && tries > 0)
			break;
	}
	s->not_pipelined++;
}

/* fake_reply - send reply, or the default; 1 when the session must end. */
static int fake_reply(struct fake_conn *c, const char *reply, const char *otherwise)
{
	if (reply == NULL) {
		fake_say(c, otherwise);
		return 0;
	}
	if (reply[0] != '\0')
		fake_say(c, reply);
	return reply[0] == '\0' || strncmp(reply, "421", 3) == 0;
}

/* fake_session - serve one connection following the script. */
static void fake_session(struct fake_server *s, struct fake_conn *c)
{
	char line[200], queued[64];
	int msg = -1;

	fake_say(c, "220 fake.test ESMTP");
	while (fake_line(c, line, sizeof(line)) == 0) {
		if (strncmp(line, "EHLO ", 5) == 0 && s->reject_ehlo) {
			fake_say(c, "502 5.5.2 Error: command not recognized");
		} else if (strncmp(line, "EHLO ", 5) == 0) {
			fake_say(c, "250-fake.test");
			if (s->pipelining)
				fake_say(c, "250-PIPELINING");
			fake_say(c, "250-SIZE 100000");
			fake_say(c, "250 8BITMIME");
		} else if (strncmp(line, "HELO ", 5) == 0) {
			s->helos++;
			fake_say(c, "250 fake.test");
		} else if (strcmp(line, "RSET") == 0) {
			s->rsets++;
			fake_say(c, "250 2.0.0 Ok");
		} else if (strncmp(line, "MAIL FROM:", 10) == 0) {
			msg = s->messages++;
			snprintf(s->mail_lines[msg], sizeof(s->mail_lines[msg]), "%s", line);
			if (s->pipelining)
				fake_check_pipelining(s, c);
			if (fake_reply(c, s->mail_replies[msg], "250 2.1.0 Ok"))
				return;
		} else if (strncmp(line, "RCPT TO:", 8) == 0) {
			if (fake_reply(c, s->rcpt_replies[msg], "250 2.1.5 Ok"))
				return;
		} else if (strcmp(line, "DATA") == 0) {
			if (s->rcpt_replies[msg] != NULL) {
				fake_say(c, "554 5.5.1 Error: no valid recipients");
				continue;
			}
			fake_say(c, "354 End data with <CR><LF>.<CR><LF>");
			if (fake_data(c, s->data[msg], sizeof(s->data[msg])) < 0)
				return;
			snprintf(queued, sizeof(queued), "250 2.0.0 Ok: queued as Q%d", msg + 1);
			if (fake_reply(c, s->final_replies[msg], queued))
				return;
		} else if (strcmp(line, "QUIT") == 0) {
			fake_say(c, "221 2.0.0 Bye");
			return;
		} else {
			fake_say(c, "502 5.5.2 Error: command not recognized");
		}
	}
}

static void *fake_main(void *arg)
{
	struct fake_server *s = arg;
	struct fake_conn c;

	while (s->connections < s->max_connections) {
		c.fd = accept(s->listen_fd, NULL, NULL);
		if (c.fd < 0)
			break;
		s->connections++;
		memset(&c.in, 0, sizeof(c.in));
		fake_session(s, &c);
		fake_close(&c);
		buf_free(&c.in);
	}
	return NULL;
}

/* fake_listen_unix - listen on s->unix_path. */
static void fake_listen_unix(struct fake_server *s)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->unix_path);
	unlink(s->unix_path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(s->listen_fd, 4), 0);
}

static void fake_start(struct fake_server *s)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (s->max_connections == 0)
		s->max_connections = 1;
	if (s->unix_path[0] != '\0') {
		fake_listen_unix(s);
		assert_int_equal(pthread_create(&s->thread, NULL, fake_main, s), 0);
		return;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->listen_fd, 4), 0);
	assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, fake_main, s), 0);
}

static void fake_stop(struct fake_server *s)
{
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	if (s->unix_path[0] != '\0')
		unlink(s->unix_path);
}

static struct smtp_client *client_for(const struct fake_server *s, int timeout)
{
	struct smtp_options opts;
	char target[128];

	if (s->unix_path[0] != '\0')
		snprintf(target, sizeof(target), "unix:%s", s->unix_path);
	else
		snprintf(target, sizeof(target), "inet:127.0.0.1:%d", s->port);
	opts.target = target;
	opts.helo_name = "sender.test";
	opts.connect_timeout = timeout;
	opts.command_timeout = timeout;
	opts.data_timeout = timeout;
	return smtp_client_new(&opts);
}

static const char message[] = "Subject: hi\n\n.leading dot\nbody\n";
static const char message_wire[] = "Subject: hi\r\n\r\n..leading dot\r\nbody\r\n";

static enum smtp_status send_one(struct smtp_client *c, const char *msg, struct smtp_result *res)
{
	return smtp_send(c, "list@example.org", "user@example.net", msg, strlen(msg), res);
}

/* Sessions. */

static void client_pipelining(void **state)
{
	struct fake_server s = {.pipelining = 1};
	struct smtp_client *c;
	struct smtp_result res;

	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q1");
	assert_int_equal(res.reply.code, 250);
	assert_string_equal(res.error, "");
	assert_int_equal(send_one(c, "Subject: caf\xc3\xa9\r\n\r\nx\r\n", &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q2");
	smtp_client_free(c);
	fake_stop(&s);

	assert_int_equal(s.connections, 1);
	assert_int_equal(s.messages, 2);
	assert_int_equal(s.pipelined, 2);
	assert_int_equal(s.not_pipelined, 0);
	assert_int_equal(s.rsets, 1);
	assert_string_equal(s.mail_lines[0], "MAIL FROM:<list@example.org> SIZE=31");
	assert_string_equal(s.mail_lines[1], "MAIL FROM:<list@example.org> BODY=8BITMIME SIZE=21");
	assert_string_equal(s.data[0], message_wire);
}

static void client_helo_fallback(void **state)
{
	struct fake_server s = {.reject_ehlo = 1};
	struct smtp_client *c;
	struct smtp_result res;

	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, "Subject: caf\xc3\xa9\r\n\r\nx\r\n", &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q1");
	smtp_client_free(c);
	fake_stop(&s);

	assert_int_equal(s.helos, 1);
	/* No ESMTP: neither BODY= nor SIZE=. */
	assert_string_equal(s.mail_lines[0], "MAIL FROM:<list@example.org>");
}

static void client_421_mid_session(void **state)
{
	struct fake_server s = {.pipelining = 1, .max_connections = 2};
	struct smtp_client *c;
	struct smtp_result res;

	s.mail_replies[1] = "421 4.3.2 Service shutting down";
	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q1");

	assert_int_equal(send_one(c, message, &res), SMTP_TEMPFAIL);
	assert_int_equal(res.reply.code, 421);
	assert_string_equal(res.reply.enhanced, "4.3.2");
	assert_int_equal(res.data_sent, 0);
	assert_non_null(strstr(res.error, "421 4.3.2 Service shutting down"));

	/* The next message opens a new connection. */
	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q3");
	smtp_client_free(c);
	fake_stop(&s);
	assert_int_equal(s.connections, 2);
	assert_string_equal(s.data[2], message_wire);
}

static void client_4xx_then_250(void **state)
{
	struct fake_server s = {.pipelining = 1};
	struct smtp_client *c;
	struct smtp_result res;

	s.final_replies[0] = "451 4.3.0 Error: queue file write error";
	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, message, &res), SMTP_TEMPFAIL);
	assert_int_equal(res.reply.code, 451);
	assert_string_equal(res.reply.enhanced, "4.3.0");
	assert_int_equal(res.data_sent, 1);
	assert_string_equal(res.queue_id, "");

	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q2");
	smtp_client_free(c);
	fake_stop(&s);
	assert_int_equal(s.connections, 1);
	assert_int_equal(s.rsets, 1);
}

static void client_5xx_rcpt(void **state)
{
	struct fake_server s = {.pipelining = 1};
	struct smtp_client *c;
	struct smtp_result res;

	s.rcpt_replies[0] = "550 5.1.1 <user@example.net>: Recipient address rejected";
	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, message, &res), SMTP_PERMFAIL);
	assert_int_equal(res.reply.code, 550);
	assert_string_equal(res.reply.enhanced, "5.1.1");
	assert_int_equal(res.data_sent, 0);
	assert_non_null(strstr(res.error, "RCPT TO"));

	/* The connection stays usable for the next message. */
	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q2");
	smtp_client_free(c);
	fake_stop(&s);
	assert_int_equal(s.connections, 1);
}

static void client_lost_after_dot(void **state)
{
	struct fake_server s = {.pipelining = 1, .max_connections = 2};
	struct smtp_client *c;
	struct smtp_result res;

	s.final_replies[0] = "";
	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, message, &res), SMTP_TEMPFAIL);
	assert_int_equal(res.reply.code, 0);
	assert_int_equal(res.data_sent, 1);
	assert_non_null(strstr(res.error, "may have the message"));

	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q2");
	smtp_client_free(c);
	fake_stop(&s);
	assert_int_equal(s.connections, 2);
}

static void client_size_limit(void **state)
{
	struct fake_server s = {.pipelining = 1};
	struct smtp_client *c;
	struct smtp_result res;
	char *big = xmalloc(200001);

	memset(big, 'a', 200000);
	big[200000] = '\0';
	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, big, &res), SMTP_PERMFAIL);
	assert_non_null(strstr(res.error, "SIZE limit of 100000"));
	smtp_client_free(c);
	fake_stop(&s);
	assert_int_equal(s.messages, 0);
	free(big);
}

static void client_unix_socket(void **state)
{
	struct fake_server s = {.pipelining = 1};
	struct smtp_client *c;
	struct smtp_result res;

	snprintf(s.unix_path, sizeof(s.unix_path), "/tmp/smtp_test.%ld.sock", (long)getpid());
	fake_start(&s);
	c = client_for(&s, 10);
	assert_int_equal(send_one(c, message, &res), SMTP_SENT);
	assert_string_equal(res.queue_id, "Q1");
	smtp_client_free(c);
	fake_stop(&s);
	assert_int_equal(s.pipelined, 1);
	assert_string_equal(s.data[0], message_wire);
}

static void client_bad_target(void **state)
{
	struct smtp_options opts = {"tcp:127.0.0.1:25", "sender.test", 5, 5, 5};
	struct smtp_client *c = smtp_client_new(&opts);
	struct smtp_result res;

	assert_int_equal(send_one(c, message, &res), SMTP_TEMPFAIL);
	assert_non_null(strstr(res.error, "unsupported SMTP target tcp:127.0.0.1:25"));
	smtp_client_free(c);
}

static void client_connect_refused(void **state)
{
	struct fake_server s = {0};
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct smtp_client *c;
	struct smtp_result res;
	int fd;

	/* A port that was just free and has no listener. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	s.port = ntohs(sin.sin_port);
	close(fd);

	c = client_for(&s, 5);
	assert_int_equal(send_one(c, message, &res), SMTP_TEMPFAIL);
	assert_non_null(strstr(res.error, "connect to inet:127.0.0.1:"));
	smtp_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(reply_single_line),
	        cmocka_unit_test(reply_multi_line),
	        cmocka_unit_test(reply_enhanced_every_line),
	        cmocka_unit_test(reply_incomplete),
	        cmocka_unit_test(reply_bare_lf_and_code_only),
	        cmocka_unit_test(reply_malformed),
	        cmocka_unit_test(reply_enhanced_class_mismatch),
	        cmocka_unit_test(enhanced_parse_cases),
	        cmocka_unit_test(reply_format_one_line),
	        cmocka_unit_test(queued_as_postfix),
	        cmocka_unit_test(queued_as_absent_or_bad),
	        cmocka_unit_test(data_dot_stuffing),
	        cmocka_unit_test(data_line_ends),
	        cmocka_unit_test(data_8bit_detection),
	        cmocka_unit_test(retry_delay_schedule),
	        cmocka_unit_test(client_pipelining),
	        cmocka_unit_test(client_helo_fallback),
	        cmocka_unit_test(client_421_mid_session),
	        cmocka_unit_test(client_4xx_then_250),
	        cmocka_unit_test(client_5xx_rcpt),
	        cmocka_unit_test(client_lost_after_dot),
	        cmocka_unit_test(client_size_limit),
	        cmocka_unit_test(client_unix_socket),
	        cmocka_unit_test(client_bad_target),
	        cmocka_unit_test(client_connect_refused),
	};

	return cmocka_run_group_tests_name("smtp", tests, NULL, NULL);
}
