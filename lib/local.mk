# lib/ - code shared by every program, built as a convenience library.
noinst_LIBRARIES += lib/libmailonce.a

lib_libmailonce_a_SOURCES = \
	lib/alloc.c lib/alloc.h \
	lib/log.c lib/log.h \
	lib/conf.c lib/conf.h \
	lib/token.c lib/token.h \
	lib/keyfile.c lib/keyring.h \
	lib/ledger.h lib/ledger_common.c lib/ledger_sqlite.c lib/ledger_sqlite.h lib/schema_sql.h \
	lib/ledger_mailing.c lib/ledger_mailing_state.c lib/ledger_mailing_check.c \
	lib/ledger_recipient.c lib/ledger_handoff.c lib/ledger_lease.c lib/ledger_batches.c lib/ledger_suppression.c \
	lib/handoff.c lib/handoff.h \
	lib/fields.c lib/fields.h \
	lib/csv.c lib/csv.h \
	lib/addr.c lib/addr.h \
	lib/template.c lib/template.h \
	lib/smtp.c lib/smtp.h \
	lib/maillog.c lib/maillog.h \
	lib/follow.c lib/follow.h
nodist_lib_libmailonce_a_SOURCES = lib/schema_sql.c
lib_libmailonce_a_CPPFLAGS = $(AM_CPPFLAGS) $(SQLITE_CFLAGS) $(CRYPTO_CFLAGS)

# Every program links these after the library.
MAILONCE_LIBS = lib/libmailonce.a $(SQLITE_LIBS) $(CRYPTO_LIBS)
