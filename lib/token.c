/*
 * token - build, parse and verify the Mailonce-Token header.
 *
 * A token is "v=1; m=MAILING; s=SEQ; k=KEYID; h=MAC". MAC is the first
 * 16 bytes of HMAC-SHA256, keyed with the secret of KEYID, over
 * "v=1;m=MAILING;s=SEQ;r=RECIPIENT", where RECIPIENT is the envelope
 * recipient with its ASCII letters lower-cased and one pair of
 * surrounding angle brackets removed.
 *
 *	token_parse	checks the grammar and fills a struct token.
 *	token_verify	recomputes the MAC for a recipient and compares it in
 *			constant time (CRYPTO_memcmp).
 *	token_build	returns a header value that both of them accept.
 *
 * The grammar token_parse accepts, and nothing else:
 *
 *   - the tags v, m, s, k and h, each exactly once, in any order, separated
 *     by ';', with at most one ';' after the last tag;
 *   - v is "1"; m is [A-Za-z0-9._-]{1,64}; s is a decimal number from 1 to
 *     2^63-1 without sign or leading zero; k is [A-Za-z0-9._-]{1,32}; h is 22
 *     base64url characters without padding whose last character has its 4
 *     unused low bits zero, so each MAC has exactly one spelling;
 *   - white space (SP, HT, CR, LF) only before and after tag names, '=' and
 *     ';', so a folded header parses;
 *   - no other control character and no byte above 0x7f anywhere.
 *
 * Nothing here logs. A rejection returns -1 and sets *reason to a short
 * string for the caller's log line ("missing tag m", "MAC mismatch").
 * Every reason is a constant, except "unknown tag NAME", which lives in a
 * per-thread buffer that the same thread's next token_parse overwrites.
 * Running out of memory ends the program (lib/alloc).
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alloc.h"
#include "keyring.h"
#include "token.h"

enum tag_index { TAG_V, TAG_M, TAG_S, TAG_K, TAG_H, TAG_COUNT };

/* The known tags with their fixed rejection reasons, in the order "missing" is checked. */
static const struct tag_rule {
	char name;
	const char *missing;
	const char *duplicate;
	const char *empty;
} tag_rules[TAG_COUNT] = {
        {'v', "missing tag v", "duplicate tag v", "empty value for tag v"},
        {'m', "missing tag m", "duplicate tag m", "empty value for tag m"},
        {'s', "missing tag s", "duplicate tag s", "empty value for tag s"},
        {'k', "missing tag k", "duplicate tag k", "empty value for tag k"},
        {'h', "missing tag h", "duplicate tag h", "empty value for tag h"},
};

/* The value of one tag as found in the header: not NUL-terminated. */
struct tag_value {
	const char *start;
	size_t len;
	int seen;
};

/* Maximum length of the tag name in "unknown tag NAME"; longer names are cut. */
#define UNKNOWN_TAG_SHOWN 16

static _Thread_local char unknown_tag_reason[sizeof("unknown tag ") + UNKNOWN_TAG_SHOWN];

static const char b64url_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int is_wsp(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_id_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int is_tag_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static const char *skip_wsp(const char *p)
{
	while (is_wsp((unsigned char)*p))
		p++;
	return p;
}

/* b64url_value - the 6-bit value of a base64url character, or -1 */
static int b64url_value(int c)
{
	const char *hit;

	if (c == '\0')
		return -1;
	hit = strchr(b64url_alphabet, c);
	return hit ? (int)(hit - b64url_alphabet) : -1;
}

/* b64url_encode - write B64URL_LEN(len) characters and a NUL to out */
void b64url_encode(const unsigned char *in, size_t len, char *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*out++ = b64url_alphabet[(acc >> bits) & 0x3f];
		}
	}

	/* The last character carries the leftover bits, padded with zeros. */
	if (bits > 0)
		*out++ = b64url_alphabet[(acc << (6 - bits)) & 0x3f];
	*out = '\0';
}

/* b64url_decode - decode exactly outlen bytes from the len characters at s */
enum b64url_status b64url_decode(const char *s, size_t len, unsigned char *out, size_t outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i;
	size_t n = 0;

	for (i = 0; i < len; i++)
		if (b64url_value((unsigned char)s[i]) < 0)
			return B64URL_BAD_CHAR;
	if (len != B64URL_LEN(outlen))
		return B64URL_BAD_LENGTH;

	for (i = 0; i < len; i++) {
		acc = (acc << 6) | (uint32_t)b64url_value((unsigned char)s[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}

	/* Bits left over must be zero, or two spellings would give one MAC. */
	return acc == 0 ? B64URL_OK : B64URL_NOT_CANONICAL;
}

static int id_valid(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len == 0 || len > max)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_id_char((unsigned char)s[i]))
			return 0;
	return 1;
}

int token_mailing_valid(const char *s)
{
	return s != NULL && id_valid(s, strlen(s), TOKEN_MAILING_MAX);
}

int token_key_id_valid(const char *s)
{
	return s != NULL && id_valid(s, strlen(s), TOKEN_KEYID_MAX);
}

/* check_mailing - the reason the mailing id at s is invalid, or NULL */
static const char *check_mailing(const char *s, size_t len)
{
	if (len == 0)
		return "mailing id is empty";
	if (len > TOKEN_MAILING_MAX)
		return "mailing id too long";
	if (!id_valid(s, len, TOKEN_MAILING_MAX))
		return "mailing id has an invalid character";
	return NULL;
}

/* check_seq_number - the reason a numeric seq is outside 1..2^63-1, or NULL */
static const char *check_seq_number(uint64_t seq)
{
	if (seq == 0)
		return "seq is zero";
	if (seq > (uint64_t)TOKEN_SEQ_MAX)
		return "seq out of range";
	return NULL;
}

/* parse_seq - convert the decimal seq at s, or return the reason it is invalid */
static const char *parse_seq(const char *s, size_t len, uint64_t *seq)
{
	uint64_t value = 0;
	size_t i;

	if (s[0] == '+' || s[0] == '-')
		return "seq has a sign";
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return "seq is not a number";
	if (len > 1 && s[0] == '0')
		return "seq has a leading zero";

	/* 2^63-1 has 19 digits, so 19 digits cannot overflow 64 bits. */
	if (len > 19)
		return "seq out of range";
	for (i = 0; i < len; i++)
		value = value * 10 + (uint64_t)(s[i] - '0');
	*seq = value;
	return check_seq_number(value);
}

/* check_bytes - reject a control character other than white space, or an 8-bit byte */
static const char *check_bytes(const char *p)
{
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x80)
			return "8-bit byte in token";
		if ((c < 0x20 || c == 0x7f) && !is_wsp(c))
			return "control character in token";
	}
	return NULL;
}

/* tag_lookup - the index of a known one-letter tag, or TAG_COUNT */
static enum tag_index tag_lookup(const char *name, size_t len)
{
	int i;

	if (len != 1)
		return TAG_COUNT;
	for (i = 0; i < TAG_COUNT; i++)
		if (tag_rules[i].name == name[0])
			return (enum tag_index)i;
	return TAG_COUNT;
}

/* set_unknown_tag - format "unknown tag NAME" in this thread's buffer */
static void set_unknown_tag(const char *name, size_t len)
{
	int shown = len > UNKNOWN_TAG_SHOWN ? UNKNOWN_TAG_SHOWN : (int)len;

	snprintf(unknown_tag_reason, sizeof(unknown_tag_reason), "unknown tag %.*s", shown, name);
}

/*
 * read_tag - read one "name = value" at *pp, leaving *pp after the value
 * and the white space that follows it. Sets *unknown on the first tag
 * that is not v, m, s, k or h, and keeps going so that an unknown
 * version can be reported before it.
 */
static const char *read_tag(const char **pp, struct tag_value vals[TAG_COUNT], const char **unknown,
                            size_t *unknown_len)
{
	const char *p = *pp;
	const char *name = p;
	const char *value;
	size_t name_len;
	enum tag_index idx;

	/* The tag name. */
	while (is_tag_char((unsigned char)*p))
		p++;
	if (p == name && *p == ';')
		return "empty tag";
	if (p == name && *p == '=')
		return "missing tag name";
	if (p == name || (name[0] >= '0' && name[0] <= '9'))
		return "invalid tag name";
	name_len = (size_t)(p - name);
	idx = tag_lookup(name, name_len);

	/* '=' with optional white space around it. */
	p = skip_wsp(p);
	if (*p != '=')
		return "missing '=' after a tag name";
	p = skip_wsp(p + 1);

	/* The value runs up to white space, ';' or the end. */
	value = p;
	while (*p && *p != ';' && !is_wsp((unsigned char)*p))
		p++;
	*pp = skip_wsp(p);
	if (**pp != '\0' && **pp != ';')
		return "white space inside a value";

	if (idx == TAG_COUNT) {
		if (*unknown == NULL) {
			*unknown = name;
			*unknown_len = name_len;
		}
		return NULL;
	}
	if (vals[idx].seen)
		return tag_rules[idx].duplicate;
	if (p == value)
		return tag_rules[idx].empty;
	vals[idx].start = value;
	vals[idx].len = (size_t)(p - value);
	vals[idx].seen = 1;
	return NULL;
}

/* split_tags - find the value of each tag, checking the structure of the list */
static const char *split_tags(const char *value, struct tag_value vals[TAG_COUNT])
{
	const char *p = skip_wsp(value);
	const char *unknown = NULL;
	size_t unknown_len = 0;
	const char *why;

	if (*p == '\0')
		return "empty token";
	while (*p != '\0') {
		why = read_tag(&p, vals, &unknown, &unknown_len);
		if (why != NULL)
			return why;

		/* After a ';', only white space may end the list. */
		if (*p == ';')
			p = skip_wsp(p + 1);
	}

	/* Another version may have other tags, so an unknown version is reported first. */
	if (vals[TAG_V].seen && !(vals[TAG_V].len == 1 && vals[TAG_V].start[0] == '1'))
		return "unknown version";
	if (unknown != NULL) {
		set_unknown_tag(unknown, unknown_len);
		return unknown_tag_reason;
	}
	return NULL;
}

/* check_values - check each value against its grammar and fill tok */
static const char *check_values(const struct tag_value vals[TAG_COUNT], struct token *tok)
{
	const struct tag_value *m = &vals[TAG_M];
	const struct tag_value *k = &vals[TAG_K];
	const struct tag_value *h = &vals[TAG_H];
	const char *why;
	int i;

	for (i = 0; i < TAG_COUNT; i++)
		if (!vals[i].seen)
			return tag_rules[i].missing;

	if ((why = check_mailing(m->start, m->len)) != NULL)
		return why;
	if ((why = parse_seq(vals[TAG_S].start, vals[TAG_S].len, &tok->seq)) != NULL)
		return why;
	if (!id_valid(k->start, k->len, TOKEN_KEYID_MAX))
		return "key id invalid";

	switch (b64url_decode(h->start, h->len, tok->mac, TOKEN_MAC_LEN)) {
	case B64URL_OK:
		break;
	case B64URL_BAD_CHAR:
		return "MAC is not base64url";
	case B64URL_BAD_LENGTH:
		return "MAC has the wrong length";
	case B64URL_NOT_CANONICAL:
		return "MAC is not canonical";
	}

	memcpy(tok->mailing, m->start, m->len);
	tok->mailing[m->len] = '\0';
	memcpy(tok->key_id, k->start, k->len);
	tok->key_id[k->len] = '\0';
	return NULL;
}

/* token_parse - parse a header value into tok, or give the reason it is invalid */
int token_parse(const char *value, struct token *tok, const char **reason)
{
	struct tag_value vals[TAG_COUNT];
	struct token parsed;
	const char *why;

	memset(vals, 0, sizeof(vals));
	memset(&parsed, 0, sizeof(parsed));
	if (value == NULL)
		why = "empty token";
	else if ((why = check_bytes(value)) == NULL && (why = split_tags(value, vals)) == NULL)
		why = check_values(vals, &parsed);

	/* tok is written only for a valid token. */
	if (why != NULL) {
		*reason = why;
		return -1;
	}
	*tok = parsed;
	return 0;
}

/* token_normalize_rcpt - lower-case the ASCII letters and drop one pair of <> */
char *token_normalize_rcpt(const char *rcpt)
{
	size_t len;
	char *out;
	char *p;

	if (rcpt == NULL)
		return NULL;
	len = strlen(rcpt);
	if (len >= 2 && rcpt[0] == '<' && rcpt[len - 1] == '>')
		out = xstrndup(rcpt + 1, len - 2);
	else
		out = xstrdup(rcpt);

	/* Bytes above 0x7f (an SMTPUTF8 address) are kept as they are. */
	for (p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}

/*
 * token_mac - compute the 16-byte MAC of (mailing, seq, rcpt), rcpt
 * already normalized. The recipient comes last and m and s cannot hold
 * ';', so no two inputs share a canonical string.
 */
static const char *token_mac(const unsigned char *secret, const char *mailing, uint64_t seq,
                             const char *rcpt, unsigned char mac[TOKEN_MAC_LEN])
{
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int full_len = 0;
	char *input;
	const char *why = NULL;

	input = xasprintf("v=1;m=%s;s=%" PRIu64 ";r=%s", mailing, seq, rcpt);
	if (HMAC(EVP_sha256(), secret, TOKEN_KEY_LEN, (const unsigned char *)input, strlen(input),
	         full, &full_len) == NULL ||
	    full_len < TOKEN_MAC_LEN)
		why = "HMAC-SHA256 failed in OpenSSL";
	else
		memcpy(mac, full, TOKEN_MAC_LEN);

	OPENSSL_cleanse(full, sizeof(full));
	free(input);
	return why;
}

/* token_mac_for - normalize rcpt, then compute the MAC of (mailing, seq, rcpt) */
static const char *token_mac_for(const unsigned char *secret, const char *mailing, uint64_t seq,
                                 const char *rcpt, unsigned char mac[TOKEN_MAC_LEN])
{
	char *norm = token_normalize_rcpt(rcpt);
	const char *why;

	if (norm == NULL || norm[0] == '\0')
		why = "recipient is empty";
	else
		why = token_mac(secret, mailing, seq, norm, mac);
	free(norm);
	return why;
}

/* token_verify - check tok's MAC with the key it names for the envelope recipient rcpt */
int token_verify(const struct keyring *ring, const struct token *tok, const char *rcpt,
                 const char **reason)
{
	unsigned char mac[TOKEN_MAC_LEN];
	const unsigned char *secret;
	const char *why;

	/* A struct token from somewhere other than token_parse gets the same checks. */
	if ((why = check_mailing(tok->mailing, strnlen(tok->mailing, sizeof(tok->mailing)))) !=
	            NULL ||
	    (why = check_seq_number(tok->seq)) != NULL)
		goto fail;
	if (ring == NULL || strnlen(tok->key_id, sizeof(tok->key_id)) == sizeof(tok->key_id) ||
	    (secret = keyring_find(ring, tok->key_id)) == NULL) {
		why = "unknown key id";
		goto fail;
	}

	if ((why = token_mac_for(secret, tok->mailing, tok->seq, rcpt, mac)) != NULL)
		goto fail;
	if (CRYPTO_memcmp(mac, tok->mac, TOKEN_MAC_LEN) != 0) {
		why = "MAC mismatch";
		goto fail;
	}
	return 0;

fail:
	*reason = why;
	return -1;
}

/* token_build - return the signed header value for (mailing, seq, rcpt) */
char *token_build(const struct keyring *ring, const char *key_id, const char *mailing, uint64_t seq,
                  const char *rcpt, const char **reason)
{
	unsigned char mac[TOKEN_MAC_LEN];
	char mac_text[B64URL_LEN(TOKEN_MAC_LEN) + 1];
	const unsigned char *secret = NULL;
	const char *why;

	/* The same checks token_parse makes, so a built token always parses. */
	if (mailing == NULL)
		mailing = "";
	if ((why = check_mailing(mailing, strlen(mailing))) != NULL ||
	    (why = check_seq_number(seq)) != NULL)
		goto fail;
	if (ring != NULL && ring->count > 0)
		key_id = key_id ? key_id : ring->keys[0].id;
	if (key_id == NULL || (secret = keyring_find(ring, key_id)) == NULL) {
		why = "unknown key id";
		goto fail;
	}

	if ((why = token_mac_for(secret, mailing, seq, rcpt, mac)) != NULL)
		goto fail;
	b64url_encode(mac, sizeof(mac), mac_text);
	return xasprintf("v=1; m=%s; s=%" PRIu64 "; k=%s; h=%s", mailing, seq, key_id, mac_text);

fail:
	*reason = why;
	return NULL;
}
