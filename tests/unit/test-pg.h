/*
 * The store's unit tests against the postgres backend (docs/scale-out.md):
 * tests/unit/pg_run.py starts a private PostgreSQL and sets LOFT_TEST_PG
 * (a libpq connection string). test_pg_use() fills a store's settings for
 * it, bodies in a blob_dir beside the data directory, on an emptied
 * database (emptied, not dropped: making the schema's partitions again
 * for every case would cost seconds). Needs libpq (PkgConfig::PQ).
 */
#ifndef LOFT_TEST_PG_H
#define LOFT_TEST_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "store.h"

static inline void test_pg_reset(const char *conninfo)
{
	PGconn *db = PQconnectdb(conninfo);
	/* CASCADE: every table that names an account or a message too */
	PGresult *r = PQexec(db, "SET client_min_messages = warning;"
			     " DO $$ BEGIN IF to_regclass('loft_schema')"
			     " IS NOT NULL THEN TRUNCATE account, mailbox,"
			     " subscription, keyword, blob, msg, expunged,"
			     " thread_ref, blob_object, loft_lease CASCADE;"
			     " END IF; END $$");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "pg reset: %s\n", PQerrorMessage(db));
		abort();
	}
	PQclear(r);
	PQfinish(db);
}

/* With LOFT_TEST_PG set: set uses the postgres backend, blob_dir (a
 * buffer of blob_size bytes, removed by the caller's teardown) is
 * data_dir + "-blobs", and the database is emptied. Returns whether. */
static inline bool test_pg_use(struct store_settings *set,
			       const char *data_dir, char *blob_dir,
			       size_t blob_size)
{
	const char *conninfo = getenv("LOFT_TEST_PG");
	if (conninfo == NULL)
		return false;
	snprintf(blob_dir, blob_size, "%s-blobs", data_dir);
	test_pg_reset(conninfo);
	set->backend = STORE_BACKEND_POSTGRES;
	set->postgres = conninfo;
	set->blob_dir = blob_dir;
	return true;
}

#endif
