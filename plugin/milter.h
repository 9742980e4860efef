/*
 * milter - what the files of mailonce-milter share.
 *
 *	milter_main.c		options and start-up.
 *	milter_run.c		smfi_main in a thread, signals, reload.
 *	milter_daemon.c		socket path, privileges, PID file, fork.
 *	milter_rules.c		the rule settings SIGHUP reloads.
 *	milter_pool.c		ledger handles, one per busy thread.
 *	milter_callbacks.c	the libmilter callbacks.
 *	milter_decide.c		decision table, free of libmilter.
 */
#ifndef MAILONCE_MILTER_H
#define MAILONCE_MILTER_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"
#include "ledger.h"
#include "milter_decide.h"
#include "token.h"

#define MILTER_NAME "mailonce-milter"

/* milter_rules.c */
void milter_rules_from_conf(struct milter_rules *rules, const struct conf *conf);
void milter_rules_force_verbose(void);
void milter_rules_set(const struct milter_rules *rules);
void milter_rules_get(struct milter_rules *rules);
int milter_rules_reload(const char *path, const struct conf *running);

/* milter_pool.c */
void milter_pool_init(const char *path, int busy_timeout);
struct ledger *milter_pool_get(char *err, size_t errlen);
void milter_pool_put(struct ledger *ledger, enum ledger_rc last_rc);
void milter_pool_close(void);

/* milter_run.c */
int milter_run(const char *path, const struct conf *conf);

/* milter_callbacks.c */
int milter_callbacks_register(const struct keyring *ring, const char *server_id);

/* milter_daemon.c */
int milter_socket_prepare(const char *spec, mode_t mask);
void milter_user_lookup(const char *user_id, uid_t *uid, gid_t *gid);
int milter_drop_privileges(const char *user_id, const char *socket_spec);
int milter_pidfile_write(const char *path);
void milter_pidfile_remove(const char *path);
int milter_daemonize(int *ready_fd);
void milter_daemon_ready(int ready_fd);

#endif
