/*
 * ctl_keys - the key commands of mailoncectl: keygen and token.
 *
 *	mailoncectl keygen [-k KEYID] [-f FILE]
 *		creates FILE (default: KeyFile of the configuration) with
 *		mode 0600 and one fresh key, or puts a fresh key first in an
 *		existing FILE, where it signs from now on while the older
 *		keys still verify. Prints the key id and the file.
 *
 *	mailoncectl token [-f FILE] [-k KEYID] MAILING SEQ RCPT
 *		prints the "Mailonce-Token: ..." header line of the message
 *		of mailing MAILING, sequence number SEQ, for the envelope
 *		recipient RCPT, signed with KEYID or the signing key.
 *
 *	mailoncectl token [-f FILE] --verify VALUE RCPT
 *		checks a token (the header value, with or without the
 *		"Mailonce-Token:" name) against RCPT. Prints "valid:
 *		mailing=M seq=S key=K" and exits 0, or prints "invalid
 *		token: REASON" and exits EX_DATAERR.
 *
 * Both verdicts of --verify go to standard output, since they are what
 * the command was asked for. Bad arguments are usage errors (EX_USAGE)
 * that name the argument. A key file that cannot be read or written ends
 * the command with the file's name and the reason.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "addr.h"
#include "ctl.h"
#include "log.h"

#define KEYGEN_USAGE "[-k KEYID] [-f FILE]"
#define TOKEN_USAGE                                                                                \
	"[-f FILE] [-k KEYID] MAILING SEQ RCPT\n"                                                  \
	"       mailoncectl token [-f FILE] --verify VALUE RCPT"

/* ctl_keygen_path - the key file named by -f, or KeyFile of the configuration */
static const char *ctl_keygen_path(struct ctl *ctl, const char *file)
{
	if (file != NULL)
		return file;
	return ctl_need_conf(ctl)->key_file;
}

/* ctl_cmd_keygen - create a key file or add a new signing key to it */
int ctl_cmd_keygen(struct ctl *ctl, int argc, char **argv)
{
	const char *key_id = NULL;
	const char *file = NULL;
	const char *path;
	char new_id[TOKEN_KEYID_MAX + 1];
	char err[512];
	struct stat st;
	int existed;
	int ch;

	while ((ch = getopt(argc, argv, "k:f:")) != -1) {
		switch (ch) {
		case 'k':
			key_id = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		default:
			return ctl_usage_error("keygen", KEYGEN_USAGE, "unknown option");
		}
	}
	if (optind != argc)
		return ctl_usage_error("keygen", KEYGEN_USAGE, "unexpected argument \"%s\"",
		                       argv[optind]);
	if (key_id != NULL && !token_key_id_valid(key_id))
		return ctl_usage_error("keygen", KEYGEN_USAGE,
		                       "invalid key id \"%s\": use 1 to 32 letters, digits, "
		                       "dots, hyphens or underscores",
		                       key_id);

	path = ctl_keygen_path(ctl, file);
	existed = stat(path, &st) == 0;
	if (keyfile_add_key(path, key_id, new_id, sizeof(new_id), err, sizeof(err)) != 0) {
		fprintf(stderr, "mailoncectl keygen: %s\n", err);
		return EX_CANTCREAT;
	}

	if (existed)
		printf("added key %s to %s; it signs new tokens, the older keys still verify\n",
		       new_id, path);
	else
		printf("created %s with key %s\n", path, new_id);
	return EX_OK;
}

/* ctl_token_keys - the keyring of -f FILE, or of KeyFile in the configuration */
static struct keyring *ctl_token_keys(struct ctl *ctl, const char *file)
{
	char err[512];

	if (file == NULL)
		return ctl_need_keys(ctl);
	if (ctl->keys == NULL) {
		ctl->keys = keyring_load(file, err, sizeof(err));
		if (ctl->keys == NULL)
			msg_fatal(EX_CONFIG, "%s", err);
	}
	return ctl->keys;
}

/*
 * ctl_parse_seq - a sequence number as the token grammar writes it:
 * decimal digits, no sign, no leading zero, 1 to 2^63-1.
 */
static int ctl_parse_seq(const char *text, uint64_t *seq)
{
	uint64_t value = 0;
	const char *p;

	if (text[0] < '1' || text[0] > '9')
		return -1;
	for (p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (value > (TOKEN_SEQ_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		value = value * 10 + (uint64_t)(*p - '0');
	}
	*seq = value;
	return 0;
}

/* ctl_check_rcpt - NULL when rcpt (with or without <>) is a mailbox, else why not */
static const char *ctl_check_rcpt(const char *rcpt)
{
	char *bare = token_normalize_rcpt(rcpt);
	const char *problem = addr_check(bare);

	free(bare);
	return problem;
}

/* ctl_token_build - print the header line of one message */
static int ctl_token_build(struct ctl *ctl, const char *file, const char *key_id, char **args)
{
	const char *reason = NULL;
	const char *problem;
	struct keyring *keys;
	uint64_t seq;
	char *value;

	if (!token_mailing_valid(args[0]))
		return ctl_usage_error("token", TOKEN_USAGE,
		                       "invalid mailing id \"%s\": use 1 to 64 letters, digits, "
		                       "dots, hyphens or underscores",
		                       args[0]);
	if (ctl_parse_seq(args[1], &seq) != 0)
		return ctl_usage_error("token", TOKEN_USAGE,
		                       "invalid sequence number \"%s\": use a whole number from "
		                       "1 to %" PRId64 " without leading zeros",
		                       args[1], INT64_MAX);
	if ((problem = ctl_check_rcpt(args[2])) != NULL)
		return ctl_usage_error("token", TOKEN_USAGE, "invalid recipient \"%s\": %s",
		                       args[2], problem);
	if (key_id != NULL && !token_key_id_valid(key_id))
		return ctl_usage_error("token", TOKEN_USAGE,
		                       "invalid key id \"%s\": use 1 to 32 letters, digits, "
		                       "dots, hyphens or underscores",
		                       key_id);

	keys = ctl_token_keys(ctl, file);
	value = token_build(keys, key_id, args[0], seq, args[2], &reason);
	if (value == NULL) {
		fprintf(stderr, "mailoncectl token: cannot sign with key %s: %s\n",
		        key_id ? key_id : keyring_signing_id(keys),
		        reason ? reason : "unknown error");
		return EX_DATAERR;
	}
	printf("%s: %s\n", TOKEN_HEADER, value);
	free(value);
	return EX_OK;
}

/* ctl_token_verify - check a token value against a recipient */
static int ctl_token_verify(struct ctl *ctl, const char *file, const char *value, const char *rcpt)
{
	size_t name_len = strlen(TOKEN_HEADER);
	const char *reason = NULL;
	struct keyring *keys;
	struct token tok;

	/* Accept the whole header line as it was copied from a message. */
	value += strspn(value, " \t");
	if (strncasecmp(value, TOKEN_HEADER, name_len) == 0 && value[name_len] == ':')
		value += name_len + 1;

	keys = ctl_token_keys(ctl, file);
	if (token_parse(value, &tok, &reason) != 0 ||
	    token_verify(keys, &tok, rcpt, &reason) != 0) {
		printf("invalid token: %s\n", reason ? reason : "unknown error");
		return EX_DATAERR;
	}
	printf("valid: mailing=%s seq=%" PRIu64 " key=%s\n", tok.mailing, tok.seq, tok.key_id);
	return EX_OK;
}

/* ctl_cmd_token - print or verify the token of one message */
int ctl_cmd_token(struct ctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
	        {"verify", required_argument, NULL, 'y'},
	        {"file", required_argument, NULL, 'f'},
	        {"key", required_argument, NULL, 'k'},
	        {NULL, 0, NULL, 0},
	};
	const char *verify = NULL;
	const char *key_id = NULL;
	const char *file = NULL;
	int ch;

	while ((ch = getopt_long(argc, argv, "f:k:", options, NULL)) != -1) {
		switch (ch) {
		case 'y':
			verify = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'k':
			key_id = optarg;
			break;
		default:
			return ctl_usage_error("token", TOKEN_USAGE, "unknown option");
		}
	}
	argc -= optind;
	argv += optind;

	if (verify != NULL) {
		if (key_id != NULL)
			return ctl_usage_error("token", TOKEN_USAGE,
			                       "-k chooses the signing key and has no use with "
			                       "--verify, which uses the key the token names");
		if (argc != 1)
			return ctl_usage_error("token", TOKEN_USAGE,
			                       "--verify VALUE takes one more argument, RCPT");
		return ctl_token_verify(ctl, file, verify, argv[0]);
	}
	if (argc != 3)
		return ctl_usage_error("token", TOKEN_USAGE,
		                       "expected MAILING SEQ RCPT, got %d argument%s", argc,
		                       argc == 1 ? "" : "s");
	return ctl_token_build(ctl, file, key_id, argv);
}
