/*
 * The embedded backend: per user, data_dir/mail/<shard>/<user-id>/ holds
 * index.db (SQLite, WAL) and blobs/<xx>/<blob-id> (one immutable file per
 * message, CRLF). One writer connection per user runs every change through
 * a group commit (sq-commit.c); readers take connections from a pool, so a
 * long read never holds the writer up.
 */
#ifndef LOFT_SQ_PRIVATE_H
#define LOFT_SQ_PRIVATE_H

#include <libdeflate.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "buf.h"
#include "u32.h"
#include "store-private.h"

#define SQ_STMT_SLOTS 128
/* SQLite's memory, all connections together (sqlite3_soft_heap_limit64) */
#define SQ_HEAP_SOFT_LIMIT (256LL * 1024 * 1024)

/* A connection with its prepared statements, keyed by the address of
 * the SQL text (string literals at the call sites). */
struct sq_conn {
	sqlite3 *db;
	int64_t busy_since_ms;   /* sq_busy: when this wait began */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[SQ_STMT_SLOTS];
	struct sq_conn *next;
};

#define SQ_FSYNC_THREADS 2
struct sq_dirsync;

struct sq_store {
	char *mail_dir;
	int64_t started_ns;   /* CLOCK_REALTIME at store_open */
	pthread_t sweeper;
	/* directory fsyncs for blob writers (sq-blob.c) */
	pthread_mutex_t fsync_mu;
	pthread_cond_t fsync_cond, fsync_done;
	struct sq_dirsync *fsync_queue;
	pthread_t fsync_threads[SQ_FSYNC_THREADS];
	size_t fsync_thread_count;
	bool fsync_stop;
	/* the search indexer (sq-index.c) */
	pthread_t indexer;
	bool indexer_started;
	pthread_mutex_t index_mu;
	pthread_cond_t index_cond;
	int64_t *index_queue;      /* user ids with text to index */
	size_t index_count, index_cap;
	bool index_stop;
	uint64_t index_last_kick_ns; /* metrics_now_ns of the last kick */
	pthread_mutex_t inflight_mu;
	char (*inflight)[33];
	size_t inflight_count, inflight_cap;
	bool sweeper_started;
	atomic_bool stop;
	/* the idle trim (sq-idle.c) */
	pthread_t idle_thread;
	pthread_mutex_t idle_mu;
	pthread_cond_t idle_cond;
	bool idle_started, idle_stop, idle_kick;
};

struct sq_recent {
	uint32_t mailbox_id;
	uint32_t first;   /* first UID not yet taken as \Recent */
	bool dirty;
};

struct sq_job;

struct sq_user {
	struct store_user *user;
	char *dir;
	/* dir opened O_PATH for the change stamp's fstatat (sq-idle.c),
	 * -1 until first needed; closed with the user */
	_Atomic int dir_fd;
	/* The change stamp across the idle trim's close (sq-idle.c): the
	 * close deletes the WAL, so the files then show another stamp for
	 * the same content; raw stamp stamp_alias_raw reads as
	 * stamp_alias_to (the stamp before the close). Under stamp_mu. */
	pthread_mutex_t stamp_mu;
	uint64_t stamp_alias_raw, stamp_alias_to;
	bool fsync;
	unsigned opened_version;   /* schema version found at open (0: new) */
	/* last group commit or read (sq_touch), and the last_use_ns up to
	 * which the idle trim has given back all the account held (equal:
	 * nothing to do until the next use) */
	_Atomic int64_t last_use_ns;
	_Atomic int64_t trimmed_use_ns;
	/* the WAL has grown: the idle thread checkpoints it (sq-idle.c) */
	atomic_bool ckpt_wanted;
	/* a MULTIAPPEND stream: when its last command (SQ_BULK_MIN bodies
	 * or more) committed, and since when the indexer has left its text
	 * for later (sq-index.c; that thread's own) */
	_Atomic uint64_t bulk_ns;
	uint64_t bulk_defer_since_ns;

	/* group commit */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct sq_conn *writer;
	struct sq_job *queue, **queue_tail;
	bool leader;
	/* transaction state, touched only by the leader */
	uint64_t tx_modseq, tx_bytes, tx_messages;
	uint32_t tx_last_uidvalidity;
	int64_t tx_fts_upto, tx_fts_stale;
	bool tx_dirty;

	pthread_mutex_t readers_mu;
	struct sq_conn *readers;
	size_t readers_out;        /* handed out, not yet put back */
	size_t readers_peak;       /* most out at once lately ... */
	int64_t readers_peak_at;   /* ... last reached then (monotonic s) */

	/* per-user \Seen: each (mailbox, viewer)'s first-unseen hint
	 * (sq-seen.c, under seen_mu) */
	pthread_mutex_t seen_mu;
	struct sq_seen_low *seen_low;
	size_t seen_low_count;

	pthread_mutex_t recent_mu;
	struct sq_recent *recent;
	size_t recent_count;
	/* POP3 first-RETR marks waiting for the next commit (under
	 * recent_mu): a lost mark only delays retention, the safe side, so
	 * it does not cost a commit of its own */
	struct sq_pop3_mark {
		uint32_t uid;
		time_t when;
	} *pop3_marks;
	size_t pop3_mark_count;

	/* readers of file bodies in flight and the files waiting for them
	 * (sq_read_enter) */
	pthread_mutex_t unlink_mu;
	uint64_t read_ticket;
	uint64_t *readers_in;
	size_t readers_in_count, readers_in_cap;
	struct sq_unlink {
		char *name;
		uint64_t after;    /* readers with a ticket <= after may see it */
	} *unlinks;
	size_t unlink_count;

	/* undelete (sq-undelete.c): the account keeps removed messages
	 * unless deleted_off, as read at deleted_checked (unix time) */
	atomic_bool deleted_off;
	_Atomic int64_t deleted_checked;
};

/* One change waiting for the group commit. fn runs inside the batch's
 * transaction (under a savepoint of its own); a failure rolls back only
 * its own work. After the commit, its owner unlinks the blobs it freed
 * and publishes its changes. */
typedef int sq_job_fn(struct sq_user *u, struct sq_conn *c, struct sq_job *job);
struct sq_job {
	sq_job_fn *fn;
	void *arg;
	int ret;
	struct store_error err;
	bool done;
	struct sq_job *next;
	uint64_t modseq;
	struct store_change *changes;
	size_t change_count;
	char **unlink;
	size_t unlink_count;
	/* files the job linked in (sq_job_link): kept if it commits */
	char **links;
	size_t link_count;
};

static inline struct sq_user *SQU(struct store_user *user)
{
	return user->be;
}
static inline struct sq_store *SQS(struct store *store)
{
	return store->be;
}

/* sq-db.c */
int sq_conn_open(const char *path, bool writer, bool fsync,
		 struct sq_conn **conn_r, struct store_error *err);
void sq_conn_close(struct sq_conn *c);
/* A cached statement, reset and unbound; NULL on a prepare error. */
sqlite3_stmt *sq_stmt(struct sq_conn *c, const char *sql);
int sq_exec(struct sq_conn *c, const char *sql);
int sq_db_error(struct sq_conn *c, struct store_error *err, const char *what);
struct sq_conn *sq_reader_get(struct sq_user *u, struct store_error *err);
void sq_reader_put(struct sq_user *u, struct sq_conn *c);
/* Read transactions give one snapshot to several statements. */
int sq_read_begin(struct sq_conn *c, struct store_error *err);
void sq_read_end(struct sq_conn *c);
char *sq_user_dir(struct store *store, int64_t user_id);
/* An index's schema version (account.version): 1 found, 0 no account
 * yet (a new index), -1 error. */
int sq_index_version(struct sq_conn *c, unsigned *version_r);
/* The newest schema version this build can open. */
unsigned sq_schema_known(void);
/* Tests only, with no user open: pretend this build knows version
 * (steps[v] upgrades v to v + 1, as the real migration table); 0
 * restores the real ones. */
void sq_schema_override(unsigned version, const char *const *steps);
void sq_random_hex(char *out, size_t bytes);

/* sq-commit.c */
int sq_run(struct sq_user *u, sq_job_fn *fn, void *arg,
	   struct store_error *err);
/* Several jobs (fn and arg set, the rest zero) of one caller in one
 * group commit, in order, each under its own savepoint: each has its
 * own ret and err afterwards (an import's batch of messages). */
void sq_run_jobs(struct sq_user *u, struct sq_job *jobs, size_t count);
uint64_t sq_job_modseq(struct sq_user *u, struct sq_job *job);
void sq_job_change(struct sq_job *job, uint32_t mailbox_id,
		   enum store_change_kind kind);
void sq_job_unlink(struct sq_job *job, const char *blob_name);
/* A blob file the job has just made (a link of another): the sweeper
 * leaves it alone until the job's commit; if the job fails it is
 * removed. */
void sq_job_link(struct sq_user *u, struct sq_job *job, const char *blob_name);
int sq_job_fail(struct sq_job *job, enum store_error_kind kind,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sq_job_dberr(struct sq_job *job, struct sq_conn *c);

/* sq-metadata.c: annotations and URLAUTH keys (store.h "metadata");
 * viewer 0 is the owner, else the viewer whose /private entries and key
 * are meant. sq_metadata_v9_sql: the tables of versions 9-12 (step 8);
 * sq_metadata_viewer_sql: step 12 -> 13 (a viewer column). */
extern const char sq_metadata_schema_sql[];
extern const char sq_metadata_v9_sql[];
extern const char sq_metadata_viewer_sql[];
int sq_metadata_get(struct store_user *user, int64_t viewer,
		    const char *mailbox, const char *const *names,
		    size_t name_count, int depth,
		    struct store_metadata **entries_r, size_t *count_r,
		    struct store_error *err);
int sq_metadata_set(struct store_user *user, int64_t viewer,
		    const char *mailbox, const struct store_metadata *entries,
		    size_t count, struct store_error *err);
int sq_urlauth_key(struct store_user *user, int64_t viewer,
		   const char *mailbox, bool reset, unsigned char *key_r,
		   struct store_error *err);

/* sq-tokenize.c: "trigram" that hands FTS5 each trigram of a document
 * once (the same detail=none index, a fraction of the work); on every
 * index connection */
void sq_trigram_register(sqlite3 *db);

/* A body's checksum: CRC-32 as zlib's crc32() computes it (the values
 * stored by every version), with libdeflate's several times faster
 * code: it runs over every body written and every body read. crc is
 * the value so far (0 to start). */
static inline uint32_t sq_crc32(uint32_t crc, const void *p, size_t n)
{
	return libdeflate_crc32(crc, n ? p : (const void *)"", n);
}
/* sq-index.c: trigram indexing in batches, off the delivery path */
void sq_indexer_start(struct store *store);
void sq_indexer_stop(struct store *store);
/* Asks the indexer to index what the user's index still lacks. */
void sq_indexer_kick(struct store *store, int64_t user_id);
/* Indexes everything pending now, on this thread. */
int sq_index_flush(struct store_user *user, struct store_error *err);

/* ---- compaction (sq-compact.c) ---- */
/* pages one compaction step moves at most (one group commit) */
#define SQ_COMPACT_STEP_PAGES 512
/* the idle thread compacts an account with this many free pages ... */
#define SQ_COMPACT_MIN_PAGES 256
/* ... in at most this many steps per pass */
#define SQ_COMPACT_IDLE_STEPS 8
int sq_compact(struct store *store, int64_t user_id,
	       struct store_compact_report *report_r, struct store_error *err);
/* A few steps for an idle account; true if enough is left for more. */
bool sq_compact_idle(struct sq_user *u);
/* The user's writer for the caller alone (no batch runs meanwhile), for
 * what cannot run inside a transaction (VACUUM). */
/* The account's writer connection, opened again if the idle trim
 * closed it; by the batch's leader (or sq_writer_hold's holder). */
int sq_writer_open(struct sq_user *u, struct store_error *err);
void sq_writer_hold(struct sq_user *u);
void sq_writer_release(struct sq_user *u);

/* ---- fault injection for tests (sq-fault.c) ---- */
enum {
	SQ_FAULT_WRITE = 1,
	SQ_FAULT_SYNC = 2,
	SQ_FAULT_TRUNCATE = 4,
};
/* Index connections opened after this use the failing VFS. */
void sq_fault_enable(void);
/* Its name, or NULL (the default VFS) unless enabled. */
const char *sq_fault_vfs(void);
/* sq-wal.c: the VFS of an index connection (NULL: SQLite's default);
 * with fsync, a group commit's COMMIT between sq_wal_gather_begin and
 * sq_wal_gather_end(committed) writes its WAL frames in one pwrite. */
const char *sq_wal_vfs(bool fsync);
void sq_wal_gather_begin(void);
int sq_wal_gather_end(bool committed);
extern _Atomic uint64_t sq_wal_gathered_writes;
/* The k-th and every later call of ops fails (writes: ENOSPC, or EIO
 * with io_error) until disarmed; disarm says whether any failed. */
void sq_fault_arm(int ops, long k, bool io_error);
bool sq_fault_disarm(void);
/* Matching calls since armed (arm with k = LONG_MAX to count only). */
long sq_fault_calls(void);
/* Empties the trigram indexes (the indexer refills them); in a job. */
int sq_fts_reset(struct sq_user *u, struct sq_conn *c);
/* Removes a blob's text (its index entries go stale); in a job. */
int sq_text_delete(struct sq_user *u, struct sq_conn *c, int64_t blob);

/* sq-search.c: a needle folded as the indexed text is (into *folded,
 * NUL-terminated, len without it) and its trigram query (NULL when it is
 * too short for one; caller frees both). */
char *sq_needle_prepare(const char *needle, struct buf *folded);

/* sq-jmap.c, sq-jmap-tx.c: JMAP (store.h "JMAP"); tables and triggers in
 * sq-jmap-schema.h */
extern const char sq_jmap_schema_sql[];
extern const char sq_jmap_upgrade_sql[];
extern const char sq_jmap_revive_sql[];
void sq_jmap_functions(sqlite3 *db);
/* The account was just created: its mailboxes' JMAP rows start at its
 * first state. */
int sq_jmap_account_created(struct sq_conn *c);
int sq_jmap_states(struct store_user *user, struct store_jmap_cursor *states,
		   struct store_error *err);
int sq_jmap_changes(struct store_user *user, enum store_jmap_kind kind,
		    const struct store_jmap_cursor *since, size_t max,
		    struct store_jmap_changes *r, struct store_error *err);
int sq_jmap_prune(struct store_user *user, time_t now,
		  struct store_error *err);
int sq_jmap_mailboxes(struct store_user *user,
		      struct store_jmap_mailbox **list_r, size_t *count_r,
		      struct store_error *err);
int sq_jmap_mailbox_update(struct store_user *user, uint32_t mailbox_id,
			   const uint32_t *sort_order,
			   const unsigned *special_use, struct store_error *err);
int sq_email_get(struct store_user *user, const int64_t *ids, size_t count,
		 struct store_email *emails, struct store_error *err);
int sq_email_open(struct store_user *user, int64_t id,
		  struct store_blob *blob_r, struct store_error *err);
int sq_email_scan(struct store_user *user, uint32_t mailbox_id,
		  bool newest_first, unsigned fields, store_email_row_fn *cb,
		  void *ctx, struct store_error *err);
int sq_email_rank(struct store_user *user, uint32_t mailbox_id, int64_t id,
		  uint64_t *rank_r, struct store_error *err);
int sq_email_moved_since(struct store_user *user, uint32_t mailbox_id,
			 const struct store_jmap_cursor *since, int64_t **ids_r,
			 size_t *count_r, bool *too_old_r,
			 struct store_error *err);
int sq_thread_emails(struct store_user *user, int64_t thread, int64_t **ids_r,
		     size_t *count_r, struct store_error *err);
int sq_email_search(struct store_user *user, enum store_text_where where,
		    const char *field, const char *needle, int64_t **ids_r,
		    size_t *count_r, struct store_error *err);
int sq_jobject_list(struct store_user *user, enum store_jmap_kind kind,
		    struct store_jobject **list_r, size_t *count_r,
		    struct store_error *err);
int sq_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		   int64_t id, const char *data, int64_t *id_r,
		   struct store_error *err);
int sq_jobject_delete(struct store_user *user, enum store_jmap_kind kind,
		      int64_t id, struct store_error *err);
int sq_email_tx_commit(struct store_user *user, struct store_email_tx *tx,
		       struct store_error *err);
/* Threads (RFC 8621 3): the thread a message that names several joins
 * (the biggest; -1 on error), and the merge of another into it: every
 * message of from gets a new blob row (a link of its file) in into and
 * a new UID, the old ones are expunged, so no IMAP EMAILID/THREADID ever
 * changes under a UID and JMAP sees destroyed and created Emails. In a
 * job; fails it on error. */
int64_t sq_jmap_thread_pick(struct sq_conn *c, const int64_t *threads,
			    size_t count);
int sq_jmap_thread_merge(struct sq_user *u, struct sq_conn *c,
			 struct sq_job *job, int64_t into, int64_t from);
int sq_upload_begin(struct store_user *user, uint64_t max_size,
		    struct store_upload **up_r, struct store_error *err);
int sq_upload_write(struct store_upload *up, const void *data, size_t len,
		    struct store_error *err);
int sq_upload_finish(struct store_upload **up, const char *type,
		     time_t expires, int64_t *id_r, uint64_t *size_r,
		     struct store_error *err);
void sq_upload_abort(struct store_upload **up);
int sq_upload_open(struct store_user *user, int64_t id,
		   struct store_blob *blob_r, char **type_r,
		   struct store_error *err);
int sq_upload_touch(struct store_user *user, int64_t id, time_t expires,
		    struct store_error *err);

/* sq-idle.c: giving back what idle accounts hold */
void sq_touch(struct sq_user *u);
/* Installed on a user's writer: checkpoints move off the commit path. */
void sq_wal_hook_install(struct sq_user *u);
void sq_idle_start(struct store *store);
void sq_idle_stop(struct store *store);
/* One round now: accounts unused for idle_ns; returns how many gave
 * something back. */
unsigned sq_idle_trim(struct store *store, int64_t idle_ns);
/* glibc's malloc thresholds fixed (sq-idle.c), once per process */
void sq_malloc_policy(void);
/* malloc_trim()s by the idle trim (sq-idle.c), for tests */
extern _Atomic uint64_t sq_heap_trims;
uint64_t sq_change_stamp(struct store_user *user);

/* SQLite's memory in a range of its own (sq-mem.c): installed before any
 * SQLite use (sq-db.c's constructor); sq_mem_release gives empty slabs
 * back (the idle trim). The rest for the unit test. */
void sq_mem_install(void);
bool sq_mem_reserve(void);
void sq_mem_release(void);
size_t sq_mem_resident_slabs(void);
void *sq_mem_malloc(int n);
void sq_mem_free(void *p);
void *sq_mem_realloc(void *p, int n);
int sq_mem_size(void *p);

/* sq-text.c: the search text, zlib-compressed in the text table.
 * bind: binds text to column col (tmp holds the compressed bytes until
 * the statement ran). column: the text of column col, decompressed into
 * tmp if need be; NULL if it is damaged. */
void sq_text_bind(sqlite3_stmt *st, int col, const char *text, size_t len,
		  struct buf *tmp);
const char *sq_text_column(sqlite3_stmt *st, int col, struct buf *tmp,
			   size_t *len_r);
/* The stored form alone (4 bytes of length, then zlib): encode gives -1
 * for a text better kept as TEXT; decode -1 for a damaged record. */
int sq_text_encode(const char *text, size_t len, struct buf *out);
int sq_text_decode(const void *data, size_t n, struct buf *out);
/* The text row of a blob (id = blob id), in a job. */
int sq_text_insert(struct sq_conn *c, int64_t id, const char *hdr,
		   size_t hdr_len, const char *body, size_t body_len,
		   const struct buf *body_enc);

/* sq-migrate.c: import, export (store.h "moving mail in and out").
 * The resume marks of imports: (source, id) committed with the message. */
#define SQ_IMPORT_MARK_SQL                                                 \
	"CREATE TABLE IF NOT EXISTS import_mark(source TEXT NOT NULL,"     \
	" id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;"
int sq_import_mailbox(struct store_user *user,
		      const struct store_import_mailbox *spec,
		      struct store_mailbox_info *info_r,
		      struct store_error *err);
void sq_import_append_batch(struct store_user *user,
			    struct store_import_item *items, size_t count);
int sq_import_mark_add(struct store_user *user, const char *source,
		       const char *id, struct store_error *err);
int sq_import_marks(struct store_user *user, const char *source,
		    char ***ids_r, size_t *count_r, struct store_error *err);
int sq_modseq_raise(struct store_user *user, uint64_t modseq,
		    struct store_error *err);
int sq_import_exact(struct store_user *user,
		    const struct store_import_exact *x,
		    struct store_error *err);
int sq_export_extra(struct store_export *e, struct store_account_extra *x,
		    struct store_error *err);
int sq_import_extra(struct store_user *user,
		    const struct store_account_extra *x, size_t *skipped_r,
		    struct store_error *err);
int sq_export_kept(struct store_export *e, struct store_export_kept **rows_r,
		   size_t *count_r, struct store_error *err);
int sq_import_kept(struct store_user *user, const struct store_import_kept *k,
		   struct store_body *body, struct store_error *err);
int sq_export_pop3_sum(struct store_export *e, struct store_pop3_sum *r,
		       struct store_error *err);
int sq_export_expunged(struct store_export *exp, uint32_t mailbox_id,
		       struct store_expunged_range **ranges_r,
		       size_t *count_r, uint64_t *horizon_r,
		       struct store_error *err);
int sq_export_begin(struct store_user *user, struct store_export **exp_r,
		    struct store_error *err);
const struct store_export_info *sq_export_info(const struct store_export *exp);
int sq_export_messages(struct store_export *exp, uint32_t mailbox_id,
		       struct store_error *err);
int sq_export_next(struct store_export *exp,
		   const struct store_export_msg **msg_r,
		   struct store_error *err);
int sq_export_body(struct store_export *exp, int64_t email,
		   struct store_blob *blob_r, struct store_error *err);
void sq_export_end(struct store_export **exp);
int sq_export_seen(struct store_export *exp, uint32_t mailbox_id,
		   struct store_export_seen **rows_r, size_t *count_r,
		   struct store_error *err);

/* sq-undelete.c: removed messages kept for undelete (store.h
 * "undelete"; schema version 10). A row holds the blob (sq_blob_unref
 * counts it as a user) and what the message had in its folder. */
#define SQ_DELETED_SQL                                                    \
	"CREATE TABLE IF NOT EXISTS deleted(id INTEGER PRIMARY KEY"       \
	" AUTOINCREMENT, mailbox TEXT NOT NULL, uid INTEGER NOT NULL,"    \
	" blob INTEGER NOT NULL, flags INTEGER NOT NULL, keywords TEXT,"  \
	" internaldate INTEGER NOT NULL, savedate INTEGER NOT NULL,"      \
	" size INTEGER NOT NULL, at INTEGER NOT NULL);"                   \
	"CREATE INDEX IF NOT EXISTS deleted_at ON deleted(at);"           \
	"CREATE INDEX IF NOT EXISTS deleted_blob ON deleted(blob);"
/* In the caller's thread, before a job that may remove messages: reads
 * whether the account keeps them (deleted_retention_days != 0), at most
 * every 30 s. */
void sq_deleted_policy(struct store_user *user);
struct sq_msgrow;
/* In a removal job, before sq_expunge_rows: keeps the rows for undelete
 * (nothing when the account does not keep them). */
int sq_deleted_keep(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		    uint32_t mailbox_id, const struct sq_msgrow *rows,
		    size_t count);
/* In a job: drops the kept messages removed before `before`. */
int sq_deleted_purge(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		     time_t before, uint32_t *count_r);
int sq_deleted_forget(struct store_user *user, const int64_t *ids,
		      size_t count, struct store_error *err);
int sq_drop_extra(struct store_user *user,
		  const struct store_account_extra *x, struct store_error *err);
int sq_deleted_list(struct store_user *user,
		    const struct store_deleted_filter *filter,
		    store_deleted_fn *fn, void *ctx, struct store_error *err);
int sq_deleted_usage(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err);
int sq_undelete(struct store_user *user,
		const struct store_deleted_filter *filter,
		struct store_undelete_report *report_r,
		struct store_error *err);

/* sq-acl.c: mailbox ACLs (schema version 8) */
#define SQ_ACL_SCHEMA                                                    \
	"CREATE TABLE IF NOT EXISTS acl(mailbox INTEGER NOT NULL,"       \
	" kind INTEGER NOT NULL, ident INTEGER NOT NULL,"                \
	" negative INTEGER NOT NULL, rights INTEGER NOT NULL,"           \
	" PRIMARY KEY (mailbox, kind, ident, negative)) WITHOUT ROWID;"
int sq_acl_read(struct store_user *user, const char *mailbox,
		uint32_t *mailbox_id_r, struct store_acl_entry **entries_r,
		size_t *count_r, struct store_error *err);
int sq_acl_update(struct store_user *user, const char *mailbox,
		  const struct store_acl_entry *entry, int mode,
		  unsigned max_entries, struct store_error *err);
int sq_acl_all(struct store_user *user, struct store_acl_row **rows_r,
	       size_t *count_r, struct store_error *err);
/* In a job: the ACL of mailbox from copied to to; dropped; a new
 * mailbox name (id) takes its parent's, if it has a parent. -1 on a
 * database error. */
int sq_acl_copy(struct sq_conn *c, uint32_t from, uint32_t to);
int sq_acl_drop(struct sq_conn *c, uint32_t mailbox_id);
int sq_acl_inherit(struct sq_conn *c, const char *name, uint32_t id);

/* sq-seen.c: per-user \Seen in shared mailboxes (schema version 11).
 * seen_pvt: a viewer's own \Seen of a message of the owner's mailbox,
 * with the owner's modseq its change took (seen 0: a removal, kept for
 * CONDSTORE); seen_mode: a mailbox's setting (loftctl mailbox set),
 * 1 shared, 0 per user, no row: [sharing] seen; seen_count: how many
 * messages of a mailbox a viewer has seen, kept by triggers (its UNSEEN
 * is the mailbox's messages less this). The triggers drop the rows of an
 * expunged message and of a deleted mailbox. */
#define SQ_SEEN_SCHEMA                                                   \
	"CREATE TABLE IF NOT EXISTS seen_pvt(mailbox INTEGER NOT NULL,"  \
	" uid INTEGER NOT NULL, viewer INTEGER NOT NULL,"                \
	" seen INTEGER NOT NULL, modseq INTEGER NOT NULL,"               \
	" PRIMARY KEY (mailbox, uid, viewer)) WITHOUT ROWID;"            \
	"CREATE INDEX IF NOT EXISTS seen_pvt_modseq"                     \
	" ON seen_pvt(viewer, mailbox, modseq);"                         \
	"CREATE TABLE IF NOT EXISTS seen_mode(mailbox INTEGER PRIMARY KEY," \
	" shared INTEGER NOT NULL);"                                     \
	"CREATE TRIGGER IF NOT EXISTS seen_pvt_msg_gone AFTER DELETE ON msg" \
	" BEGIN DELETE FROM seen_pvt WHERE mailbox = old.mailbox"        \
	" AND uid = old.uid; END;"                                       \
	"CREATE TABLE IF NOT EXISTS seen_count(viewer INTEGER NOT NULL," \
	" mailbox INTEGER NOT NULL, n INTEGER NOT NULL,"                 \
	" PRIMARY KEY (viewer, mailbox)) WITHOUT ROWID;"                 \
	"CREATE TRIGGER IF NOT EXISTS seen_count_ins AFTER INSERT"       \
	" ON seen_pvt WHEN new.seen = 1 BEGIN"                           \
	" INSERT INTO seen_count VALUES (new.viewer, new.mailbox, 1)"    \
	" ON CONFLICT (viewer, mailbox) DO UPDATE SET n = n + 1; END;"   \
	"CREATE TRIGGER IF NOT EXISTS seen_count_del AFTER DELETE"       \
	" ON seen_pvt WHEN old.seen = 1 BEGIN"                           \
	" UPDATE seen_count SET n = n - 1 WHERE viewer = old.viewer"     \
	" AND mailbox = old.mailbox; END;"                               \
	"CREATE TRIGGER IF NOT EXISTS seen_count_upd AFTER UPDATE OF seen" \
	" ON seen_pvt WHEN old.seen != new.seen BEGIN"                   \
	" INSERT INTO seen_count VALUES (new.viewer, new.mailbox,"       \
	" new.seen - old.seen) ON CONFLICT (viewer, mailbox)"            \
	" DO UPDATE SET n = n + new.seen - old.seen; END;"               \
	"CREATE TRIGGER IF NOT EXISTS seen_mailbox_gone"                 \
	" AFTER DELETE ON mailbox BEGIN"                                 \
	" DELETE FROM seen_mode WHERE mailbox = old.id;"                 \
	" DELETE FROM seen_pvt WHERE mailbox = old.id;"                  \
	" DELETE FROM seen_count WHERE mailbox = old.id; END;"
/* In c's read transaction: info's unseen and highestmodseq as viewer
 * sees them (messages as the mailbox row says). -1 on a database error. */
int sq_seen_info_in(struct sq_conn *c, uint32_t mailbox_id, int64_t viewer,
		    struct store_mailbox_info *info);
int sq_seen_mode(struct store_user *user, const char *mailbox, int *mode_r,
		 struct store_error *err);
int sq_seen_list(struct store_user *user, int64_t viewer, bool default_shared,
		 struct store_mailbox_info *list, size_t count,
		 struct store_error *err);
/* In a MOVE's job, before the sources go: the viewers' rows of rows[i]
 * in mailbox src become theirs of dst_uids[i] in dst, at modseq. */
int sq_seen_move(struct sq_conn *c, uint32_t src, const struct sq_msgrow *rows,
		 size_t count, uint32_t dst, const uint32_t *dst_uids,
		 uint64_t modseq);
int sq_seen_set_mode(struct store_user *user, const char *mailbox, int mode,
		     struct store_error *err);
int sq_seen_info(struct store_user *user, uint32_t mailbox_id,
		 int64_t viewer, struct store_mailbox_info *info,
		 struct store_error *err);
int sq_seen_first_unseen(struct store_user *user, uint32_t mailbox_id,
			 int64_t viewer, uint32_t *uid_r,
			 struct store_error *err);
int sq_seen_rows(struct store_user *user, const char *mailbox,
		 int64_t viewer, const struct store_uid_range *ranges,
		 size_t range_count, struct store_seen_row **rows_r,
		 size_t *count_r, struct store_error *err);
int sq_seen_changed_since(struct store_user *user, const char *mailbox,
			  int64_t viewer, uint64_t modseq,
			  const struct store_uid_range *ranges,
			  size_t range_count, uint32_t **uids_r,
			  size_t *count_r, struct store_error *err);
int sq_seen_update(struct store_user *user, const char *mailbox,
		   int64_t viewer, const struct store_uid_range *ranges,
		   size_t range_count, struct store_seen_change *change,
		   struct store_error *err);
int sq_seen_view_delta(struct store_user *user, uint32_t mailbox_id,
		       int64_t viewer, uint64_t since,
		       struct store_mailbox_info *info_r,
		       uint32_t **expunged_r, size_t *expunged_count_r,
		       bool *complete_r,
		       void (*changed)(void *ctx, const struct store_msg *msg),
		       void *ctx, struct store_error *err);

/* sq-jmap.c: a reader in a read transaction (one snapshot), and its end */
struct sq_conn *sq_snap_begin(struct sq_user *u, struct store_error *err);
void sq_snap_end(struct sq_user *u, struct sq_conn *c);

/* sq-jshare.c: JMAP on a viewer's handle (store-private.h) */
int sq_email_copies(struct store_user *user, const int64_t *ids, size_t count,
		    int64_t viewer, struct store_copy_row **rows_r,
		    size_t *count_r, struct store_error *err);
int sq_seen_newest(struct store_user *user, int64_t viewer,
		   uint64_t *modseq_r, struct store_error *err);
int sq_seen_emails_since(struct store_user *user, int64_t viewer,
			 uint64_t modseq, int64_t **ids_r, size_t *count_r,
			 struct store_error *err);

/* sq-pop3.c */
int sq_pop3_marks_flush(struct sq_user *u, struct sq_conn *c);

/* sq-mailbox.c */
struct sq_mbox {
	uint32_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	unsigned special_use;
	bool noselect;
};
/* 1 found, 0 not found, -1 error. */
int sq_mbox_get(struct sq_conn *c, const char *name, struct sq_mbox *mb_r);
int sq_mbox_get_id(struct sq_conn *c, uint32_t id, struct sq_mbox *mb_r);
/* Looks a mailbox up for a job: fails the job with NOTFOUND. */
int sq_job_mbox(struct sq_job *job, struct sq_conn *c, const char *name,
		struct sq_mbox *mb_r);
int sq_mbox_create_tx(struct sq_user *u, struct sq_conn *c,
		      struct sq_job *job, const char *name,
		      unsigned special_use, uint32_t *id_r);
/* The missing parents of name (RFC 3501 6.3.3), in a job. */
int sq_mbox_create_parents(struct sq_user *u, struct sq_conn *c,
			   struct sq_job *job, const char *name);
/* A new UIDVALIDITY (above every one the account gave), in a job. */
uint32_t sq_next_uidvalidity(struct sq_user *u);
/* Every mailbox as store_mailbox_list gives them, in c's open read
 * transaction. */
int sq_mailbox_list_in(struct sq_user *u, struct sq_conn *c,
		       struct store_mailbox_info **list_r, size_t *count_r,
		       struct store_error *err);
/* The same without \Recent (recent stays 0): JMAP has no \Recent, and
 * counting it walks every message of a mailbox no IMAP session saw. */
int sq_mailbox_list_norecent_in(struct sq_user *u, struct sq_conn *c,
				struct store_mailbox_info **list_r,
				size_t *count_r, struct store_error *err);
/* want_children: has_children too (a query more; views do without) */
int sq_mbox_info_row(struct sq_user *u, struct sq_conn *c, uint32_t id,
		     struct store_mailbox_info *info_r, bool want_recent,
		     bool want_children);
uint32_t sq_recent_first(struct sq_user *u, uint32_t mailbox_id,
			 uint32_t db_value);
void sq_recent_forget(struct sq_user *u, uint32_t mailbox_id);
int sq_recent_flush(struct sq_user *u, struct sq_conn *c);

/* sq-message.c */
struct sq_msgrow {
	uint32_t uid;
	int64_t blob;
	uint64_t modseq;
	unsigned flags;
	char *keywords;
	int64_t internaldate, savedate;
	uint64_t size;
	int64_t pop3_first_retr;
	bool pop3_hidden;
};
/* Rows of a mailbox within ranges (NULL: all), UID order. */
int sq_rows_get(struct sq_conn *c, uint32_t mailbox_id,
		const struct store_uid_range *ranges, size_t range_count,
		struct sq_msgrow **rows_r, size_t *count_r);
void sq_rows_free(struct sq_msgrow *rows, size_t count);
/* Removes rows from a mailbox inside a job: logs the expunges, fixes
 * counters and usage, and drops blobs no longer used. */
int sq_expunge_rows(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		    uint32_t mailbox_id, const struct sq_msgrow *rows,
		    size_t count, bool log);
/* Copies rows into dst inside a job (new UIDs from dst's UIDNEXT). */
int sq_copy_rows(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		 uint32_t dst_id, const struct sq_msgrow *rows, size_t count,
		 time_t savedate, uint32_t *dst_uids);
bool sq_ranges_contain(const struct store_uid_range *ranges, size_t count,
		       uint32_t uid);
/* Steps st (bound, first column a UID) to its end and collects, sorted,
 * the UIDs within ranges (ranges NULL: every UID). Resets st. Returns
 * SQLITE_DONE, or the step's error with *uids_r NULL. */
int sq_collect_uids(sqlite3_stmt *st, const struct store_uid_range *ranges,
		    size_t range_count, uint32_t **uids_r, size_t *count_r);
/* Registers every keyword of a space-separated list for the mailbox's
 * FLAGS (list may be NULL). */
int sq_keywords_register(struct sq_conn *c, uint32_t mailbox,
			 const char *list);
void sq_emailid(char out[32], int64_t user_id, int64_t blob);
void sq_threadid(char out[32], int64_t user_id, int64_t thread);
/* Adds deltas to a mailbox's counters and raises its HIGHESTMODSEQ and
 * UIDNEXT to at least the given values. */
int sq_mbox_adjust(struct sq_conn *c, uint32_t id, int64_t messages,
		   int64_t unseen, int64_t deleted, int64_t size,
		   uint64_t modseq, uint32_t uidnext);

/* Where a blob row's body is: a file blobs/<xx>/<name> (every body of
 * an index before version 2, and large ones), or the body table. */
enum sq_body_kind { SQ_BODY_FILE = 0, SQ_BODY_INLINE = 1 };
/* sq_bodies_deliver of this many bodies or more is a bulk append: its
 * text is indexed when the stream pauses (sq-index.c). */
#define SQ_BULK_MIN 8
/* Bodies up to this size live in the index: no inode, no fsync of their
 * own. */
#define SQ_INLINE_MAX (128 * 1024)

struct sq_append_arg {
	const char *mailbox;
	const struct store_append_params *params;
	const char *blob_name;
	uint64_t size;           /* prefix + body: RFC822.SIZE, quota */
	enum sq_body_kind kind;
	const char *prefix;      /* the copy's trace fields (CRLF lines) */
	size_t prefix_len;
	const char *body;        /* SQ_BODY_INLINE: the body's bytes */
	uint64_t body_len;
	uint32_t crc;            /* zlib crc32 of the body */
	bool has_head;           /* head: blob.head (sq_head_of) */
	int64_t head;
	/* the body text already in its stored form (sq_text_encode), made
	 * once for every copy; NULL or empty: encode it here */
	const struct buf *body_text_enc;
	const struct mail_result *an;
	struct store_account_limits limits;
	time_t now;
	uint32_t uid, uidvalidity;
	/* import (sq-migrate.c); 0 means as for any delivery: the blob
	 * row id (EMAILID's n), the thread, the savedate */
	int64_t want_blob, want_thread;
	time_t want_savedate;
};
int sq_blob_unref(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		  int64_t blob);
/* The blob row of a body copy (a->an, want_blob, want_thread; no
 * message row), its text and thread, in a job; -1 on a database error.
 * An import of undelete's kept messages (sq-migrate.c). */
int sq_blob_insert(struct sq_user *u, struct sq_conn *c, struct sq_job *job,
		   const struct sq_append_arg *a, int64_t *blob_r);

/* sq-blob.c */
char *sq_blob_path(struct sq_user *u, const char *name);
/* A body's header block as TOP n 0 and BODY[HEADER] send it -- up to and
 * including the first line that is "\r\n" or "\n" alone, or the whole
 * body -- as blob.head stores it: its length << 32 | its crc32. false
 * when it is too long to keep (2 GiB). */
bool sq_head_of(const char *p, size_t len, int64_t *head_r);
int sq_blob_open_head(struct store_user *user, const char *mailbox,
		      uint32_t uid, struct store_blob *blob_r,
		      struct store_error *err);
int sq_fsync_dir(const char *path);
/* fsyncs a directory on the pool (several waiting for one directory
 * share one fsync); returns its result. */
int sq_dirsync(struct sq_store *s, const char *dir);
/* Deferred removal of message files (issue: a file must outlive every
 * reader whose snapshot can still name it). A reader of a file body
 * brackets its index lookup and open() with _enter/_leave; a file freed
 * by a commit is unlinked at once if no reader is inside, else when the
 * last reader that entered before the commit leaves. */
uint64_t sq_read_enter(struct sq_user *u);
void sq_read_leave(struct sq_user *u, uint64_t ticket);
void sq_unlink_deferred(struct sq_user *u, const char *name);
void sq_unlink_pending_all(struct sq_user *u);
/* Removes (repair) or reports the files of dir that no index row names.
 * Files younger than older_than (ns) are left alone unless live (this
 * process's own sweep, which knows its appends in flight).
 * The caller holds the account's store_user for the whole call. The sweep
 * reads the index on a connection of its own, and SQLite's unix VFS
 * (3.40) closes a connection's file descriptor after releasing its
 * per-file mutex: if that connection is the process's last lock holder
 * while another thread opens the account and takes the first lock, the
 * close() drops that new lock too (POSIX locks belong to the process).
 * Then another process (loftctl check) believes it is alone, checkpoints
 * and deletes the -wal and -shm, and every commit after that goes to the
 * deleted WAL and is lost at the next crash. With the handle held, its
 * writer keeps the lock, so the sweep's close never is the last one. */
void sq_sweep_user(struct store *store, const char *dir, int64_t older_than,
		   bool live, store_report_fn *report, void *ctx, bool repair,
		   unsigned *found_r);
/* A blob writer in two steps, for a caller with its own job (JMAP's
 * email transactions): prepare makes the file durable and analyses it
 * (free an after); done frees the writer, keeping the file if the row
 * that names it was committed. */
int sq_blob_writer_prepare(struct store_blob_writer *w,
			   struct mail_result *an, struct store_error *err);
const char *sq_blob_writer_name(const struct store_blob_writer *w);
void sq_blob_writer_done(struct store_blob_writer **w, bool committed);
/* Maps a file read-only into blob_r (closed with sq_blob_close). */
int sq_blob_map(const char *path, struct store_blob *blob_r,
		struct store_error *err);
void sq_inflight_add(struct sq_store *s, const char *name);
void sq_fsync_pool_start(struct sq_store *s);
void sq_fsync_pool_stop(struct sq_store *s);
void sq_inflight_del(struct sq_store *s, const char *name);
void *sq_sweeper_main(void *arg);
int64_t sq_now_ns(void);

/* the vtable parts */
int sq_usage(struct store_user *user, struct store_usage *usage_r,
	     struct store_error *err);
int sq_disk(struct store_user *user, struct store_disk *disk_r,
	    struct store_error *err);
int sq_mailbox_list(struct store_user *user, struct store_mailbox_info **list_r,
		    size_t *count_r, struct store_error *err);
int sq_subscriptions(struct store_user *user, char ***names_r, size_t *count_r,
		     struct store_error *err);
int sq_mailbox_status(struct store_user *user, const char *name, uint32_t id,
		      struct store_mailbox_info *info_r,
		      struct store_error *err);
int sq_mailbox_create(struct store_user *user, const char *name,
		      unsigned special_use, struct store_error *err);
int sq_mailbox_delete(struct store_user *user, const char *name,
		      struct store_error *err);
int sq_mailbox_rename(struct store_user *user, const char *from, const char *to,
		      struct store_error *err);
int sq_mailbox_subscribe(struct store_user *user, const char *name,
			 bool subscribe, struct store_error *err);
char *sq_mailbox_find_special(struct store_user *user, unsigned special_use);
int sq_mailbox_keywords(struct store_user *user, const char *mailbox,
			char ***keywords_r, size_t *count_r,
			struct store_error *err);
/* Creates INBOX, Sent, Drafts, Trash, Junk and Archive in the
 * transaction that creates the account (so they exist from the first
 * open on, crash or not). */
int sq_create_defaults(struct sq_conn *c, int64_t user_id);

int sq_body_create(struct store *store, struct store_body **body_r,
		   struct store_error *err);
int sq_body_write(struct store_body *b, const void *data, size_t len,
		  struct store_error *err);
uint64_t sq_body_size(const struct store_body *b);
void sq_body_set_binary(struct store_body *b);
int sq_body_finish(struct store_body *b, struct store_error *err);
int sq_bodies_deliver(struct store_body *const *bodies, size_t n,
		      struct store_user *user, const char *mailbox,
		      const struct store_append_params *params,
		      uint32_t *uids, uint32_t *uidvalidity_r,
		      struct store_error *err);
int sq_body_deliver(struct store_body *b, struct store_user *user,
		    const char *mailbox, const char *prefix, size_t prefix_len,
		    const struct store_append_params *params, uint32_t *uid_r,
		    uint32_t *uidvalidity_r, struct store_error *err);
void sq_body_unref(struct store_body *b);
/* One copy of a body for a caller that runs its own job (JMAP's email
 * transactions; sq_body_deliver is begin, sq_append_tx, end): begin
 * fills cp->a but mailbox, params and limits, and links a large body
 * into the user's blobs/; end follows the commit, committed or not. */
struct sq_body_copy {
	struct sq_append_arg a;
	struct mail_result an;
	struct buf parts, hdr;
	char name[33];
	char *path;
	bool spilled;
};
int sq_body_copy_begin(struct store_body *b, struct sq_user *u,
		       const char *prefix, size_t prefix_len,
		       struct sq_body_copy *cp, struct store_error *err);
void sq_body_copy_end(struct store_body *b, struct sq_user *u,
		      struct sq_body_copy *cp, bool committed);
/* Maps a plain file (an upload) read-only; close with sq_blob_close. */
int sq_blob_map_file(const char *path, struct store_blob *blob_r,
		     struct store_error *err);
int sq_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		 struct store_blob *blob_r, struct store_error *err);
void sq_blob_close(struct store_blob *blob);
/* A blob's bytes as a reader gets them (prefix, then body), by blob id,
 * in c's snapshot; close with sq_blob_close. For the writer's own jobs
 * (check): other readers use sq_blob_open. */
/* The bytes of Email (blob) id, one read transaction; NOTFOUND when no
 * message has it. */
int sq_blob_open_email(struct store_user *user, int64_t email,
		       struct store_blob *blob_r, struct store_error *err);
int sq_blob_read_id(struct sq_user *u, struct sq_conn *c, int64_t id,
		    struct store_blob *blob_r, struct store_error *err);

int sq_fetch_begin(struct store_user *user, const char *mailbox,
		   const struct store_uid_range *ranges, size_t range_count,
		   unsigned fields, uint64_t changedsince,
		   struct store_fetch **fetch_r, struct store_error *err);
int sq_fetch_next(struct store_fetch *fetch, const struct store_msg **msg_r,
		  struct store_error *err);
void sq_fetch_end(struct store_fetch **fetch);
int sq_flags_update(struct store_user *user, const char *mailbox,
		    const struct store_uid_range *ranges, size_t range_count,
		    const struct store_flag_change *change,
		    uint32_t **changed_r, size_t *changed_count_r,
		    uint32_t **modified_r, size_t *modified_count_r,
		    struct store_error *err);
int sq_copy(struct store_user *user, const char *src,
	    const struct store_uid_range *ranges, size_t range_count,
	    const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	    uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	    struct store_error *err);
int sq_expunge(struct store_user *user, const char *mailbox,
	       const struct store_uid_range *ranges, size_t range_count,
	       bool force, uint32_t **uids_r, size_t *count_r,
	       struct store_error *err);
int sq_append_tx(struct sq_user *u, struct sq_conn *c, struct sq_job *job);
/* The account's quota from the limits callback (zeros: none). */
/* Whether bytes and messages more would pass the account's quota (the
 * usage of this transaction, plus kept messages when they count). */
static inline bool sq_over_quota(const struct sq_user *u,
				 const struct store_account_limits *l,
				 uint64_t bytes, uint64_t messages)
{
	return (l->quota_bytes != 0 &&
		u->tx_bytes + l->kept_bytes + bytes > l->quota_bytes) ||
	       (l->quota_messages != 0 &&
		u->tx_messages + l->kept_messages + messages >
			l->quota_messages);
}
int sq_limits_get(struct store_user *user, struct store_account_limits *limits,
		  struct store_error *err);

int sq_view_load(struct store_user *user, const char *mailbox,
		 uint32_t mailbox_id, struct store_mailbox_info *info_r,
		 uint32_t **uids_r, size_t *count_r, struct store_error *err);
int sq_view_open(struct store_user *user, const char *mailbox,
		 int64_t viewer, struct store_view_want *want,
		 struct store_mailbox_info *info_r, struct store_error *err);
int sq_view_delta(struct store_user *user, uint32_t mailbox_id,
		  uint64_t since, struct store_mailbox_info *info_r,
		  uint32_t **expunged_r, size_t *expunged_count_r,
		  bool *complete_r,
		  void (*changed)(void *ctx, const struct store_msg *msg),
		  void *ctx, struct store_error *err);
uint32_t sq_recent_claim(struct store_user *user, uint32_t mailbox_id,
			 uint32_t upto, bool peek);
int sq_first_unseen(struct store_user *user, uint32_t mailbox_id,
		    uint32_t *uid_r, struct store_error *err);
int sq_changed_since(struct store_user *user, const char *mailbox,
		     uint64_t modseq, const struct store_uid_range *ranges,
		     size_t range_count, uint32_t **uids_r, size_t *count_r,
		     struct store_error *err);
int sq_expunged_since(struct store_user *user, const char *mailbox,
		      uint64_t modseq, const struct store_uid_range *ranges,
		      size_t range_count, uint32_t **uids_r, size_t *count_r,
		      bool *complete_r, struct store_error *err);
int sq_search_text(struct store_user *user, const char *mailbox,
		   enum store_text_where where, const char *needle,
		   const struct store_uid_range *ranges, size_t range_count,
		   uint32_t **uids_r, size_t *count_r, struct store_error *err);
int sq_pop3_retrieved(struct store_user *user, uint32_t uid, time_t now,
		      struct store_error *err);
/* sq-mailbox.c: Sent, Drafts, Trash, Junk, Archive back when missing */
int sq_mailbox_roles_ensure(struct store_user *user, struct store_error *err);
/* sq-db.c: what the handle's open found (store_user_index_version) */
void sq_user_index_version(struct store_user *user, unsigned *found_r,
			   unsigned *known_r);
/* sq-activity.c */
int sq_note_sync_login(struct store_user *user, time_t now,
		       struct store_error *err);
int sq_last_sync_login(struct store_user *user, time_t *when_r,
		       struct store_error *err);
/* pop3_delete = auto inside a job: STORE_POP3_HIDE or _TRASH. */
int sq_pop3_auto_mode(struct sq_conn *c, time_t now, int *mode_r);
int sq_pop3_hide(struct store_user *user, const uint32_t *uids, size_t count,
		 size_t *hidden_r, struct store_error *err);
int sq_retention_run(struct store_user *user,
		     const struct store_retention_policy *policy, time_t now,
		     struct store_retention_report *report_r,
		     struct store_error *err);
int sq_check(struct store *store, int64_t user_id, bool repair,
	     store_report_fn *report, void *ctx, struct store_error *err);
int sq_index_version_get(struct store *store, int64_t user_id,
			 unsigned *found_r, unsigned *known_r,
			 struct store_error *err);

/* Days the expunge log is kept (DESIGN.md: at least 30). */
#define SQ_EXPUNGE_LOG_DAYS 45

/* sq-sieve.c: store.h "Sieve" */
int sq_sieve_list(struct store_user *user, struct store_sieve_script **list_r,
		  size_t *count_r, struct store_error *err);
int sq_sieve_get(struct store_user *user, const char *name, bool active_only,
		 char **name_r, char **source_r, size_t *len_r, void **image_r,
		 size_t *image_len_r, bool *active_r, struct store_error *err);
int sq_sieve_put(struct store_user *user, const char *name,
		 const char *source, size_t len, const void *image,
		 size_t image_len, struct store_error *err);
int sq_sieve_activate(struct store_user *user, const char *name,
		      struct store_error *err);
int sq_sieve_delete(struct store_user *user, const char *name,
		    struct store_error *err);
int sq_sieve_rename(struct store_user *user, const char *from, const char *to,
		    struct store_error *err);
int sq_sieve_ids(struct store_user *user, struct store_error *err);
int sq_sieve_record_seen(struct store_user *user, const char *key, time_t now,
			 bool *seen_r, struct store_error *err);
const char *sq_body_text(struct store_body *b, size_t *len_r);
uint64_t sq_sieve_version(struct store_user *user);
void sq_sieve_changed(struct store_user *user);
int sq_sieve_deliver(struct store_user *user, struct store_sieve_copy *copies,
		     size_t count, const struct store_sieve_record *records,
		     size_t record_count, struct store_error *err);

#endif
