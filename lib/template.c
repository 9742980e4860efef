/*
 * template - an RFC 5322 message with {{field}} placeholders.
 *
 * template_parse reads the message once: header fields, and for a MIME
 * multipart body its parts, recursively (at most TEMPLATE_DEPTH_MAX
 * levels). Text parts encoded quoted-printable or base64 are decoded here
 * so that placeholders can be found and replaced in the text itself. Line
 * ends are kept as LF inside and written as CRLF by template_render.
 *
 * Placeholders are replaced in every header field of the message and in
 * the body of "text" parts. The header fields of body parts and the other
 * parts go out unchanged. A "{{" that is followed by "}}" on the same line
 * but not by a valid name is a parse error, so a typo cannot go out
 * unnoticed. A "{{" with no "}}" on its line is plain text.
 *
 * Header fields that need no change keep their original lines. The others
 * are written again. Each run of words with non-ASCII bytes becomes RFC
 * 2047 encoded-words of UTF-8 (Q or B, whichever is shorter), at most 75
 * characters each and never splitting a character. A value that looks
 * like an encoded-word is encoded too, so that it reads back as typed,
 * while encoded-words written in the template itself go out as they are.
 * In address fields only display names are encoded, never the address;
 * in other structured fields (Message-ID, Date, Content-*, List-*, ...)
 * non-ASCII is an error. Lines are folded at white space before 78
 * characters where possible. A word that would make a line pass 998
 * characters is an error.
 *
 * A text part that gets a non-ASCII value is declared charset=utf-8. Its
 * transfer encoding becomes 8bit unless it is quoted-printable or base64,
 * which are encoded again. A part whose lines would pass 998 octets is
 * sent quoted-printable.
 *
 * Errors: template_parse, template_check and template_render return NULL
 * or -1 with a message in err. template_render names the CSV field and
 * the header field when a value would put a line break into a header.
 * Nothing here logs, and out of memory is fatal through the allocation
 * wrappers.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "template.h"

#define TEMPLATE_DEPTH_MAX 10
#define HEADER_FOLD_AT     76  /* fold before a line passes this many characters */
#define HEADER_LINE_MAX    998 /* hard limit of RFC 5322, without CRLF */
#define ENCODED_WORD_MAX   75  /* RFC 2047 */
#define BODY_LINE_MAX      998

enum cte { CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_QP, CTE_BASE64, CTE_OTHER };

struct header {
	char *name;
	char *value; /* unfolded, leading white space removed */
	char *raw;   /* the original lines, LF line ends */
	int dynamic; /* has a placeholder or non-ASCII bytes: must be written again */
};

struct part {
	struct header *headers;
	size_t nheaders;
	int multipart;
	char *boundary;
	char *preamble; /* lines before the first boundary, LF */
	char *epilogue; /* lines after the closing boundary, LF */
	struct part **children;
	size_t nchildren;
	int text; /* a "text" leaf: placeholders are replaced */
	enum cte cte;
	char *charset; /* lower case, NULL when not given */
	char *body;    /* decoded for text parts, LF line ends */
	size_t bodylen;
};

/* clang-format would take "template" for the C++ keyword. */
/* clang-format off */
struct template {
	struct part *root;
	char **names; /* placeholder names, each once, in order of appearance */
	size_t nnames;
};
/* clang-format on */

static void template_error(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void template_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int has_8bit(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Placeholders. */

static int placeholder_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/*
 * placeholder_scan - look at a "{{" at s (end at end). Returns 1 with the
 * name span and total length when it is a placeholder, 0 when it is plain
 * text, -1 when it looks like a placeholder with an invalid name.
 */
static int placeholder_scan(const char *s, const char *end, const char **name, size_t *namelen,
                            size_t *total)
{
	const char *p = s + 2, *close;

	for (close = p; close + 1 < end && *close != '\n'; close++)
		if (close[0] == '}' && close[1] == '}')
			break;
	if (close + 1 >= end || *close == '\n')
		return 0;
	while (p < close && *p == ' ')
		p++;
	*name = p;
	while (p < close && placeholder_char((unsigned char)*p))
		p++;
	*namelen = (size_t)(p - *name);
	while (p < close && *p == ' ')
		p++;
	if (p != close || *namelen == 0)
		return -1;
	*total = (size_t)(close + 2 - s);
	return 1;
}

/* template_collect - record the placeholder names of text; -1 on a bad one. */
static int template_collect(struct template *t, const char *text, size_t len, const char *where,
                            char *err, size_t errlen)
{
	const char *p = text, *end = text + len, *name;
	size_t namelen, total, i;
	int rc;

	while ((p = memmem(p, (size_t)(end - p), "{{", 2)) != NULL) {
		rc = placeholder_scan(p, end, &name, &namelen, &total);
		if (rc < 0) {
			const char *eol = memchr(p, '\n', (size_t)(end - p));
			int show = (int)((eol ? eol : end) - p);

			template_error(err, errlen,
			               "invalid placeholder in %s: \"%.*s\"; a placeholder is "
			               "{{name}} with letters, digits, '_', '.' or '-'",
			               where, show > 60 ? 60 : show, p);
			return -1;
		}
		if (rc == 0) {
			p += 2;
			continue;
		}
		for (i = 0; i < t->nnames; i++)
			if (strlen(t->names[i]) == namelen &&
			    memcmp(t->names[i], name, namelen) == 0)
				break;
		if (i == t->nnames) {
			t->names = xrealloc(t->names, (t->nnames + 1) * sizeof(*t->names));
			t->names[t->nnames++] = xstrndup(name, namelen);
		}
		p += total;
	}
	return 0;
}

/*
 * Substitution context: which header field (NULL in a body) the text goes
 * into, and whether a value with non-ASCII bytes was inserted.
 */
struct subst {
	const struct fields *fields;
	const char *header; /* header field name, or NULL for body text */
	int inserted_8bit;
	struct buf *origin; /* if set, gets 'T' (template) or 'V' (value) per output byte */
	char *err;
	size_t errlen;
};

/* subst_value - append a field value; in a body, line breaks become LF. */
static int subst_value(struct subst *s, struct buf *out, const char *fname, const char *value)
{
	const char *v;

	if (s->header != NULL && strpbrk(value, "\r\n") != NULL) {
		template_error(s->err, s->errlen,
		               "the value of field \"%s\" contains a line break, which cannot go "
		               "into the %s header; remove it from the recipient list",
		               fname, s->header);
		return -1;
	}
	if (has_8bit(value, strlen(value)))
		s->inserted_8bit = 1;
	for (v = value; *v; v++) {
		if (*v == '\r') {
			buf_putc(out, '\n');
			if (v[1] == '\n')
				v++;
		} else {
			buf_putc(out, *v);
		}
		if (s->origin != NULL)
			buf_putc(s->origin, 'V');
	}
	return 0;
}

/* subst_template - append template text, marked as such when origins are kept. */
static void subst_template(struct subst *s, struct buf *out, const char *text, size_t len)
{
	size_t i;

	buf_append(out, text, len);
	for (i = 0; s->origin != NULL && i < len; i++)
		buf_putc(s->origin, 'T');
}

/* subst_text - append text with its placeholders replaced. */
static int subst_text(struct subst *s, struct buf *out, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *hit, *name, *value;
	size_t namelen, total;
	char fname[256];

	buf_append(out, "", 0);
	while ((hit = memmem(p, (size_t)(end - p), "{{", 2)) != NULL) {
		subst_template(s, out, p, (size_t)(hit - p));
		if (placeholder_scan(hit, end, &name, &namelen, &total) <= 0) {
			subst_template(s, out, hit, 2);
			p = hit + 2;
			continue;
		}
		snprintf(fname, sizeof(fname), "%.*s", (int)namelen, name);
		value = fields_get(s->fields, fname);
		if (value == NULL) {
			template_error(s->err, s->errlen,
			               "no value for placeholder {{%s}}; add a \"%s\" column to "
			               "the recipient list",
			               fname, fname);
			return -1;
		}
		if (subst_value(s, out, fname, value) != 0)
			return -1;
		p = hit + total;
	}
	subst_template(s, out, p, (size_t)(end - p));
	return 0;
}

/* Parsing. */

/* template_normalize - a copy of text with LF line ends; NULL on NUL or bare CR. */
static char *template_normalize(const char *text, size_t len, size_t *outlen, char *err,
                                size_t errlen)
{
	struct buf b = BUF_INIT;
	size_t i, line = 1;

	buf_append(&b, "", 0);
	for (i = 0; i < len; i++) {
		if (text[i] == '\0') {
			template_error(err, errlen, "line %zu: the message contains a NUL byte",
			               line);
			buf_free(&b);
			return NULL;
		}
		if (text[i] == '\r') {
			if (i + 1 < len && text[i + 1] == '\n')
				continue;
			template_error(err, errlen,
			               "line %zu: a carriage return not followed by a line feed",
			               line);
			buf_free(&b);
			return NULL;
		}
		if (text[i] == '\n')
			line++;
		buf_putc(&b, text[i]);
	}
	*outlen = b.len;
	return buf_steal(&b);
}

static const struct header *part_header(const struct part *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nheaders; i++)
		if (strcasecmp(p->headers[i].name, name) == 0)
			return &p->headers[i];
	return NULL;
}

/* header_add - add one field from its raw lines (LF ends, folding kept). */
static int header_add(struct part *p, const char *raw, size_t len, char *err, size_t errlen)
{
	const char *colon = memchr(raw, ':', len);
	struct header *h;
	struct buf value = BUF_INIT;
	size_t i, namelen;

	if (colon == NULL || colon == raw) {
		template_error(err, errlen,
		               "invalid header line \"%.*s\"; expected \"Name: value\"",
		               (int)(len > 60 ? 60 : len - 1), raw);
		return -1;
	}
	namelen = (size_t)(colon - raw);
	for (i = 0; i < namelen; i++) {
		if ((unsigned char)raw[i] <= ' ' || (unsigned char)raw[i] >= 0x7f) {
			template_error(err, errlen, "invalid header field name \"%.*s\"",
			               (int)namelen, raw);
			return -1;
		}
	}

	/* Unfold: drop each line break, keep the white space after it. */
	for (i = namelen + 1; i < len; i++)
		if (raw[i] != '\n')
			buf_putc(&value, raw[i]);
	buf_append(&value, "", 0);
	p->headers = xrealloc(p->headers, (p->nheaders + 1) * sizeof(*p->headers));
	h = &p->headers[p->nheaders++];
	h->name = xstrndup(raw, namelen);
	for (i = 0; is_wsp(value.data[i]); i++)
		;
	h->value = xstrdup(value.data + i);
	while (*h->value && is_wsp(h->value[strlen(h->value) - 1]))
		h->value[strlen(h->value) - 1] = '\0';
	h->raw = xstrndup(raw, len);
	h->dynamic = strstr(h->value, "{{") != NULL || has_8bit(h->value, strlen(h->value)) ||
	             len > HEADER_LINE_MAX + 1;
	buf_free(&value);
	return 0;
}

/* part_parse_headers - read the header block; *body gets where the body starts. */
static int part_parse_headers(struct part *p, const char *s, size_t len, size_t *body, char *err,
                              size_t errlen)
{
	size_t pos = 0, start, eol;

	while (pos < len && s[pos] != '\n') {
		start = pos;
		do {
			const char *nl = memchr(s + pos, '\n', len - pos);

			eol = nl ? (size_t)(nl - s) + 1 : len;
			pos = eol;
		} while (pos < len && is_wsp(s[pos]));
		if (s[eol - 1] != '\n') {
			/* A last line without a line break: treat it as if it had one. */
			char *copy = xasprintf("%.*s\n", (int)(eol - start), s + start);
			int rc = header_add(p, copy, eol - start + 1, err, errlen);

			free(copy);
			if (rc != 0)
				return -1;
			continue;
		}
		if (header_add(p, s + start, eol - start, err, errlen) != 0)
			return -1;
	}
	*body = pos < len ? pos + 1 : len;
	return 0;
}

/* content_param - the value of parameter name in a Content-Type value, or NULL. */
static char *content_param(const char *value, const char *name)
{
	const char *p = value;
	size_t n = strlen(name);
	struct buf b = BUF_INIT;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (is_wsp(*p))
			p++;
		if (strncasecmp(p, name, n) != 0 || (p[n] != '=' && !is_wsp(p[n])))
			continue;
		p += n;
		while (is_wsp(*p))
			p++;
		if (*p++ != '=')
			continue;
		while (is_wsp(*p))
			p++;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				buf_putc(&b, *p);
			}
		} else {
			while (*p && *p != ';' && !is_wsp(*p))
				buf_putc(&b, *p++);
		}
		buf_append(&b, "", 0);
		return buf_steal(&b);
	}
	return NULL;
}

/* content_type - the lower-cased "type/subtype" of a part (text/plain by default). */
static char *content_type(const struct part *p)
{
	const struct header *h = part_header(p, "Content-Type");
	char *type, *q;
	size_t n;

	if (h == NULL)
		return xstrdup("text/plain");
	n = strcspn(h->value, "; \t(");
	type = xstrndup(h->value, n);
	for (q = type; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q += 'a' - 'A';
	return type;
}

static enum cte content_transfer_encoding(const struct part *p)
{
	const struct header *h = part_header(p, "Content-Transfer-Encoding");

	if (h == NULL || strcasecmp(h->value, "7bit") == 0)
		return CTE_7BIT;
	if (strcasecmp(h->value, "8bit") == 0)
		return CTE_8BIT;
	if (strcasecmp(h->value, "binary") == 0)
		return CTE_BINARY;
	if (strcasecmp(h->value, "quoted-printable") == 0)
		return CTE_QP;
	if (strcasecmp(h->value, "base64") == 0)
		return CTE_BASE64;
	return CTE_OTHER;
}

/* Transfer encodings. */

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* qp_decode - decode quoted-printable text (LF line ends) into out. */
static void qp_decode(const char *s, size_t len, struct buf *out)
{
	size_t i = 0, eol, end;
	int soft;

	buf_append(out, "", 0);
	while (i < len) {
		const char *nl = memchr(s + i, '\n', len - i);

		eol = nl ? (size_t)(nl - s) : len;

		/* Trailing white space on an encoded line is not part of the text. */
		end = eol;
		while (end > i && is_wsp(s[end - 1]))
			end--;
		soft = 0;
		for (; i < end; i++) {
			if (s[i] != '=') {
				buf_putc(out, s[i]);
			} else if (i + 1 == end) {
				soft = 1;
				break;
			} else if (i + 2 < end && hex_value(s[i + 1]) >= 0 &&
			           hex_value(s[i + 2]) >= 0) {
				buf_putc(out, hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
				i += 2;
			} else {
				buf_putc(out, '='); /* not an escape: keep it as it is */
			}
		}
		if (nl != NULL && !soft)
			buf_putc(out, '\n');
		i = eol + 1;
	}
}

/* qp_encode - encode text (LF line ends) as quoted-printable with CRLF. */
static void qp_encode(const char *s, size_t len, struct buf *out)
{
	size_t i, col = 0;
	char enc[4];

	for (i = 0; i < len; i++) {
		unsigned char c = s[i];
		int last = (i + 1 == len || s[i + 1] == '\n');

		if (c == '\n') {
			buf_puts(out, "\r\n");
			col = 0;
			continue;
		}
		if ((c >= 33 && c <= 126 && c != '=') || (is_wsp(c) && !last))
			snprintf(enc, sizeof(enc), "%c", c);
		else
			snprintf(enc, sizeof(enc), "=%02X", c);

		/* Keep encoded lines at 76 characters, the soft break included. */
		if (col + strlen(enc) > 75 && !(last && col + strlen(enc) <= 76)) {
			buf_puts(out, "=\r\n");
			col = 0;
		}
		buf_puts(out, enc);
		col += strlen(enc);
	}
}

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_decode - decode base64, skipping white space; -1 on other bytes. */
static int b64_decode(const char *s, size_t len, struct buf *out)
{
	unsigned acc = 0;
	int bits = 0;
	size_t i;
	const char *q;

	buf_append(out, "", 0);
	for (i = 0; i < len; i++) {
		if (s[i] == '\n' || is_wsp(s[i]))
			continue;
		if (s[i] == '=')
			break;
		q = strchr(b64_alphabet, s[i]);
		if (q == NULL || s[i] == '\0')
			return -1;
		acc = (acc << 6) | (unsigned)(q - b64_alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_putc(out, (acc >> bits) & 0xff);
		}
	}
	return 0;
}

/* b64_encode - base64 of s; line_len 0 for one line, else CRLF every line_len. */
static void b64_encode(const unsigned char *s, size_t len, size_t line_len, struct buf *out)
{
	size_t i, col = 0;

	for (i = 0; i < len; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		char q[5];

		if (i + 1 < len)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < len)
			v |= s[i + 2];
		q[0] = b64_alphabet[(v >> 18) & 63];
		q[1] = b64_alphabet[(v >> 12) & 63];
		q[2] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? b64_alphabet[v & 63] : '=';
		q[4] = '\0';
		if (line_len > 0 && col + 4 > line_len) {
			buf_puts(out, "\r\n");
			col = 0;
		}
		buf_puts(out, q);
		col += 4;
	}
	if (line_len > 0 && col > 0)
		buf_puts(out, "\r\n");
}

/* text_lf - a copy of decoded text with CRLF and lone CR turned into LF. */
static void text_lf(struct buf *b)
{
	size_t i, j = 0;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\r') {
			b->data[j++] = '\n';
			if (i + 1 < b->len && b->data[i + 1] == '\n')
				i++;
		} else {
			b->data[j++] = b->data[i];
		}
	}
	b->len = j;
	if (b->data)
		b->data[j] = '\0';
}

/* Parts. */

static struct part *part_parse(const char *s, size_t len, int depth, char *err, size_t errlen);
static void part_free(struct part *p);

/* boundary_line - 1 for "--b", 2 for "--b--" at line s[0..n), else 0. */
static int boundary_line(const char *s, size_t n, const char *b)
{
	size_t blen = strlen(b);

	if (n < blen + 2 || s[0] != '-' || s[1] != '-' || memcmp(s + 2, b, blen) != 0)
		return 0;
	s += blen + 2;
	n -= blen + 2;
	if (n >= 2 && s[0] == '-' && s[1] == '-') {
		s += 2;
		n -= 2;
		while (n > 0 && is_wsp(*s))
			s++, n--;
		return n == 0 ? 2 : 0;
	}
	while (n > 0 && is_wsp(*s))
		s++, n--;
	return n == 0 ? 1 : 0;
}

/* part_split - cut a multipart body into preamble, children and epilogue. */
static int part_split(struct part *p, const char *s, size_t len, int depth, char *err,
                      size_t errlen)
{
	size_t pos = 0, eol, start = 0;
	int in_part = 0, kind;
	struct part *child;

	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);

		eol = nl ? (size_t)(nl - s) : len;
		kind = boundary_line(s + pos, eol - pos, p->boundary);
		if (kind == 0) {
			pos = nl ? eol + 1 : len;
			continue;
		}

		/* The line break before a boundary belongs to the boundary. */
		if (!in_part) {
			p->preamble = xstrndup(s, pos);
		} else {
			child = part_parse(s + start, pos > start ? pos - start - 1 : 0, depth + 1,
			                   err, errlen);
			if (child == NULL)
				return -1;
			p->children =
			        xrealloc(p->children, (p->nchildren + 1) * sizeof(*p->children));
			p->children[p->nchildren++] = child;
		}
		pos = nl ? eol + 1 : len;
		if (kind == 2) {
			p->epilogue = xstrndup(s + pos, len - pos);
			return 0;
		}
		in_part = 1;
		start = pos;
	}
	template_error(err, errlen, "the multipart body has no closing boundary \"--%s--\"",
	               p->boundary);
	return -1;
}

/* part_leaf - keep the body of a single part, decoded when it is text. */
static int part_leaf(struct part *p, const char *s, size_t len, char *err, size_t errlen)
{
	struct buf b = BUF_INIT;
	char *type = content_type(p);

	p->text = strncmp(type, "text/", 5) == 0;
	p->cte = content_transfer_encoding(p);
	p->charset = content_param(
	        part_header(p, "Content-Type") ? part_header(p, "Content-Type")->value : "",
	        "charset");
	if (p->charset != NULL) {
		char *c;

		for (c = p->charset; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c += 'a' - 'A';
	}
	if (p->text && p->cte == CTE_OTHER) {
		template_error(err, errlen, "the %s part has an unknown Content-Transfer-Encoding",
		               type);
		free(type);
		return -1;
	}
	if (p->text && p->cte == CTE_QP) {
		qp_decode(s, len, &b);
	} else if (p->text && p->cte == CTE_BASE64) {
		if (b64_decode(s, len, &b) != 0) {
			template_error(err, errlen, "the %s part is not valid base64", type);
			buf_free(&b);
			free(type);
			return -1;
		}
		text_lf(&b);
	} else {
		buf_append(&b, s, len);
	}
	free(type);
	p->bodylen = b.len;
	p->body = buf_steal(&b);
	return 0;
}

/* part_parse - parse one entity: header fields and body, recursively. */
static struct part *part_parse(const char *s, size_t len, int depth, char *err, size_t errlen)
{
	struct part *p = xcalloc(1, sizeof(*p));
	size_t body;
	char *type = NULL;

	if (depth > TEMPLATE_DEPTH_MAX) {
		template_error(err, errlen, "multipart nesting deeper than %d levels",
		               TEMPLATE_DEPTH_MAX);
		goto fail;
	}
	if (part_parse_headers(p, s, len, &body, err, errlen) != 0)
		goto fail;
	type = content_type(p);
	if (strncmp(type, "multipart/", 10) == 0) {
		p->multipart = 1;
		p->boundary = content_param(part_header(p, "Content-Type")->value, "boundary");
		if (p->boundary == NULL || p->boundary[0] == '\0') {
			template_error(err, errlen, "the %s part has no boundary parameter", type);
			goto fail;
		}
		if (part_split(p, s + body, len - body, depth, err, errlen) != 0)
			goto fail;
	} else if (part_leaf(p, s + body, len - body, err, errlen) != 0) {
		goto fail;
	}
	free(type);
	return p;

fail:
	free(type);
	part_free(p);
	return NULL;
}

static void part_free(struct part *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nheaders; i++) {
		free(p->headers[i].name);
		free(p->headers[i].value);
		free(p->headers[i].raw);
	}
	free(p->headers);
	for (i = 0; i < p->nchildren; i++)
		part_free(p->children[i]);
	free(p->children);
	free(p->boundary);
	free(p->preamble);
	free(p->epilogue);
	free(p->charset);
	free(p->body);
	free(p);
}

/* template_collect_part - gather placeholder names of a part and below. */
static int template_collect_part(struct template *t, const struct part *p, int top, char *err,
                                 size_t errlen)
{
	char where[300];
	size_t i;

	for (i = 0; top && i < p->nheaders; i++) {
		snprintf(where, sizeof(where), "the %s header", p->headers[i].name);
		if (template_collect(t, p->headers[i].value, strlen(p->headers[i].value), where,
		                     err, errlen) != 0)
			return -1;
	}
	if (p->text && template_collect(t, p->body, p->bodylen, "a text part", err, errlen) != 0)
		return -1;
	for (i = 0; i < p->nchildren; i++)
		if (template_collect_part(t, p->children[i], 0, err, errlen) != 0)
			return -1;
	return 0;
}

struct template *template_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct template *t;
	size_t normlen;
	char *norm = template_normalize(text, len, &normlen, err, errlen);

	if (norm == NULL)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->root = part_parse(norm, normlen, 0, err, errlen);
	free(norm);
	if (t->root == NULL || template_collect_part(t, t->root, 1, err, errlen) != 0) {
		template_free(t);
		return NULL;
	}
	if (t->root->nheaders == 0) {
		template_error(err, errlen, "the message has no header fields");
		template_free(t);
		return NULL;
	}
	return t;
}

void template_free(struct template *t)
{
	size_t i;

	if (t == NULL)
		return;
	part_free(t->root);
	for (i = 0; i < t->nnames; i++)
		free(t->names[i]);
	free(t->names);
	free(t);
}

int template_check(const struct template *t, const char *const *columns, size_t ncolumns, char *err,
                   size_t errlen)
{
	size_t i, j;

	for (i = 0; i < t->nnames; i++) {
		for (j = 0; j < ncolumns; j++)
			if (strcmp(t->names[i], columns[j]) == 0)
				break;
		if (j == ncolumns) {
			template_error(err, errlen,
			               "placeholder {{%s}} has no column in the recipient list; "
			               "add a \"%s\" column or remove the placeholder",
			               t->names[i], t->names[i]);
			return -1;
		}
	}
	return 0;
}

/* Header fields: encoding and folding. */

/* A header field being written again, with the column of its last line. */
struct hwriter {
	struct buf *out;
	size_t col;
	size_t name_end; /* column after "Name:"; no fold before it */
	const char *name;
	char *err;
	size_t errlen;
};

/* hw_word - append white space and a word, folding before them when the line gets long. */
static int hw_word(struct hwriter *w, const char *sep, size_t seplen, const char *word, size_t wlen)
{
	if (seplen > 0 && w->col > w->name_end && w->col + seplen + wlen > HEADER_FOLD_AT) {
		buf_puts(w->out, "\r\n");
		w->col = 0;
	}
	buf_append(w->out, sep, seplen);
	buf_append(w->out, word, wlen);
	w->col += seplen + wlen;
	if (w->col > HEADER_LINE_MAX) {
		template_error(w->err, w->errlen,
		               "the %s header has a word too long to fold into lines of %d "
		               "characters; shorten the value",
		               w->name, HEADER_LINE_MAX);
		return -1;
	}
	return 0;
}

static size_t utf8_len(const char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n = 1;

	if (c >= 0xf0 && c <= 0xf7)
		n = 4;
	else if (c >= 0xe0)
		n = 3;
	else if (c >= 0xc0)
		n = 2;
	return n <= left ? n : left;
}

/* q_literal - 1 if c may stand for itself in a Q encoded-word (phrase: stricter set). */
static int q_literal(unsigned char c, int phrase)
{
	if (phrase)
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       strchr("!*+-/", c) != NULL;
	return c > 32 && c < 127 && c != '=' && c != '?' && c != '_';
}

static size_t q_size(const char *s, size_t len, int phrase)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += (s[i] == ' ' || q_literal((unsigned char)s[i], phrase)) ? 1 : 3;
	return n;
}

/* encoded_word - append "=?UTF-8?X?...?=" for s[0..len) to out. */
static void encoded_word(struct buf *out, const char *s, size_t len, int use_b, int phrase)
{
	size_t i;

	buf_puts(out, use_b ? "=?UTF-8?B?" : "=?UTF-8?Q?");
	if (use_b) {
		b64_encode((const unsigned char *)s, len, 0, out);
	} else {
		for (i = 0; i < len; i++) {
			unsigned char c = s[i];

			if (c == ' ')
				buf_putc(out, '_');
			else if (q_literal(c, phrase))
				buf_putc(out, c);
			else
				buf_printf(out, "=%02X", c);
		}
	}
	buf_puts(out, "?=");
}

/*
 * hw_encoded - write text as encoded-words separated by spaces, the first
 * after sep. Each word fits the rest of the current line when that leaves
 * room for a character, else a line of its own, and ends on a character
 * boundary.
 */
static int hw_encoded(struct hwriter *w, const char *sep, size_t seplen, const char *text,
                      size_t len, int phrase)
{
	int use_b = (len + 2) / 3 * 4 < q_size(text, len, phrase);
	struct buf word = BUF_INIT;
	size_t pos = 0, end, budget, n, size;
	int rc = 0;

	while (pos < len && rc == 0) {
		/* Room on this line for "=?UTF-8?X?" + one character + "?=" at least? */
		budget = ENCODED_WORD_MAX;
		if (w->col + seplen + 24 <= HEADER_FOLD_AT &&
		    HEADER_FOLD_AT - w->col - seplen < budget)
			budget = HEADER_FOLD_AT - w->col - seplen;

		/* Take whole characters while the word stays within the budget. */
		for (end = pos; end < len; end += n) {
			n = utf8_len(text + end, len - end);
			size = use_b ? (end + n - pos + 2) / 3 * 4
			             : q_size(text + pos, end + n - pos, phrase);
			if (end > pos && size + 12 > budget)
				break;
		}
		buf_reset(&word);
		encoded_word(&word, text + pos, end - pos, use_b, phrase);
		rc = hw_word(w, sep, seplen, word.data, word.len);
		sep = " ";
		seplen = 1;
		pos = end;
	}
	buf_free(&word);
	return rc;
}

/* is_encoded_word - 1 if s[0..len) is one whole "=?charset?B|Q?text?=". */
static int is_encoded_word(const char *s, size_t len)
{
	const char *end = s + len, *q;

	if (len < 8 || memcmp(s, "=?", 2) != 0 || memcmp(end - 2, "?=", 2) != 0)
		return 0;
	q = memchr(s + 2, '?', len - 2);
	if (q == NULL || q == s + 2 || q + 3 > end - 2 || q[2] != '?')
		return 0;
	if (strchr("BbQq", q[1]) == NULL || q[1] == '\0')
		return 0;
	return memchr(q + 3, '?', (size_t)(end - 2 - (q + 3))) == NULL;
}

/*
 * word_needs_encoding - 1 for non-ASCII or control bytes. When encoding is
 * on, also for text that a reader would take for an encoded-word, unless
 * it is a well-formed encoded-word written in the template itself (origin
 * all 'T'), which goes out as it is.
 */
static int word_needs_encoding(const char *s, size_t len, int encode, const char *origin)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x7f || (unsigned char)s[i] < 0x20)
			return 1;
	if (!encode || len < 4 || memmem(s, len, "=?", 2) == NULL ||
	    memmem(s, len, "?=", 2) == NULL)
		return 0;
	if (origin == NULL || memchr(origin, 'V', len) != NULL)
		return 1;
	return !is_encoded_word(s, len);
}

/*
 * hw_text - write unstructured text: plain words as they are, each run of
 * words that need it as encoded-words (the white space inside the run is
 * encoded with it). With encode 0, non-ASCII is an error instead. origin,
 * if not NULL, marks each byte of text as template ('T') or value ('V').
 */
static int hw_text(struct hwriter *w, const char *text, const char *origin, int encode, int phrase)
{
	const char *p = text, *sep, *word, *run_end;
	size_t seplen, wlen;

	while (*p) {
		sep = p;
		while (is_wsp(*p))
			p++;
		seplen = (size_t)(p - sep);
		if (*p == '\0')
			break;
		if (w->col == w->name_end && seplen == 0) {
			sep = " ";
			seplen = 1;
		}
		word = p;
		while (*p && !is_wsp(*p))
			p++;
		wlen = (size_t)(p - word);
		if (!word_needs_encoding(word, wlen, encode,
		                         origin ? origin + (word - text) : NULL)) {
			if (hw_word(w, sep, seplen, word, wlen) != 0)
				return -1;
			continue;
		}
		if (!encode) {
			template_error(w->err, w->errlen,
			               "the %s header cannot contain non-ASCII text \"%.*s\"",
			               w->name, (int)wlen, word);
			return -1;
		}

		/* Extend the run over the following words that need encoding too. */
		for (run_end = p;;) {
			const char *q = run_end, *next;

			while (is_wsp(*q))
				q++;
			for (next = q; *next && !is_wsp(*next); next++)
				;
			if (next == q || !word_needs_encoding(q, (size_t)(next - q), encode,
			                                      origin ? origin + (q - text) : NULL))
				break;
			run_end = next;
		}
		if (hw_encoded(w, sep, seplen, word, (size_t)(run_end - word), phrase) != 0)
			return -1;
		p = run_end;
	}
	return 0;
}

static const char *const address_headers[] = {
        "From",        "To",        "Cc",        "Bcc",        "Reply-To",      "Sender",
        "Resent-From", "Resent-To", "Resent-Cc", "Resent-Bcc", "Resent-Sender", NULL,
};

/* Structured fields where an encoded-word would be wrong: non-ASCII is an error. */
static const char *const structured_headers[] = {
        "Message-ID",  "Date",     "MIME-Version", "References",        "In-Reply-To",
        "Return-Path", "Received", "Resent-Date",  "Resent-Message-ID", NULL,
};

static int name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcasecmp(name, *list) == 0)
			return 1;
	return 0;
}

static int is_structured(const char *name)
{
	return name_in(name, structured_headers) || strncasecmp(name, "Content-", 8) == 0 ||
	       strncasecmp(name, "List-", 5) == 0 || strncasecmp(name, "DKIM-", 5) == 0;
}

/* next_address - the end of the address list item at s: a comma outside quotes, <> or (). */
static const char *next_address(const char *s, int *group)
{
	int quoted = 0, angle = 0, comment = 0;

	for (; *s; s++) {
		if (quoted) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '"')
				quoted = 0;
		} else if (*s == '"') {
			quoted = 1;
		} else if (*s == '(') {
			comment++;
		} else if (*s == ')' && comment > 0) {
			comment--;
		} else if (*s == '<') {
			angle = 1;
		} else if (*s == '>') {
			angle = 0;
		} else if (!angle && !comment && (*s == ':' || *s == ';')) {
			*group = 1;
		} else if (!angle && !comment && *s == ',') {
			break;
		}
	}
	return s;
}

/* angle_open - the last "<" in s[0..end) outside a quoted string, or NULL. */
static const char *angle_open(const char *s, const char *end)
{
	const char *lt = NULL;
	int quoted = 0;

	for (; s < end; s++) {
		if (quoted) {
			if (*s == '\\' && s + 1 < end)
				s++;
			else if (*s == '"')
				quoted = 0;
		} else if (*s == '"') {
			quoted = 1;
		} else if (*s == '<') {
			lt = s;
		}
	}
	return lt;
}

/* display_name - the display name text: unquoted, trimmed. */
static char *display_name(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	size_t i;

	while (len > 0 && is_wsp(*s))
		s++, len--;
	while (len > 0 && is_wsp(s[len - 1]))
		len--;
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
		for (i = 1; i < len - 1; i++) {
			if (s[i] == '\\' && i + 1 < len - 1)
				i++;
			buf_putc(&b, s[i]);
		}
	} else {
		buf_append(&b, s, len);
	}
	buf_append(&b, "", 0);
	return buf_steal(&b);
}

/* hw_display - write a display name: encoded-words, a quoted string, or atoms. */
static int hw_display(struct hwriter *w, const char *name)
{
	struct buf b = BUF_INIT;
	const char *p;
	int rc;

	if (has_8bit(name, strlen(name)))
		return hw_encoded(w, " ", 1, name, strlen(name), 1);
	buf_putc(&b, ' ');
	if (strpbrk(name, "()<>[]:;@\\,.\"") != NULL) {
		buf_putc(&b, '"');
		for (p = name; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(&b, '\\');
			buf_putc(&b, *p);
		}
		buf_putc(&b, '"');
	} else {
		buf_puts(&b, name);
	}
	rc = hw_text(w, b.data, NULL, 0, 1);
	buf_free(&b);
	return rc;
}

/* hw_mailbox - write one item of an address list, substituted. */
static int hw_mailbox(struct hwriter *w, struct subst *s, const char *item, size_t len)
{
	const char *lt, *gt = NULL;
	struct buf text = BUF_INIT, addr = BUF_INIT;
	char *name = NULL;
	int rc = -1;

	lt = angle_open(item, item + len);
	if (lt != NULL)
		gt = memchr(lt, '>', (size_t)(item + len - lt));

	/* A bare address (no angle brackets) is written as it is. */
	if (lt == NULL || gt == NULL) {
		buf_putc(&text, ' ');
		if (subst_text(s, &text, item, len) == 0 && hw_text(w, text.data, NULL, 0, 0) == 0)
			rc = 0;
		goto out;
	}

	if (subst_text(s, &text, item, (size_t)(lt - item)) != 0)
		goto out;
	name = display_name(text.data, text.len);
	if (name[0] != '\0' && hw_display(w, name) != 0)
		goto out;
	if (subst_text(s, &addr, lt, (size_t)(gt + 1 - lt)) != 0)
		goto out;
	if (has_8bit(addr.data, addr.len)) {
		template_error(w->err, w->errlen,
		               "the address %s in the %s header is not ASCII (SMTPUTF8 is not "
		               "supported)",
		               addr.data, w->name);
		goto out;
	}
	rc = hw_word(w, " ", 1, addr.data, addr.len);
out:
	free(name);
	buf_free(&text);
	buf_free(&addr);
	return rc;
}

/* hw_addresses - write an address list field; group syntax goes out unencoded. */
static int hw_addresses(struct hwriter *w, struct subst *s, const char *value)
{
	const char *p = value, *end;
	struct buf text = BUF_INIT;
	int group = 0, rc = 0;

	for (end = value; *end; end = *end ? end + 1 : end)
		end = next_address(end, &group);
	if (group) {
		buf_putc(&text, ' ');
		if (subst_text(s, &text, value, strlen(value)) != 0 ||
		    hw_text(w, text.data, NULL, 0, 0))
			rc = -1;
		buf_free(&text);
		return rc;
	}
	while (*p && rc == 0) {
		end = next_address(p, &group);
		while (p < end && is_wsp(*p))
			p++;
		if (p < end)
			rc = hw_mailbox(w, s, p, (size_t)(end - p));
		if (*end == ',' && rc == 0) {
			buf_putc(w->out, ',');
			w->col++;
		}
		p = *end ? end + 1 : end;
	}
	return rc;
}

/* render_header - write one header field of the message, substituted. */
static int render_header(const struct header *h, struct subst *s, struct buf *out)
{
	struct hwriter w;
	struct buf text = BUF_INIT, origin = BUF_INIT;
	int rc;

	if (!h->dynamic) {
		const char *p;

		for (p = h->raw; *p; p++) {
			if (*p == '\n')
				buf_putc(out, '\r');
			buf_putc(out, *p);
		}
		return 0;
	}
	w.out = out;
	w.name = h->name;
	w.err = s->err;
	w.errlen = s->errlen;
	buf_puts(out, h->name);
	buf_putc(out, ':');
	w.col = w.name_end = strlen(h->name) + 1;
	s->header = h->name;

	if (name_in(h->name, address_headers)) {
		rc = hw_addresses(&w, s, h->value);
	} else {
		s->origin = &origin;
		rc = subst_text(s, &text, h->value, strlen(h->value));
		s->origin = NULL;
		if (rc == 0)
			rc = hw_text(&w, text.data, origin.data, !is_structured(h->name), 0);
	}
	buf_puts(out, "\r\n");
	buf_free(&text);
	buf_free(&origin);
	s->header = NULL;
	return rc;
}

/* Body parts. */

static void put_crlf(struct buf *out, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n')
			buf_putc(out, '\r');
		buf_putc(out, s[i]);
	}
}

static size_t longest_line(const char *s, size_t len)
{
	size_t i, start = 0, max = 0;

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '\n') {
			if (i - start > max)
				max = i - start;
			start = i + 1;
		}
	}
	return max;
}

/* utf8_content_type - the part's Content-Type value with charset=utf-8. */
static char *utf8_content_type(const struct part *p)
{
	const struct header *h = part_header(p, "Content-Type");
	const char *v, *c;
	struct buf b = BUF_INIT;

	if (h == NULL)
		return xstrdup("text/plain; charset=utf-8");
	v = h->value;
	for (c = strchr(v, ';'); c != NULL; c = strchr(c + 1, ';')) {
		const char *q = c + 1;

		while (is_wsp(*q))
			q++;
		if (strncasecmp(q, "charset", 7) != 0)
			continue;

		/* Replace the old value, quoted or not, and keep what follows. */
		q += 7;
		while (is_wsp(*q) || *q == '=')
			q++;
		buf_append(&b, v, (size_t)(c - v));
		buf_puts(&b, "; charset=utf-8");
		if (*q == '"') {
			for (q++; *q && *q != '"'; q++)
				;
			if (*q)
				q++;
		} else {
			while (*q && *q != ';' && !is_wsp(*q))
				q++;
		}
		buf_puts(&b, q);
		return buf_steal(&b);
	}
	return xasprintf("%s; charset=utf-8", v);
}

static const char *cte_name(enum cte cte)
{
	switch (cte) {
	case CTE_7BIT:
		return "7bit";
	case CTE_8BIT:
		return "8bit";
	case CTE_BINARY:
		return "binary";
	case CTE_QP:
		return "quoted-printable";
	case CTE_BASE64:
		return "base64";
	default:
		return NULL;
	}
}

/*
 * render_leaf_body - substitute and encode a leaf's body into out. Sets
 * *ctype (allocated) and *cte when the part's header must say another
 * charset or transfer encoding.
 */
static int render_leaf_body(const struct part *p, struct subst *s, struct buf *out, char **ctype,
                            const char **cte)
{
	struct buf text = BUF_INIT, crlf = BUF_INIT;
	enum cte enc = p->cte;

	*ctype = NULL;
	*cte = NULL;
	if (!p->text) {
		put_crlf(out, p->body, p->bodylen);
		return 0;
	}
	s->inserted_8bit = 0;
	if (subst_text(s, &text, p->body, p->bodylen) != 0)
		goto fail;

	/* A non-ASCII value needs a part that declares UTF-8. */
	if (s->inserted_8bit && p->charset != NULL && strcmp(p->charset, "utf-8") != 0 &&
	    strcmp(p->charset, "us-ascii") != 0) {
		template_error(s->err, s->errlen,
		               "a non-ASCII value cannot go into a text part with charset=%s; "
		               "convert the template to UTF-8",
		               p->charset);
		goto fail;
	}
	if (s->inserted_8bit && (p->charset == NULL || strcmp(p->charset, "us-ascii") == 0))
		*ctype = utf8_content_type(p);

	/* 7bit cannot carry 8-bit bytes; no identity encoding allows lines over 998. */
	if (enc == CTE_7BIT && has_8bit(text.data, text.len))
		enc = CTE_8BIT;
	if ((enc == CTE_7BIT || enc == CTE_8BIT) &&
	    longest_line(text.data, text.len) > BODY_LINE_MAX)
		enc = CTE_QP;
	if (enc != p->cte)
		*cte = cte_name(enc);

	if (enc == CTE_QP) {
		qp_encode(text.data, text.len, out);
	} else if (enc == CTE_BASE64) {
		put_crlf(&crlf, text.data, text.len);
		b64_encode((const unsigned char *)crlf.data, crlf.len, 76, out);
		/* The line break before the next boundary is added by the caller. */
		if (out->len >= 2)
			out->len -= 2, out->data[out->len] = '\0';
	} else {
		put_crlf(out, text.data, text.len);
	}
	buf_free(&text);
	buf_free(&crlf);
	return 0;

fail:
	buf_free(&text);
	buf_free(&crlf);
	free(*ctype);
	*ctype = NULL;
	return -1;
}

/* write_plain_header - "Name: value" folded, for header values made here. */
static int write_plain_header(struct buf *out, const char *name, const char *value, struct subst *s)
{
	struct hwriter w;
	int rc;

	w.out = out;
	w.name = name;
	w.err = s->err;
	w.errlen = s->errlen;
	buf_printf(out, "%s:", name);
	w.col = w.name_end = strlen(name) + 1;
	rc = hw_text(&w, value, NULL, 0, 0);
	buf_puts(out, "\r\n");
	return rc;
}

/* render_headers - the header block of a part, with CT/CTE overrides. */
static int render_headers(const struct part *p, int top, struct subst *s, struct buf *out,
                          const char *ctype, const char *cte)
{
	const struct header *h;
	size_t i;

	for (i = 0; i < p->nheaders; i++) {
		h = &p->headers[i];
		if (ctype != NULL && strcasecmp(h->name, "Content-Type") == 0) {
			if (write_plain_header(out, h->name, ctype, s) != 0)
				return -1;
		} else if (cte != NULL && strcasecmp(h->name, "Content-Transfer-Encoding") == 0) {
			buf_printf(out, "%s: %s\r\n", h->name, cte);
		} else if (top) {
			if (render_header(h, s, out) != 0)
				return -1;
		} else {
			put_crlf(out, h->raw, strlen(h->raw));
		}
	}

	/* Fields the part lacked but now needs. */
	if (top && (ctype || cte) && part_header(p, "MIME-Version") == NULL)
		buf_puts(out, "MIME-Version: 1.0\r\n");
	if (ctype != NULL && part_header(p, "Content-Type") == NULL)
		buf_printf(out, "Content-Type: %s\r\n", ctype);
	if (cte != NULL && part_header(p, "Content-Transfer-Encoding") == NULL)
		buf_printf(out, "Content-Transfer-Encoding: %s\r\n", cte);
	buf_puts(out, "\r\n");
	return 0;
}

/* render_part - write a part and everything below it. */
static int render_part(const struct part *p, int top, struct subst *s, struct buf *out)
{
	struct buf body = BUF_INIT;
	char *ctype = NULL;
	const char *cte = NULL;
	size_t i;
	int rc = -1;

	if (!p->multipart) {
		if (render_leaf_body(p, s, &body, &ctype, &cte) == 0 &&
		    render_headers(p, top, s, out, ctype, cte) == 0) {
			buf_append(out, body.data, body.len);
			rc = 0;
		}
		free(ctype);
		buf_free(&body);
		return rc;
	}

	if (render_headers(p, top, s, out, NULL, NULL) != 0)
		return -1;
	if (p->preamble)
		put_crlf(out, p->preamble, strlen(p->preamble));
	for (i = 0; i < p->nchildren; i++) {
		buf_printf(out, "--%s\r\n", p->boundary);
		if (render_part(p->children[i], 0, s, out) != 0)
			return -1;
		buf_puts(out, "\r\n");
	}
	buf_printf(out, "--%s--\r\n", p->boundary);
	if (p->epilogue)
		put_crlf(out, p->epilogue, strlen(p->epilogue));
	return 0;
}

char *template_render(const struct template *t, const struct fields *f, size_t *len, char *err,
                      size_t errlen)
{
	struct buf out = BUF_INIT;
	struct subst s;

	s.fields = f;
	s.header = NULL;
	s.inserted_8bit = 0;
	s.origin = NULL;
	s.err = err;
	s.errlen = errlen;
	if (render_part(t->root, 1, &s, &out) != 0) {
		buf_free(&out);
		return NULL;
	}
	if (out.len < 2 || memcmp(out.data + out.len - 2, "\r\n", 2) != 0)
		buf_puts(&out, "\r\n");
	*len = out.len;
	return buf_steal(&out);
}

char *template_from_address(const struct template *t)
{
	const struct header *h = part_header(t->root, "From");
	const char *p, *end, *lt, *gt;
	int group = 0;

	if (h == NULL)
		return NULL;
	end = next_address(h->value, &group);

	lt = angle_open(h->value, end);
	if (lt != NULL) {
		gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL)
			return NULL;
		p = lt + 1;
		end = gt;
	} else {
		p = h->value;
		while (p < end && is_wsp(*p))
			p++;
		while (end > p && is_wsp(end[-1]))
			end--;
	}
	if (memmem(p, (size_t)(end - p), "{{", 2) != NULL || p == end)
		return NULL;
	return xstrndup(p, (size_t)(end - p));
}
