/*
 * SQLite plumbing for the embedded backend: connections with cached
 * prepared statements, the per-user index schema, opening and removing
 * users, and the backend's vtable.
 */
#include "sq-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sq-jmap-schema.h"
#include "sq-sieve-schema.h"

/* Schema versions. schema_sql creates an index of SQ_SCHEMA_VERSION;
 * migrations[v] turns an index of version v into one of v + 1. Version
 * 1 is the first released schema, so nothing comes before it yet. A
 * change to schema_sql must raise SQ_SCHEMA_VERSION and add the step that
 * brings existing indexes along: users upgrade over their data. */
#define SQ_SCHEMA_VERSION 14

static const char *const migrations[SQ_SCHEMA_VERSION] = {
	[0] = NULL,   /* version 0 never existed */
	/* 1 -> 2: bodies in the index, a prefix per copy, checksums
	 * (sq-body.c); rows of version 1 are files holding the whole
	 * message, with no prefix and no checksum */
	[1] = "ALTER TABLE blob ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;"
	      "ALTER TABLE blob ADD COLUMN prefix BLOB;"
	      "ALTER TABLE blob ADD COLUMN crc INTEGER;"
	      "CREATE TABLE body(id INTEGER PRIMARY KEY, data BLOB NOT NULL);",
	/* 2 -> 3: the last login of a syncing client (sq-activity.c) */
	[2] = "ALTER TABLE account ADD COLUMN sync_login INTEGER NOT NULL"
	      " DEFAULT 0;",
	/* 3 -> 4: JMAP's tables, indexes and triggers (sq-jmap-schema.h),
	 * filled from the messages there are */
	[SQ_JMAP_SCHEMA_VERSION - 1] = sq_jmap_upgrade_sql,
	/* 4 -> 5: SELECT's [UNSEEN n] from an index (sq_first_unseen) */
	[4] = "CREATE INDEX IF NOT EXISTS msg_unseen ON msg(mailbox, uid)"
	      " WHERE (flags & 1) = 0;",
	/* 5 -> 6: import (sq-migrate.c): a POP3 UIDL kept from the source
	 * and the resume marks committed with their messages */
	[5] = "ALTER TABLE msg ADD COLUMN uidl TEXT;" SQ_IMPORT_MARK_SQL,
	/* 6 -> 7: Sieve scripts and records (sq-sieve-schema.h) */
	[6] = SQ_SIEVE_SCHEMA_SQL,
	/* 7 -> 8: mailbox ACLs (sq-acl.c) */
	[7] = SQ_ACL_SCHEMA,
	/* 8 -> 9: annotations and URLAUTH keys (sq-metadata.c) */
	[8] = sq_metadata_v9_sql,
	/* 9 -> 10: removed messages kept for undelete (sq-undelete.c) */
	[9] = SQ_DELETED_SQL,
	/* 10 -> 11: per-user \Seen in shared mailboxes (sq-seen.c) */
	[10] = SQ_SEEN_SCHEMA,
	/* 11 -> 12: an Email that gets a visible copy back is reported
	 * created again by JMAP (sq-jmap-schema.h JM_EMAIL_REVIVE) */
	[11] = sq_jmap_revive_sql,
	/* 12 -> 13: a viewer's own /private annotations and URLAUTH key on
	 * the owner's mailbox (sq-metadata.c: column viewer) */
	[12] = sq_metadata_viewer_sql,
	/* 13 -> 14: the body's header block (length and crc32), so that
	 * TOP n 0 and BODY[HEADER] read and check only it (sq-blob.c);
	 * NULL on older rows: read whole, filled by loftctl check */
	[13] = "ALTER TABLE blob ADD COLUMN head INTEGER;",
};

/* What this process knows; only sq_schema_override changes them. */
static unsigned schema_known = SQ_SCHEMA_VERSION;
static const char *const *schema_steps = migrations;

void sq_schema_override(unsigned version, const char *const *steps)
{
	schema_known = version ? version : SQ_SCHEMA_VERSION;
	schema_steps = version ? steps : migrations;
}

unsigned sq_schema_known(void)
{
	return schema_known;
}

void sq_user_index_version(struct store_user *user, unsigned *found_r,
			   unsigned *known_r)
{
	*found_r = SQU(user)->opened_version;
	*known_r = schema_known;
}

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS account("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" version INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" usage_bytes INTEGER NOT NULL,"
	" usage_messages INTEGER NOT NULL,"
	" last_uidvalidity INTEGER NOT NULL,"
	/* every text row with id <= fts_upto is in the trigram indexes;
	 * fts_stale counts entries left there by removed rows */
	" fts_upto INTEGER NOT NULL DEFAULT 0,"
	" fts_stale INTEGER NOT NULL DEFAULT 0,"
	/* the last IMAP (later JMAP, webmail) login: sq-activity.c */
	" sync_login INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS mailbox("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL,"
	" highestmodseq INTEGER NOT NULL,"
	" special_use INTEGER NOT NULL DEFAULT 0,"
	" objectid TEXT NOT NULL,"
	" noselect INTEGER NOT NULL DEFAULT 0,"
	" recent_uid INTEGER NOT NULL DEFAULT 1,"
	" messages INTEGER NOT NULL DEFAULT 0,"
	" unseen INTEGER NOT NULL DEFAULT 0,"
	" deleted INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL DEFAULT 0,"
	/* the expunge log holds every expunge with a modseq above this */
	" expunge_horizon INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS subscription(name TEXT PRIMARY KEY)"
	" WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS blob("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE,"
	" size INTEGER NOT NULL,"
	" thread INTEGER NOT NULL DEFAULT 0,"
	" envelope TEXT, bodystructure TEXT, body TEXT, parts BLOB,"
	" preview TEXT, sort_subject TEXT, sort_from TEXT, sort_to TEXT,"
	" sort_cc TEXT, sort_display_from TEXT, sort_display_to TEXT,"
	" sent_date INTEGER NOT NULL DEFAULT 0,"
	" message_id TEXT, in_reply_to TEXT, refs TEXT,"
	/* kind: enum sq_body_kind; prefix: the copy's trace fields, put in
	 * front of the body; crc: zlib crc32 of the body (NULL: not known,
	 * version 1 rows); size is prefix + body; head: the body's header
	 * block (up to the first empty line) as length << 32 | its crc32
	 * (NULL: not known, rows before version 14) */
	" kind INTEGER NOT NULL DEFAULT 0, prefix BLOB, crc INTEGER,"
	" head INTEGER);"
	/* bodies kept in the index (kind 1), by blob id */
	"CREATE TABLE IF NOT EXISTS body(id INTEGER PRIMARY KEY,"
	" data BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS msg("
	" mailbox INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" blob INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" flags INTEGER NOT NULL,"
	" keywords TEXT,"
	" internaldate INTEGER NOT NULL,"
	" savedate INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" pop3_hidden INTEGER NOT NULL DEFAULT 0,"
	" pop3_first_retr INTEGER NOT NULL DEFAULT 0,"
	" uidl TEXT,"              /* NULL: UID and UIDVALIDITY (pop3) */
	" PRIMARY KEY (mailbox, uid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS msg_modseq ON msg(mailbox, modseq);"
	"CREATE INDEX IF NOT EXISTS msg_blob ON msg(blob);"
	/* the messages without \Seen (flag bit 1), for [UNSEEN n] */
	"CREATE INDEX IF NOT EXISTS msg_unseen ON msg(mailbox, uid)"
	" WHERE (flags & 1) = 0;"
	"CREATE TABLE IF NOT EXISTS expunged("
	" mailbox INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" at INTEGER NOT NULL,"
	" PRIMARY KEY (mailbox, uid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox, modseq);"
	"CREATE TABLE IF NOT EXISTS keyword(mailbox INTEGER NOT NULL,"
	" name TEXT NOT NULL, PRIMARY KEY (mailbox, name)) WITHOUT ROWID;"
	SQ_ACL_SCHEMA
	SQ_SEEN_SCHEMA
	"CREATE TABLE IF NOT EXISTS thread_ref(msgid TEXT PRIMARY KEY,"
	" thread INTEGER NOT NULL) WITHOUT ROWID;"
	/* Search: the folded decoded text of every blob, written with the
	 * message row; trigram indexes over it (contentless: the text is in
	 * "text"), filled in batches by the indexer up to account.fts_upto.
	 * detail=none keeps them small: they only propose candidates, and
	 * every candidate is verified against the stored text. */
	"CREATE TABLE IF NOT EXISTS text(id INTEGER PRIMARY KEY,"
	" hdr TEXT NOT NULL, body TEXT NOT NULL);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS text_hdr USING fts5(t, content='',"
	" tokenize='trigram case_sensitive 1', detail=none);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS text_body USING fts5(t, content='',"
	" tokenize='trigram case_sensitive 1', detail=none);"
	SQ_IMPORT_MARK_SQL
	SQ_DELETED_SQL

	/* Sieve scripts and records (store.h "Sieve") */
	SQ_SIEVE_SCHEMA_SQL;

int64_t sq_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sq_random_hex(char *out, size_t bytes)
{
	unsigned char r[64];
	if (bytes > sizeof(r))
		bytes = sizeof(r);
	size_t got = 0;
	while (got < bytes) {
		ssize_t n = getrandom(r + got, bytes - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

/* ---- connections -------------------------------------------------- */

/* SQLite's own busy wait (sqlite3_busy_timeout) sleeps up to 100 ms
 * between tries: a writer in another process that frees the lock for
 * a few milliseconds between its transactions (loftd's indexer draining
 * a backlog, a loftctl import's batches) was then almost never caught,
 * and the write failed "database is locked" after the whole wait. This
 * one tries every SQ_BUSY_STEP_MS after a few quicker first tries; a
 * try is a lock attempt on the WAL index, cheap. */
#define SQ_BUSY_MS 30000
#define SQ_BUSY_STEP_MS 3

static int sq_busy(void *arg, int count)
{
	struct sq_conn *c = arg;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (count == 0)
		c->busy_since_ms = now_ms;
	else if (now_ms - c->busy_since_ms >= SQ_BUSY_MS)
		return 0;
	struct timespec ts = {0, (count < 3 ? 1 : SQ_BUSY_STEP_MS) * 1000000L};
	nanosleep(&ts, NULL);
	return 1;
}

int sq_conn_open(const char *path, bool writer, bool fsync,
		 struct sq_conn **conn_r, struct store_error *err)
{
	struct sq_conn *c = xcalloc(1, sizeof(*c));
	/* Only the writer creates an index: a reader (or the sweeper) that
	 * finds none must not leave an empty one behind. */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		    (writer ? SQLITE_OPEN_CREATE : 0);
	/* a new index is made for incremental compaction (sq-compact.c);
	 * the pragma must come before its first table, and on an existing
	 * index it would write (an index too new to touch stays as is) */
	bool fresh = writer && access(path, F_OK) < 0;
	if (sqlite3_open_v2(path, &c->db, flags, sq_wal_vfs(fsync)) !=
	    SQLITE_OK) {
		log_error("store", NULL, "open %s: %s (%s)", path,
			  c->db ? sqlite3_errmsg(c->db) : "out of memory",
			  c->db ? strerror(sqlite3_system_errno(c->db)) : "");
		sqlite3_close(c->db);
		free(c);
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot open the mail index");
	}
	sqlite3_busy_handler(c->db, sq_busy, c);
	/* functions the JMAP triggers call (sq-jmap.c) */
	sq_jmap_functions(c->db);
	/* the trigram indexes' tokenizer, each trigram once (sq-tokenize.c) */
	sq_trigram_register(c->db);
	sqlite3_extended_result_codes(c->db, 1);
	/* Durability contract: with synchronous=FULL a WAL commit is on disk
	 * when COMMIT returns. Set first: a new file's switch to WAL is a
	 * rollback-journal transaction of its own (index_make: no syncs).
	 * No memory map, for readers either: a reader whose next read
	 * transaction finds the WAL changed (any commit of the account in
	 * between, the rule for a busy session) unmaps the whole map and
	 * faults its pages in again; munmap in this many-threaded process
	 * is a TLB shootdown on every core. Reading with pread instead cut
	 * the mail process's CPU per operation by 7 % in bench mixed (361 ->
	 * 336 us, medians of 3 alternating runs, load ~20). */
	char pragmas[320];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA synchronous=%s; %sPRAGMA journal_mode=WAL;"
		 "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-%d;"
		 "PRAGMA mmap_size=0;",
		 fsync ? "FULL" : "OFF",
		 fresh ? "PRAGMA auto_vacuum=INCREMENTAL; " : "",
		 writer ? 16000 : 8000);
	if (sqlite3_exec(c->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
		int r = sq_db_error(c, err, "pragmas");
		sq_conn_close(c);
		return r;
	}
	*conn_r = c;
	return 0;
}

void sq_conn_close(struct sq_conn *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < SQ_STMT_SLOTS; i++)
		sqlite3_finalize(c->stmts[i].st);
	sqlite3_close(c->db);
	free(c);
}

sqlite3_stmt *sq_stmt(struct sq_conn *c, const char *sql)
{
	size_t h = ((uintptr_t)sql >> 3) % SQ_STMT_SLOTS;
	for (size_t i = 0; i < SQ_STMT_SLOTS; i++) {
		size_t s = (h + i) % SQ_STMT_SLOTS;
		if (c->stmts[s].sql == sql) {
			sqlite3_reset(c->stmts[s].st);
			sqlite3_clear_bindings(c->stmts[s].st);
			return c->stmts[s].st;
		}
		if (c->stmts[s].sql == NULL) {
			sqlite3_stmt *st;
			if (sqlite3_prepare_v3(c->db, sql, -1,
					       SQLITE_PREPARE_PERSISTENT, &st,
					       NULL) != SQLITE_OK) {
				log_error("store", NULL, "prepare: %s: %s",
					  sqlite3_errmsg(c->db), sql);
				return NULL;
			}
			c->stmts[s].sql = sql;
			c->stmts[s].st = st;
			return st;
		}
	}
	log_error("store", NULL, "statement cache full");
	return NULL;
}

int sq_exec(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_stmt(c, sql);
	if (st == NULL)
		return -1;
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

int sq_db_error(struct sq_conn *c, struct store_error *err, const char *what)
{
	int code = sqlite3_extended_errcode(c->db);
	log_error("store", NULL, "%s: %s (%d)", what, sqlite3_errmsg(c->db),
		  code);
	int primary = code & 0xff;
	if (primary == SQLITE_FULL)
		return store_set_full(err);
	if (primary == SQLITE_BUSY ||
	    primary == SQLITE_LOCKED || primary == SQLITE_IOERR ||
	    primary == SQLITE_CANTOPEN)
		return store_set_error(err, STORE_ERR_TEMP,
				       "Temporary failure of the mail index");
	return store_set_error(err, STORE_ERR_INTERNAL,
			       "Internal error in the mail index");
}

static char *index_path(struct sq_user *u)
{
	return xasprintf("%s/index.db", u->dir);
}

static int64_t mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

struct sq_conn *sq_reader_get(struct sq_user *u, struct store_error *err)
{
	sq_touch(u);
	pthread_mutex_lock(&u->readers_mu);
	struct sq_conn *c = u->readers;
	if (c != NULL)
		u->readers = c->next;
	/* Every reader holds descriptors: a caller that never ends its
	 * fetch shows up here before the process runs out of them. */
	if (++u->readers_out % 64 == 0)
		log_warn("store", NULL, "user %lld has %zu index readers open"
			 " (a fetch never ended?)", (long long)u->user->id,
			 u->readers_out);
	if (u->readers_out >= u->readers_peak) {
		u->readers_peak = u->readers_out;
		u->readers_peak_at = mono_seconds();
	}
	pthread_mutex_unlock(&u->readers_mu);
	if (c != NULL)
		return c;
	char *path = index_path(u);
	int r = sq_conn_open(path, false, u->fsync, &c, err);
	free(path);
	if (r < 0) {
		pthread_mutex_lock(&u->readers_mu);
		u->readers_out--;
		pthread_mutex_unlock(&u->readers_mu);
		return NULL;
	}
	return c;
}

/* Idle read connections kept per user at rest; more are opened when
 * readers overlap. While others are still out a returning one is kept
 * too, and so are as many as were out at once in the last
 * SQ_READERS_PEAK_S seconds, up to SQ_READERS_PEAK_MAX: a busy account
 * (a JMAP client's parallel requests, several clients) reuses them
 * instead of opening a connection, and parsing the schema, per read
 * (that was an eighth of loftd's time under 16 webmail-like clients);
 * the pool shrinks back to SQ_READERS_KEPT once the account is quiet. */
#define SQ_READERS_KEPT 2
#define SQ_READERS_PEAK_S 30
#define SQ_READERS_PEAK_MAX 8

/* A pooled reader must hold no snapshot: a statement left stepping keeps
 * its read transaction open even in autocommit mode, and the next
 * borrower would read the index as it was then (a FETCH after a STORE
 * showing the old flags). Such a leak is a bug; log it. */
static void reader_end_txn(struct sq_conn *c)
{
	for (sqlite3_stmt *st = sqlite3_next_stmt(c->db, NULL); st != NULL;
	     st = sqlite3_next_stmt(c->db, st)) {
		if (sqlite3_stmt_busy(st)) {
			log_error("store", NULL, "reader returned with a "
				  "statement still open: %s", sqlite3_sql(st));
			sqlite3_reset(st);
		}
	}
	if (!sqlite3_get_autocommit(c->db))
		sq_exec(c, "ROLLBACK");
}

void sq_reader_put(struct sq_user *u, struct sq_conn *c)
{
	/* Only a connection with a transaction still open (or a BEGIN that
	 * has read nothing yet) is searched: walking every cached statement
	 * of every returned reader was 1-2 % of the mail process under the
	 * mixed IMAP workload. */
	if (sqlite3_txn_state(c->db, NULL) != SQLITE_TXN_NONE ||
	    !sqlite3_get_autocommit(c->db))
		reader_end_txn(c);
	pthread_mutex_lock(&u->readers_mu);
	u->readers_out--;
	size_t n = 0;
	for (struct sq_conn *r = u->readers; r != NULL; r = r->next)
		n++;
	if (u->readers_peak > SQ_READERS_KEPT &&
	    mono_seconds() - u->readers_peak_at > SQ_READERS_PEAK_S)
		u->readers_peak = u->readers_out;   /* quiet again: decay */
	size_t peak = u->readers_peak < SQ_READERS_PEAK_MAX
			      ? u->readers_peak
			      : SQ_READERS_PEAK_MAX;
	if (n < SQ_READERS_KEPT || n < u->readers_out || n < peak) {
		c->next = u->readers;
		u->readers = c;
		c = NULL;
	}
	pthread_mutex_unlock(&u->readers_mu);
	sq_conn_close(c);
}

int sq_read_begin(struct sq_conn *c, struct store_error *err)
{
	if (sq_exec(c, "BEGIN") < 0)
		return sq_db_error(c, err, "begin");
	return 0;
}

void sq_read_end(struct sq_conn *c)
{
	if (!sqlite3_get_autocommit(c->db))
		sq_exec(c, "COMMIT");
}

/* ---- store and users ---------------------------------------------- */

/* Makes path and its missing parents; each new directory is made durable
 * in its parent. */
static int mkdir_p(const char *path, bool fsync)
{
	char *p = xstrdup(path);
	int ret = 0;
	for (char *s = p + 1; ret == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(p, 0700) == 0) {
			char *slash = strrchr(p, '/');
			if (fsync && slash != NULL && slash != p) {
				*slash = '\0';
				sq_fsync_dir(p);
				*slash = '/';
			}
		} else if (errno != EEXIST) {
			ret = -1;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	free(p);
	return ret;
}

char *sq_user_dir(struct store *store, int64_t user_id)
{
	return xasprintf("%s/%02x/%lld", SQS(store)->mail_dir,
			 store_user_shard(user_id), (long long)user_id);
}

/* No page-cache slab per connection: SQLite's default is 20 pages
 * (~85 KB) allocated up front by every connection at its first read
 * and kept until it closes, most of an idle account's memory (the
 * writer and each pooled reader: bench idle). The setting is
 * process-wide and only taken before SQLite's first use, which in
 * loftd is the parent's (its queue, throttle or accounts database,
 * before the fork): so it is made when the program loads. Pages are
 * then allocated as they are used. So is SQLite's own allocator, which
 * keeps its memory apart from the sessions' (sq-mem.c). */
__attribute__((constructor)) static void sq_config_early(void)
{
	sq_mem_install();
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

static int sq_open(struct store *store, struct store_error *err)
{
	if (sqlite3_threadsafe() == 0)
		return store_set_error(err, STORE_ERR_INTERNAL,
				       "SQLite is built without threads");
	/* Page caches are capped per connection (cache_size) and, through
	 * this, for all of them together: past it SQLite drops unused pages
	 * before it allocates more, so thousands of accounts stay bounded. */
	sqlite3_soft_heap_limit64(SQ_HEAP_SOFT_LIMIT);
	sq_malloc_policy();
	struct sq_store *s = xcalloc(1, sizeof(*s));
	s->mail_dir = store->set.mail_dir != NULL
			      ? xstrdup(store->set.mail_dir)
			      : xasprintf("%s/mail", store->set.data_dir);
	s->started_ns = sq_now_ns();
	pthread_mutex_init(&s->inflight_mu, NULL);
	if (mkdir_p(s->mail_dir, store->set.fsync) < 0) {
		log_error("store", NULL, "mkdir %s: %s", s->mail_dir,
			  strerror(errno));
		free(s->mail_dir);
		free(s);
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot create the mail directory");
	}
	/* where bodies too big for the index are written (sq-body.c) */
	char *tmp = xasprintf("%s/tmp", s->mail_dir);
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		log_warn("store", NULL, "mkdir %s: %s", tmp, strerror(errno));
	free(tmp);
	sq_fsync_pool_start(s);
	store->be = s;
	sq_indexer_start(store);
	return 0;
}

static void sq_stop(struct store *store)
{
	struct sq_store *s = SQS(store);
	if (s->sweeper_started) {
		atomic_store(&s->stop, true);
		pthread_join(s->sweeper, NULL);
		s->sweeper_started = false;
	}
	sq_idle_stop(store);
	sq_indexer_stop(store);
}

static void sq_close(struct store *store)
{
	struct sq_store *s = SQS(store);
	sq_stop(store);
	sq_fsync_pool_stop(s);
	pthread_mutex_destroy(&s->inflight_mu);
	free(s->inflight);
	free(s->mail_dir);
	free(s);
}

static void sq_start_background(struct store *store)
{
	struct sq_store *s = SQS(store);
	if (s->sweeper_started)
		return;
	sq_idle_start(store);
	if (pthread_create(&s->sweeper, NULL, sq_sweeper_main, store) == 0)
		s->sweeper_started = true;
	else
		log_error("store", NULL, "cannot start the blob sweeper");
}

int sq_index_version(struct sq_conn *c, unsigned *version_r)
{
	sqlite3_stmt *st;
	*version_r = 0;
	if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM sqlite_master"
			       " WHERE type = 'table' AND name = 'account'",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(st);
	bool has = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return -1;
	if (!has)
		return 0;
	if (sqlite3_prepare_v2(c->db, "SELECT version FROM account", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sqlite3_int64 v = sqlite3_column_int64(st, 0);
		*version_r = v < 0 ? 0 : v > 1000000 ? 1000000 : (unsigned)v;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Creates the schema and the account row in a new index; brings an
 * older index up to this version (all steps and the new version number
 * in one transaction: a crash or a failed step leaves it as it was);
 * refuses, without writing, an index newer than this build knows. */
static int schema_init(struct sq_user *u, bool made, bool *created_r,
		       struct store_error *err)
{
	struct sq_conn *c = u->writer;
	long long uid = (long long)u->user->id;
	*created_r = false;
	if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return sq_db_error(c, err, "begin");
	unsigned found;
	int have = sq_index_version(c, &found);
	/* what this handle found, for loftctl check (0: made now) */
	u->opened_version = have > 0 ? found : 0;
	if (have < 0)
		goto fail;
	if (have > 0 && found > schema_known) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		log_error("store", NULL, "mail index of user %lld (%s) is"
			  " version %u, this Loft knows up to %u: upgrade"
			  " Loft; the index was not touched", uid, u->dir,
			  found, schema_known);
		return store_set_error(err, STORE_ERR_TEMP,
				       "mail index of user %lld is version %u,"
				       " this Loft knows up to %u: upgrade Loft",
				       uid, found, schema_known);
	}
	if (have > 0 && found < schema_known) {
		for (unsigned v = found; v < schema_known; v++) {
			if (schema_steps[v] == NULL) {
				sqlite3_exec(c->db, "ROLLBACK", NULL, NULL,
					     NULL);
				log_error("store", NULL, "mail index of user"
					  " %lld (%s) is version %u: no"
					  " upgrade from version %u", uid,
					  u->dir, found, v);
				return store_set_error(
					err, STORE_ERR_INTERNAL,
					"mail index of user %lld is version %u,"
					" which this Loft cannot upgrade",
					uid, found);
			}
			if (sqlite3_exec(c->db, schema_steps[v], NULL, NULL,
					 NULL) != SQLITE_OK) {
				log_error("store", NULL, "upgrading the mail"
					  " index of user %lld from version"
					  " %u failed", uid, v);
				goto fail;
			}
		}
		char sql[80];
		snprintf(sql, sizeof(sql), "UPDATE account SET version = %u",
			 schema_known);
		if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
	}
	/* CREATE ... IF NOT EXISTS: builds a new index and completes an
	 * upgraded one. An index of this version has it all (made or
	 * upgraded with it in one transaction): parsing it again was most
	 * of the CPU of every open of an account's index. */
	if (!made && (have == 0 || found < schema_known) &&
	    (sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	     sqlite3_exec(c->db, sq_jmap_schema_sql, NULL, NULL, NULL) !=
		     SQLITE_OK ||
	     sqlite3_exec(c->db, sq_metadata_schema_sql, NULL, NULL, NULL) !=
		     SQLITE_OK))
		goto fail;
	if (have == 0) {
		/* The change counter starts at 1: RFC 7162 7 makes every
		 * mod-sequence (HIGHESTMODSEQ of a new, empty INBOX too)
		 * positive, and a client that saved 0 cannot send it back
		 * in QRESYNC or CHANGEDSINCE. */
		char sql[160];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO account (id, version, modseq, usage_bytes,"
			 " usage_messages, last_uidvalidity) VALUES (1, %u, 1,"
			 " 0, 0, 0)",
			 schema_known);
		if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
		    sq_create_defaults(c, u->user->id) < 0 ||
		    sq_jmap_account_created(c) < 0)
			goto fail;
		*created_r = true;
	}
	if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (have > 0 && found < schema_known)
		log_info("store", NULL, "mail index of user %lld upgraded"
			 " from version %u to %u", uid, found, schema_known);
	return 0;
fail:;
	int r = sq_db_error(c, err, "schema");
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int sq_index_version_get(struct store *store, int64_t user_id,
			 unsigned *found_r, unsigned *known_r,
			 struct store_error *err)
{
	*known_r = schema_known;
	*found_r = 0;
	char *dir = sq_user_dir(store, user_id);
	char *path = xasprintf("%s/index.db", dir);
	free(dir);
	if (access(path, F_OK) < 0) {
		free(path);
		return 0;
	}
	struct sq_conn *c;
	int r = sq_conn_open(path, false, store->set.fsync, &c, err);
	free(path);
	if (r < 0)
		return -1;
	if (sq_index_version(c, found_r) < 0)
		r = sq_db_error(c, err, "schema version");
	sq_conn_close(c);
	return r;
}

int sq_writer_open(struct sq_user *u, struct store_error *err)
{
	if (u->writer != NULL)
		return 0;
	char *path = index_path(u);
	/* never a new, empty index in place of one that went away */
	int r = access(path, F_OK) == 0
		? sq_conn_open(path, true, u->fsync, &u->writer, err)
		: store_set_error(err, STORE_ERR_TEMP,
				  "The mail index is gone");
	free(path);
	if (r == 0)
		sq_wal_hook_install(u);
	return r;
}

static void sq_user_free(struct sq_user *u)
{
	sq_conn_close(u->writer);
	while (u->readers != NULL) {
		struct sq_conn *c = u->readers;
		u->readers = c->next;
		sq_conn_close(c);
	}
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->readers_mu);
	pthread_mutex_destroy(&u->recent_mu);
	pthread_mutex_destroy(&u->seen_mu);
	free(u->seen_low);
	sq_unlink_pending_all(u);
	pthread_mutex_destroy(&u->unlink_mu);
	pthread_mutex_destroy(&u->stamp_mu);
	free(u->recent);
	free(u->pop3_marks);
	if (atomic_load(&u->dir_fd) >= 0)
		close(atomic_load(&u->dir_fd));
	free(u->dir);
	free(u);
}

static void index_make_leftovers(struct sq_user *u)
{
	/* a process killed in index_make: its files are older than us */
	int64_t started = SQS(u->user->store)->started_ns;
	DIR *d = opendir(u->dir);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "index.db.new-", 13) != 0)
			continue;
		char *p = xasprintf("%s/%s", u->dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 &&
		    (int64_t)st.st_mtim.tv_sec * 1000000000 +
				    st.st_mtim.tv_nsec < started)
			unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
}

/* The empty index every new account starts from: the schema made once
 * per process in memory and kept as the bytes of its file. Running the
 * schema's CREATE statements (FTS5 tables, triggers) was most of the CPU
 * of a new account's first delivery, and new accounts' first deliveries
 * slowed every other account's (bench newacct). Not when a test runs
 * another schema version (sq_schema_override). */
static pthread_once_t template_once = PTHREAD_ONCE_INIT;
static unsigned char *template_image;
static sqlite3_int64 template_len;

static void template_make(void)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE, NULL) == SQLITE_OK) {
		sq_jmap_functions(db);
		sq_trigram_register(db);
		if (sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; BEGIN",
				 NULL, NULL, NULL) == SQLITE_OK &&
		    sqlite3_exec(db, schema_sql, NULL, NULL, NULL) ==
			    SQLITE_OK &&
		    sqlite3_exec(db, sq_jmap_schema_sql, NULL, NULL, NULL) ==
			    SQLITE_OK &&
		    sqlite3_exec(db, sq_metadata_schema_sql, NULL, NULL,
				 NULL) == SQLITE_OK &&
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
			/* kept for the process's life: in malloc's memory,
			 * not SQLite's (whose figure tells what the open
			 * indexes hold, and which the idle trim gives back) */
			unsigned char *img = sqlite3_serialize(
				db, "main", &template_len, 0);
			if (img != NULL) {
				template_image = xmalloc((size_t)template_len);
				memcpy(template_image, img,
				       (size_t)template_len);
				sqlite3_free(img);
			}
		}
	}
	if (template_image == NULL)
		log_warn("store", NULL, "no template index (%s): new indexes"
			 " are made from the schema",
			 db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close(db);
}

/* Writes len bytes to a new file at path, synced when fsync: true when
 * done (else nothing is left at path). */
static bool image_write(const char *path, const unsigned char *p,
			size_t left, bool fsync)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	bool ok = left == 0;
	if (ok && fsync && fdatasync(fd) < 0) {
		log_error("store", NULL, "fsync %s: %s", path, strerror(errno));
		ok = false;
	}
	close(fd);
	if (!ok)
		unlink(path);
	return ok;
}

/* A new account's whole index as the bytes of its file: the template
 * with the account's own rows (schema_init on an in-memory copy) and
 * the header marked for WAL, as a file left by a WAL connection is.
 * NULL when there is no template (another schema version under test)
 * or on an error (err set only then). Made in memory so that a new
 * account creates one file where a connection to a file made four,
 * removing three of them again (rollback journal, WAL and its index):
 * ext4's search for a free inode was a quarter of the CPU of a new
 * account's first delivery (perf, bench newacct), and the mail process
 * makes only the files it keeps. */
static unsigned char *index_image(struct sq_user *u, sqlite3_int64 *len_r,
				  bool *failed_r, struct store_error *err)
{
	*failed_r = false;
	if (schema_steps != migrations)
		return NULL;
	pthread_once(&template_once, template_make);
	if (template_image == NULL)
		return NULL;
	struct sq_conn *mem;
	if (sq_conn_open(":memory:", true, false, &mem, err) < 0) {
		*failed_r = true;
		return NULL;
	}
	unsigned char *copy = sqlite3_malloc64((sqlite3_uint64)template_len);
	if (copy != NULL)
		memcpy(copy, template_image, (size_t)template_len);
	unsigned char *image = NULL;
	if (copy == NULL ||
	    sqlite3_deserialize(mem->db, "main", copy, template_len,
				template_len,
				SQLITE_DESERIALIZE_FREEONCLOSE |
					SQLITE_DESERIALIZE_RESIZEABLE) !=
		    SQLITE_OK) {
		/* sqlite3_deserialize frees copy when it fails */
		store_set_error(err, STORE_ERR_TEMP,
				"Cannot create the mail index");
		*failed_r = true;
		sq_conn_close(mem);
		return NULL;
	}
	struct sq_conn *writer = u->writer;
	u->writer = mem;
	bool created = false;
	int ret = schema_init(u, true, &created, err);
	u->writer = writer;
	if (ret == 0)
		image = sqlite3_serialize(mem->db, "main", len_r, 0);
	sq_conn_close(mem);
	if (ret == 0 && (image == NULL || *len_r < 100))
		ret = store_set_error(err, STORE_ERR_TEMP,
				      "Cannot create the mail index");
	if (ret < 0) {
		sqlite3_free(image);
		*failed_r = true;
		return NULL;
	}
	/* file format write and read versions: 2 is WAL (fileformat.html,
	 * "The Database Header", offsets 18 and 19) */
	image[18] = 2;
	image[19] = 2;
	return image;
}

/* The old way, when there is no template: the index made aside with a
 * connection without syncs (schema, account row, default mailboxes: a
 * rollback-journal switch to WAL and a WAL commit with synchronous=FULL
 * were 6-8 syncs and their ext4 journal commits, which every other
 * account's commit queued behind), then synced. */
static int index_build(struct sq_user *u, const char *tmp,
		       struct store_error *err)
{
	struct sq_conn *writer = u->writer;
	int ret = sq_conn_open(tmp, true, false, &u->writer, err);
	bool created = false;
	if (ret == 0) {
		ret = schema_init(u, false, &created, err);
		/* the last connection's close checkpoints the WAL into the
		 * file and removes it */
		sq_conn_close(u->writer);
	}
	u->writer = writer;
	int fd = ret == 0 && u->fsync ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
	if (ret == 0 && u->fsync && (fd < 0 || fsync(fd) < 0)) {
		log_error("store", NULL, "fsync %s: %s", tmp, strerror(errno));
		ret = store_set_error(err, STORE_ERR_TEMP,
				      "Cannot create the mail index");
	}
	if (fd >= 0)
		close(fd);
	char *side = xasprintf("%s-wal", tmp);
	unlink(side);
	free(side);
	side = xasprintf("%s-shm", tmp);
	unlink(side);
	free(side);
	return ret;
}

/* A new account's index, made aside (index_image, else index_build),
 * made durable, and put in place with link(), which never replaces an
 * index another process made meanwhile, and one directory fsync. */
static int index_make(struct sq_user *u, const char *path,
		      struct store_error *err)
{
	index_make_leftovers(u);
	char hex[17];
	sq_random_hex(hex, 8);
	char *tmp = xasprintf("%s/index.db.new-%s", u->dir, hex);
	sqlite3_int64 len = 0;
	bool failed;
	unsigned char *image = index_image(u, &len, &failed, err);
	int ret = failed ? -1 : 0;
	if (image != NULL) {
		if (!image_write(tmp, image, (size_t)len, u->fsync))
			ret = store_set_error(err, STORE_ERR_TEMP,
					      "Cannot create the mail index");
		sqlite3_free(image);
	} else if (!failed) {
		ret = index_build(u, tmp, err);
	}
	if (ret == 0 && link(tmp, path) < 0 && errno != EEXIST) {
		log_error("store", NULL, "link %s: %s", path, strerror(errno));
		ret = store_set_error(err, STORE_ERR_TEMP,
				      "Cannot create the mail index");
	}
	/* EEXIST: another process made the index first; it is used */
	unlink(tmp);
	free(tmp);
	if (ret == 0 && u->fsync)
		sq_fsync_dir(u->dir);
	return ret;
}

static int sq_user_open(struct store_user *user, struct store_error *err)
{
	struct store *store = user->store;
	struct sq_user *u = xcalloc(1, sizeof(*u));
	u->user = user;
	u->fsync = store->set.fsync;
	u->dir = sq_user_dir(store, user->id);
	atomic_store(&u->dir_fd, -1);
	pthread_mutex_init(&u->stamp_mu, NULL);
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cond, NULL);
	pthread_mutex_init(&u->readers_mu, NULL);
	pthread_mutex_init(&u->recent_mu, NULL);
	pthread_mutex_init(&u->seen_mu, NULL);
	pthread_mutex_init(&u->unlink_mu, NULL);
	u->queue_tail = &u->queue;
	sq_touch(u);
	user->be = u;

	/* Only the account's directory: blobs/ and its subdirectories are
	 * made when a large body first needs one (sq-body.c), so a new
	 * account costs a directory and an index, not 257 directories. */
	char *path = index_path(u);
	if (mkdir_p(u->dir, u->fsync) < 0) {
		free(path);
		log_error("store", NULL, "mkdir %s: %s", u->dir,
			  strerror(errno));
		store_set_error(err, STORE_ERR_TEMP,
				"Cannot create the mail directory");
		goto fail;
	}
	bool made = access(path, F_OK) < 0 && errno == ENOENT;
	if (made && index_make(u, path, err) < 0) {
		free(path);
		goto fail;
	}
	int r = sq_conn_open(path, true, u->fsync, &u->writer, err);
	free(path);
	if (r == 0)
		sq_wal_hook_install(u);
	bool created;
	if (r < 0 || schema_init(u, false, &created, err) < 0)
		goto fail;
	/* made by another process between index_make's look and its
	 * link() (then created is false here), or by this one */
	if (made)
		u->opened_version = 0;
	sqlite3_stmt *st = sq_stmt(u->writer, "SELECT modseq, fts_upto <"
				      " (SELECT coalesce(max(id), 0) FROM text)"
				      " FROM account");
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
		atomic_store(&user->last_modseq,
			     (uint64_t)sqlite3_column_int64(st, 0));
		/* text a crash left unindexed */
		if (sqlite3_column_int(st, 1))
			sq_indexer_kick(store, user->id);
	}
	if (st != NULL)
		sqlite3_reset(st);
	return 0;
fail:
	user->be = NULL;
	sq_user_free(u);
	return -1;
}

static void sq_user_close(struct store_user *user)
{
	struct sq_user *u = SQU(user);
	/* Keep \Recent across restarts: what no session took is recent
	 * for the next one. */
	bool dirty = u->pop3_mark_count > 0;
	for (size_t i = 0; i < u->recent_count; i++)
		dirty |= u->recent[i].dirty;
	struct store_error err;
	if (dirty && sq_writer_open(u, &err) == 0 &&
	    sq_exec(u->writer, "BEGIN IMMEDIATE") == 0) {
		if (sq_recent_flush(u, u->writer) == 0 &&
		    sq_pop3_marks_flush(u, u->writer) == 0)
			sq_exec(u->writer, "COMMIT");
		else
			sq_exec(u->writer, "ROLLBACK");
	}
	sq_user_free(u);
	user->be = NULL;
}

static int rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : unlink(path);
	struct dirent *e;
	int ret = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", path, e->d_name);
		struct stat stt;
		if (lstat(p, &stt) == 0 && S_ISDIR(stt.st_mode))
			ret |= rm_rf(p);
		else if (unlink(p) < 0 && errno != ENOENT)
			ret = -1;
		free(p);
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

static bool sq_user_exists(struct store *store, int64_t user_id)
{
	char *dir = sq_user_dir(store, user_id);
	char *path = xasprintf("%s/index.db", dir);
	bool r = access(path, F_OK) == 0;
	free(path);
	free(dir);
	return r;
}

static int sq_user_delete(struct store *store, int64_t user_id,
			  struct store_error *err)
{
	char *dir = sq_user_dir(store, user_id);
	/* Renaming first makes the removal atomic for anyone who looks:
	 * the account's mail is there whole or gone. */
	char *gone = xasprintf("%s.deleted.%ld", dir, (long)getpid());
	int ret = 0;
	if (rename(dir, gone) < 0) {
		if (errno != ENOENT) {
			log_error("store", NULL, "rename %s: %s", dir,
				  strerror(errno));
			ret = store_set_error(err, STORE_ERR_TEMP,
					      "Cannot remove the mail");
		}
	} else if (rm_rf(gone) < 0) {
		log_warn("store", NULL, "could not remove all of %s", gone);
	}
	free(gone);
	free(dir);
	return ret;
}

int sq_usage(struct store_user *user, struct store_usage *usage_r,
	     struct store_error *err)
{
	struct sq_user *u = SQU(user);
	struct sq_conn *c = sq_reader_get(u, err);
	if (c == NULL)
		return -1;
	int ret = 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT usage_bytes, usage_messages"
				      " FROM account");
	if (st != NULL && sqlite3_step(st) == SQLITE_ROW) {
		usage_r->bytes = (uint64_t)sqlite3_column_int64(st, 0);
		usage_r->messages = (uint64_t)sqlite3_column_int64(st, 1);
	} else {
		ret = sq_db_error(c, err, "usage");
	}
	if (st != NULL)
		sqlite3_reset(st);
	sq_reader_put(u, c);
	return ret;
}

const struct store_backend_vfuncs store_sqlite_vfuncs = {
	.name = "sqlite",
	.open = sq_open,
	.stop = sq_stop,
	.close = sq_close,
	.start_background = sq_start_background,
	.user_open = sq_user_open,
	.user_close = sq_user_close,
	.user_exists = sq_user_exists,
	.user_delete = sq_user_delete,
	.usage = sq_usage,
	.disk = sq_disk,
	.mailbox_list = sq_mailbox_list,
	.subscriptions = sq_subscriptions,
	.mailbox_status = sq_mailbox_status,
	.mailbox_create = sq_mailbox_create,
	.mailbox_delete = sq_mailbox_delete,
	.mailbox_rename = sq_mailbox_rename,
	.mailbox_subscribe = sq_mailbox_subscribe,
	.mailbox_find_special = sq_mailbox_find_special,
	.mailbox_keywords = sq_mailbox_keywords,
	.body_create = sq_body_create,
	.body_write = sq_body_write,
	.body_size = sq_body_size,
	.body_set_binary = sq_body_set_binary,
	.metadata_get = sq_metadata_get,
	.metadata_set = sq_metadata_set,
	.urlauth_key = sq_urlauth_key,
	.body_finish = sq_body_finish,
	.body_deliver = sq_body_deliver,
	.bodies_deliver = sq_bodies_deliver,
	.body_unref = sq_body_unref,
	.blob_open = sq_blob_open,
	.blob_open_head = sq_blob_open_head,
	.blob_close = sq_blob_close,
	.fetch_begin = sq_fetch_begin,
	.fetch_next = sq_fetch_next,
	.fetch_end = sq_fetch_end,
	.flags_update = sq_flags_update,
	.copy = sq_copy,
	.expunge = sq_expunge,
	.view_load = sq_view_load,
	.view_open = sq_view_open,
	.view_delta = sq_view_delta,
	.change_stamp = sq_change_stamp,
	.recent_claim = sq_recent_claim,
	.first_unseen = sq_first_unseen,
	.changed_since = sq_changed_since,
	.expunged_since = sq_expunged_since,
	.search_text = sq_search_text,
	.pop3_retrieved = sq_pop3_retrieved,
	.pop3_hide = sq_pop3_hide,
	.note_sync_login = sq_note_sync_login,
	.mailbox_roles_ensure = sq_mailbox_roles_ensure,
	.last_sync_login = sq_last_sync_login,
	.user_index_version = sq_user_index_version,
	.retention_run = sq_retention_run,
	.check = sq_check,
	.compact = sq_compact,
	.index_version = sq_index_version_get,
	.index_flush = sq_index_flush,
	.index_kick = sq_indexer_kick,
	.jmap_states = sq_jmap_states,
	.jmap_changes = sq_jmap_changes,
	.jmap_prune = sq_jmap_prune,
	.jmap_mailboxes = sq_jmap_mailboxes,
	.jmap_mailbox_update = sq_jmap_mailbox_update,
	.email_get = sq_email_get,
	.email_open = sq_email_open,
	.email_scan = sq_email_scan,
	.email_rank = sq_email_rank,
	.email_moved_since = sq_email_moved_since,
	.thread_emails = sq_thread_emails,
	.email_search = sq_email_search,
	.email_tx_commit = sq_email_tx_commit,
	.upload_begin = sq_upload_begin,
	.upload_write = sq_upload_write,
	.upload_finish = sq_upload_finish,
	.upload_abort = sq_upload_abort,
	.upload_open = sq_upload_open,
	.upload_touch = sq_upload_touch,
	.jobject_list = sq_jobject_list,
	.jobject_put = sq_jobject_put,
	.jobject_delete = sq_jobject_delete,
	.import_mailbox = sq_import_mailbox,
	.import_append_batch = sq_import_append_batch,
	.import_mark_add = sq_import_mark_add,
	.import_marks = sq_import_marks,
	.modseq_raise = sq_modseq_raise,
	.export_begin = sq_export_begin,
	.export_info = sq_export_info,
	.export_messages = sq_export_messages,
	.export_next = sq_export_next,
	.export_body = sq_export_body,
	.export_end = sq_export_end,
	.export_seen = sq_export_seen,
	.export_expunged = sq_export_expunged,
	.export_extra = sq_export_extra,
	.import_extra = sq_import_extra,
	.export_kept = sq_export_kept,
	.import_kept = sq_import_kept,
	.deleted_forget = sq_deleted_forget,
	.drop_extra = sq_drop_extra,
	.export_pop3_sum = sq_export_pop3_sum,
	.import_exact = sq_import_exact,
	.deleted_list = sq_deleted_list,
	.deleted_usage = sq_deleted_usage,
	.undelete = sq_undelete,
	.sieve_list = sq_sieve_list,
	.sieve_get = sq_sieve_get,
	.sieve_put = sq_sieve_put,
	.sieve_activate = sq_sieve_activate,
	.sieve_delete = sq_sieve_delete,
	.sieve_rename = sq_sieve_rename,
	.sieve_ids = sq_sieve_ids,
	.sieve_record_seen = sq_sieve_record_seen,
	.sieve_deliver = sq_sieve_deliver,
	.sieve_version = sq_sieve_version,
	.sieve_changed = sq_sieve_changed,
	.body_text = sq_body_text,
	.acl_read = sq_acl_read,
	.acl_update = sq_acl_update,
	.acl_all = sq_acl_all,
	.seen_mode = sq_seen_mode,
	.seen_set_mode = sq_seen_set_mode,
	.seen_info = sq_seen_info,
	.seen_list = sq_seen_list,
	.seen_first_unseen = sq_seen_first_unseen,
	.seen_rows = sq_seen_rows,
	.seen_changed_since = sq_seen_changed_since,
	.seen_update = sq_seen_update,
	.seen_view_delta = sq_seen_view_delta,
	.email_copies = sq_email_copies,
	.seen_newest = sq_seen_newest,
	.seen_emails_since = sq_seen_emails_since,
};
