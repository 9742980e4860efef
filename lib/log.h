/*
 * log - the four kinds of diagnostics every program here uses.
 *
 * msg_info   something an operator may want to see (starts, stops, decisions).
 * msg_warn   a problem the program recovers from; the line states what it did.
 * msg_fatal  an environment the program cannot work in: logs what to fix and
 *            exits with the given sysexits.h code.
 * msg_panic  our own bug (an impossible state): logs and aborts.
 * msg_debug  only when verbose logging is on.
 *
 * Lines go to syslog (facility mail, tagged with the program name and pid)
 * or to stderr, chosen once by log_init. Lines about a message start with
 * the Postfix queue id, or NOQUEUE, as Postfix's own lines do; that is the
 * caller's format string, not something added here.
 */
#ifndef MAILONCE_LOG_H
#define MAILONCE_LOG_H

#include <stddef.h>

enum log_dest {
	LOG_DEST_STDERR,
	LOG_DEST_SYSLOG,
};

void log_init(const char *progname, enum log_dest dest, int verbose);
void log_set_verbose(int verbose);
int log_verbose(void);

void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_fatal(int exit_code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * log_escape - copy src into dst for a log line: printable ASCII except
 * backslash is kept, everything else (CR, LF, NUL-free control bytes,
 * 8-bit bytes, backslash) becomes \xHH, so a value taken from a message
 * cannot start a new line or imitate another field. The result is cut at
 * dstlen - 1 bytes, ending in "..." when cut. Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const char *src);

#endif
