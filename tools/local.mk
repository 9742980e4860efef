# tools/ - mailoncectl, the admin and sender command.
sbin_PROGRAMS += tools/mailoncectl

tools_mailoncectl_SOURCES = \
	tools/mailoncectl.c tools/ctl.h \
	tools/ctl_keys.c \
	tools/ctl_db.c
tools_mailoncectl_LDADD = $(MAILONCE_LIBS)
