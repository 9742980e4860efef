/*
 * template_test - unit tests for lib/template.c and lib/fields.c.
 *
 * Covered: placeholders in header fields and in text parts, the errors
 * that name the field, RFC 2047 encoded-words, folding, display names,
 * and the transfer encodings of text parts. Encoded-words are decoded back
 * by a small decoder written here, independent of the code under test.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fields.h"
#include "template.h"

static char err[1024];

/* A newsletter: multipart/alternative, 8bit plain text and quoted-printable HTML. */
static const char newsletter[] = "From: Library <news@example.test>\n"
                                 "To: {{first_name}} {{last_name}} <{{email}}>\n"
                                 "Subject: News for {{ first_name }}\n"
                                 "MIME-Version: 1.0\n"
                                 "Content-Type: multipart/alternative; boundary=\"b1\"\n"
                                 "\n"
                                 "--b1\n"
                                 "Content-Type: text/plain; charset=us-ascii\n"
                                 "\n"
                                 "Hello {{first_name}} in {{city}},\n"
                                 ".a line with a dot\n"
                                 "--b1\n"
                                 "Content-Type: text/html; charset=utf-8\n"
                                 "Content-Transfer-Encoding: quoted-printable\n"
                                 "\n"
                                 "<p class=3D\"x\">Hello {{first_name}} in {{ci=\n"
                                 "ty}}</p>\n"
                                 "--b1--\n";

static void set_fields(struct fields *f, const char *first, const char *last, const char *city)
{
	fields_init(f);
	fields_add(f, "email", "rcpt-0001@example.test");
	fields_add(f, "first_name", first);
	fields_add(f, "last_name", last);
	fields_add(f, "city", city);
}

static char *render(const char *text, const struct fields *f)
{
	struct template *t = template_parse(text, strlen(text), err, sizeof(err));
	size_t len = 0;
	char *out;

	if (t == NULL)
		fail_msg("parse: %s", err);
	err[0] = '\0';
	out = template_render(t, f, &len, err, sizeof(err));
	if (out != NULL)
		assert_int_equal(strlen(out), len);
	template_free(t);
	return out;
}

static struct template *parse_text(const char *text)
{
	return template_parse(text, strlen(text), err, sizeof(err));
}

/* header_value - the unfolded value of the first header field called name. */
static void header_value(const char *msg, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name), o = 0;
	const char *p = msg;

	while (strncmp(p, name, n) != 0 || p[n] != ':') {
		p = strstr(p, "\r\n");
		assert_non_null(p);
		p += 2;
		assert_false(p[0] == '\r' && p[1] == '\n');
	}
	p += n + 1;
	while (*p == ' ')
		p++;
	for (; *p; p++) {
		if (p[0] == '\r' && p[1] == '\n') {
			if (p[2] != ' ' && p[2] != '\t')
				break;
			p++;
			continue;
		}
		assert_true(o + 1 < outlen);
		out[o++] = *p;
	}
	out[o] = '\0';
}

static int hexval(char c)
{
	return (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* decode_word - decode one "=?UTF-8?X?...?=" at s into out; returns its length or 0. */
static size_t decode_word(const char *s, char *out, size_t *o)
{
	static const char b64[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *text, *end;
	char kind;

	if (strncmp(s, "=?UTF-8?", 8) != 0 || (s[8] != 'Q' && s[8] != 'B') || s[9] != '?')
		return 0;
	kind = s[8];
	text = s + 10;
	end = strstr(text, "?=");
	assert_non_null(end);
	if (kind == 'Q') {
		for (; text < end; text++) {
			if (*text == '_') {
				out[(*o)++] = ' ';
			} else if (*text == '=') {
				assert_true(hexval(text[1]) >= 0 && hexval(text[2]) >= 0);
				out[(*o)++] = (char)(hexval(text[1]) * 16 + hexval(text[2]));
				text += 2;
			} else {
				out[(*o)++] = *text;
			}
		}
	} else {
		unsigned acc = 0;
		int bits = 0;

		for (; text < end && *text != '='; text++) {
			acc = (acc << 6) | (unsigned)(strchr(b64, *text) - b64);
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				out[(*o)++] = (char)((acc >> bits) & 0xff);
			}
		}
	}
	return (size_t)(strstr(s + 10, "?=") + 2 - s);
}

/* decode_2047 - decode encoded-words; white space between two of them is dropped. */
static void decode_2047(const char *v, char *out)
{
	size_t o = 0, ws, len;
	int last_encoded = 0;

	while (*v) {
		for (ws = 0; v[ws] == ' ' || v[ws] == '\t'; ws++)
			;
		if (!last_encoded) {
			memcpy(out + o, v, ws);
			o += ws;
		}
		len = decode_word(v + ws, out, &o);
		if (len > 0) {
			v += ws + len;
			last_encoded = 1;
			continue;
		}
		if (last_encoded) {
			memcpy(out + o, v, ws);
			o += ws;
		}
		v += ws;
		while (*v && *v != ' ' && *v != '\t')
			out[o++] = *v++;
		last_encoded = 0;
	}
	out[o] = '\0';
}

/* assert_header_lines - every header line is under 78 characters, every encoded-word at most 75. */
static void assert_header_lines(const char *msg)
{
	const char *p = msg, *eol, *w;

	while ((eol = strstr(p, "\r\n")) != NULL && eol != p) {
		assert_true(eol - p < 78);
		for (w = p; (w = strstr(w, "=?UTF-8?")) != NULL && w < eol; w += 2)
			assert_true(strstr(w, "?=") + 2 - w <= 75);
		p = eol + 2;
	}
}

static void template_substitutes_everywhere(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "Anna", "Smith", "Springfield");
	out = render(newsletter, &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "\r\nTo: Anna Smith <rcpt-0001@example.test>\r\n"));
	assert_non_null(strstr(out, "\r\nSubject: News for Anna\r\n"));
	assert_non_null(strstr(out, "\r\n\r\nHello Anna in Springfield,\r\n"));
	assert_non_null(strstr(out, "<p class=3D\"x\">Hello Anna in Springfield</p>"));
	assert_null(strstr(out, "{{"));

	/* Dot-stuffing is left to the SMTP layer. */
	assert_non_null(strstr(out, "\r\n.a line with a dot\r\n--b1\r\n"));

	/* Lines end in CRLF only. */
	for (const char *p = out; *p; p++)
		if (*p == '\n')
			assert_true(p > out && p[-1] == '\r');
	fields_free(&f);
	free(out);
}

static void template_unchanged_headers_kept(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "Anna", "Smith", "X");
	out = render(newsletter, &f);
	assert_non_null(out);
	assert_memory_equal(out, "From: Library <news@example.test>\r\n", 35);
	assert_non_null(strstr(out, "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"));
	assert_non_null(strstr(out, "\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n"
	                            "\r\nHello"));
	assert_non_null(strstr(out, "\r\n--b1--\r\n"));
	fields_free(&f);
	free(out);
}

static void template_check_names_missing_field(void **state)
{
	const char *const columns[] = {"email", "first_name", "last_name"};
	struct template *t = template_parse(newsletter, strlen(newsletter), err, sizeof(err));

	(void)state;
	assert_non_null(t);
	assert_int_equal(template_check(t, columns, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "{{city}}"));
	assert_non_null(strstr(err, "add a \"city\" column"));
	template_free(t);
}

static void template_check_accepts_all_columns(void **state)
{
	const char *const columns[] = {"city", "email", "first_name", "last_name", "extra"};
	struct template *t = template_parse(newsletter, strlen(newsletter), err, sizeof(err));

	(void)state;
	assert_non_null(t);
	assert_int_equal(template_check(t, columns, 5, err, sizeof(err)), 0);
	template_free(t);
}

static void template_render_missing_field(void **state)
{
	struct fields f;

	(void)state;
	fields_init(&f);
	fields_add(&f, "email", "a@example.test");
	assert_null(render("Subject: Hi {{nick}}\n\nbody\n", &f));
	assert_non_null(strstr(err, "{{nick}}"));
	fields_free(&f);
}

static void template_header_line_break_rejected(void **state)
{
	struct fields f;

	(void)state;
	set_fields(&f, "Anna\r\nBcc: victim@example.test", "Smith", "X");
	assert_null(render(newsletter, &f));
	assert_non_null(strstr(err, "field \"first_name\""));
	assert_non_null(strstr(err, "To header"));
	fields_free(&f);

	set_fields(&f, "Anna", "Smith", "a\nb");
	assert_null(render("Subject: {{city}}\n\nx\n", &f));
	assert_non_null(strstr(err, "field \"city\""));
	assert_non_null(strstr(err, "Subject header"));
	fields_free(&f);
}

static void template_body_line_break_allowed(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "Anna", "Smith", "first\r\nsecond");
	out = render("Subject: x\n\nIn {{city}}.\n", &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "\r\n\r\nIn first\r\nsecond.\r\n"));
	fields_free(&f);
	free(out);
}

static void template_subject_encoded_words(void **state)
{
	struct fields f;
	char *out, value[1024], decoded[1024];

	(void)state;
	set_fields(&f, "J\xc3\xb6rg", "M\xc3\xbcller", "K\xc3\xb6ln");
	out = render("From: a@example.test\n"
	             "Subject: Ihre Neuigkeiten f\xc3\xbcr Dezember, {{first_name}} \xe2\x9c\x89\n"
	             "\nx\n",
	             &f);
	assert_non_null(out);
	header_value(out, "Subject", value, sizeof(value));

	/* Plain words stay plain; only the words with non-ASCII are encoded. */
	assert_non_null(strstr(value, "Ihre Neuigkeiten =?UTF-8?"));
	assert_non_null(strstr(value, " Dezember, =?UTF-8?"));
	for (const char *p = value; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	decode_2047(value, decoded);
	assert_string_equal(decoded,
	                    "Ihre Neuigkeiten f\xc3\xbcr Dezember, J\xc3\xb6rg \xe2\x9c\x89");
	assert_header_lines(out);
	fields_free(&f);
	free(out);
}

static void template_q_escapes_specials(void **state)
{
	struct fields f;
	char *out, value[1024], decoded[1024];

	(void)state;

	/* "_" means a space in Q encoding and "?=" ends a word: both must be escaped. */
	set_fields(&f, "\xc3\x9cnder_score?=abcdefghijklmnopqrst", "x", "x");
	out = render("Subject: {{first_name}}\n\nx\n", &f);
	assert_non_null(out);
	header_value(out, "Subject", value, sizeof(value));
	assert_string_equal(value, "=?UTF-8?Q?=C3=9Cnder=5Fscore=3F=3Dabcdefghijklmnopqrst?=");
	decode_2047(value, decoded);
	assert_string_equal(decoded, "\xc3\x9cnder_score?=abcdefghijklmnopqrst");
	fields_free(&f);
	free(out);
}

static void template_encoded_word_origin(void **state)
{
	struct fields f;
	char *out, value[1024], decoded[1024];

	(void)state;

	/* An encoded-word of the template stays; one that comes from a value is encoded. */
	set_fields(&f, "=?UTF-8?Q?fake?=", "x", "x");
	out = render("To: =?UTF-8?Q?J=C3=B6rg?= <{{email}}>\n"
	             "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= {{first_name}}\n\nx\n",
	             &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "To: =?UTF-8?Q?J=C3=B6rg?= <rcpt-0001@example.test>\r\n"));
	header_value(out, "Subject", value, sizeof(value));
	assert_int_equal(strncmp(value, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?UTF-8?", 36), 0);
	decode_2047(value, decoded);
	assert_string_equal(decoded, "Gr\xc3\xbc\xc3\x9f"
	                             "e=?UTF-8?Q?fake?=");
	fields_free(&f);
	free(out);
}

static void template_long_subject_folded(void **state)
{
	struct fields f;
	char *out, value[4096], decoded[4096], expected[4096];
	const char *name =
	        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe5\x90\x8d\xe5\x89\x8d";
	size_t lines = 0;

	(void)state;
	set_fields(&f, name, "Smith",
	           "Neustadt an der Weinstra\xc3\x9f"
	           "e");
	out = render("Subject: A rather long subject line for {{first_name}} {{last_name}}, who "
	             "lives in {{city}} and reads our newsletter every month {{first_name}}"
	             "{{first_name}}{{first_name}}\n\nx\n",
	             &f);
	assert_non_null(out);
	assert_header_lines(out);
	for (const char *p = out; (p = strstr(p, "\r\n ")) != NULL; p += 3)
		lines++;
	assert_true(lines >= 3);

	header_value(out, "Subject", value, sizeof(value));
	decode_2047(value, decoded);
	snprintf(expected, sizeof(expected),
	         "A rather long subject line for %s Smith, who lives in Neustadt an der "
	         "Weinstra\xc3\x9f"
	         "e and reads our newsletter every month %s%s%s",
	         name, name, name, name);
	assert_string_equal(decoded, expected);
	fields_free(&f);
	free(out);
}

static void template_encoded_words_keep_characters_whole(void **state)
{
	struct fields f;
	char *out, value[4096], one[256];
	const char *w;
	size_t o;

	(void)state;

	/* Forty three-byte characters: each encoded-word must decode to whole ones. */
	set_fields(&f, "", "", "");
	fields_add(&f, "long",
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89"
	           "\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89\xe2\x9c\x89");
	out = render("Subject: {{long}}\n\nx\n", &f);
	assert_non_null(out);
	assert_header_lines(out);
	header_value(out, "Subject", value, sizeof(value));
	for (w = value; (w = strstr(w, "=?UTF-8?")) != NULL; w += 2) {
		o = 0;
		assert_true(decode_word(w, one, &o) > 0);
		assert_true(o > 0 && o % 3 == 0);
		for (size_t i = 0; i < o; i += 3)
			assert_memory_equal(one + i, "\xe2\x9c\x89", 3);
	}
	fields_free(&f);
	free(out);
}

static void template_display_name_encoded(void **state)
{
	struct fields f;
	char *out, value[1024], decoded[1024];

	(void)state;
	set_fields(&f, "Zo\xc3\xab", "M\xc3\xbcller, Jr.", "X");
	out = render("To: {{first_name}} {{last_name}} <{{email}}>\nSubject: x\n\nx\n", &f);
	assert_non_null(out);
	header_value(out, "To", value, sizeof(value));

	/* The address stays outside the encoded-words, as it was. */
	assert_non_null(strstr(value, "?= <rcpt-0001@example.test>"));
	assert_int_equal(strncmp(value, "=?UTF-8?", 8), 0);
	decode_2047(value, decoded);
	assert_string_equal(decoded, "Zo\xc3\xab M\xc3\xbcller, Jr. <rcpt-0001@example.test>");

	/* A phrase encoded-word never carries a comma or a dot as itself. */
	assert_null(strchr(strstr(value, "=?UTF-8?"), ','));
	fields_free(&f);
	free(out);
}

static void template_display_name_quoted(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "John", "Smith, \"JJ\"", "X");
	out = render("To: \"{{last_name}}\" <{{email}}>, other@example.test\n\nx\n", &f);
	assert_non_null(out);
	assert_non_null(strstr(
	        out, "To: \"Smith, \\\"JJ\\\"\" <rcpt-0001@example.test>, other@example.test\r\n"));
	fields_free(&f);
	free(out);
}

static void template_non_ascii_address_rejected(void **state)
{
	struct fields f;

	(void)state;
	fields_init(&f);
	fields_add(&f, "email", "j\xc3\xb6rg@example.test");
	assert_null(render("To: Someone <{{email}}>\n\nx\n", &f));
	assert_non_null(strstr(err, "not ASCII"));
	fields_free(&f);
}

static void template_qp_part_reencoded(void **state)
{
	struct fields f;
	char *out;
	const char *html, *p;

	(void)state;
	set_fields(&f, "J\xc3\xb6rg", "M\xc3\xbcller", "K\xc3\xb6ln = Cologne");
	out = render(newsletter, &f);
	assert_non_null(out);
	html = strstr(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	assert_non_null(html);
	assert_non_null(
	        strstr(html, "<p class=3D\"x\">Hello J=C3=B6rg in K=C3=B6ln =3D Cologne</p>"));

	/* No 8-bit byte and no line over 76 characters in the encoded part. */
	for (p = html; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	for (p = html; (p = strstr(p, "\r\n")) != NULL;) {
		const char *next = strstr(p + 2, "\r\n");

		if (next == NULL)
			break;
		assert_true(next - (p + 2) <= 76);
		p = next;
	}
	fields_free(&f);
	free(out);
}

static void template_qp_soft_breaks(void **state)
{
	struct fields f;
	char *out, *body, line[200];
	size_t i;

	(void)state;
	for (i = 0; i < 150; i++)
		line[i] = 'a' + (char)(i % 26);
	line[150] = '\0';
	set_fields(&f, line, "x", "x");
	out = render("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
	             "{{first_name}}\n",
	             &f);
	assert_non_null(out);
	body = strstr(out, "\r\n\r\n") + 4;
	assert_memory_equal(body, line, 75);
	assert_memory_equal(body + 75, "=\r\n", 3);
	assert_memory_equal(body + 78, line + 75, 75);
	assert_memory_equal(body + 153, "\r\n", 3);
	fields_free(&f);
	free(out);
}

static void template_8bit_part_declared(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "J\xc3\xb6rg", "x", "x");
	out = render("From: a@example.test\nSubject: hi\n\nHello {{first_name}}\n", &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "\r\nMIME-Version: 1.0\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
	assert_non_null(
	        strstr(out, "\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello J\xc3\xb6rg\r\n"));
	fields_free(&f);
	free(out);

	/* An ASCII value changes nothing in the part's header. */
	set_fields(&f, "Jorg", "x", "x");
	out = render("From: a@example.test\nSubject: hi\n\nHello {{first_name}}\n", &f);
	assert_non_null(out);
	assert_string_equal(out, "From: a@example.test\r\nSubject: hi\r\n\r\nHello Jorg\r\n");
	fields_free(&f);
	free(out);
}

static void template_us_ascii_charset_replaced(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "J\xc3\xb6rg", "Smith", "X");
	out = render(newsletter, &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                            "Content-Transfer-Encoding: 8bit\r\n\r\nHello J\xc3\xb6rg"));
	fields_free(&f);
	free(out);
}

static void template_other_charset_rejected(void **state)
{
	struct fields f;

	(void)state;
	set_fields(&f, "J\xc3\xb6rg", "x", "x");
	assert_null(render("Content-Type: text/plain; charset=iso-8859-1\n\n{{first_name}}\n", &f));
	assert_non_null(strstr(err, "charset=iso-8859-1"));
	fields_free(&f);
}

static void template_base64_part_reencoded(void **state)
{
	struct fields f;
	char *out;

	(void)state;

	/* "Hi {{first_name}}\n" in base64. */
	set_fields(&f, "Zo\xc3\xab", "x", "x");
	out = render(
	        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
	        "SGkge3tmaXJzdF9uYW1lfX0K\n",
	        &f);
	assert_non_null(out);

	/* "Hi Zoë\r\n" */
	assert_non_null(strstr(out, "\r\n\r\nSGkgWm/Dqw0K\r\n"));
	fields_free(&f);
	free(out);
}

static void template_nested_multipart(void **state)
{
	static const char mixed[] = "From: a@example.test\n"
	                            "Subject: {{first_name}}\n"
	                            "Content-Type: multipart/mixed; boundary=outer\n"
	                            "\n"
	                            "--outer\n"
	                            "Content-Type: multipart/alternative; boundary=\"inner\"\n"
	                            "\n"
	                            "--inner\n"
	                            "Content-Type: text/plain\n"
	                            "\n"
	                            "plain {{first_name}}\n"
	                            "--inner\n"
	                            "Content-Type: text/html\n"
	                            "\n"
	                            "<b>{{first_name}}</b>\n"
	                            "--inner--\n"
	                            "\n"
	                            "--outer\n"
	                            "Content-Type: application/octet-stream\n"
	                            "Content-Transfer-Encoding: base64\n"
	                            "\n"
	                            "e3tmaXJzdF9uYW1lfX0=\n"
	                            "--outer--\n";
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "Anna", "x", "x");
	out = render(mixed, &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "\r\n\r\nplain Anna\r\n--inner\r\n"));
	assert_non_null(strstr(out, "\r\n\r\n<b>Anna</b>\r\n--inner--\r\n"));

	/* A non-text part goes out untouched, placeholder-like bytes included. */
	assert_non_null(strstr(out, "\r\n\r\ne3tmaXJzdF9uYW1lfX0=\r\n--outer--\r\n"));
	fields_free(&f);
	free(out);
}

static void template_parse_errors(void **state)
{
	(void)state;
	assert_null(parse_text("Subject: {{first name}}\n\nx\n"));
	assert_non_null(strstr(err, "invalid placeholder in the Subject header"));
	assert_null(
	        parse_text("Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n"));
	assert_non_null(strstr(err, "no closing boundary"));
	assert_null(parse_text("Subject x\n\nbody\n"));
	assert_non_null(strstr(err, "invalid header line"));
	assert_null(parse_text("Subject: x\r\r\n\nbody\n"));
	assert_non_null(strstr(err, "carriage return"));
}

static void template_literal_braces_kept(void **state)
{
	struct fields f;
	char *out;

	(void)state;
	set_fields(&f, "Anna", "x", "x");
	out = render("Subject: x\n\nfunction() {{ return 1;\n}}\n", &f);
	assert_non_null(out);
	assert_non_null(strstr(out, "function() {{ return 1;\r\n}}\r\n"));
	fields_free(&f);
	free(out);
}

static void template_from_address_found(void **state)
{
	struct template *t;
	char *from;

	(void)state;
	t = template_parse(newsletter, strlen(newsletter), err, sizeof(err));
	assert_non_null(t);
	from = template_from_address(t);
	assert_string_equal(from, "news@example.test");
	free(from);
	template_free(t);

	t = parse_text("From: \"a <b>\" <bounce@example.test>\n\nx");
	assert_non_null(t);
	from = template_from_address(t);
	assert_string_equal(from, "bounce@example.test");
	free(from);
	template_free(t);

	t = parse_text("From: <{{email}}>\n\nx");
	assert_non_null(t);
	assert_null(template_from_address(t));
	template_free(t);
}

static void fields_json_round_trip(void **state)
{
	struct fields f, g;
	char *json;

	(void)state;
	fields_init(&f);
	fields_add(&f, "email", "a@example.test");
	fields_add(&f, "note", "quote \" backslash \\ tab \t newline \n J\xc3\xb6rg \x01");
	json = fields_to_json(&f);
	assert_string_equal(json, "{\"email\":\"a@example.test\",\"note\":\"quote \\\" "
	                          "backslash \\\\ tab \\t newline \\n J\xc3\xb6rg \\u0001\"}");
	assert_int_equal(fields_from_json(json, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(fields_get(&g, "note"), fields_get(&f, "note"));
	assert_null(fields_get(&g, "city"));
	fields_free(&g);
	free(json);
	fields_free(&f);

	assert_int_equal(fields_from_json("{\"a\":\"\\u00e9\\ud83d\\ude00\"}", &g), 0);
	assert_string_equal(fields_get(&g, "a"), "\xc3\xa9\xf0\x9f\x98\x80");
	fields_free(&g);
	assert_int_equal(fields_from_json("{\"a\":1}", &g), -1);
	assert_int_equal(fields_from_json("{\"a\":\"b\"} x", &g), -1);
	assert_int_equal(fields_from_json("{\"a\":\"b\",}", &g), -1);
	assert_int_equal(fields_from_json(" { } ", &g), 0);
	assert_int_equal(g.n, 0);
	fields_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(template_substitutes_everywhere),
	        cmocka_unit_test(template_unchanged_headers_kept),
	        cmocka_unit_test(template_check_names_missing_field),
	        cmocka_unit_test(template_check_accepts_all_columns),
	        cmocka_unit_test(template_render_missing_field),
	        cmocka_unit_test(template_header_line_break_rejected),
	        cmocka_unit_test(template_body_line_break_allowed),
	        cmocka_unit_test(template_subject_encoded_words),
	        cmocka_unit_test(template_q_escapes_specials),
	        cmocka_unit_test(template_encoded_word_origin),
	        cmocka_unit_test(template_long_subject_folded),
	        cmocka_unit_test(template_encoded_words_keep_characters_whole),
	        cmocka_unit_test(template_display_name_encoded),
	        cmocka_unit_test(template_display_name_quoted),
	        cmocka_unit_test(template_non_ascii_address_rejected),
	        cmocka_unit_test(template_qp_part_reencoded),
	        cmocka_unit_test(template_qp_soft_breaks),
	        cmocka_unit_test(template_8bit_part_declared),
	        cmocka_unit_test(template_us_ascii_charset_replaced),
	        cmocka_unit_test(template_other_charset_rejected),
	        cmocka_unit_test(template_base64_part_reencoded),
	        cmocka_unit_test(template_nested_multipart),
	        cmocka_unit_test(template_parse_errors),
	        cmocka_unit_test(template_literal_braces_kept),
	        cmocka_unit_test(template_from_address_found),
	        cmocka_unit_test(fields_json_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
