# plugin/ - mailonce-milter, the libmilter daemon Postfix calls.
sbin_PROGRAMS += plugin/mailonce-milter

plugin_mailonce_milter_SOURCES = \
	plugin/milter_main.c \
	plugin/milter_callbacks.c plugin/milter.h
plugin_mailonce_milter_LDADD = $(MAILONCE_LIBS) $(MILTER_LIBS)
