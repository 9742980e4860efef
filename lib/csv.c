/*
 * csv - the recipient list: an RFC 4180 file with a header row.
 *
 * csv_parse reads the whole file from memory. It accepts quoted fields
 * with "" for a quote and with commas and line breaks inside, CRLF or LF
 * at the end of records, and a UTF-8 byte order mark at the start. Lines
 * that are empty outside quotes are ignored, so a trailing blank line is
 * harmless. Every field must be valid UTF-8 without NUL bytes.
 *
 * Header names are trimmed of spaces and tabs, must be non-empty and
 * unique (ignoring case), and one must be "email". Values are kept as
 * they are, surrounding spaces included.
 *
 * Errors: csv_parse returns NULL with a message of the form
 * "FILE: line L (record R): what is wrong" for the first problem found.
 * Problems are invalid UTF-8, a record with another number of fields than
 * the header, a quote in the middle of an unquoted field, text after a
 * closing quote, and a quote left open at the end of the file. Nothing
 * here logs.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "csv.h"

/* One record being read: its fields and where it started. */
struct csv_record {
	size_t line;
	size_t nfields;
	char **fields;
};

struct csv_reader {
	const char *name;
	const char *p, *end;
	size_t line; /* current line number */
	size_t record;
	char *err;
	size_t errlen;
};

static void csv_error(struct csv_reader *r, size_t line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* csv_error - format "FILE: line L (record R): message" into r->err. */
static void csv_error(struct csv_reader *r, size_t line, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (r->record == 0)
		snprintf(r->err, r->errlen, "%s: line %zu (header): %s", r->name, line, text);
	else
		snprintf(r->err, r->errlen, "%s: line %zu (record %zu): %s", r->name, line,
		         r->record, text);
}

/* csv_utf8_valid - 1 if s is well-formed UTF-8 (no overlongs, no surrogates). */
static int csv_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	unsigned cp;

	while (i < len) {
		unsigned char c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + n >= len)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		if (cp >= 0xd800 && cp <= 0xdfff)
			return 0;
		i += n + 1;
	}
	return 1;
}

static void csv_record_free(struct csv_record *rec)
{
	size_t i;

	for (i = 0; i < rec->nfields; i++)
		free(rec->fields[i]);
	free(rec->fields);
	rec->fields = NULL;
	rec->nfields = 0;
}

/* csv_push_field - end the current field: check it and add it to rec. */
static int csv_push_field(struct csv_reader *r, struct csv_record *rec, struct buf *field)
{
	if (memchr(field->data ? field->data : "", '\0', field->len) != NULL) {
		csv_error(r, rec->line, "field %zu contains a NUL byte", rec->nfields + 1);
		return -1;
	}
	if (!csv_utf8_valid((const unsigned char *)(field->data ? field->data : ""), field->len)) {
		csv_error(r, rec->line, "field %zu is not valid UTF-8; save the file as UTF-8",
		          rec->nfields + 1);
		return -1;
	}
	rec->fields = xrealloc(rec->fields, (rec->nfields + 1) * sizeof(*rec->fields));
	rec->fields[rec->nfields++] = xstrndup(field->data ? field->data : "", field->len);
	buf_reset(field);
	return 0;
}

/* csv_quoted - read the rest of a quoted field after its opening quote. */
static int csv_quoted(struct csv_reader *r, struct csv_record *rec, struct buf *field)
{
	for (;;) {
		if (r->p >= r->end) {
			csv_error(r, rec->line,
			          "a quoted field is not closed at the end of the file");
			return -1;
		}
		if (*r->p == '"') {
			if (r->p + 1 < r->end && r->p[1] == '"') {
				buf_putc(field, '"');
				r->p += 2;
				continue;
			}
			r->p++;
			break;
		}
		if (*r->p == '\n')
			r->line++;
		buf_putc(field, *r->p++);
	}

	/* After the closing quote only a separator or a record end may follow. */
	if (r->p < r->end && *r->p != ',' && *r->p != '\n' &&
	    !(*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n')) {
		csv_error(r, rec->line, "text after the closing quote of field %zu",
		          rec->nfields + 1);
		return -1;
	}
	return 0;
}

/*
 * csv_next_record - read one record into rec. Returns 1 when a record was
 * read, 0 at the end of the file, -1 on error.
 */
static int csv_next_record(struct csv_reader *r, struct csv_record *rec)
{
	struct buf field = BUF_INIT;
	int rc = -1;

	/* Skip empty lines between records. */
	while (r->p < r->end &&
	       (*r->p == '\n' || (*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n'))) {
		r->p += (*r->p == '\r') ? 2 : 1;
		r->line++;
	}
	if (r->p >= r->end)
		return 0;
	rec->line = r->line;
	rec->nfields = 0;
	rec->fields = NULL;

	for (;;) {
		if (r->p < r->end && *r->p == '"') {
			r->p++;
			if (csv_quoted(r, rec, &field) != 0)
				goto out;
		} else {
			while (r->p < r->end && *r->p != ',' && *r->p != '\n' &&
			       !(*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n')) {
				if (*r->p == '"') {
					csv_error(r, rec->line,
					          "a quote inside unquoted field %zu; quote the "
					          "whole field and double the quote",
					          rec->nfields + 1);
					goto out;
				}
				buf_putc(&field, *r->p++);
			}
		}
		if (csv_push_field(r, rec, &field) != 0)
			goto out;
		if (r->p >= r->end)
			break;
		if (*r->p == ',') {
			r->p++;
			continue;
		}
		r->p += (*r->p == '\r') ? 2 : 1;
		r->line++;
		break;
	}
	rc = 1;
out:
	buf_free(&field);
	if (rc < 0)
		csv_record_free(rec);
	return rc;
}

static void csv_trim(char *s)
{
	size_t len = strlen(s), start = 0;

	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	while (s[start] == ' ' || s[start] == '\t')
		start++;
	memmove(s, s + start, len - start + 1);
}

long csv_column(const struct csv *csv, const char *name)
{
	size_t i;

	for (i = 0; i < csv->ncolumns; i++)
		if (strcasecmp(csv->columns[i], name) == 0)
			return (long)i;
	return -1;
}

/* csv_header - take rec as the header row: check the names, find email. */
static int csv_header(struct csv_reader *r, struct csv *csv, struct csv_record *rec)
{
	struct buf found = BUF_INIT;
	size_t i, j;
	long email;

	csv->ncolumns = rec->nfields;
	csv->columns = rec->fields;
	rec->fields = NULL;
	rec->nfields = 0;
	for (i = 0; i < csv->ncolumns; i++) {
		csv_trim(csv->columns[i]);
		if (csv->columns[i][0] == '\0') {
			csv_error(r, rec->line, "column %zu has no name", i + 1);
			return -1;
		}
		for (j = 0; j < i; j++) {
			if (strcasecmp(csv->columns[i], csv->columns[j]) == 0) {
				csv_error(r, rec->line, "column name \"%s\" appears twice",
				          csv->columns[i]);
				return -1;
			}
		}
	}

	email = csv_column(csv, "email");
	if (email < 0) {
		for (i = 0; i < csv->ncolumns; i++)
			buf_printf(&found, "%s\"%s\"", i ? ", " : "", csv->columns[i]);
		snprintf(r->err, r->errlen,
		         "%s: no \"email\" column in the header row (columns found: %s)", r->name,
		         found.data);
		buf_free(&found);
		return -1;
	}
	csv->email_col = (size_t)email;
	csv->status_col = csv_column(csv, "status");
	return 0;
}

/* csv_add_row - take rec as a data row once its field count is checked. */
static int csv_add_row(struct csv_reader *r, struct csv *csv, struct csv_record *rec)
{
	struct csv_row *row;

	if (rec->nfields != csv->ncolumns) {
		csv_error(r, rec->line, "%zu fields, but the header has %zu columns", rec->nfields,
		          csv->ncolumns);
		return -1;
	}
	csv->rows = xrealloc(csv->rows, (csv->nrows + 1) * sizeof(*csv->rows));
	row = &csv->rows[csv->nrows++];
	row->line = rec->line;
	row->record = r->record;
	row->values = rec->fields;
	rec->fields = NULL;
	rec->nfields = 0;
	return 0;
}

struct csv *csv_parse(const char *name, const char *data, size_t len, char *err, size_t errlen)
{
	struct csv_reader r;
	struct csv_record rec = {0, 0, NULL};
	struct csv *csv = xcalloc(1, sizeof(*csv));
	int rc;

	r.name = name;
	r.p = data;
	r.end = data + len;
	r.line = 1;
	r.record = 0;
	r.err = err;
	r.errlen = errlen;
	csv->status_col = -1;
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		r.p += 3;

	/* The header row. */
	rc = csv_next_record(&r, &rec);
	if (rc == 0)
		snprintf(err, errlen,
		         "%s: the file is empty; it needs a header row with an "
		         "\"email\" column",
		         name);
	if (rc <= 0 || csv_header(&r, csv, &rec) != 0)
		goto fail;

	/* The recipients. */
	for (;;) {
		r.record++;
		rc = csv_next_record(&r, &rec);
		if (rc == 0)
			break;
		if (rc < 0 || csv_add_row(&r, csv, &rec) != 0)
			goto fail;
	}
	return csv;

fail:
	csv_record_free(&rec);
	csv_free(csv);
	return NULL;
}

void csv_free(struct csv *csv)
{
	size_t i, j;

	if (csv == NULL)
		return;
	for (i = 0; i < csv->nrows; i++) {
		for (j = 0; j < csv->ncolumns; j++)
			free(csv->rows[i].values[j]);
		free(csv->rows[i].values);
	}
	free(csv->rows);
	for (i = 0; i < csv->ncolumns; i++)
		free(csv->columns[i]);
	free(csv->columns);
	free(csv);
}
