/*
 * addr - syntax of envelope addresses (local@domain).
 *
 * addr_check accepts what an SMTP client may put in MAIL FROM or RCPT TO
 * without angle brackets. That is a local part (a dot-atom or a quoted
 * string), "@", and a domain. The domain is dot-separated letter-digit-
 * hyphen labels or an IPv4 address literal [a.b.c.d]. Limits: 64 octets for the
 * local part, 255 for the domain, 254 for the whole address. Non-ASCII
 * bytes are refused, because messages go out without SMTPUTF8.
 *
 * Errors: addr_check returns a short static reason ("missing @", "local
 * part too long", ...) for the first problem it finds. Nothing here logs.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "alloc.h"

/* Characters of atext (RFC 5322) other than letters and digits. */
static const char addr_atext_specials[] = "!#$%&'*+-/=?^_`{|}~";

static int addr_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* addr_check_dot_atom - reason why local[0..len) is no dot-atom, or NULL. */
static const char *addr_check_dot_atom(const char *s, size_t len)
{
	size_t i;

	if (s[0] == '.')
		return "local part starts with a dot";
	if (s[len - 1] == '.')
		return "local part ends with a dot";
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '.' && s[i + 1] == '.')
			return "two dots in a row in the local part";
		if (c == '.' || addr_is_alnum(c) || strchr(addr_atext_specials, c) != NULL)
			continue;
		return "invalid character in the local part";
	}
	return NULL;
}

/* addr_check_quoted - reason why s[0..len) is no quoted string, or NULL. */
static const char *addr_check_quoted(const char *s, size_t len)
{
	size_t i;

	if (len < 2 || s[len - 1] != '"')
		return "unterminated quoted local part";
	for (i = 1; i < len - 1; i++) {
		unsigned char c = s[i];

		if (c == '\\') {
			i++;
			if (i >= len - 1 || (unsigned char)s[i] < 0x20 ||
			    (unsigned char)s[i] > 0x7e)
				return "invalid escape in the quoted local part";
			continue;
		}
		if (c == '"')
			return "unescaped quote in the quoted local part";
		if (c < 0x20 || c > 0x7e)
			return "invalid character in the quoted local part";
	}
	return NULL;
}

/* addr_check_ipv4 - reason why s[0..len) is no [a.b.c.d] literal, or NULL. */
static const char *addr_check_ipv4(const char *s, size_t len)
{
	size_t i;
	int octets = 0, digits = 0, value = 0;

	if (s[len - 1] != ']')
		return "unterminated address literal";
	for (i = 1; i < len - 1; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			if (digits > 0 && value == 0)
				return "address literal has a leading zero";
			value = value * 10 + (s[i] - '0');
			if (++digits > 3 || value > 255)
				return "address literal octet out of range";
		} else if (s[i] == '.' && digits > 0) {
			octets++;
			digits = value = 0;
		} else {
			return "address literal is not an IPv4 address";
		}
	}
	if (digits == 0 || octets != 3)
		return "address literal is not an IPv4 address";
	return NULL;
}

/* addr_check_domain - reason why s[0..len) is no valid domain, or NULL. */
static const char *addr_check_domain(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0)
		return "missing domain";
	if (len > ADDR_DOMAIN_MAX)
		return "domain too long";
	if (s[0] == '[')
		return addr_check_ipv4(s, len);
	for (i = 0; i <= len; i++) {
		unsigned char c = (i < len) ? s[i] : '.';

		if (c == '.') {
			if (label == 0)
				return "empty domain label";
			if (label > 63)
				return "domain label too long";
			if (s[i - 1] == '-')
				return "domain label ends with a hyphen";
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			return "domain label starts with a hyphen";
		if (!addr_is_alnum(c) && c != '-')
			return "invalid character in the domain";
		label++;
	}
	return NULL;
}

const char *addr_check(const char *addr)
{
	const char *at, *p;
	size_t len = strlen(addr), local_len;

	/* Characters that are never part of an envelope address. */
	for (p = addr; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			return "non-ASCII address (SMTPUTF8 is not supported)";
		if (*p == '\r' || *p == '\n')
			return "line break in the address";
		if (*p == '<' || *p == '>')
			return "angle brackets in the address";
	}
	if (len == 0)
		return "empty address";

	/* The local part ends at the last @ outside a quoted string. */
	at = strrchr(addr, '@');
	if (at == NULL)
		return "missing @";
	local_len = (size_t)(at - addr);
	if (local_len == 0)
		return "missing local part";
	if (local_len > ADDR_LOCAL_MAX)
		return "local part too long";
	if (len - local_len - 1 > ADDR_DOMAIN_MAX)
		return "domain too long";
	if (len > ADDR_TOTAL_MAX)
		return "address too long";
	if (addr[0] == '"') {
		if ((p = addr_check_quoted(addr, local_len)) != NULL)
			return p;
	} else {
		if (memchr(addr, ' ', local_len) != NULL || memchr(addr, '\t', local_len) != NULL)
			return "space in the local part";
		if (memchr(addr, '@', local_len) != NULL)
			return "more than one @";
		if ((p = addr_check_dot_atom(addr, local_len)) != NULL)
			return p;
	}
	return addr_check_domain(at + 1, len - local_len - 1);
}

char *addr_normalize(const char *addr)
{
	char *copy = xstrdup(addr), *p;

	for (p = copy; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = *p - 'A' + 'a';
	return copy;
}
