/*
 * The Sieve tables of the embedded backend (store.h "Sieve"):
 *
 *   sieve_script  name -> source as uploaded, compiled image (NULL: not
 *                 compiled by this build), active flag (at most one 1),
 *                 last change
 *   sieve_record  vacation / duplicate / redirect / notice records: a
 *                 key and when it expires (pruned as deliveries pass)
 *
 * Used by schema_sql (new indexes) and by the migration step that adds
 * them to older ones.
 */
#ifndef LOFT_SQ_SIEVE_SCHEMA_H
#define LOFT_SQ_SIEVE_SCHEMA_H

#define SQ_SIEVE_SCHEMA_SQL                                                 \
	"CREATE TABLE IF NOT EXISTS sieve_script("                          \
	" name TEXT PRIMARY KEY, source BLOB NOT NULL, compiled BLOB,"      \
	" active INTEGER NOT NULL DEFAULT 0, modified INTEGER NOT NULL);"   \
	"CREATE TABLE IF NOT EXISTS sieve_record("                          \
	" key TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;"   \
	"CREATE INDEX IF NOT EXISTS sieve_record_expires"                   \
	" ON sieve_record(expires);"

#endif
