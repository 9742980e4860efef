/*
 * ctl_create - "mailoncectl create": register a mailing.
 *
 *	mailoncectl create MAILING --template FILE.eml --recipients FILE.csv
 *		[--from ADDRESS]
 *
 * Reads the template (an RFC 5322 message with {{field}} placeholders)
 * and the recipient list (CSV with a header row and an "email" column),
 * checks that every placeholder has a column, and stores the mailing in
 * state draft with one recipient per row, seq 1..N in file order. A row
 * is stored as skipped, with the reason, when its "status" column is
 * "invalid", when its address is not a valid mailbox, or when the address
 * is on the suppression list. Every other row is rendered once here, so
 * a value that cannot go into a header (a line break) stops the command
 * now instead of halfway through the send.
 *
 * The envelope sender is --from, else the address of the template's From
 * header. The SHA-256 of the template, the list and --from identifies the
 * inputs: running the command again with the same inputs changes nothing
 * and exits 0; with other inputs under the same mailing id it exits
 * EX_DATAERR.
 *
 * Errors name the file (and the CSV line and record) and exit with a
 * sysexits.h code: EX_USAGE for arguments, EX_NOINPUT for unreadable
 * files, EX_DATAERR for bad content, EX_TEMPFAIL or EX_UNAVAILABLE when
 * the ledger is busy or fails.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include <openssl/evp.h>

#include "addr.h"
#include "alloc.h"
#include "csv.h"
#include "ctl.h"
#include "fields.h"
#include "log.h"
#include "template.h"

#define CREATE_USAGE "MAILING --template FILE.eml --recipients FILE.csv [--from ADDRESS]"

/* The inputs of one create command, the decision for each row, and the counts. */
struct create_job {
	const char *mailing;
	const char *template_path, *csv_path, *from_opt;
	char *template_text, *csv_text;
	size_t template_len, csv_len;
	struct template *template;
	struct csv *csv;
	char *envelope_from;
	struct ledger_new_recipient *rcpts;
	char **owned; /* strings the rcpts point to */
	size_t nowned;
	size_t invalid, suppressed, bad_address;
};

/*
 * create_report_columns - print a placeholder error with the columns the
 * list has; names are compared exactly, so "Name" does not serve {{name}}.
 */
static void create_report_columns(const struct create_job *job, const char *err)
{
	size_t i;

	fprintf(stderr, "mailoncectl create: %s: %s; the columns of %s are:", job->template_path,
	        err, job->csv_path);
	for (i = 0; i < job->csv->ncolumns; i++)
		fprintf(stderr, "%s \"%s\"", i ? "," : "", job->csv->columns[i]);
	fprintf(stderr, " (names are case-sensitive)\n");
}

/* create_read_file - the whole file as a NUL-terminated string; exits on error. */
static char *create_read_file(const char *path, size_t *len)
{
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	FILE *fp = fopen(path, "rb");

	if (fp == NULL)
		msg_fatal(EX_NOINPUT, "cannot open %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, n);
	if (ferror(fp))
		msg_fatal(EX_NOINPUT, "cannot read %s: %s", path, strerror(errno));
	fclose(fp);
	buf_append(&b, "", 0);
	*len = b.len;
	return buf_steal(&b);
}

/* create_digest - hex SHA-256 over the template, the list and --from. */
static void create_digest(const struct create_job *job, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	const char *from = job->from_opt ? job->from_opt : "";
	char lengths[96];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* The lengths first, so that bytes cannot move from one input to the next. */
	snprintf(lengths, sizeof(lengths), "%zu:%zu:%zu:", job->template_len, job->csv_len,
	         strlen(from));
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, lengths, strlen(lengths)) != 1 ||
	    EVP_DigestUpdate(ctx, job->template_text, job->template_len) != 1 ||
	    EVP_DigestUpdate(ctx, job->csv_text, job->csv_len) != 1 ||
	    EVP_DigestUpdate(ctx, from, strlen(from)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		msg_fatal(EX_SOFTWARE, "cannot compute SHA-256 with OpenSSL");
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* create_load - read and parse both files and check them against each other. */
static int create_load(struct create_job *job)
{
	char err[1024];
	const char *why;

	job->template_text = create_read_file(job->template_path, &job->template_len);
	job->csv_text = create_read_file(job->csv_path, &job->csv_len);
	job->template = template_parse(job->template_text, job->template_len, err, sizeof(err));
	if (job->template == NULL) {
		fprintf(stderr, "mailoncectl create: %s: %s\n", job->template_path, err);
		return EX_DATAERR;
	}
	job->csv = csv_parse(job->csv_path, job->csv_text, job->csv_len, err, sizeof(err));
	if (job->csv == NULL) {
		fprintf(stderr, "mailoncectl create: %s\n", err);
		return EX_DATAERR;
	}
	if (job->csv->nrows == 0) {
		fprintf(stderr, "mailoncectl create: %s: no recipients after the header row\n",
		        job->csv_path);
		return EX_DATAERR;
	}
	if (template_check(job->template, (const char *const *)job->csv->columns,
	                   job->csv->ncolumns, err, sizeof(err)) != 0) {
		create_report_columns(job, err);
		return EX_DATAERR;
	}

	/* The envelope sender. */
	if (job->from_opt != NULL)
		job->envelope_from = xstrdup(job->from_opt);
	else
		job->envelope_from = template_from_address(job->template);
	if (job->envelope_from == NULL) {
		fprintf(stderr,
		        "mailoncectl create: %s has no usable From address; give the envelope "
		        "sender with --from ADDRESS\n",
		        job->template_path);
		return EX_DATAERR;
	}
	if ((why = addr_check(job->envelope_from)) != NULL) {
		fprintf(stderr, "mailoncectl create: invalid envelope sender \"%s\": %s\n",
		        job->envelope_from, why);
		return EX_DATAERR;
	}
	return EX_OK;
}

static const char *create_keep(struct create_job *job, char *s)
{
	job->owned[job->nowned++] = s;
	return s;
}

static char *create_trim(const char *s)
{
	size_t len;

	while (*s == ' ' || *s == '\t')
		s++;
	len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return xstrndup(s, len);
}

static int create_ledger_exit(enum ledger_rc rc)
{
	return rc == LEDGER_BUSY ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

/* create_row_fields - the row as fields, the email value trimmed. */
static void create_row_fields(const struct csv *csv, const struct csv_row *row, const char *address,
                              struct fields *f)
{
	size_t i;

	fields_init(f);
	for (i = 0; i < csv->ncolumns; i++)
		fields_add(f, csv->columns[i], i == csv->email_col ? address : row->values[i]);
}

/* create_skip_reason - why the row is skipped (a string to free), or NULL. */
static char *create_skip_reason(struct create_job *job, struct ledger *ledger, size_t i,
                                const char *address)
{
	const struct csv_row *row = &job->csv->rows[i];
	char *status, *normal, *reason = NULL;
	const char *why;
	enum ledger_rc rc;
	int marked, listed = 0;

	if (job->csv->status_col >= 0) {
		status = create_trim(row->values[job->csv->status_col]);
		marked = strcasecmp(status, "invalid") == 0;
		free(status);
		if (marked) {
			job->invalid++;
			return xstrdup("marked invalid in the list");
		}
	}
	if ((why = addr_check(address)) != NULL) {
		job->bad_address++;
		return xasprintf("invalid address: %s", why);
	}

	normal = addr_normalize(address);
	rc = ledger_suppressed(ledger, normal, &listed, &reason);
	free(normal);
	if (rc != LEDGER_OK)
		msg_fatal(create_ledger_exit(rc), "cannot look up %s in the suppression list: %s",
		          address, ledger_errmsg(ledger));
	if (!listed)
		return NULL;
	job->suppressed++;
	normal = xasprintf("suppressed: %s", reason ? reason : "on the suppression list");
	free(reason);
	return normal;
}

/* create_rows - decide every row; render the pending ones once to find bad values. */
static int create_rows(struct create_job *job, struct ledger *ledger)
{
	size_t i, n = job->csv->nrows, len;
	struct fields f;
	char err[1024], *address, *reason, *message;

	job->rcpts = xcalloc(n, sizeof(*job->rcpts));
	job->owned = xcalloc(3 * n, sizeof(*job->owned));
	for (i = 0; i < n; i++) {
		const struct csv_row *row = &job->csv->rows[i];
		struct ledger_new_recipient *r = &job->rcpts[i];

		address = create_trim(row->values[job->csv->email_col]);
		r->address = create_keep(job, address);
		create_row_fields(job->csv, row, address, &f);
		r->fields = create_keep(job, fields_to_json(&f));
		reason = create_skip_reason(job, ledger, i, address);
		if (reason != NULL) {
			r->status = RCPT_SKIPPED;
			r->reason = create_keep(job, reason);
			fields_free(&f);
			continue;
		}
		r->status = RCPT_PENDING;
		r->reason = NULL;

		message = template_render(job->template, &f, &len, err, sizeof(err));
		fields_free(&f);
		if (message == NULL) {
			fprintf(stderr, "mailoncectl create: %s: line %zu (record %zu), %s: %s\n",
			        job->csv_path, row->line, row->record, address, err);
			return EX_DATAERR;
		}
		free(message);
	}
	return EX_OK;
}

static int create_address_cmp(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(*x, *y);
}

/* create_warn_duplicates - warn once for each address on more than one pending row. */
static void create_warn_duplicates(const struct create_job *job)
{
	size_t i, n = 0, count;
	char **list = xcalloc(job->csv->nrows, sizeof(*list));

	for (i = 0; i < job->csv->nrows; i++)
		if (job->rcpts[i].status == RCPT_PENDING)
			list[n++] = addr_normalize(job->rcpts[i].address);
	qsort(list, n, sizeof(*list), create_address_cmp);
	for (i = 0; i < n; i += count) {
		for (count = 1; i + count < n && strcmp(list[i], list[i + count]) == 0; count++)
			;
		if (count > 1)
			msg_warn("%s: %s is on %zu rows and gets one message for each",
			         job->csv_path, list[i], count);
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void create_job_free(struct create_job *job)
{
	size_t i;

	for (i = 0; i < job->nowned; i++)
		free(job->owned[i]);
	free(job->owned);
	free(job->rcpts);
	free(job->envelope_from);
	csv_free(job->csv);
	template_free(job->template);
	free(job->template_text);
	free(job->csv_text);
}

/* create_store - write the mailing to the ledger and print the outcome. */
static int create_store(struct ctl *ctl, struct create_job *job, struct ledger *ledger)
{
	char digest[LEDGER_DIGEST_HEX + 1];
	size_t n = job->csv->nrows;
	size_t skipped = job->invalid + job->suppressed + job->bad_address;
	enum ledger_rc rc;
	int existed = 0;

	create_digest(job, digest);
	rc = ledger_mailing_create(ledger, job->mailing, ctl->conf.server_id, job->template_text,
	                           job->envelope_from, digest, job->rcpts, n, &existed);
	if (rc == LEDGER_EXISTS) {
		fprintf(stderr,
		        "mailoncectl create: mailing %s already exists with other inputs; "
		        "choose another mailing id\n",
		        job->mailing);
		return EX_DATAERR;
	}
	if (rc != LEDGER_OK) {
		fprintf(stderr, "mailoncectl create: cannot store mailing %s: %s\n", job->mailing,
		        ledger_errmsg(ledger));
		return create_ledger_exit(rc);
	}
	if (existed) {
		printf("mailing %s already exists with the same inputs; nothing changed\n",
		       job->mailing);
		return EX_OK;
	}
	printf("created mailing %s: %zu recipients, %zu pending, %zu skipped (%zu invalid, "
	       "%zu suppressed, %zu bad address)\n",
	       job->mailing, n, n - skipped, skipped, job->invalid, job->suppressed,
	       job->bad_address);
	return EX_OK;
}

/* ctl_cmd_create - register a mailing from a template and a CSV list */
int ctl_cmd_create(struct ctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
	        {"template", required_argument, NULL, 't'},
	        {"recipients", required_argument, NULL, 'r'},
	        {"from", required_argument, NULL, 'f'},
	        {NULL, 0, NULL, 0},
	};
	struct create_job job;
	struct ledger *ledger;
	int ch, rc;

	memset(&job, 0, sizeof(job));
	while ((ch = getopt_long(argc, argv, "t:r:f:", options, NULL)) != -1) {
		switch (ch) {
		case 't':
			job.template_path = optarg;
			break;
		case 'r':
			job.csv_path = optarg;
			break;
		case 'f':
			job.from_opt = optarg;
			break;
		default:
			return ctl_usage_error("create", CREATE_USAGE, "unknown option");
		}
	}
	if (optind + 1 != argc)
		return ctl_usage_error("create", CREATE_USAGE, "expected one mailing id");
	job.mailing = argv[optind];
	if (!token_mailing_valid(job.mailing))
		return ctl_usage_error("create", CREATE_USAGE,
		                       "invalid mailing id \"%s\": use 1 to 64 letters, digits, "
		                       "'.', '_' or '-'",
		                       job.mailing);
	if (job.template_path == NULL || job.csv_path == NULL)
		return ctl_usage_error("create", CREATE_USAGE,
		                       "both --template and --recipients are required");

	rc = create_load(&job);
	if (rc == EX_OK) {
		ctl_need_conf(ctl);
		ledger = ctl_need_ledger(ctl, 1);
		rc = create_rows(&job, ledger);
		if (rc == EX_OK) {
			create_warn_duplicates(&job);
			rc = create_store(ctl, &job, ledger);
		}
	}
	create_job_free(&job);
	return rc;
}
