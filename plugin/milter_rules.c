/*
 * milter_rules - the rule settings of the running milter and their reload.
 *
 * The rules are the keys that SIGHUP reloads: the four *Action keys,
 * StripToken, ConfirmCommits, ConfirmTimeout and LogVerbose. Callbacks
 * take a copy with milter_rules_get at the end of each message, so a
 * reload never changes the rules under a message halfway through its
 * decision. The socket, the ledger, the key file, the server id, the user
 * and the PID file stay as they were at start. When a reload finds one of
 * them changed, it logs a warning that a restart is needed.
 *
 * milter_rules_reload keeps the old rules when the file no longer loads,
 * and logs the "FILE:LINE: ..." problem as a warning.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include "log.h"
#include "milter.h"

static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct milter_rules rules_current;
static int rules_verbose_option; /* -v, which overrides "LogVerbose no" */

/* milter_rules_from_conf - take the rule settings out of a configuration */
void milter_rules_from_conf(struct milter_rules *rules, const struct conf *conf)
{
	memset(rules, 0, sizeof(*rules));
	rules->strip_token = conf->strip_token;
	rules->duplicate_action = conf->duplicate_action;
	rules->bad_token_action = conf->bad_token_action;
	rules->ledger_error_action = conf->ledger_error_action;
	rules->conflict_action = conf->conflict_action;
	rules->confirm_commits = conf->confirm_commits;
	rules->confirm_timeout = conf->confirm_timeout;
	rules->verbose = conf->verbose;
}

/* milter_rules_force_verbose - keep verbose logging on across reloads (-v) */
void milter_rules_force_verbose(void)
{
	pthread_mutex_lock(&rules_lock);
	rules_verbose_option = 1;
	pthread_mutex_unlock(&rules_lock);
}

/* milter_rules_set - put rules in force */
void milter_rules_set(const struct milter_rules *rules)
{
	pthread_mutex_lock(&rules_lock);
	rules_current = *rules;
	rules_current.verbose = rules->verbose || rules_verbose_option;
	pthread_mutex_unlock(&rules_lock);
	log_set_verbose(rules_current.verbose);
}

void milter_rules_get(struct milter_rules *rules)
{
	pthread_mutex_lock(&rules_lock);
	*rules = rules_current;
	pthread_mutex_unlock(&rules_lock);
}

/* string_changed - 1 when two optional strings differ */
static int string_changed(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* rules_warn_fixed - name the changed keys that only a restart applies */
static void rules_warn_fixed(const char *path, const struct conf *running, const struct conf *fresh)
{
	static const char *const keys[] = {"Socket",   "Database", "KeyFile",
	                                   "ServerID", "UserID",   "PidFile"};
	const char *const old_values[] = {running->socket,    running->database, running->key_file,
	                                  running->server_id, running->user_id,  running->pid_file};
	const char *const new_values[] = {fresh->socket,    fresh->database, fresh->key_file,
	                                  fresh->server_id, fresh->user_id,  fresh->pid_file};
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (string_changed(old_values[i], new_values[i]))
			msg_warn("reload: %s changed in %s; restart %s to apply it", keys[i], path,
			         MILTER_NAME);
	}
}

/*
 * milter_rules_reload - read the rules again from path, the file the daemon started with
 *
 * Returns 0 when the new rules are in force, -1 when the old ones stay.
 */
int milter_rules_reload(const char *path, const struct conf *running)
{
	struct milter_rules rules;
	struct conf fresh;
	char err[512];

	conf_init(&fresh);
	if (conf_load(&fresh, path, err, sizeof(err)) != 0) {
		msg_warn("reload failed, keeping the previous rules: %s", err);
		conf_free(&fresh);
		return -1;
	}

	rules_warn_fixed(path, running, &fresh);
	milter_rules_from_conf(&rules, &fresh);
	milter_rules_set(&rules);
	msg_info("reloaded rules from %s: DuplicateAction=%s ConflictAction=%s "
	         "BadTokenAction=%s LedgerErrorAction=%s StripToken=%s",
	         path, conf_action_name(rules.duplicate_action),
	         conf_action_name(rules.conflict_action), conf_action_name(rules.bad_token_action),
	         conf_action_name(rules.ledger_error_action), rules.strip_token ? "yes" : "no");
	conf_free(&fresh);
	return 0;
}
