/* ledger_common.c - not written yet. */
typedef int mailonce_placeholder_ledger_common;
