/*
 * log - the four kinds of diagnostics every program here uses.
 *
 * log_init names the program and picks where lines go: syslog, facility
 * mail, tagged with the program name and pid; or stderr, as
 * "progname[pid]: text". Until log_init is called, lines go to stderr
 * under the name "mailonce".
 *
 * Each kind has its own prefix, as in Postfix: msg_info and msg_debug
 * lines have none, msg_warn lines start with "warning: ", msg_fatal lines
 * with "fatal: " and msg_panic lines with "panic: ". The syslog priorities
 * are info, warning, crit and crit (debug for msg_debug).
 *
 * msg_fatal exits with the sysexits.h code it is given; msg_panic aborts,
 * so that a core file shows our own bug. msg_debug writes only while
 * verbose logging is on.
 *
 * Every function here may be called from many threads at once: a line is
 * formatted into a buffer on the stack and leaves in one write(2) or one
 * syslog(3) call, so lines never interleave. A line longer than
 * LOG_LINE_MAX bytes is cut and ends in "...". Nothing here allocates
 * memory, so the allocation wrappers can report running out of it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096
#define LOG_NAME_MAX 64

/*
 * Set by log_init, which runs once while the program is still single
 * threaded. Only the verbose flag changes later, and a stale read of it
 * costs at most one debug line.
 */
static char log_progname[LOG_NAME_MAX] = "mailonce";
static enum log_dest log_dest = LOG_DEST_STDERR;
static volatile int log_verbose_flag;

/* log_init - name the program and choose where lines go */
void log_init(const char *progname, enum log_dest dest, int verbose)
{
	const char *slash = strrchr(progname, '/');

	if (slash != NULL)
		progname = slash + 1;
	snprintf(log_progname, sizeof(log_progname), "%s", progname);
	log_dest = dest;
	log_verbose_flag = verbose;
	if (dest == LOG_DEST_SYSLOG)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_verbose(int verbose)
{
	log_verbose_flag = verbose;
}

int log_verbose(void)
{
	return log_verbose_flag;
}

/* log_cut - mark a line that did not fit in size bytes as cut */
static void log_cut(char *line, size_t size)
{
	memcpy(line + size - 4, "...", 4);
}

/* log_vwrite - format one line with its prefix and send it out whole */
static void log_vwrite(int priority, const char *prefix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t len;
	int n;
	int saved_errno = errno;

	/* The stderr form carries the name and pid that syslog adds itself. */
	if (log_dest == LOG_DEST_STDERR)
		n = snprintf(line, sizeof(line), "%s[%ld]: %s", log_progname, (long)getpid(),
		             prefix);
	else
		n = snprintf(line, sizeof(line), "%s", prefix);
	len = n < 0 ? 0 : (size_t)n;

	/* A caller's %m should see the errno from before this call. */
	errno = saved_errno;
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n >= 0 && (size_t)n >= sizeof(line) - len) {
		log_cut(line, sizeof(line));
		len = sizeof(line) - 1;
	} else if (n > 0) {
		len += (size_t)n;
	}

	if (log_dest == LOG_DEST_SYSLOG) {
		syslog(priority, "%s", line);
	} else {
		/* Room for the newline: cut one byte more if the line is full. */
		if (len == sizeof(line) - 1) {
			len--;
			log_cut(line, sizeof(line) - 1);
		}
		line[len++] = '\n';
		if (write(STDERR_FILENO, line, len) < 0) {
			/* Nowhere left to report it. */
		}
	}
	errno = saved_errno;
}

void msg_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, "", fmt, ap);
	va_end(ap);
}

void msg_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, "warning: ", fmt, ap);
	va_end(ap);
}

void msg_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose_flag)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, "", fmt, ap);
	va_end(ap);
}

void msg_fatal(int exit_code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	exit(exit_code);
}

void msg_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, "panic: ", fmt, ap);
	va_end(ap);
	abort();
}

/* log_escape - copy src into dst so that it cannot break a log line */
char *log_escape(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)src;
	size_t len = 0;
	size_t safe = 0;
	size_t piece;
	char tmp[4];

	if (dstlen == 0)
		return dst;

	for (; *s != '\0'; s++) {
		if (*s >= 0x20 && *s < 0x7f && *s != '\\') {
			tmp[0] = (char)*s;
			piece = 1;
		} else {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[*s >> 4];
			tmp[3] = hex[*s & 0xf];
			piece = 4;
		}

		/*
		 * When the rest does not fit, "..." goes after the last whole
		 * character or escape that leaves room for it, so no escape
		 * is ever left half written.
		 */
		if (len + piece > dstlen - 1) {
			if (dstlen >= 4) {
				memcpy(dst + safe, "...", 4);
			} else {
				dst[len] = '\0';
			}
			return dst;
		}
		memcpy(dst + len, tmp, piece);
		len += piece;
		if (dstlen >= 4 && len <= dstlen - 4)
			safe = len;
	}
	dst[len] = '\0';
	return dst;
}
