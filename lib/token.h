/*
 * token - the Mailonce-Token header: build, parse and verify.
 *
 * Header value: "v=1; m=MAILING; s=SEQ; k=KEYID; h=MAC" where MAC is the
 * base64url (no padding) of HMAC-SHA256, cut to 128 bits, over the string
 * "v=1;m=MAILING;s=SEQ;r=RECIPIENT" with the envelope recipient lower-cased
 * (ASCII letters only; the address has no angle brackets). The MAC binds a
 * token to one recipient, so a token copied onto another message cannot
 * suppress somebody else's mail.
 *
 * Parsing is strict: each tag once, no unknown tag, values exactly as the
 * grammar says. White space (SP, HT, CR, LF) is allowed around tags and
 * separators only, so a folded header still parses. Every rejection
 * comes with a short fixed reason string suitable for a log line.
 *
 * MACs are compared in constant time (CRYPTO_memcmp).
 */
#ifndef MAILONCE_TOKEN_H
#define MAILONCE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_HEADER	   "Mailonce-Token"
#define TOKEN_MAILING_MAX  64
#define TOKEN_KEYID_MAX	   32
#define TOKEN_MAC_LEN	   16
#define TOKEN_KEY_LEN	   32
#define TOKEN_SEQ_MAX	   INT64_MAX

struct token {
	char mailing[TOKEN_MAILING_MAX + 1];
	uint64_t seq;
	char key_id[TOKEN_KEYID_MAX + 1];
	unsigned char mac[TOKEN_MAC_LEN];
};

/* A set of HMAC keys read from a KeyFile. */
struct keyring;

/*
 * token_parse - parse a header value. Returns 0, or -1 with *reason set
 * to a static string such as "missing tag m" or "seq has a leading zero".
 */
int token_parse(const char *value, struct token *tok, const char **reason);

/*
 * token_verify - check tok against the key it names and the envelope
 * recipient (with or without angle brackets). Returns 0, or -1 with
 * *reason ("unknown key id", "MAC mismatch", ...).
 */
int token_verify(const struct keyring *ring, const struct token *tok, const char *rcpt,
		 const char **reason);

/*
 * token_build - return the header value for (mailing, seq, rcpt) signed
 * with key_id, or with the keyring's signing key when key_id is NULL.
 * Returns a string to free, or NULL with *reason.
 */
char *token_build(const struct keyring *ring, const char *key_id, const char *mailing,
		  uint64_t seq, const char *rcpt, const char **reason);

/* token_mailing_valid - 1 if s matches [A-Za-z0-9._-]{1,64}. */
int token_mailing_valid(const char *s);

/* token_key_id_valid - 1 if s matches [A-Za-z0-9._-]{1,32}. */
int token_key_id_valid(const char *s);

/*
 * keyring_load - read a key file: one "KEYID BASE64URL-SECRET" per line,
 * "#" comments, at least one key; the first key signs, every key
 * verifies. Refuses a file that is group- or world-writable or
 * world-readable, naming the file and the chmod that fixes it. Returns
 * NULL with the reason in err.
 */
struct keyring *keyring_load(const char *path, char *err, size_t errlen);
void keyring_free(struct keyring *ring);
const char *keyring_signing_id(const struct keyring *ring);

/*
 * keyfile_add_key - create path with mode 0600 holding one fresh random
 * key, or put a fresh key first in an existing file (the new key signs,
 * the old ones still verify). key_id NULL picks one from the date.
 * Writes the id used to key_id_out. Returns 0, or -1 with err.
 */
int keyfile_add_key(const char *path, const char *key_id, char *key_id_out, size_t idlen,
		    char *err, size_t errlen);

/* Lower-case the ASCII letters of an address and drop one pair of <>. */
char *token_normalize_rcpt(const char *rcpt);

#endif
