/*
 * csv - the recipient list: an RFC 4180 file with a header row.
 *
 * The header names the columns; one of them must be "email" (any case).
 * Each further record is one recipient.
 */
#ifndef MAILONCE_CSV_H
#define MAILONCE_CSV_H

#include <stddef.h>

struct csv_row {
	size_t line;   /* line of the file where the record starts, from 1 */
	size_t record; /* data record number, from 1 (the header is record 0) */
	char **values; /* ncolumns strings */
};

struct csv {
	size_t ncolumns;
	char **columns;   /* header names, trimmed */
	size_t email_col; /* index of the "email" column */
	long status_col;  /* index of the "status" column, or -1 */
	size_t nrows;
	struct csv_row *rows;
};

/*
 * csv_parse - parse data (len bytes) of the file called name. NULL with
 * err naming the file, line and record of the first problem.
 */
struct csv *csv_parse(const char *name, const char *data, size_t len, char *err, size_t errlen);
void csv_free(struct csv *csv);

/* csv_column - the index of the column called name (case-insensitive), or -1. */
long csv_column(const struct csv *csv, const char *name);

#endif
