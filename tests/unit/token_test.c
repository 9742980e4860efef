/*
 * token_test - unit tests for lib/token.c and lib/keyfile.c: the grammar
 * of the Mailonce-Token header with the reason for each rejection, the
 * MAC and its binding to one recipient, and the key file (permissions,
 * syntax errors with FILE:LINE, adding keys).
 *
 * Key files are written to a fresh directory under /tmp that the group
 * teardown removes.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "token.h"

/* Secrets of the fixed test keys: the bytes 0x00..0x1f and 0x20..0x3f, base64url. */
#define SECRET_K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define SECRET_K2 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"

/* A syntactically valid MAC, for tests of the grammar that never verify. */
#define MAC_ANY "AAAAAAAAAAAAAAAAAAAAAA"

#define ID_64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_32 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char test_dir[] = "/tmp/token_test.XXXXXX";

/* test_path - a file name inside the test directory (static buffer) */
static const char *test_path(const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", test_dir, name);
	return path;
}

/* write_file - create path with exactly the given mode, whatever the umask */
static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* read_file - the whole content of path, to free */
static char *read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *text = calloc(1, 65536);
	size_t n;

	assert_non_null(fp);
	assert_non_null(text);
	n = fread(text, 1, 65535, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* load_test_ring - a ring with k1 (signing) and k2 */
static struct keyring *load_test_ring(void)
{
	const char *path = test_path("ring");
	char err[512] = "";
	struct keyring *ring;

	write_file(path, "k1 " SECRET_K1 "\nk2 " SECRET_K2 "\n", 0600);
	ring = keyring_load(path, err, sizeof(err));
	if (ring == NULL)
		fail_msg("keyring_load: %s", err);
	return ring;
}

static int group_setup(void **state)
{
	return mkdtemp(test_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	DIR *dir = opendir(test_dir);
	struct dirent *de;

	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		unlink(test_path(de->d_name));
		rmdir(test_path(de->d_name));
	}
	closedir(dir);
	return rmdir(test_dir);
}

struct bad_case {
	const char *value;
	const char *reason;
};

static const struct bad_case bad_tokens[] = {
        /* The list of tags. */
        {"", "empty token"},
        {" \t\r\n ", "empty token"},
        {"m=a; s=1; k=k1; h=" MAC_ANY, "missing tag v"},
        {"v=1; s=1; k=k1; h=" MAC_ANY, "missing tag m"},
        {"v=1; m=a; k=k1; h=" MAC_ANY, "missing tag s"},
        {"v=1; m=a; s=1; h=" MAC_ANY, "missing tag k"},
        {"v=1; m=a; s=1; k=k1", "missing tag h"},
        {"v=1; m=a; s=1; s=2; k=k1; h=" MAC_ANY, "duplicate tag s"},
        {"v=1; m=a; m=a; s=1; k=k1; h=" MAC_ANY, "duplicate tag m"},
        {"v=1; v=1; m=a; s=1; k=k1; h=" MAC_ANY, "duplicate tag v"},
        {"v=2; m=a; s=1; k=k1; h=" MAC_ANY, "unknown version"},
        {"v=01; m=a; s=1; k=k1; h=" MAC_ANY, "unknown version"},
        {"v=2; m=a; x=1", "unknown version"},
        {"v=1; m=a; s=1; k=k1; h=" MAC_ANY "; x=1", "unknown tag x"},
        {"V=1; m=a; s=1; k=k1; h=" MAC_ANY, "unknown tag V"},
        {"v=1; m=a; s=1; k=k1; h=" MAC_ANY "; abcdefghijklmnopqrstuvwxyz=1",
         "unknown tag abcdefghijklmnop"},
        {"v=1; m=; s=1; k=k1; h=" MAC_ANY, "empty value for tag m"},
        {"v=1; m=a; s= ; k=k1; h=" MAC_ANY, "empty value for tag s"},
        {"v=1; m=a; s=1; k=k1; h=", "empty value for tag h"},
        {"v=1;; m=a; s=1; k=k1; h=" MAC_ANY, "empty tag"},
        {"; v=1; m=a; s=1; k=k1; h=" MAC_ANY, "empty tag"},
        {"v=1; m=a; s=1; k=k1; h=" MAC_ANY ";;", "empty tag"},
        {"v=1; m=a; s=1; k=k1; h=" MAC_ANY "; ;", "empty tag"},
        {"v=1; =a; s=1; k=k1; h=" MAC_ANY, "missing tag name"},
        {"v=1; 1m=a; s=1; k=k1; h=" MAC_ANY, "invalid tag name"},
        {"v=1; @=a; s=1; k=k1; h=" MAC_ANY, "invalid tag name"},
        {"v=1; m a; s=1; k=k1; h=" MAC_ANY, "missing '=' after a tag name"},
        {"v=1 m=a; s=1; k=k1; h=" MAC_ANY, "white space inside a value"},

        /* Bytes that never belong in a token. */
        {"v=1; m=caf\xc3\xa9; s=1; k=k1; h=" MAC_ANY, "8-bit byte in token"},
        {"v=1; m=a\x01; s=1; k=k1; h=" MAC_ANY, "control character in token"},
        {"v=1;\v m=a; s=1; k=k1; h=" MAC_ANY, "control character in token"},
        {"v=1; m=a\x7f; s=1; k=k1; h=" MAC_ANY, "control character in token"},

        /* m */
        {"v=1; m=" ID_64 "a; s=1; k=k1; h=" MAC_ANY, "mailing id too long"},
        {"v=1; m=a b; s=1; k=k1; h=" MAC_ANY, "white space inside a value"},
        {"v=1; m=a;b; s=1; k=k1; h=" MAC_ANY, "missing '=' after a tag name"},
        {"v=1; m=a@b; s=1; k=k1; h=" MAC_ANY, "mailing id has an invalid character"},
        {"v=1; m=a/b; s=1; k=k1; h=" MAC_ANY, "mailing id has an invalid character"},
        {"v=1; m=a=b; s=1; k=k1; h=" MAC_ANY, "mailing id has an invalid character"},

        /* s */
        {"v=1; m=a; s=0; k=k1; h=" MAC_ANY, "seq is zero"},
        {"v=1; m=a; s=+1; k=k1; h=" MAC_ANY, "seq has a sign"},
        {"v=1; m=a; s=-1; k=k1; h=" MAC_ANY, "seq has a sign"},
        {"v=1; m=a; s=01; k=k1; h=" MAC_ANY, "seq has a leading zero"},
        {"v=1; m=a; s=00; k=k1; h=" MAC_ANY, "seq has a leading zero"},
        {"v=1; m=a; s=1x; k=k1; h=" MAC_ANY, "seq is not a number"},
        {"v=1; m=a; s=0x10; k=k1; h=" MAC_ANY, "seq is not a number"},
        {"v=1; m=a; s=1.5; k=k1; h=" MAC_ANY, "seq is not a number"},
        {"v=1; m=a; s=9223372036854775808; k=k1; h=" MAC_ANY, "seq out of range"},
        {"v=1; m=a; s=18446744073709551616; k=k1; h=" MAC_ANY, "seq out of range"},
        {"v=1; m=a; s=123456789012345678901234567890; k=k1; h=" MAC_ANY, "seq out of range"},

        /* k */
        {"v=1; m=a; s=1; k=" ID_32 "b; h=" MAC_ANY, "key id invalid"},
        {"v=1; m=a; s=1; k=k/1; h=" MAC_ANY, "key id invalid"},

        /* h */
        {"v=1; m=a; s=1; k=k1; h=AAAAAAAAAA+AAAAAAAAAAA", "MAC is not base64url"},
        {"v=1; m=a; s=1; k=k1; h=AAAAAAAAAA/AAAAAAAAAAA", "MAC is not base64url"},
        {"v=1; m=a; s=1; k=k1; h=" MAC_ANY "==", "MAC is not base64url"},
        {"v=1; m=a; s=1; k=k1; h=AAAAAAAAAAAAAAAAAAAAA", "MAC has the wrong length"},
        {"v=1; m=a; s=1; k=k1; h=AAAAAAAAAAAAAAAAAAAAAAA", "MAC has the wrong length"},
        {"v=1; m=a; s=1; k=k1; h=AAAAAAAAAAAAAAAAAAAAAB", "MAC is not canonical"},
        {"v=1; m=a; s=1; k=k1; h=AAAAAAAAAAAAAAAAAAAAAP", "MAC is not canonical"},
};

static void parse_rejects_malformed(void **state)
{
	struct token tok;
	const char *reason;
	size_t i;

	assert_true(sizeof(bad_tokens) / sizeof(bad_tokens[0]) >= 30);
	for (i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
		reason = NULL;
		if (token_parse(bad_tokens[i].value, &tok, &reason) != -1)
			fail_msg("case %zu \"%s\" parsed, expected \"%s\"", i, bad_tokens[i].value,
			         bad_tokens[i].reason);
		if (reason == NULL || strcmp(reason, bad_tokens[i].reason) != 0)
			fail_msg("case %zu \"%s\": reason \"%s\", expected \"%s\"", i,
			         bad_tokens[i].value, reason ? reason : "(null)",
			         bad_tokens[i].reason);
	}
}

static void parse_rejects_null(void **state)
{
	struct token tok;
	const char *reason = NULL;

	assert_int_equal(token_parse(NULL, &tok, &reason), -1);
	assert_string_equal(reason, "empty token");
}

static void parse_accepts_limits(void **state)
{
	struct token tok;
	const char *reason = NULL;

	assert_int_equal(token_parse("v=1; m=" ID_64 "; s=9223372036854775807; k=" ID_32
	                             "; h=" MAC_ANY,
	                             &tok, &reason),
	                 0);
	assert_string_equal(tok.mailing, ID_64);
	assert_true(tok.seq == UINT64_C(9223372036854775807));
	assert_string_equal(tok.key_id, ID_32);

	assert_int_equal(token_parse("v=1;m=A.b_c-9;s=1;k=K.1_-;h=" MAC_ANY, &tok, &reason), 0);
	assert_string_equal(tok.mailing, "A.b_c-9");
	assert_true(tok.seq == 1);
	assert_string_equal(tok.key_id, "K.1_-");
}

static void parse_any_order_trailing_semicolon(void **state)
{
	struct token tok;
	const char *reason = NULL;
	static const unsigned char zero_mac[TOKEN_MAC_LEN];

	assert_int_equal(token_parse("h=" MAC_ANY "; k=key; s=77; m=spring; v=1;", &tok, &reason),
	                 0);
	assert_string_equal(tok.mailing, "spring");
	assert_true(tok.seq == 77);
	assert_string_equal(tok.key_id, "key");
	assert_memory_equal(tok.mac, zero_mac, TOKEN_MAC_LEN);

	assert_int_equal(token_parse("  v = 1 ;m= a ; s =2;k=k ;h=" MAC_ANY " ; ", &tok, &reason),
	                 0);
	assert_string_equal(tok.mailing, "a");
	assert_true(tok.seq == 2);
}

static void parse_folded_header(void **state)
{
	struct token tok;
	const char *reason = NULL;

	assert_int_equal(
	        token_parse("v=1; m=spring;\r\n\ts=5;\r\n\tk=k1;\r\n h=" MAC_ANY, &tok, &reason),
	        0);
	assert_string_equal(tok.mailing, "spring");
	assert_true(tok.seq == 5);
	assert_string_equal(tok.key_id, "k1");

	/* Some milter front ends hand over folded values with LF only. */
	assert_int_equal(token_parse("v=1;\n\tm=spring; s=5; k=k1; h=" MAC_ANY, &tok, &reason), 0);
}

static void parse_leaves_token_on_error(void **state)
{
	struct token tok;
	const char *reason = NULL;

	memset(&tok, 0x5a, sizeof(tok));
	assert_int_equal(token_parse("v=1; m=ok; s=0; k=k1; h=" MAC_ANY, &tok, &reason), -1);
	assert_int_equal((unsigned char)tok.mailing[0], 0x5a);
	assert_true(tok.seq == UINT64_C(0x5a5a5a5a5a5a5a5a));
}

/*
 * A header value is a C string, so a NUL ends it: the tags after an
 * embedded NUL are not seen and the token is rejected for missing them.
 */
static void parse_nul_ends_value(void **state)
{
	static const char value[] = "v=1; m=ab\0cd; s=1; k=k1; h=" MAC_ANY;
	struct token tok;
	const char *reason = NULL;

	assert_int_equal(token_parse(value, &tok, &reason), -1);
	assert_string_equal(reason, "missing tag s");
}

static void id_validators(void **state)
{
	static const char id_with_nul[] = {'\0', 'a', 'b', '\0'};

	assert_int_equal(token_mailing_valid(ID_64), 1);
	assert_int_equal(token_mailing_valid(ID_64 "a"), 0);
	assert_int_equal(token_mailing_valid("a"), 1);
	assert_int_equal(token_mailing_valid(""), 0);
	assert_int_equal(token_mailing_valid(NULL), 0);
	assert_int_equal(token_mailing_valid("a;b"), 0);
	assert_int_equal(token_mailing_valid("a b"), 0);
	assert_int_equal(token_mailing_valid("caf\xc3\xa9"), 0);
	assert_int_equal(token_mailing_valid("a\tb"), 0);
	assert_int_equal(token_mailing_valid(id_with_nul), 0);

	assert_int_equal(token_key_id_valid(ID_32), 1);
	assert_int_equal(token_key_id_valid(ID_32 "b"), 0);
	assert_int_equal(token_key_id_valid("k2026.a_b-c"), 1);
	assert_int_equal(token_key_id_valid(""), 0);
	assert_int_equal(token_key_id_valid("k;1"), 0);
	assert_int_equal(token_key_id_valid("k 1"), 0);
	assert_int_equal(token_key_id_valid(id_with_nul), 0);
}

static void normalize_rcpt(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
	        {"Alice@Example.TEST", "alice@example.test"},
	        {"<Alice@Example.TEST>", "alice@example.test"},
	        {"<<a@b>>", "<a@b>"},
	        {"<a@b", "<a@b"},
	        {"a@b>", "a@b>"},
	        {"<>", ""},
	        {"\xc3\x89T\xc3\xa9@x.TEST", "\xc3\x89t\xc3\xa9@x.test"},
	};
	size_t i;
	char *got;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = token_normalize_rcpt(cases[i].in);
		assert_non_null(got);
		assert_string_equal(got, cases[i].out);
		free(got);
	}
	assert_null(token_normalize_rcpt(NULL));
}

static void build_verify_round_trip(void **state)
{
	struct keyring *ring = load_test_ring();
	const char *reason = NULL;
	struct token tok;
	char *value;

	assert_string_equal(keyring_signing_id(ring), "k1");
	value = token_build(ring, NULL, "spring-2026", 42, "alice@example.test", &reason);
	assert_non_null(value);
	assert_int_equal(strncmp(value, "v=1; m=spring-2026; s=42; k=k1; h=", 34), 0);
	assert_int_equal(strlen(value), 34 + 22);

	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_string_equal(tok.mailing, "spring-2026");
	assert_true(tok.seq == 42);
	assert_string_equal(tok.key_id, "k1");
	assert_int_equal(token_verify(ring, &tok, "alice@example.test", &reason), 0);
	free(value);

	/* An explicit key id signs with that key. */
	value = token_build(ring, "k2", "m", UINT64_C(9223372036854775807), "a@b", &reason);
	assert_non_null(value);
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_string_equal(tok.key_id, "k2");
	assert_true(tok.seq == UINT64_C(9223372036854775807));
	assert_int_equal(token_verify(ring, &tok, "a@b", &reason), 0);
	free(value);
	keyring_free(ring);
}

static void verify_rcpt_case_insensitive(void **state)
{
	struct keyring *ring = load_test_ring();
	const char *reason = NULL;
	struct token tok;
	char *value;

	value = token_build(ring, NULL, "news", 7, "a@example.test", &reason);
	assert_non_null(value);
	assert_int_equal(token_parse(value, &tok, &reason), 0);

	assert_int_equal(token_verify(ring, &tok, "a@example.test", &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "A@Example.test", &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "<a@example.test>", &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "<A@EXAMPLE.TEST>", &reason), 0);

	reason = NULL;
	assert_int_equal(token_verify(ring, &tok, "b@example.test", &reason), -1);
	assert_string_equal(reason, "MAC mismatch");
	free(value);

	/* Building from the bracketed, upper-case form gives the same token. */
	value = token_build(ring, NULL, "news", 7, "<A@Example.TEST>", &reason);
	assert_non_null(value);
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "a@example.test", &reason), 0);
	free(value);
	keyring_free(ring);
}

static void verify_rejects_forgeries(void **state)
{
	struct keyring *ring = load_test_ring();
	const char *reason = NULL;
	struct token tok;
	char *value;
	char *k_at;

	/* A MAC made for another recipient. */
	value = token_build(ring, NULL, "news", 7, "bob@example.test", &reason);
	assert_non_null(value);
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "alice@example.test", &reason), -1);
	assert_string_equal(reason, "MAC mismatch");

	/* The same MAC moved to another seq or mailing. */
	tok.seq = 8;
	assert_int_equal(token_verify(ring, &tok, "bob@example.test", &reason), -1);
	assert_string_equal(reason, "MAC mismatch");
	tok.seq = 7;
	strcpy(tok.mailing, "newt");
	assert_int_equal(token_verify(ring, &tok, "bob@example.test", &reason), -1);
	assert_string_equal(reason, "MAC mismatch");
	free(value);

	/* A MAC made with k2 but labelled k1. */
	value = token_build(ring, "k2", "news", 7, "bob@example.test", &reason);
	assert_non_null(value);
	k_at = strstr(value, "k=k2");
	assert_non_null(k_at);
	k_at[3] = '1';
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_string_equal(tok.key_id, "k1");
	assert_int_equal(token_verify(ring, &tok, "bob@example.test", &reason), -1);
	assert_string_equal(reason, "MAC mismatch");

	/* A key id that the ring does not have. */
	strcpy(tok.key_id, "k9");
	assert_int_equal(token_verify(ring, &tok, "bob@example.test", &reason), -1);
	assert_string_equal(reason, "unknown key id");
	free(value);

	/* A recipient that normalizes to nothing. */
	value = token_build(ring, NULL, "news", 7, "bob@example.test", &reason);
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "<>", &reason), -1);
	assert_string_equal(reason, "recipient is empty");
	free(value);
	keyring_free(ring);
}

static void build_rejects_bad_input(void **state)
{
	struct keyring *ring = load_test_ring();
	const char *reason = NULL;

	assert_null(token_build(ring, NULL, "a;b", 1, "a@b", &reason));
	assert_string_equal(reason, "mailing id has an invalid character");
	assert_null(token_build(ring, NULL, ID_64 "a", 1, "a@b", &reason));
	assert_string_equal(reason, "mailing id too long");
	assert_null(token_build(ring, NULL, "", 1, "a@b", &reason));
	assert_string_equal(reason, "mailing id is empty");
	assert_null(token_build(ring, NULL, "m", 0, "a@b", &reason));
	assert_string_equal(reason, "seq is zero");
	assert_null(token_build(ring, NULL, "m", UINT64_C(9223372036854775808), "a@b", &reason));
	assert_string_equal(reason, "seq out of range");
	assert_null(token_build(ring, "k9", "m", 1, "a@b", &reason));
	assert_string_equal(reason, "unknown key id");
	assert_null(token_build(ring, NULL, "m", 1, "", &reason));
	assert_string_equal(reason, "recipient is empty");
	assert_null(token_build(ring, NULL, "m", 1, NULL, &reason));
	assert_string_equal(reason, "recipient is empty");
	assert_null(token_build(NULL, NULL, "m", 1, "a@b", &reason));
	assert_string_equal(reason, "unknown key id");
	keyring_free(ring);
}

/*
 * The expected MAC comes from OpenSSL's command line, not from this code:
 *
 *   printf '%s' 'v=1;m=spring-2026;s=42;r=alice@example.test' |
 *     openssl dgst -sha256 -mac HMAC -macopt \
 *     hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
 *   => 2e0f6927950c0cd87c50957dd7201d80 9cde102d4d2349c24f26846a9e105608
 *
 * The first 16 bytes, base64url without padding (the same command with
 * -binary | head -c 16 | openssl base64 -A | tr '+/' '-_' | tr -d '='),
 * are Lg9pJ5UMDNh8UJV91yAdgA. The key is the bytes 0x00..0x1f (k1).
 */
static void mac_known_answer(void **state)
{
	static const unsigned char expected[TOKEN_MAC_LEN] = {
	        0x2e, 0x0f, 0x69, 0x27, 0x95, 0x0c, 0x0c, 0xd8,
	        0x7c, 0x50, 0x95, 0x7d, 0xd7, 0x20, 0x1d, 0x80,
	};
	struct keyring *ring = load_test_ring();
	const char *reason = NULL;
	struct token tok;
	char *value;

	value = token_build(ring, "k1", "spring-2026", 42, "<Alice@Example.TEST>", &reason);
	assert_non_null(value);
	assert_string_equal(value, "v=1; m=spring-2026; s=42; k=k1; h=Lg9pJ5UMDNh8UJV91yAdgA");
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_memory_equal(tok.mac, expected, TOKEN_MAC_LEN);
	free(value);
	keyring_free(ring);
}

static void keyfile_mode_too_open(void **state)
{
	static const mode_t modes[] = {0644, 0660, 0602, 0604, 0620, 0666, 0606};
	const char *path = test_path("open");
	char err[512];
	char mode_text[16];
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(path, "k1 " SECRET_K1 "\n", modes[i]);
		err[0] = '\0';
		assert_null(keyring_load(path, err, sizeof(err)));
		snprintf(mode_text, sizeof(mode_text), "mode %04o ", (unsigned)modes[i]);
		assert_non_null(strstr(err, mode_text));
		assert_non_null(strstr(err, "chmod 0600"));
		assert_non_null(strstr(err, path));
	}

	write_file(path, "k1 " SECRET_K1 "\n", 0644);
	assert_null(keyring_load(path, err, sizeof(err)));
	assert_true(strlen(path) + 32 < sizeof(err));
	{
		char expected[1024];

		snprintf(expected, sizeof(expected),
		         "%s: mode 0644 is too open (group/world write or world read); "
		         "run: chmod 0600 %s",
		         path, path);
		assert_string_equal(err, expected);
	}
}

static void keyfile_mode_accepted(void **state)
{
	static const mode_t modes[] = {0600, 0640, 0400, 0440};
	const char *path = test_path("closed");
	struct keyring *ring;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(path, "k1 " SECRET_K1 "\n", modes[i]);
		err[0] = '\0';
		ring = keyring_load(path, err, sizeof(err));
		if (ring == NULL)
			fail_msg("mode %04o: %s", (unsigned)modes[i], err);
		assert_string_equal(keyring_signing_id(ring), "k1");
		keyring_free(ring);
	}
}

static void keyfile_missing_names_path(void **state)
{
	const char *path = test_path("no-such-file");
	char err[512] = "";

	assert_null(keyring_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_non_null(strstr(err, "mailoncectl keygen"));
}

static void keyfile_directory_rejected(void **state)
{
	const char *path = test_path("a-directory");
	char err[512] = "";

	assert_int_equal(mkdir(path, 0700), 0);
	assert_null(keyring_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(rmdir(path), 0);
}

struct keyfile_case {
	const char *text;
	const char *error; /* what follows "PATH" in the error */
};

static const struct keyfile_case bad_keyfiles[] = {
        {"# only a comment\n\n", ": no key in the file"},
        {"", ": no key in the file"},
        {"k1 " SECRET_K1 "\n# x\nk1 " SECRET_K2 "\n", ":3: duplicate key id k1 (first on line 1)"},
        {"k/1 " SECRET_K1 "\n", ":1: invalid key id \"k/1\""},
        {"\n" ID_32 "b " SECRET_K1 "\n", ":2: invalid key id \"" ID_32 "b\""},
        {"k1\n", ":1: key k1 has no secret"},
        {"k1 " SECRET_K1 " extra\n", ":1: unexpected text after the secret of key k1"},
        {"k1 " SECRET_K1 "=\n", ":1: the secret of key k1 is not base64url of 32 bytes"},
        {"k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\n",
         ":1: the secret of key k1 is not base64url of 32 bytes"},
        {"k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9\n",
         ":1: the secret of key k1 is not base64url of 32 bytes"},
        {"k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH+8\n",
         ":1: the secret of key k1 is not base64url of 32 bytes"},
};

static void keyfile_bad_lines(void **state)
{
	const char *path = test_path("bad");
	char expected[PATH_MAX + 128];
	char err[1024];
	size_t i;

	for (i = 0; i < sizeof(bad_keyfiles) / sizeof(bad_keyfiles[0]); i++) {
		write_file(path, bad_keyfiles[i].text, 0600);
		err[0] = '\0';
		if (keyring_load(path, err, sizeof(err)) != NULL)
			fail_msg("case %zu loaded, expected \"%s\"", i, bad_keyfiles[i].error);
		snprintf(expected, sizeof(expected), "%s%s", path, bad_keyfiles[i].error);
		if (strncmp(err, expected, strlen(expected)) != 0)
			fail_msg("case %zu: error \"%s\", expected it to start with \"%s\"", i, err,
			         expected);

		/* No error message may quote a secret. */
		assert_null(strstr(err, "AAECAwQFBgcICQoLDA0O"));
	}
}

static void keyfile_rejects_nul_and_size(void **state)
{
	static const char with_nul[] = "k1 " SECRET_K1 "\n\0k2 " SECRET_K2 "\n";
	const char *path = test_path("odd");
	char expected[PATH_MAX + 64];
	char err[PATH_MAX + 256] = "";
	char *big;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, with_nul, sizeof(with_nul) - 1), (ssize_t)sizeof(with_nul) - 1);
	assert_int_equal(close(fd), 0);
	assert_null(keyring_load(path, err, sizeof(err)));
	snprintf(expected, sizeof(expected), "%s: contains a NUL byte", path);
	assert_int_equal(strncmp(err, expected, strlen(expected)), 0);

	/* One byte over the 1 MiB limit, all of it a comment. */
	big = malloc(1024 * 1024 + 2);
	assert_non_null(big);
	memset(big, '#', 1024 * 1024 + 1);
	big[1024 * 1024 + 1] = '\0';
	write_file(path, big, 0600);
	free(big);
	assert_null(keyring_load(path, err, sizeof(err)));
	snprintf(expected, sizeof(expected), "%s: 1048577 bytes is too large for a key file", path);
	assert_int_equal(strncmp(err, expected, strlen(expected)), 0);
}

static void keyfile_comments_and_crlf(void **state)
{
	const char *path = test_path("comments");
	struct keyring *ring;
	const char *reason = NULL;
	struct token tok;
	char err[512] = "";
	char *value;

	write_file(path,
	           "# keys\n\n   # indented comment\r\n\t k2 \t" SECRET_K2 "  \r\nk1 " SECRET_K1,
	           0600);
	ring = keyring_load(path, err, sizeof(err));
	if (ring == NULL)
		fail_msg("keyring_load: %s", err);
	assert_string_equal(keyring_signing_id(ring), "k2");

	/* Both keys verify: build with k1 from this file, check with the fixed ring. */
	value = token_build(ring, "k1", "m", 1, "a@b", &reason);
	assert_non_null(value);
	keyring_free(ring);
	ring = load_test_ring();
	assert_int_equal(token_parse(value, &tok, &reason), 0);
	assert_int_equal(token_verify(ring, &tok, "a@b", &reason), 0);
	free(value);
	keyring_free(ring);
}

static void keyfile_add_key_twice(void **state)
{
	const char *path = test_path("added");
	struct keyring *ring;
	const char *reason = NULL;
	char id1[TOKEN_KEYID_MAX + 1];
	char id2[TOKEN_KEYID_MAX + 1];
	char err[512] = "";
	struct token tok;
	struct stat st;
	char *old_token;
	char *text;

	assert_int_equal(keyfile_add_key(path, "old", id1, sizeof(id1), err, sizeof(err)), 0);
	assert_string_equal(id1, "old");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	ring = keyring_load(path, err, sizeof(err));
	assert_non_null(ring);
	assert_string_equal(keyring_signing_id(ring), "old");
	old_token = token_build(ring, NULL, "m", 5, "a@b", &reason);
	assert_non_null(old_token);
	keyring_free(ring);

	assert_int_equal(keyfile_add_key(path, "new", id2, sizeof(id2), err, sizeof(err)), 0);
	assert_string_equal(id2, "new");
	ring = keyring_load(path, err, sizeof(err));
	if (ring == NULL)
		fail_msg("keyring_load: %s", err);
	assert_string_equal(keyring_signing_id(ring), "new");

	/* The old key still verifies what it signed. */
	assert_int_equal(token_parse(old_token, &tok, &reason), 0);
	assert_string_equal(tok.key_id, "old");
	assert_int_equal(token_verify(ring, &tok, "a@b", &reason), 0);
	keyring_free(ring);

	text = read_file(path);
	assert_int_equal(count_lines_with(text, "\nnew "), 1);
	assert_int_equal(count_lines_with(text, "\nold "), 1);
	assert_true(strstr(text, "\nnew ") < strstr(text, "\nold "));
	free(text);
	free(old_token);
}

static void keyfile_add_key_default_id(void **state)
{
	const char *path = test_path("dated");
	char id1[TOKEN_KEYID_MAX + 1];
	char id2[TOKEN_KEYID_MAX + 1];
	char err[512] = "";
	struct keyring *ring;
	size_t i;

	assert_int_equal(keyfile_add_key(path, NULL, id1, sizeof(id1), err, sizeof(err)), 0);
	assert_int_equal(strlen(id1), strlen("k20261204T201500"));
	assert_int_equal(id1[0], 'k');
	assert_int_equal(id1[9], 'T');
	for (i = 1; i < strlen(id1); i++)
		if (i != 9 && (id1[i] < '0' || id1[i] > '9'))
			fail_msg("key id %s is not kYYYYMMDDTHHMMSS", id1);

	/* A second key in the same second gets a suffix, not a duplicate. */
	assert_int_equal(keyfile_add_key(path, NULL, id2, sizeof(id2), err, sizeof(err)), 0);
	assert_string_not_equal(id1, id2);
	ring = keyring_load(path, err, sizeof(err));
	if (ring == NULL)
		fail_msg("keyring_load: %s", err);
	assert_string_equal(keyring_signing_id(ring), id2);
	keyring_free(ring);
}

static void keyfile_add_key_keeps_file(void **state)
{
	const char *path = test_path("kept");
	const char *original = "# site keys\n\nk1 " SECRET_K1 "\n# retired below\nk2 " SECRET_K2;
	char id[TOKEN_KEYID_MAX + 1];
	char err[512] = "";
	struct stat st;
	char *text;

	write_file(path, original, 0640);

	/* As root, give the file another group, as a mail group would have. */
	if (geteuid() == 0)
		assert_int_equal(chown(path, 0, 1), 0);
	assert_int_equal(keyfile_add_key(path, "k3", id, sizeof(id), err, sizeof(err)), 0);

	/* Mode and group survive, so a mail group that could read the keys still can. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	if (geteuid() == 0)
		assert_int_equal(st.st_gid, 1);
	text = read_file(path);
	assert_int_equal(strncmp(text, "# site keys\n\nk3 ", 16), 0);
	assert_non_null(strstr(text, "\nk1 " SECRET_K1 "\n# retired below\nk2 " SECRET_K2));
	free(text);
}

static void keyfile_add_key_rejects(void **state)
{
	const char *path = test_path("refused");
	const char *broken = "k1 " SECRET_K1 "\nk1 " SECRET_K2 "\n";
	char id[TOKEN_KEYID_MAX + 1];
	char err[512] = "";
	char *text;

	write_file(path, "k1 " SECRET_K1 "\n", 0600);
	assert_int_equal(keyfile_add_key(path, "k1", id, sizeof(id), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "key id k1 is already in use"));
	assert_int_equal(keyfile_add_key(path, "bad id", id, sizeof(id), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid key id \"bad id\""));
	assert_int_equal(keyfile_add_key(path, "k2", id, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no room for the key id k2"));

	/* A file that does not load is left as it is. */
	write_file(path, broken, 0600);
	assert_int_equal(keyfile_add_key(path, "k2", id, sizeof(id), err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: duplicate key id k1"));
	text = read_file(path);
	assert_string_equal(text, broken);
	free(text);

	write_file(path, "k1 " SECRET_K1 "\n", 0644);
	assert_int_equal(keyfile_add_key(path, "k2", id, sizeof(id), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 0600"));

	/* A directory that does not exist. */
	assert_int_equal(
	        keyfile_add_key(test_path("nodir/keys"), "k2", id, sizeof(id), err, sizeof(err)),
	        -1);
	assert_non_null(strstr(err, "nodir/keys"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(parse_rejects_malformed),
	        cmocka_unit_test(parse_rejects_null),
	        cmocka_unit_test(parse_accepts_limits),
	        cmocka_unit_test(parse_any_order_trailing_semicolon),
	        cmocka_unit_test(parse_folded_header),
	        cmocka_unit_test(parse_leaves_token_on_error),
	        cmocka_unit_test(parse_nul_ends_value),
	        cmocka_unit_test(id_validators),
	        cmocka_unit_test(normalize_rcpt),
	        cmocka_unit_test(build_verify_round_trip),
	        cmocka_unit_test(verify_rcpt_case_insensitive),
	        cmocka_unit_test(verify_rejects_forgeries),
	        cmocka_unit_test(build_rejects_bad_input),
	        cmocka_unit_test(mac_known_answer),
	        cmocka_unit_test(keyfile_mode_too_open),
	        cmocka_unit_test(keyfile_mode_accepted),
	        cmocka_unit_test(keyfile_missing_names_path),
	        cmocka_unit_test(keyfile_directory_rejected),
	        cmocka_unit_test(keyfile_bad_lines),
	        cmocka_unit_test(keyfile_rejects_nul_and_size),
	        cmocka_unit_test(keyfile_comments_and_crlf),
	        cmocka_unit_test(keyfile_add_key_twice),
	        cmocka_unit_test(keyfile_add_key_default_id),
	        cmocka_unit_test(keyfile_add_key_keeps_file),
	        cmocka_unit_test(keyfile_add_key_rejects),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
