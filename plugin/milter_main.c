/*
 * mailonce-milter - the libmilter daemon that Postfix calls at end of message.
 *
 * Usage: mailonce-milter [-c FILE] [-f] [-n] [-V] [-v]
 *
 *	-c FILE	configuration file (default CONF_DEFAULT_PATH)
 *	-f	stay in the foreground and log to stderr
 *	-n	check the configuration and the key file, then exit
 *	-V	print the version and exit
 *	-v	verbose logging
 *
 * Start-up, in this order: load the configuration and the key file; set
 * the umask and open the Socket (as root when UserID is set); switch to
 * UserID; create or upgrade the ledger and register this server in it;
 * fork into the background unless -f; write the PidFile. Any failure ends
 * the program with a sysexits.h code: EX_CONFIG (78) for a configuration
 * or key file problem, reported as "FILE:LINE: message".
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "follow.h"
#include "log.h"
#include "milter.h"

struct milter_options {
	const char *conf_path;
	int foreground;
	int check_only;
	int verbose;
};

static void usage(void)
{
	fprintf(stderr,
	        "usage: %s [-c FILE] [-f] [-n] [-V] [-v]\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -f       stay in the foreground and log to stderr\n"
	        "  -n       check the configuration and the key file, then exit\n"
	        "  -V       print the version and exit\n"
	        "  -v       verbose logging\n",
	        MILTER_NAME, CONF_DEFAULT_PATH);
	exit(EX_USAGE);
}

/* options_parse - read the command line into opts */
static void options_parse(int argc, char **argv, struct milter_options *opts)
{
	int c;

	memset(opts, 0, sizeof(*opts));
	opts->conf_path = CONF_DEFAULT_PATH;
	while ((c = getopt(argc, argv, "c:fnVv")) != -1) {
		switch (c) {
		case 'c':
			opts->conf_path = optarg;
			break;
		case 'f':
			opts->foreground = 1;
			break;
		case 'n':
			opts->check_only = 1;
			break;
		case 'V':
			printf("%s %s\n", MILTER_NAME, PACKAGE_VERSION);
			exit(EX_OK);
		case 'v':
			opts->verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
}

/*
 * config_check_environment - with -n, what the start would find wrong
 * outside the file: an unknown UserID ends the program as the start
 * would, and commit confirmation without a log to follow is a warning.
 */
static void config_check_environment(const struct conf *conf)
{
	uid_t uid;
	gid_t gid;

	if (conf->user_id != NULL && conf->user_id[0] != '\0')
		milter_user_lookup(conf->user_id, &uid, &gid);
	if (conf->confirm_commits && (conf->mail_log == NULL || conf->mail_log[0] == '\0'))
		msg_warn("ConfirmCommits is on but MailLog is not set: no commit can be "
		         "confirmed, so every retry of an accepted message gets 451; set MailLog "
		         "to the Postfix log or turn ConfirmCommits off");
}

/*
 * config_load - the configuration and key file, or exit EX_CONFIG. With
 * -n a key file that does not exist yet is a warning, not an error: -n
 * checks a configuration before installation, and "mailoncectl keygen"
 * creates the file. A key file that exists is always checked in full.
 * Returns NULL only in that case.
 */
static struct keyring *config_load(const struct milter_options *opts, struct conf *conf)
{
	struct keyring *keys;
	struct stat st;
	char err[512];

	conf_init(conf);
	if (conf_load(conf, opts->conf_path, err, sizeof(err)) != 0)
		msg_fatal(EX_CONFIG, "%s", err);
	if (conf->socket == NULL || conf->socket[0] == '\0')
		msg_fatal(EX_CONFIG, "%s: missing required key Socket", opts->conf_path);
	if (opts->check_only)
		config_check_environment(conf);
	if (opts->check_only && stat(conf->key_file, &st) != 0 && errno == ENOENT) {
		msg_warn("KeyFile %s does not exist yet; create it with: mailoncectl -c %s keygen",
		         conf->key_file, opts->conf_path);
		return NULL;
	}
	keys = keyring_load(conf->key_file, err, sizeof(err));
	if (keys == NULL)
		msg_fatal(EX_CONFIG, "%s", err);
	return keys;
}

/*
 * socket_set_nodelay - turn off Nagle's algorithm on libmilter's TCP
 * listening socket; Linux passes TCP_NODELAY on to every accepted
 * connection. libmilter writes a header change and its final reply in two
 * writes, and Postfix sends no reply to the first, so with Nagle on the
 * reply waits about 40 ms for a delayed ACK (measured in bench/).
 * libmilter does not expose the socket, so it is found among the open
 * descriptors as the one TCP socket that listens. A unix socket has no
 * such delay and is left alone.
 */
static void socket_set_nodelay(void)
{
	int one = 1;
	int listening;
	int domain;
	socklen_t len;
	int fd;

	for (fd = 0; fd < 1024; fd++) {
		len = sizeof(listening);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
			continue;
		len = sizeof(domain);
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
			continue;
		if (domain != AF_INET && domain != AF_INET6)
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
			msg_warn("cannot set TCP_NODELAY on the milter socket: %m; "
			         "each reply may wait 40 ms");
	}
}

/* ledger_setup - create or upgrade the ledger and register this server */
static void ledger_setup(const struct conf *conf)
{
	struct ledger_options lopts = {0};
	struct ledger *ledger;
	char host[256];
	char err[512];
	enum ledger_rc rc;

	lopts.busy_timeout = conf->busy_timeout;
	lopts.create = 1;
	ledger = ledger_open(conf->database, &lopts, err, sizeof(err));
	if (ledger == NULL)
		msg_fatal(EX_UNAVAILABLE, "%s", err);

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	rc = ledger_server_register(ledger, conf->server_id, host);
	if (rc != LEDGER_OK)
		msg_fatal(EX_UNAVAILABLE, "cannot register server %s in the ledger %s: %s: %s",
		          conf->server_id, conf->database, ledger_rc_name(rc),
		          ledger_errmsg(ledger));

	/* SQLite handles must not cross a fork; the pool opens its own. */
	ledger_close(ledger);
}

/* socket_open - register the callbacks and listen on Socket */
static void socket_open(const struct conf *conf, const struct keyring *keys)
{
	if (milter_callbacks_register(keys, conf->server_id) != 0)
		msg_fatal(EX_SOFTWARE, "smfi_register failed");
	milter_socket_prepare(conf->socket, conf->umask);
	if (smfi_setconn(conf->socket) != MI_SUCCESS)
		msg_fatal(EX_CONFIG, "invalid Socket %s: use unix:/PATH or inet:PORT@HOST",
		          conf->socket);
	if (smfi_opensocket(0) != MI_SUCCESS)
		msg_fatal(EX_UNAVAILABLE,
		          "cannot listen on Socket %s; check that the directory "
		          "exists and the address is free",
		          conf->socket);
	socket_set_nodelay();
}

/*
 * follower_setup - follow MailLog in a thread of this process. It starts
 * after the fork to the background, because threads do not survive a
 * fork. It is needed whenever ConfirmCommits is on: without it no commit
 * is ever confirmed, so every retry of an accepted message gets 451.
 */
static void follower_setup(const struct conf *conf)
{
	char err[512];

	if (conf->mail_log == NULL || conf->mail_log[0] == '\0') {
		if (conf->confirm_commits)
			msg_warn("ConfirmCommits is on but MailLog is not set: every retry "
			         "of a message whose commit is unconfirmed gets 451; set "
			         "MailLog to the Postfix log");
		return;
	}
	if (follow_start(conf, err, sizeof(err)) != 0)
		msg_fatal(EX_UNAVAILABLE, "%s", err);
	msg_info("following the Postfix log %s", conf->mail_log);
}

int main(int argc, char **argv)
{
	struct milter_options opts;
	struct milter_rules rules;
	struct keyring *keys;
	struct conf conf;
	int ready_fd = -1;
	int rc;

	options_parse(argc, argv, &opts);
	log_init(MILTER_NAME, LOG_DEST_STDERR, opts.verbose);
	keys = config_load(&opts, &conf);
	if (opts.check_only) {
		printf("%s: configuration OK\n", opts.conf_path);
		keyring_free(keys);
		conf_free(&conf);
		return EX_OK;
	}
	if (opts.verbose)
		milter_rules_force_verbose();
	milter_rules_from_conf(&rules, &conf);
	milter_rules_set(&rules);

	socket_open(&conf, keys);
	if (conf.user_id != NULL && conf.user_id[0] != '\0')
		milter_drop_privileges(conf.user_id, conf.socket);
	ledger_setup(&conf);
	milter_pool_init(conf.database, conf.busy_timeout);

	/* Start-up problems so far reached the terminal; from here on, syslog. */
	if (!opts.foreground) {
		milter_daemonize(&ready_fd);
		log_init(MILTER_NAME, LOG_DEST_SYSLOG, log_verbose());
	}
	if (conf.pid_file != NULL && conf.pid_file[0] != '\0')
		milter_pidfile_write(conf.pid_file);
	msg_info("starting: socket=%s ledger=%s server_id=%s", conf.socket, conf.database,
	         conf.server_id);
	follower_setup(&conf);
	milter_daemon_ready(ready_fd);

	rc = milter_run(opts.conf_path, &conf);

	follow_stop();
	milter_pool_close();
	if (conf.pid_file != NULL && conf.pid_file[0] != '\0')
		milter_pidfile_remove(conf.pid_file);
	keyring_free(keys);
	msg_info("stopped");
	conf_free(&conf);
	return rc;
}
