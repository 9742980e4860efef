/* ledger_sqlite.c - not written yet. */
typedef int mailonce_placeholder_ledger_sqlite;
