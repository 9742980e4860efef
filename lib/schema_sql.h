/*
 * schema_sql - the SQLite schema migrations compiled into the programs,
 * generated from schema/sqlite by schema/embed.sh. Step i upgrades a
 * ledger from version ledger_schema[i].version - 1.
 */
#ifndef MAILONCE_SCHEMA_SQL_H
#define MAILONCE_SCHEMA_SQL_H

struct ledger_schema_step {
	int version;
	const char *name;
	const char *sql;
};

extern const struct ledger_schema_step ledger_schema[];
extern const int ledger_schema_count;

#endif
