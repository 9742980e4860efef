# Schema migrations are compiled into the library; see schema/embed.sh.
SCHEMA_SQLITE = schema/sqlite/001-initial.sql

EXTRA_DIST += schema/embed.sh $(SCHEMA_SQLITE)
BUILT_SOURCES += lib/schema_sql.c
CLEANFILES += lib/schema_sql.c

lib/schema_sql.c: $(SCHEMA_SQLITE) $(top_srcdir)/schema/embed.sh
	$(AM_V_GEN)mkdir -p lib && \
	$(SHELL) $(top_srcdir)/schema/embed.sh $(addprefix $(top_srcdir)/,$(SCHEMA_SQLITE)) > $@.tmp && \
	mv $@.tmp $@
