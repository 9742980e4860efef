/*
 * fields - personalisation fields of one recipient.
 *
 * fields_add copies its arguments, so a struct fields owns every string
 * in it; fields_free releases them. A name added twice keeps both pairs
 * and fields_get returns the first.
 *
 * fields_to_json writes a flat JSON object whose values are strings,
 * escaping quote, backslash and control bytes; other bytes (UTF-8) are
 * copied as they are. fields_from_json reads that form back, and also
 * \uXXXX escapes (surrogate pairs included), and returns -1 on anything
 * else: nested values, numbers, trailing text. Out of memory is fatal
 * through the allocation wrappers; nothing here logs.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fields.h"

void fields_init(struct fields *f)
{
	f->n = 0;
	f->names = NULL;
	f->values = NULL;
}

void fields_add(struct fields *f, const char *name, const char *value)
{
	f->names = xrealloc(f->names, (f->n + 1) * sizeof(*f->names));
	f->values = xrealloc(f->values, (f->n + 1) * sizeof(*f->values));
	f->names[f->n] = xstrdup(name);
	f->values[f->n] = xstrdup(value);
	f->n++;
}

const char *fields_get(const struct fields *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->names[i], name) == 0)
			return f->values[i];
	return NULL;
}

void fields_free(struct fields *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->names[i]);
		free(f->values[i]);
	}
	free(f->names);
	free(f->values);
	fields_init(f);
}

/* fields_json_string - append s as a JSON string literal. */
static void fields_json_string(struct buf *b, const char *s)
{
	const unsigned char *p;

	buf_putc(b, '"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, *p);
		} else if (*p == '\n') {
			buf_puts(b, "\\n");
		} else if (*p == '\r') {
			buf_puts(b, "\\r");
		} else if (*p == '\t') {
			buf_puts(b, "\\t");
		} else if (*p < 0x20 || *p == 0x7f) {
			buf_printf(b, "\\u%04x", *p);
		} else {
			buf_putc(b, *p);
		}
	}
	buf_putc(b, '"');
}

char *fields_to_json(const struct fields *f)
{
	struct buf b = BUF_INIT;
	size_t i;

	buf_putc(&b, '{');
	for (i = 0; i < f->n; i++) {
		if (i > 0)
			buf_putc(&b, ',');
		fields_json_string(&b, f->names[i]);
		buf_putc(&b, ':');
		fields_json_string(&b, f->values[i]);
	}
	buf_putc(&b, '}');
	return buf_steal(&b);
}

static const char *json_skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static int json_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void json_put_utf8(struct buf *b, unsigned cp)
{
	if (cp < 0x80) {
		buf_putc(b, cp);
	} else if (cp < 0x800) {
		buf_putc(b, 0xc0 | (cp >> 6));
		buf_putc(b, 0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		buf_putc(b, 0xe0 | (cp >> 12));
		buf_putc(b, 0x80 | ((cp >> 6) & 0x3f));
		buf_putc(b, 0x80 | (cp & 0x3f));
	} else {
		buf_putc(b, 0xf0 | (cp >> 18));
		buf_putc(b, 0x80 | ((cp >> 12) & 0x3f));
		buf_putc(b, 0x80 | ((cp >> 6) & 0x3f));
		buf_putc(b, 0x80 | (cp & 0x3f));
	}
}

/* json_unicode_escape - decode \uXXXX (p after the u), a pair if needed. */
static const char *json_unicode_escape(const char *p, struct buf *out)
{
	unsigned cp, low;

	if (json_hex4(p, &cp) != 0)
		return NULL;
	p += 4;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return NULL;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (p[0] != '\\' || p[1] != 'u' || json_hex4(p + 2, &low) != 0)
			return NULL;
		if (low < 0xdc00 || low > 0xdfff)
			return NULL;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
		p += 6;
	}
	if (cp == 0)
		return NULL;
	json_put_utf8(out, cp);
	return p;
}

/* json_parse_string - parse a string literal at p into out; NULL on error. */
static const char *json_parse_string(const char *p, struct buf *out)
{
	static const char plain[] = "\"\\/bfnrt";
	static const char decoded[] = "\"\\/\b\f\n\r\t";
	const char *e;

	if (*p++ != '"')
		return NULL;
	buf_reset(out);
	for (;;) {
		unsigned char c = *p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\') {
			buf_putc(out, c);
			p++;
			continue;
		}
		p++;
		if (*p == 'u') {
			p = json_unicode_escape(p + 1, out);
			if (p == NULL)
				return NULL;
			continue;
		}
		if (*p == '\0' || (e = strchr(plain, *p)) == NULL)
			return NULL;
		buf_putc(out, decoded[e - plain]);
		p++;
	}
}

int fields_from_json(const char *json, struct fields *f)
{
	struct buf name = BUF_INIT, value = BUF_INIT;
	const char *p = json_skip_space(json);
	int rc = -1;

	fields_init(f);
	if (*p++ != '{')
		goto out;
	p = json_skip_space(p);
	if (*p == '}') {
		p++;
		goto done;
	}
	for (;;) {
		p = json_parse_string(json_skip_space(p), &name);
		if (p == NULL)
			goto out;
		p = json_skip_space(p);
		if (*p++ != ':')
			goto out;
		p = json_parse_string(json_skip_space(p), &value);
		if (p == NULL)
			goto out;
		fields_add(f, name.data ? name.data : "", value.data ? value.data : "");
		p = json_skip_space(p);
		if (*p == '}') {
			p++;
			break;
		}
		if (*p++ != ',')
			goto out;
	}
done:
	if (*json_skip_space(p) == '\0')
		rc = 0;
out:
	if (rc != 0)
		fields_free(f);
	buf_free(&name);
	buf_free(&value);
	return rc;
}
