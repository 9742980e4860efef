# tools/ - mailoncectl, the admin and sender command.
sbin_PROGRAMS += tools/mailoncectl

tools_mailoncectl_SOURCES = \
	tools/mailoncectl.c tools/ctl.h \
	tools/ctl_keys.c \
	tools/ctl_db.c \
	tools/ctl_create.c \
	tools/ctl_send.c \
	tools/ctl_restart.c \
	tools/ctl_status.c \
	tools/sender.c tools/sender.h tools/sender_worker.c \
	tools/ctl_follow.c
tools_mailoncectl_LDADD = $(MAILONCE_LIBS)
