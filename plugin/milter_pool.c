/*
 * milter_pool - ledger handles for the libmilter worker threads.
 *
 * A struct ledger may be used by one thread at a time, and libmilter runs
 * callbacks on many threads. milter_pool_get hands out an idle handle, or
 * opens a new one when none is idle; milter_pool_put gives it back. So
 * the number of open handles never exceeds the number of messages decided
 * at the same moment, and a handle is reused instead of reopened for
 * every message.
 *
 * A handle whose last call ended in LEDGER_FAILED is closed instead of
 * kept, so a broken connection is not handed out again. At most
 * POOL_IDLE_MAX idle handles are kept; extra ones are closed.
 *
 * Errors: milter_pool_get returns NULL with the reason in err; nothing
 * here logs or exits.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "milter.h"

#define POOL_IDLE_MAX 32

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ledger *pool_idle[POOL_IDLE_MAX];
static size_t pool_idle_count;
static char *pool_path;
static int pool_busy_timeout;

/* milter_pool_init - set the ledger that later handles open */
void milter_pool_init(const char *path, int busy_timeout)
{
	char cwd[4096];

	/* The daemon changes to "/" when it forks; keep a relative path working. */
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
		pool_path = xasprintf("%s/%s", cwd, path);
	else
		pool_path = xstrdup(path);
	pool_busy_timeout = busy_timeout;
}

/* milter_pool_get - an idle handle, or a newly opened one */
struct ledger *milter_pool_get(char *err, size_t errlen)
{
	struct ledger_options opts = {0};
	struct ledger *ledger = NULL;

	pthread_mutex_lock(&pool_lock);
	if (pool_idle_count > 0)
		ledger = pool_idle[--pool_idle_count];
	pthread_mutex_unlock(&pool_lock);
	if (ledger != NULL)
		return ledger;

	/* The daemon created the schema at start; a missing file is an error now. */
	opts.busy_timeout = pool_busy_timeout;
	opts.create = 0;
	return ledger_open(pool_path, &opts, err, errlen);
}

/* milter_pool_put - give a handle back after a call that returned last_rc */
void milter_pool_put(struct ledger *ledger, enum ledger_rc last_rc)
{
	if (ledger == NULL)
		return;
	if (last_rc != LEDGER_FAILED) {
		pthread_mutex_lock(&pool_lock);
		if (pool_idle_count < POOL_IDLE_MAX) {
			pool_idle[pool_idle_count++] = ledger;
			ledger = NULL;
		}
		pthread_mutex_unlock(&pool_lock);
	}
	if (ledger != NULL)
		ledger_close(ledger);
}

/* milter_pool_close - close every idle handle; call after smfi_main returns */
void milter_pool_close(void)
{
	pthread_mutex_lock(&pool_lock);
	while (pool_idle_count > 0)
		ledger_close(pool_idle[--pool_idle_count]);
	pthread_mutex_unlock(&pool_lock);
	free(pool_path);
	pool_path = NULL;
}
