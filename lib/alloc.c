/*
 * alloc - memory allocation that never returns NULL.
 *
 * xmalloc, xcalloc, xrealloc, xstrdup, xstrndup, xasprintf and xvasprintf
 * behave like their C library namesakes, except that they never return
 * NULL: when memory runs out they end the program through msg_fatal with
 * exit code EX_OSERR and a line naming the size that could not be had. A
 * request for zero bytes returns a valid, unique pointer.
 *
 * struct buf is a growing byte string. Its data is NUL-terminated after
 * every append, so text in it can be read as a C string. Binary data may
 * contain NUL bytes of its own, and then only len gives the length.
 *
 *	buf_append	appends len bytes.
 *	buf_puts	appends a C string.
 *	buf_putc	appends one byte.
 *	buf_printf	appends printf-formatted text.
 *	buf_reset	empties the string and keeps its memory.
 *	buf_steal	hands the string to the caller (free it) and leaves
 *			the buf empty and without memory; never NULL.
 *	buf_free	releases the memory and leaves the buf empty.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "log.h"

/* alloc_fail - end the program after an allocation of size bytes failed */
static void alloc_fail(size_t size) __attribute__((noreturn));

static void alloc_fail(size_t size)
{
	msg_fatal(EX_OSERR, "out of memory: cannot allocate %zu bytes", size);
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		alloc_fail(size);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p;

	if (count == 0 || size == 0)
		return xmalloc(0);
	if (count > SIZE_MAX / size)
		alloc_fail(SIZE_MAX);
	p = calloc(count, size);
	if (p == NULL)
		alloc_fail(count * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		alloc_fail(size);
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* xstrndup - copy at most len bytes of s, stopping early at a NUL */
char *xstrndup(const char *s, size_t len)
{
	const char *end = memchr(s, '\0', len);
	size_t n = end ? (size_t)(end - s) : len;
	char *p;

	if (n == SIZE_MAX)
		alloc_fail(SIZE_MAX);
	p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

/* xvasprintf - format into a freshly allocated string */
char *xvasprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	char *s;
	int n;

	/* Measure first, so the string is allocated once at its size. */
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		msg_panic("xvasprintf: bad format \"%s\"", fmt);

	s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

/* buf_grow - make room for extra more bytes plus the terminating NUL */
static void buf_grow(struct buf *b, size_t extra)
{
	size_t need;
	size_t cap;

	if (extra > SIZE_MAX - b->len - 1)
		alloc_fail(SIZE_MAX);
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;

	/* Double, so that n appends cost O(n) copies in all. */
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
	buf_grow(b, len);
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, int c)
{
	char ch = (char)c;

	buf_append(b, &ch, 1);
}

/* buf_printf - append printf-formatted text */
void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg_panic("buf_printf: bad format \"%s\"", fmt);

	buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* buf_steal - hand the string to the caller and leave b empty */
char *buf_steal(struct buf *b)
{
	char *s = b->data;

	if (s == NULL)
		s = xstrdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return s;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
