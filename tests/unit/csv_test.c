/*
 * csv_test - unit tests for lib/csv.c: quoting, line ends, the byte order
 * mark, and the errors that name the line and record of a bad row.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

static char err[512];

static struct csv *parse(const char *text)
{
	err[0] = '\0';
	return csv_parse("list.csv", text, strlen(text), err, sizeof(err));
}

static void csv_plain_rows(void **state)
{
	struct csv *c = parse("email,first_name\na@example.test,Anna\nb@example.test,Ben\n");

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->ncolumns, 2);
	assert_string_equal(c->columns[1], "first_name");
	assert_int_equal(c->email_col, 0);
	assert_int_equal(c->status_col, -1);
	assert_int_equal(c->nrows, 2);
	assert_string_equal(c->rows[1].values[0], "b@example.test");
	assert_string_equal(c->rows[1].values[1], "Ben");
	assert_int_equal(c->rows[1].line, 3);
	assert_int_equal(c->rows[1].record, 2);
	csv_free(c);
}

static void csv_quoted_fields(void **state)
{
	struct csv *c = parse("email,city,note\n"
	                      "a@example.test,\"Frankfurt, Main\",\"say \"\"hi\"\"\"\n"
	                      "b@example.test,\"\",\"two\nlines\"\n"
	                      "c@example.test,x,\"crlf\r\ninside\"\n");

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->nrows, 3);
	assert_string_equal(c->rows[0].values[1], "Frankfurt, Main");
	assert_string_equal(c->rows[0].values[2], "say \"hi\"");
	assert_string_equal(c->rows[1].values[1], "");
	assert_string_equal(c->rows[1].values[2], "two\nlines");
	assert_string_equal(c->rows[2].values[2], "crlf\r\ninside");

	/* The record after a two-line field starts two lines further on. */
	assert_int_equal(c->rows[2].line, 5);
	assert_int_equal(c->rows[2].record, 3);
	csv_free(c);
}

static void csv_crlf_bom_and_no_final_newline(void **state)
{
	struct csv *c = parse("\xef\xbb\xbf Email ,Name\r\na@example.test,J\xc3\xb6rg\r\n"
	                      "b@example.test,Zo\xc3\xab");

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->columns[0], "Email");
	assert_int_equal(c->email_col, 0);
	assert_int_equal(c->nrows, 2);
	assert_string_equal(c->rows[0].values[1], "J\xc3\xb6rg");
	assert_string_equal(c->rows[1].values[1], "Zo\xc3\xab");
	csv_free(c);
}

static void csv_blank_lines_ignored(void **state)
{
	struct csv *c = parse("email\n\na@example.test\n\n\nb@example.test\n\n");

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->nrows, 2);
	assert_int_equal(c->rows[1].line, 6);
	assert_int_equal(c->rows[1].record, 2);
	csv_free(c);
}

static void csv_status_column(void **state)
{
	struct csv *c = parse("name,STATUS,email\nx,invalid,a@example.test\n");

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->email_col, 2);
	assert_int_equal(c->status_col, 1);
	assert_int_equal(csv_column(c, "Status"), 1);
	assert_int_equal(csv_column(c, "city"), -1);
	csv_free(c);
}

static void csv_bad_utf8_names_row(void **state)
{
	(void)state;
	assert_null(parse("email,name\na@example.test,ok\nb@example.test,J\xf6rg\n"));
	assert_string_equal(err, "list.csv: line 3 (record 2): field 2 is not valid UTF-8; "
	                         "save the file as UTF-8");

	/* An overlong encoding and a UTF-16 surrogate are not valid either. */
	assert_null(parse("email\n\xc0\xaf@example.test\n"));
	assert_non_null(strstr(err, "line 2 (record 1)"));
	assert_null(parse("email\n\xed\xa0\x80@example.test\n"));
	assert_non_null(strstr(err, "not valid UTF-8"));
	assert_null(parse("email\nx\xe2\x82\n"));
	assert_non_null(strstr(err, "not valid UTF-8"));
}

static void csv_ragged_row_names_row(void **state)
{
	(void)state;
	assert_null(parse("email,name\n\"a@example.test\",\"multi\nline\"\nb@example.test\n"));
	assert_string_equal(err, "list.csv: line 4 (record 2): 1 fields, but the header has 2 "
	                         "columns");
	assert_null(parse("email,name\na@example.test,x,y\n"));
	assert_string_equal(err, "list.csv: line 2 (record 1): 3 fields, but the header has 2 "
	                         "columns");
}

static void csv_unterminated_quote(void **state)
{
	(void)state;
	assert_null(parse("email,name\na@example.test,x\nb@example.test,\"open\nstill open\n"));
	assert_string_equal(err, "list.csv: line 3 (record 2): a quoted field is not closed at "
	                         "the end of the file");
}

static void csv_stray_quotes(void **state)
{
	(void)state;
	assert_null(parse("email,name\na@example.test,ab\"c\n"));
	assert_non_null(strstr(err, "line 2 (record 1): a quote inside unquoted field 2"));
	assert_null(parse("email,name\na@example.test,\"ab\"c\n"));
	assert_non_null(strstr(err, "line 2 (record 1): text after the closing quote of field 2"));
}

static void csv_missing_email_column(void **state)
{
	(void)state;
	assert_null(parse("mail,first_name\na@example.test,Anna\n"));
	assert_string_equal(err, "list.csv: no \"email\" column in the header row (columns "
	                         "found: \"mail\", \"first_name\")");
}

static void csv_bad_header_names(void **state)
{
	(void)state;
	assert_null(parse("email,name,Name\n"));
	assert_string_equal(err, "list.csv: line 1 (header): column name \"Name\" appears twice");
	assert_null(parse("email, ,city\n"));
	assert_string_equal(err, "list.csv: line 1 (header): column 2 has no name");
	assert_null(parse(""));
	assert_non_null(strstr(err, "the file is empty"));
}

static void csv_header_only(void **state)
{
	struct csv *c = parse("email,name\r\n");

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->nrows, 0);
	csv_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(csv_plain_rows),
	        cmocka_unit_test(csv_quoted_fields),
	        cmocka_unit_test(csv_crlf_bom_and_no_final_newline),
	        cmocka_unit_test(csv_blank_lines_ignored),
	        cmocka_unit_test(csv_status_column),
	        cmocka_unit_test(csv_bad_utf8_names_row),
	        cmocka_unit_test(csv_ragged_row_names_row),
	        cmocka_unit_test(csv_unterminated_quote),
	        cmocka_unit_test(csv_stray_quotes),
	        cmocka_unit_test(csv_missing_email_column),
	        cmocka_unit_test(csv_bad_header_names),
	        cmocka_unit_test(csv_header_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
