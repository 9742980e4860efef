# plugin/ - mailonce-milter, the libmilter daemon Postfix calls.
sbin_PROGRAMS += plugin/mailonce-milter

plugin_mailonce_milter_SOURCES = \
	plugin/milter_main.c plugin/milter.h \
	plugin/milter_run.c \
	plugin/milter_daemon.c \
	plugin/milter_rules.c \
	plugin/milter_pool.c \
	plugin/milter_callbacks.c \
	plugin/milter_decide.c plugin/milter_decide.h
plugin_mailonce_milter_CPPFLAGS = $(AM_CPPFLAGS) $(CRYPTO_CFLAGS)
plugin_mailonce_milter_LDADD = $(MAILONCE_LIBS) $(MILTER_LIBS)
