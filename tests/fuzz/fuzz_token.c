/*
 * fuzz_token - libFuzzer target for token_parse and token_verify.
 *
 * Input: a header value, optionally followed by a NUL byte and the
 * envelope recipient to verify against (default a@example.test). Every
 * value that parses is verified against a fixed ring of two keys, then
 * rebuilt with token_build, and the target aborts unless:
 *
 *   - the rebuilt value parses to the same mailing, seq and key id;
 *   - the rebuilt value verifies for the same recipient;
 *   - the input verified exactly when its MAC equals the rebuilt one.
 *
 * Build: CC=clang configure --enable-fuzz && make tests/fuzz/fuzz_token
 * Run:   tests/fuzz/fuzz_token -max_total_time=60 CORPUS_DIR
 */
#include "config.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "token.h"

static struct keyring *fuzz_ring;

/* fuzz_load_ring - write a key file with two fixed keys, load it, remove it */
static struct keyring *fuzz_load_ring(void)
{
	static const char keys[] = "k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"
	                           "k2 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n";
	char path[] = "/tmp/fuzz_token.XXXXXX";
	struct keyring *ring;
	char err[512];
	int fd;

	fd = mkstemp(path);
	if (fd < 0 || write(fd, keys, sizeof(keys) - 1) != (ssize_t)(sizeof(keys) - 1)) {
		perror("fuzz_token: cannot write the key file");
		abort();
	}
	close(fd);
	ring = keyring_load(path, err, sizeof(err));
	unlink(path);
	if (ring == NULL) {
		fprintf(stderr, "fuzz_token: %s\n", err);
		abort();
	}
	return ring;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_ring = fuzz_load_ring();
	return 0;
}

/* fuzz_check_rebuild - abort unless the parsed token rebuilds to the same fields and MAC */
static void fuzz_check_rebuild(const struct token *tok, const char *rcpt, int verified)
{
	const char *reason = NULL;
	struct token again;
	char *value;

	value = token_build(fuzz_ring, tok->key_id, tok->mailing, tok->seq, rcpt, &reason);
	if (value == NULL) {
		/* Only an unknown key or an empty recipient may stop a parsed token. */
		if (strcmp(reason, "unknown key id") != 0 &&
		    strcmp(reason, "recipient is empty") != 0)
			abort();
		if (verified)
			abort();
		return;
	}
	if (token_parse(value, &again, &reason) != 0)
		abort();
	if (strcmp(again.mailing, tok->mailing) != 0 || again.seq != tok->seq ||
	    strcmp(again.key_id, tok->key_id) != 0)
		abort();
	if (token_verify(fuzz_ring, &again, rcpt, &reason) != 0)
		abort();
	if (verified != (memcmp(again.mac, tok->mac, TOKEN_MAC_LEN) == 0))
		abort();
	free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *rcpt = "a@example.test";
	const char *reason = NULL;
	struct token tok;
	char *input;
	size_t value_len;
	int verified;

	/* The value ends at the first NUL; what follows it is the recipient. */
	input = malloc(size + 1);
	if (input == NULL)
		return 0;
	memcpy(input, data, size);
	input[size] = '\0';
	value_len = strlen(input);
	if (value_len < size)
		rcpt = input + value_len + 1;

	if (token_parse(input, &tok, &reason) != 0) {
		if (reason == NULL || reason[0] == '\0')
			abort();
		free(input);
		return 0;
	}
	if (!token_mailing_valid(tok.mailing) || !token_key_id_valid(tok.key_id) || tok.seq == 0 ||
	    tok.seq > (uint64_t)TOKEN_SEQ_MAX)
		abort();

	verified = token_verify(fuzz_ring, &tok, rcpt, &reason) == 0;
	fuzz_check_rebuild(&tok, rcpt, verified);
	free(input);
	return 0;
}
