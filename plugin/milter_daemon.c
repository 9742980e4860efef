/*
 * milter_daemon - the process chores of mailonce-milter.
 *
 *	milter_socket_prepare	sets the umask, and removes a unix socket
 *				left behind by a daemon that is gone.
 *	milter_drop_privileges	gives a unix socket to UserID, then
 *				switches to that user and group for good.
 *	milter_daemonize	forks into the background; the parent waits
 *				until the child calls milter_daemon_ready,
 *				so a failed start is not reported as
 *				success.
 *	milter_pidfile_write	writes the PID file; milter_pidfile_remove
 *				removes it at exit.
 *
 * Every problem here is an environment the daemon cannot work in, so it
 * ends the program with msg_fatal and a sysexits.h code, naming the file
 * or user and what to fix. Only milter_pidfile_remove merely warns.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "milter.h"

/* socket_unix_path - the path of a unix socket spec, or NULL for inet */
static const char *socket_unix_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	if (spec[0] == '/')
		return spec;
	return NULL;
}

/* socket_in_use - 1 when something accepts connections on the unix socket */
static int socket_in_use(const char *path)
{
	struct sockaddr_un sun;
	int fd;
	int rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		msg_fatal(EX_CONFIG,
		          "Socket path %s is longer than %zu bytes; choose a shorter one", path,
		          sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		msg_fatal(EX_OSERR, "socket(AF_UNIX): %m");
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return rc == 0;
}

/*
 * milter_socket_prepare - set the umask and clear a stale unix socket
 *
 * A socket file no process listens on is left by a daemon that did not exit
 * cleanly, and is removed. A live one means another milter runs there.
 */
int milter_socket_prepare(const char *spec, mode_t mask)
{
	const char *path = socket_unix_path(spec);
	struct stat st;

	umask(mask);
	if (path == NULL)
		return 0;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		msg_fatal(EX_OSERR, "cannot inspect the Socket path %s: %m", path);
	}
	if (!S_ISSOCK(st.st_mode))
		msg_fatal(EX_CONFIG,
		          "Socket path %s exists and is not a socket; remove it or "
		          "choose another path",
		          path);
	if (socket_in_use(path))
		msg_fatal(EX_UNAVAILABLE, "another milter is listening on %s; stop it first", path);
	if (unlink(path) != 0)
		msg_fatal(EX_OSERR, "cannot remove the stale socket %s: %m", path);
	msg_info("removed the stale socket %s", path);
	return 0;
}

/* milter_user_lookup - resolve "user[:group]" to ids; exits EX_NOUSER if unknown */
void milter_user_lookup(const char *user_id, uid_t *uid, gid_t *gid)
{
	char *user = xstrdup(user_id);
	char *group = strchr(user, ':');
	struct passwd *pw;
	struct group *gr;

	if (group != NULL)
		*group++ = '\0';
	pw = getpwnam(user);
	if (pw == NULL)
		msg_fatal(EX_NOUSER, "UserID %s: no such user; create it or change UserID", user);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group != NULL) {
		gr = getgrnam(group);
		if (gr == NULL)
			msg_fatal(EX_NOUSER, "UserID %s: no such group %s", user_id, group);
		*gid = gr->gr_gid;
	}
	free(user);
}

/*
 * milter_drop_privileges - become UserID for good
 *
 * Root created the unix socket, so it is given to the new user, and the
 * socket's group and the umask decide who may connect. Ends the program
 * rather than go on as root when any step fails.
 */
int milter_drop_privileges(const char *user_id, const char *socket_spec)
{
	const char *path = socket_unix_path(socket_spec);
	uid_t uid;
	gid_t gid;

	milter_user_lookup(user_id, &uid, &gid);
	if (geteuid() != 0) {
		if (geteuid() == uid)
			return 0;
		msg_fatal(EX_NOPERM,
		          "UserID %s is set, but the daemon runs as uid %ld and cannot "
		          "switch; start it as root or remove UserID",
		          user_id, (long)geteuid());
	}

	if (path != NULL && chown(path, uid, gid) != 0)
		msg_fatal(EX_OSERR, "cannot give the socket %s to %s: %m", path, user_id);
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
		msg_fatal(EX_NOPERM, "cannot switch to UserID %s: %m", user_id);

	/* A root that could get its privileges back has not dropped them. */
	if (uid != 0 && (setuid(0) == 0 || geteuid() == 0))
		msg_fatal(EX_SOFTWARE, "still able to regain root after switching to %s; stopping",
		          user_id);
	return 0;
}

/*
 * milter_daemonize - fork into the background
 *
 * The parent exits 0 only after the child has called milter_daemon_ready,
 * and EX_OSERR when the child dies before that (the child logs why).
 */
int milter_daemonize(int *ready_fd)
{
	int fds[2];
	ssize_t got;
	pid_t pid;
	char byte;
	int fd;

	if (pipe(fds) != 0)
		msg_fatal(EX_OSERR, "pipe: %m");
	pid = fork();
	if (pid < 0)
		msg_fatal(EX_OSERR, "fork: %m");
	if (pid > 0) {
		close(fds[1]);
		do
			got = read(fds[0], &byte, 1);
		while (got < 0 && errno == EINTR);
		_exit(got == 1 && byte == 'R' ? 0 : EX_OSERR);
	}

	close(fds[0]);
	if (setsid() < 0)
		msg_fatal(EX_OSERR, "setsid: %m");
	if (chdir("/") != 0)
		msg_fatal(EX_OSERR, "chdir /: %m");
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		msg_fatal(EX_OSERR, "open /dev/null: %m");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	*ready_fd = fds[1];
	return 0;
}

/* milter_daemon_ready - let the waiting parent exit with success */
void milter_daemon_ready(int ready_fd)
{
	if (ready_fd < 0)
		return;
	if (write(ready_fd, "R", 1) != 1)
		msg_warn("cannot tell the parent process that start-up finished: %m");
	close(ready_fd);
}

/* milter_pidfile_write - write our process id to path */
int milter_pidfile_write(const char *path)
{
	FILE *fp;

	fp = fopen(path, "w");
	if (fp == NULL)
		msg_fatal(EX_CANTCREAT,
		          "cannot create the PidFile %s: %m; check that its directory "
		          "exists and is writable by the daemon's user",
		          path);
	fprintf(fp, "%ld\n", (long)getpid());
	if (fclose(fp) != 0)
		msg_fatal(EX_IOERR, "cannot write the PidFile %s: %m", path);
	return 0;
}

void milter_pidfile_remove(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		msg_warn("cannot remove the PidFile %s: %m", path);
}
