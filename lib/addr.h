/*
 * addr - syntax of envelope addresses (local@domain).
 */
#ifndef MAILONCE_ADDR_H
#define MAILONCE_ADDR_H

#define ADDR_LOCAL_MAX  64
#define ADDR_DOMAIN_MAX 255
#define ADDR_TOTAL_MAX  254

/* addr_check - NULL when addr is a valid mailbox, else a static reason. */
const char *addr_check(const char *addr);

/* addr_normalize - a lower-cased copy of addr for lookups; the caller frees it. */
char *addr_normalize(const char *addr);

#endif
