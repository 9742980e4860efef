/*
 * tempfail_milter - a test milter that replies 451 to the first attempt
 * of each tracked message and passes every later one.
 *
 * Usage: tempfail_milter inet:PORT@127.0.0.1
 *
 * Placed after mailonce-milter in smtpd_milters, it makes Postfix refuse
 * a message that mailonce-milter has already accepted: the case where
 * the queue file is never committed although our milter passed it.
 * A message is known by the m= and s= values of its Mailonce-Token
 * header. Postfix gives each milter the message as the milters before it
 * left it, so the header is there only with StripToken no in
 * mailonce.conf. Mail without the header passes untouched. The attempts
 * seen are kept in memory only.
 */
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEEN_MAX 4096

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char *seen[SEEN_MAX];
static size_t seen_count;

/* token_value - copy the value of "name=" in a token into dst. */
static int token_value(const char *token, const char *name, char *dst, size_t size)
{
	size_t nlen = strlen(name);
	const char *p = token;

	while (*p != '\0') {
		p += strspn(p, " \t;");
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			size_t len = strcspn(p + nlen + 1, " \t;");

			if (len == 0 || len >= size)
				return -1;
			memcpy(dst, p + nlen + 1, len);
			dst[len] = '\0';
			return 0;
		}
		p += strcspn(p, ";");
	}
	return -1;
}

/* first_attempt - 1 the first time key is seen, and remember it. */
static int first_attempt(const char *key)
{
	int first = 1;

	pthread_mutex_lock(&seen_lock);
	for (size_t i = 0; i < seen_count; i++)
		if (strcmp(seen[i], key) == 0)
			first = 0;
	if (first && seen_count < SEEN_MAX)
		seen[seen_count++] = strdup(key);
	pthread_mutex_unlock(&seen_lock);
	return first;
}

static void forget_message(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, NULL);
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
	char mailing[128], seq[32], key[200];

	if (strcasecmp(name, "Mailonce-Token") != 0)
		return SMFIS_CONTINUE;
	if (token_value(value, "m", mailing, sizeof(mailing)) < 0 ||
	    token_value(value, "s", seq, sizeof(seq)) < 0)
		return SMFIS_CONTINUE;
	snprintf(key, sizeof(key), "%s/%s", mailing, seq);
	forget_message(ctx);
	smfi_setpriv(ctx, strdup(key));
	return SMFIS_CONTINUE;
}

static sfsistat on_eom(SMFICTX *ctx)
{
	const char *key = smfi_getpriv(ctx);
	sfsistat verdict = SMFIS_CONTINUE;

	if (key != NULL && first_attempt(key)) {
		fprintf(stderr, "tempfail_milter: first attempt of %s: 451\n", key);
		smfi_setreply(ctx, "451", "4.7.1", "first attempt refused by test milter");
		verdict = SMFIS_TEMPFAIL;
	}
	forget_message(ctx);
	return verdict;
}

static sfsistat on_abort(SMFICTX *ctx)
{
	forget_message(ctx);
	return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
	struct smfiDesc desc = {
	        .xxfi_name = "tempfail_milter",
	        .xxfi_version = SMFI_VERSION,
	        .xxfi_flags = 0,
	        .xxfi_header = on_header,
	        .xxfi_eom = on_eom,
	        .xxfi_abort = on_abort,
	        .xxfi_close = on_abort,
	};

	if (argc != 2 || strncmp(argv[1], "inet:", 5) != 0 ||
	    strstr(argv[1], "@127.0.0.1") == NULL) {
		fprintf(stderr, "usage: tempfail_milter inet:PORT@127.0.0.1\n");
		return 64;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) {
		fprintf(stderr, "tempfail_milter: cannot listen on %s\n", argv[1]);
		return 71;
	}
	fprintf(stderr, "tempfail_milter: listening on %s\n", argv[1]);
	return smfi_main() == MI_SUCCESS ? 0 : 70;
}
