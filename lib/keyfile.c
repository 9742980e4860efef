/*
 * keyfile - the HMAC key file behind the Mailonce-Token: load it, add a key.
 *
 * The file contains one key per line, "KEYID SECRET", where KEYID is
 * [A-Za-z0-9._-]{1,32} and SECRET is the base64url (43 characters, no
 * padding) of 32 random bytes. Lines whose first non-blank character is
 * '#', and blank lines, are ignored. The first key signs new tokens and
 * every key verifies, so a key is rotated by putting a new one first and
 * dropping the old one once its tokens no longer matter.
 *
 *	keyring_load	reads the file into a struct keyring. It checks the
 *			mode of the opened descriptor (fstat) before reading:
 *			group or world write, or world read, is refused.
 *			Group read (0640) is allowed so that a mail group can
 *			read the keys.
 *	keyfile_add_key	creates the file with one fresh key, or writes the
 *			file again with a fresh key before the first key line,
 *			keeping every other line. The new file replaces the
 *			old one by rename(2) after fsync, so a reader sees
 *			either the old keys or the new ones.
 *
 * Nothing here logs. Every failure fills err with one line that names the
 * file, and the line number for a bad line, and gives the fix; no error
 * ever quotes a secret. Secrets are wiped from memory when freed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "alloc.h"
#include "keyring.h"
#include "log.h"
#include "token.h"

/* Mode bits that let the group write, or anyone else read or write: refused. */
#define KEYFILE_TOO_OPEN (S_IWGRP | S_IWOTH | S_IROTH)

/* Maximum length of an invalid key id quoted in an error. */
#define KEYFILE_SHOWN_ID 48

/* Maximum size of a key file in bytes: about 13,000 keys. */
#define KEYFILE_MAX_SIZE (1024 * 1024)

/* The bytes of a key file, NUL-terminated; wiped before they are freed. */
struct keyfile_text {
	char *data;
	size_t len;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* keyring_find - the secret of key id, or NULL when the ring has no such key */
const unsigned char *keyring_find(const struct keyring *ring, const char *id)
{
	size_t i;

	if (ring == NULL || id == NULL)
		return NULL;
	for (i = 0; i < ring->count; i++)
		if (strcmp(ring->keys[i].id, id) == 0)
			return ring->keys[i].secret;
	return NULL;
}

const char *keyring_signing_id(const struct keyring *ring)
{
	return ring != NULL && ring->count > 0 ? ring->keys[0].id : NULL;
}

void keyring_free(struct keyring *ring)
{
	if (ring == NULL)
		return;
	OPENSSL_cleanse(ring->keys, ring->count * sizeof(ring->keys[0]));
	free(ring->keys);
	free(ring);
}

/* keyfile_open - open path and refuse it unless it is a regular file closed to others */
static int keyfile_open(const char *path, struct stat *st, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int saved = errno;

		set_err(err, errlen, "cannot open key file %s: %s%s", path, strerror(saved),
		        saved == ENOENT ? "; create it with: mailoncectl keygen" : "");
		errno = saved;
		return -1;
	}
	if (fstat(fd, st) < 0) {
		set_err(err, errlen, "cannot stat key file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		set_err(err, errlen, "%s: not a regular file; KeyFile must name a key file", path);
		close(fd);
		return -1;
	}
	if (st->st_mode & KEYFILE_TOO_OPEN) {
		set_err(err, errlen,
		        "%s: mode %04o is too open (group/world write or world read); "
		        "run: chmod 0600 %s",
		        path, (unsigned)(st->st_mode & 07777), path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * keyfile_slurp - read the st_size bytes of fd into text, NUL-terminated.
 * One allocation of the right size, so no realloc leaves a copy of a
 * secret behind.
 */
static int keyfile_slurp(int fd, const struct stat *st, const char *path, struct keyfile_text *text,
                         char *err, size_t errlen)
{
	size_t size;
	ssize_t n;

	if (st->st_size > KEYFILE_MAX_SIZE) {
		set_err(err, errlen, "%s: %lld bytes is too large for a key file (maximum %d)",
		        path, (long long)st->st_size, KEYFILE_MAX_SIZE);
		return -1;
	}
	size = (size_t)st->st_size;

	/* One byte more than the size, to notice a file that grows while it is read. */
	text->data = xmalloc(size + 2);
	text->len = 0;
	while (text->len < size + 1) {
		n = read(fd, text->data + text->len, size + 1 - text->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err(err, errlen, "cannot read key file %s: %s", path, strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		text->len += (size_t)n;
	}
	text->data[text->len] = '\0';

	if (text->len != size) {
		set_err(err, errlen, "%s: the file changed while it was read; try again", path);
		return -1;
	}
	if (memchr(text->data, '\0', text->len) != NULL) {
		set_err(err, errlen, "%s: contains a NUL byte; a key file is text", path);
		return -1;
	}
	return 0;
}

/* keyfile_text_free - wipe and free text */
static void keyfile_text_free(struct keyfile_text *text)
{
	if (text->data != NULL) {
		OPENSSL_cleanse(text->data, text->len);
		free(text->data);
	}
	text->data = NULL;
	text->len = 0;
}

/* keyfile_next_field - cut the blank-separated field at *pp, NUL-terminate it, advance */
static char *keyfile_next_field(char **pp)
{
	char *p = *pp;
	char *start;

	while (is_blank((unsigned char)*p))
		p++;
	start = p;
	while (*p != '\0' && !is_blank((unsigned char)*p))
		p++;
	if (*p != '\0')
		*p++ = '\0';
	*pp = p;
	return start;
}

/*
 * keyfile_parse_line - read one line (NUL-terminated, newline removed)
 * into key. Returns 1 for a key, 0 for a comment or blank line, -1 with
 * err for a bad line.
 */
static int keyfile_parse_line(char *line, const char *path, unsigned lineno,
                              struct keyring_key *key, char *err, size_t errlen)
{
	char shown[KEYFILE_SHOWN_ID + 4];
	char *p = line;
	char *id;
	char *secret;
	size_t len = strlen(line);

	/* A file edited on Windows ends its lines with CR LF. */
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	id = keyfile_next_field(&p);
	if (*id == '\0' || *id == '#')
		return 0;

	if (!token_key_id_valid(id)) {
		set_err(err, errlen,
		        "%s:%u: invalid key id \"%s\"; use 1 to 32 of A-Z a-z 0-9 . _ -", path,
		        lineno, log_escape(shown, sizeof(shown), id));
		return -1;
	}
	secret = keyfile_next_field(&p);
	if (*secret == '\0') {
		set_err(err, errlen, "%s:%u: key %s has no secret; write \"KEYID SECRET\"", path,
		        lineno, id);
		return -1;
	}
	if (*keyfile_next_field(&p) != '\0') {
		set_err(err, errlen, "%s:%u: unexpected text after the secret of key %s", path,
		        lineno, id);
		return -1;
	}

	if (b64url_decode(secret, strlen(secret), key->secret, TOKEN_KEY_LEN) != B64URL_OK) {
		set_err(err, errlen,
		        "%s:%u: the secret of key %s is not base64url of 32 bytes "
		        "(43 characters, no padding); make a new key with: mailoncectl keygen",
		        path, lineno, id);
		return -1;
	}
	strcpy(key->id, id);
	key->line = lineno;
	return 1;
}

/* keyring_add - append key to ring unless its id is already there */
static int keyring_add(struct keyring *ring, const struct keyring_key *key, const char *path,
                       char *err, size_t errlen)
{
	struct keyring_key *grown;
	size_t i;

	for (i = 0; i < ring->count; i++) {
		if (strcmp(ring->keys[i].id, key->id) == 0) {
			set_err(err, errlen, "%s:%u: duplicate key id %s (first on line %u)", path,
			        key->line, key->id, ring->keys[i].line);
			return -1;
		}
	}

	/* Grow by copying, so no stale copy of a secret is left behind by realloc. */
	grown = xcalloc(ring->count + 1, sizeof(*grown));

	if (ring->count > 0)
		memcpy(grown, ring->keys, ring->count * sizeof(*grown));
	grown[ring->count] = *key;
	OPENSSL_cleanse(ring->keys, ring->count * sizeof(*grown));
	free(ring->keys);
	ring->keys = grown;
	ring->count++;
	return 0;
}

/* keyring_parse - turn the text of a key file into a keyring; text is modified */
static struct keyring *keyring_parse(char *text, const char *path, char *err, size_t errlen)
{
	struct keyring *ring = xcalloc(1, sizeof(*ring));
	struct keyring_key key;
	unsigned lineno = 0;
	char *line = text;
	char *next;
	int got;

	while (line != NULL && *line != '\0') {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		got = keyfile_parse_line(line, path, lineno, &key, err, errlen);
		if (got < 0 || (got > 0 && keyring_add(ring, &key, path, err, errlen) < 0))
			goto fail;
		line = next;
	}
	OPENSSL_cleanse(&key, sizeof(key));

	if (ring->count == 0) {
		set_err(err, errlen, "%s: no key in the file; add one with: mailoncectl keygen",
		        path);
		keyring_free(ring);
		return NULL;
	}
	return ring;

fail:
	OPENSSL_cleanse(&key, sizeof(key));
	keyring_free(ring);
	return NULL;
}

/* keyring_read - open, check and parse path; text keeps the file's bytes for the caller */
static struct keyring *keyring_read(const char *path, struct stat *st, struct keyfile_text *text,
                                    char *err, size_t errlen)
{
	struct keyring *ring = NULL;
	char *copy;
	int fd;

	fd = keyfile_open(path, st, err, errlen);
	if (fd < 0)
		return NULL;
	if (keyfile_slurp(fd, st, path, text, err, errlen) == 0) {
		copy = xstrndup(text->data, text->len);
		ring = keyring_parse(copy, path, err, errlen);
		OPENSSL_cleanse(copy, text->len);
		free(copy);
	}
	close(fd);
	return ring;
}

/* keyring_load - read and check a key file */
struct keyring *keyring_load(const char *path, char *err, size_t errlen)
{
	struct keyfile_text text = {NULL, 0};
	struct keyring *ring;
	struct stat st;

	ring = keyring_read(path, &st, &text, err, errlen);
	keyfile_text_free(&text);
	return ring;
}

/* keyfile_pick_id - copy key_id, or a free id made from the UTC time, to id */
static int keyfile_pick_id(const struct keyring *ring, const char *key_id,
                           char id[TOKEN_KEYID_MAX + 1], const char *path, char *err, size_t errlen)
{
	char stamp[sizeof("k20261204T201500")];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	if (key_id != NULL) {
		if (!token_key_id_valid(key_id)) {
			set_err(err, errlen,
			        "invalid key id \"%.*s\"; use 1 to 32 of A-Z a-z 0-9 . _ -",
			        KEYFILE_SHOWN_ID, key_id);
			return -1;
		}
		if (keyring_find(ring, key_id) != NULL) {
			set_err(err, errlen, "%s: key id %s is already in use; pick another", path,
			        key_id);
			return -1;
		}
		strcpy(id, key_id);
		return 0;
	}

	/* Two keys made within one second get "-2", "-3", ... after the time. */
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "k%Y%m%dT%H%M%S", &tm) == 0) {
		set_err(err, errlen, "cannot format the current time as a key id");
		return -1;
	}
	strcpy(id, stamp);
	for (n = 2; keyring_find(ring, id) != NULL; n++) {
		if (n > 999) {
			set_err(err, errlen, "%s: every key id %s-N is in use; name the key", path,
			        stamp);
			return -1;
		}
		snprintf(id, TOKEN_KEYID_MAX + 1, "%s-%d", stamp, n);
	}
	return 0;
}

/* keyfile_first_key_offset - where the first key line of text starts, or len */
static size_t keyfile_first_key_offset(const char *text, size_t len)
{
	size_t pos = 0;
	size_t i;

	while (pos < len) {
		for (i = pos; i < len && (is_blank((unsigned char)text[i]) || text[i] == '\r'); i++)
			;
		if (i < len && text[i] != '\n' && text[i] != '#')
			return pos;
		while (i < len && text[i] != '\n')
			i++;
		pos = i < len ? i + 1 : len;
	}
	return len;
}

static const char keyfile_header[] =
        "# mailonce HMAC keys: one \"KEYID SECRET\" per line, SECRET being\n"
        "# the base64url of 32 random bytes. The first key signs new\n"
        "# tokens; every key verifies. Keep this file mode 0600 (or 0640).\n";

/*
 * keyfile_compose - the new file: the old text with "id secret" before
 * its first key line, or a header comment and the key for a new file.
 */
static void keyfile_compose(struct keyfile_text *out, const struct keyfile_text *old,
                            const char *id, const char *secret)
{
	const char *text = old->len > 0 ? old->data : keyfile_header;
	size_t text_len = old->len > 0 ? old->len : strlen(keyfile_header);
	size_t at = keyfile_first_key_offset(text, text_len);
	int add_newline = at > 0 && text[at - 1] != '\n';
	size_t id_len = strlen(id);
	size_t secret_len = strlen(secret);
	char *p;

	/* Sized exactly, for the same reason as keyfile_slurp. */
	out->len = text_len + (size_t)add_newline + id_len + 1 + secret_len + 1;
	out->data = p = xmalloc(out->len + 1);
	memcpy(p, text, at);
	p += at;
	if (add_newline)
		*p++ = '\n';
	memcpy(p, id, id_len);
	p += id_len;
	*p++ = ' ';
	memcpy(p, secret, secret_len);
	p += secret_len;
	*p++ = '\n';
	memcpy(p, text + at, text_len - at);
	p[text_len - at] = '\0';
}

/* write_all - write len bytes, retrying short writes */
static int write_all(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* keyfile_sync_dir - flush the directory of path so that a rename survives a crash */
static void keyfile_sync_dir(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int fd;

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';

	/* Best effort: the new file is in place already, and some file systems refuse this. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/*
 * keyfile_fill - give the temporary file fd its owner and mode, write data
 * and flush it. Returns NULL, or the step that failed with errno set.
 */
static const char *keyfile_fill(int fd, const struct keyfile_text *data, const struct stat *old)
{
	mode_t mode = old ? old->st_mode & 0777 : 0600;

	/* fchown only when the ids differ, because giving a file away needs root. */
	if (old != NULL && (old->st_uid != geteuid() || old->st_gid != getegid()) &&
	    fchown(fd, old->st_uid, old->st_gid) < 0)
		return "set the owner and group of";
	if (fchmod(fd, mode) < 0)
		return "set the mode of";
	if (write_all(fd, data->data, data->len) < 0)
		return "write";
	if (fsync(fd) < 0)
		return "fsync";
	return NULL;
}

/*
 * keyfile_replace - write data to a temporary file beside path, flush it
 * and rename it over path. old is the stat of the file being replaced, or
 * NULL for a new file. A new file gets mode 0600; a replaced one keeps its
 * mode, owner and group, so a mail group that could read it still can.
 *
 * NOTE: two keyfile_add_key calls on one file at the same time both
 * succeed, but the file keeps only the key of the later rename.
 */
static int keyfile_replace(const char *path, const struct keyfile_text *data,
                           const struct stat *old, char *err, size_t errlen)
{
	char *tmp = xasprintf("%s.XXXXXX", path);
	const char *step;
	int saved;
	int fd;

	/* mkstemp creates the file with mode 0600, whatever the umask. */
	fd = mkstemp(tmp);
	if (fd < 0) {
		set_err(err, errlen, "cannot create a temporary file beside %s: %s", path,
		        strerror(errno));
		free(tmp);
		return -1;
	}

	step = keyfile_fill(fd, data, old);
	saved = errno;
	if (close(fd) < 0 && step == NULL) {
		step = "close";
		saved = errno;
	}
	if (step == NULL && rename(tmp, path) < 0) {
		step = "rename over the key file";
		saved = errno;
	}
	if (step != NULL) {
		set_err(err, errlen, "cannot %s %s: %s; %s is unchanged", step, tmp,
		        strerror(saved), path);
		unlink(tmp);
		free(tmp);
		return -1;
	}

	keyfile_sync_dir(path);
	free(tmp);
	return 0;
}

/* keyfile_new_secret - fill secret_text with the base64url of 32 fresh random bytes */
static int keyfile_new_secret(char secret_text[B64URL_LEN(TOKEN_KEY_LEN) + 1], char *err,
                              size_t errlen)
{
	unsigned char secret[TOKEN_KEY_LEN];

	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		set_err(err, errlen, "cannot make a random key: OpenSSL RAND_bytes failed");
		return -1;
	}
	b64url_encode(secret, sizeof(secret), secret_text);
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

/* keyfile_add_key - create path with one fresh key, or put a fresh key first in it */
int keyfile_add_key(const char *path, const char *key_id, char *key_id_out, size_t idlen, char *err,
                    size_t errlen)
{
	char secret[B64URL_LEN(TOKEN_KEY_LEN) + 1] = "";
	char id[TOKEN_KEYID_MAX + 1];
	struct keyfile_text old = {NULL, 0};
	struct keyfile_text out = {NULL, 0};
	struct keyring *ring = NULL;
	struct stat st;
	int exists;
	int ret = -1;

	/* An existing file must load cleanly: a broken one is never rewritten. */
	exists = !(access(path, F_OK) < 0 && errno == ENOENT);
	if (exists && (ring = keyring_read(path, &st, &old, err, errlen)) == NULL)
		goto done;

	if (keyfile_pick_id(ring, key_id, id, path, err, errlen) < 0)
		goto done;
	if (key_id_out == NULL || idlen <= strlen(id)) {
		set_err(err, errlen, "no room for the key id %s (%zu bytes given)", id, idlen);
		goto done;
	}
	if (keyfile_new_secret(secret, err, errlen) < 0)
		goto done;

	keyfile_compose(&out, &old, id, secret);
	if (keyfile_replace(path, &out, exists ? &st : NULL, err, errlen) < 0)
		goto done;
	strcpy(key_id_out, id);
	ret = 0;

done:
	OPENSSL_cleanse(secret, sizeof(secret));
	keyfile_text_free(&old);
	keyfile_text_free(&out);
	keyring_free(ring);
	return ret;
}
