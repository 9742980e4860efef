/*
 * fields - personalisation fields of one recipient.
 *
 * An ordered list of name/value pairs, as read from one row of the
 * recipient list. Names keep the order of the CSV header. The JSON form
 * is a flat object of strings and is what the ledger stores.
 */
#ifndef MAILONCE_FIELDS_H
#define MAILONCE_FIELDS_H

#include <stddef.h>

struct fields {
	size_t n;
	char **names;
	char **values;
};

void fields_init(struct fields *f);
void fields_add(struct fields *f, const char *name, const char *value);
/* fields_get - the value of name, or NULL when absent. */
const char *fields_get(const struct fields *f, const char *name);
/* fields_to_json - a flat JSON object of strings; the caller frees it. */
char *fields_to_json(const struct fields *f);
/* fields_from_json - 0, or -1 when json is not a flat object of strings. */
int fields_from_json(const char *json, struct fields *f);
void fields_free(struct fields *f);

#endif
