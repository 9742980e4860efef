/*
 * keyring - what token.c and keyfile.c share and no other module needs.
 *
 * struct keyring is opaque to every other module: programs get one from
 * keyring_load and hand it to token_build and token_verify. The base64url
 * codec lives in token.c and serves both the MAC in a token and the
 * secrets in a key file.
 */
#ifndef MAILONCE_KEYRING_H
#define MAILONCE_KEYRING_H

#include <stddef.h>

#include "token.h"

struct keyring_key {
	char id[TOKEN_KEYID_MAX + 1];
	unsigned char secret[TOKEN_KEY_LEN];
	unsigned line; /* line of the key file, for "duplicate key id" errors */
};

/* Keys in file order: keys[0] signs, every key verifies. count >= 1. */
struct keyring {
	struct keyring_key *keys;
	size_t count;
};

/* keyring_find - the secret of key id, or NULL when the ring has no such key. */
const unsigned char *keyring_find(const struct keyring *ring, const char *id);

/* Number of base64url characters, without padding, that encode n bytes. */
#define B64URL_LEN(n) (((n)*8 + 5) / 6)

enum b64url_status {
	B64URL_OK,
	B64URL_BAD_CHAR,     /* a byte outside A-Z a-z 0-9 - _ (padding included) */
	B64URL_BAD_LENGTH,   /* not B64URL_LEN(outlen) characters */
	B64URL_NOT_CANONICAL /* the unused low bits of the last character are not zero */
};

/* b64url_encode - write B64URL_LEN(len) characters and a NUL to out. */
void b64url_encode(const unsigned char *in, size_t len, char *out);

/* b64url_decode - decode exactly outlen bytes from the len characters at s. */
enum b64url_status b64url_decode(const char *s, size_t len, unsigned char *out, size_t outlen);

#endif
