/*
 * alloc_log_test - unit tests of the allocation wrappers, struct buf and
 * the log functions.
 *
 * Log tests point standard error at a temporary file, write lines, and
 * read back exactly what reached the file. msg_fatal and msg_panic end
 * the process, so they run in a child whose exit status is checked.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "log.h"

struct capture {
	char path[64];
	int saved_stderr;
};

/* capture_start - send standard error to a fresh temporary file */
static void capture_start(struct capture *cap)
{
	int fd;

	snprintf(cap->path, sizeof(cap->path), "/tmp/alloc_log_test.XXXXXX");
	fd = mkstemp(cap->path);
	assert_true(fd >= 0);
	fflush(stderr);
	cap->saved_stderr = dup(STDERR_FILENO);
	assert_true(cap->saved_stderr >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* capture_end - restore standard error and return what was written (to free) */
static char *capture_end(struct capture *cap)
{
	struct buf text = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *fp;

	assert_int_equal(dup2(cap->saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(cap->saved_stderr);
	fp = fopen(cap->path, "r");
	assert_non_null(fp);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&text, chunk, n);
	fclose(fp);
	unlink(cap->path);
	return buf_steal(&text);
}

static void test_xstrndup_stops(void **state)
{
	char *s;

	s = xstrndup("abcdef", 3);
	assert_string_equal(s, "abc");
	free(s);

	s = xstrndup("ab", 10);
	assert_string_equal(s, "ab");
	free(s);

	s = xstrdup("");
	assert_string_equal(s, "");
	free(s);
}

static void test_xasprintf_formats(void **state)
{
	char *s = xasprintf("%s-%d-%05.1f", "seq", 42, 3.14159);
	char big[3000];
	char *t;

	assert_string_equal(s, "seq-42-003.1");
	free(s);

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t = xasprintf("<%s>", big);
	assert_int_equal(strlen(t), sizeof(big) + 1);
	assert_int_equal(t[0], '<');
	assert_int_equal(t[sizeof(big)], '>');
	free(t);
}

static void test_xcalloc_zeroes(void **state)
{
	unsigned char *p = xcalloc(100, 3);
	void *z = xmalloc(0);
	size_t i;

	for (i = 0; i < 300; i++)
		assert_int_equal(p[i], 0);
	p = xrealloc(p, 1000);
	assert_int_equal(p[299], 0);
	assert_non_null(z);
	free(p);
	free(z);
}

static void test_buf_grows(void **state)
{
	struct buf b = BUF_INIT;
	char expected[16];
	int i;

	for (i = 0; i < 1000; i++)
		buf_printf(&b, "%03d,", i);
	assert_int_equal(b.len, 4000);
	assert_int_equal(strlen(b.data), 4000);
	assert_memory_equal(b.data, "000,001,002,", 12);
	snprintf(expected, sizeof(expected), "%03d,", 999);
	assert_string_equal(b.data + 3996, expected);
	assert_true(b.cap > b.len);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_buf_binary_and_reset(void **state)
{
	struct buf b = BUF_INIT;
	char *s;

	buf_append(&b, "a\0b", 3);
	buf_putc(&b, 'c');
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "a\0bc", 5);

	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_puts(&b, "hello");
	buf_puts(&b, "");
	assert_string_equal(b.data, "hello");

	s = buf_steal(&b);
	assert_string_equal(s, "hello");
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	free(s);

	/* An empty buf still hands out a string. */
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
}

static void test_log_escape_plain(void **state)
{
	char out[64];

	assert_string_equal(log_escape(out, sizeof(out), "mailing=m1 seq=5"), "mailing=m1 seq=5");
	assert_string_equal(log_escape(out, sizeof(out), ""), "");
}

static void test_log_escape_controls(void **state)
{
	char out[64];

	assert_string_equal(log_escape(out, sizeof(out), "a\r\nb"), "a\\x0D\\x0Ab");
	assert_string_equal(log_escape(out, sizeof(out), "back\\slash"), "back\\x5Cslash");
	assert_string_equal(log_escape(out, sizeof(out), "\t\x7f\xc3\xa9"), "\\x09\\x7F\\xC3\\xA9");
}

static void test_log_escape_cut(void **state)
{
	char out[12];
	char tiny[3];

	/* 11 bytes of room: the text is cut to 8 and ends in "...". */
	assert_string_equal(log_escape(out, sizeof(out), "abcdefghijklmnop"), "abcdefgh...");
	assert_string_equal(log_escape(out, sizeof(out), "abcdefghijk"), "abcdefghijk");

	/* An escape is never cut in half. */
	assert_string_equal(log_escape(out, sizeof(out), "abcdefg\nxyz"), "abcdefg...");
	assert_string_equal(log_escape(out, sizeof(out), "abcde\n\nxyz"), "abcde...");

	/* Too small for "...": plain truncation. */
	assert_string_equal(log_escape(tiny, sizeof(tiny), "abcdef"), "ab");
	assert_string_equal(log_escape(out, 1, "abc"), "");
}

static void test_log_line_format(void **state)
{
	struct capture cap;
	char expected[256];
	char *text;
	long pid = (long)getpid();

	log_init("/usr/sbin/mailonce-test", LOG_DEST_STDERR, 0);
	capture_start(&cap);
	msg_info("QID1: mailing=%s seq=%d", "m1", 7);
	msg_warn("cannot %s", "connect");
	msg_debug("hidden");
	log_set_verbose(1);
	msg_debug("shown %d", 1);
	log_set_verbose(0);
	text = capture_end(&cap);

	snprintf(expected, sizeof(expected),
	         "mailonce-test[%ld]: QID1: mailing=m1 seq=7\n"
	         "mailonce-test[%ld]: warning: cannot connect\n"
	         "mailonce-test[%ld]: shown 1\n",
	         pid, pid, pid);
	assert_string_equal(text, expected);
	assert_int_equal(log_verbose(), 0);
	free(text);
}

static void test_log_long_line_cut(void **state)
{
	struct capture cap;
	char *big = xmalloc(10000);
	char *text;
	size_t len;

	memset(big, 'y', 9999);
	big[9999] = '\0';
	log_init("t", LOG_DEST_STDERR, 0);
	capture_start(&cap);
	msg_info("%s", big);
	text = capture_end(&cap);

	len = strlen(text);
	assert_true(len < 5000);
	assert_int_equal(text[len - 1], '\n');
	assert_memory_equal(text + len - 4, "...", 3);
	assert_ptr_equal(strchr(text, '\n'), text + len - 1);
	free(text);
	free(big);
}

#define LOG_THREADS 8
#define LOG_LINES   500

static void *log_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	int i;

	for (i = 0; i < LOG_LINES; i++)
		msg_info("thread=%d line=%d %s", id, i,
		         "padding-padding-padding-padding-padding-padding-padding");
	return NULL;
}

static void test_log_threads_whole_lines(void **state)
{
	pthread_t threads[LOG_THREADS];
	int seen[LOG_THREADS] = {0};
	struct capture cap;
	char *text;
	char *line;
	char *save = NULL;
	int count = 0;
	int id;
	int n;
	int i;

	log_init("t", LOG_DEST_STDERR, 0);
	capture_start(&cap);
	for (i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, log_thread, (void *)(intptr_t)i),
		                 0);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_join(threads[i], NULL);
	text = capture_end(&cap);

	/* Every line must be whole, and each thread's lines in its own order. */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_int_equal(sscanf(strchr(line, ' ') + 1, "thread=%d line=%d", &id, &n), 2);
		assert_true(id >= 0 && id < LOG_THREADS);
		assert_int_equal(n, seen[id]);
		seen[id]++;
		assert_string_equal(line + strlen(line) - 7, "padding");
		count++;
	}
	assert_int_equal(count, LOG_THREADS * LOG_LINES);
	free(text);
}

/* run_child - run fn in a child with stderr captured; its wait status */
static int run_child(void (*fn)(void), char **output)
{
	struct capture cap;
	int status;
	pid_t pid;

	capture_start(&cap);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	*output = capture_end(&cap);
	return status;
}

static void fatal_child(void)
{
	log_init("t", LOG_DEST_STDERR, 0);
	msg_fatal(EX_CONFIG, "%s:%d: bad", "m.conf", 3);
}

static void panic_child(void)
{
	struct rlimit no_core = {0, 0};
	struct sigaction sa;

	/* cmocka's handler for SIGABRT would catch the abort; restore the default. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGABRT, &sa, NULL);
	setrlimit(RLIMIT_CORE, &no_core);
	log_init("t", LOG_DEST_STDERR, 0);
	msg_panic("impossible state %d", 9);
}

static void test_msg_fatal_exits(void **state)
{
	char *text;
	int status = run_child(fatal_child, &text);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), EX_CONFIG);
	assert_non_null(strstr(text, "]: fatal: m.conf:3: bad\n"));
	free(text);
}

static void test_msg_panic_aborts(void **state)
{
	char *text;
	int status = run_child(panic_child, &text);

	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(text, "]: panic: impossible state 9\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_xstrndup_stops),
	        cmocka_unit_test(test_xasprintf_formats),
	        cmocka_unit_test(test_xcalloc_zeroes),
	        cmocka_unit_test(test_buf_grows),
	        cmocka_unit_test(test_buf_binary_and_reset),
	        cmocka_unit_test(test_log_escape_plain),
	        cmocka_unit_test(test_log_escape_controls),
	        cmocka_unit_test(test_log_escape_cut),
	        cmocka_unit_test(test_log_line_format),
	        cmocka_unit_test(test_log_long_line_cut),
	        cmocka_unit_test(test_log_threads_whole_lines),
	        cmocka_unit_test(test_msg_fatal_exits),
	        cmocka_unit_test(test_msg_panic_aborts),
	};

	return cmocka_run_group_tests_name("alloc_log", tests, NULL, NULL);
}
