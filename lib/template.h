/*
 * template - an RFC 5322 message with {{field}} placeholders.
 *
 * A placeholder is {{name}}, name made of [A-Za-z0-9_.-], with optional
 * spaces inside the braces. Placeholders are replaced in header values
 * and in "text" body parts, single part or MIME multipart (nested
 * multipart/alternative inside multipart/mixed included).
 *
 * The rendered message has CRLF line ends. A body line that starts with
 * "." is left as is: dot-stuffing belongs to the SMTP layer.
 */
#ifndef MAILONCE_TEMPLATE_H
#define MAILONCE_TEMPLATE_H

#include <stddef.h>

#include "fields.h"

struct template;

/* template_parse - NULL with err saying what is wrong with the message. */
struct template *template_parse(const char *text, size_t len, char *err, size_t errlen);
void template_free(struct template *t);

/* template_check - -1 with err naming the first placeholder that no column provides. */
int template_check(const struct template *t, const char *const *columns, size_t ncolumns, char *err,
                   size_t errlen);

/*
 * template_render - the message for one recipient with CRLF line ends.
 * Header values are RFC 2047 encoded when not ASCII and long header lines
 * are folded. Returns NULL with err naming the field when a value put into
 * a header has CR or LF. *len gets the length. The caller frees the result.
 */
char *template_render(const struct template *t, const struct fields *f, size_t *len, char *err,
                      size_t errlen);

/*
 * template_from_address - the addr-spec of the first mailbox of the From
 * header, without angle brackets, for use as the envelope sender. NULL
 * when there is no From header or its address contains a placeholder.
 * The caller frees the result.
 */
char *template_from_address(const struct template *t);

#endif
