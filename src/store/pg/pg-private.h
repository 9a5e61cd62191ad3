/*
 * The PostgreSQL backend (docs/scale-out.md): the index of every account
 * in one database shared by any number of loftd nodes, message bodies in
 * blob_dir (the file driver: a directory every node sees, content
 * addressed by SHA-256). Only this directory sees libpq.
 *
 * Connections: a pool of [store] postgres_pool libpq connections; a call
 * takes one for its transaction and gives it back. Statements are
 * prepared once per connection (pg_exec's sql text is the key); every
 * value is a parameter, results come back in binary.
 *
 * Writes: pg_wbegin locks the account row (SELECT ... FOR UPDATE) first,
 * so an account's writers are serialised across nodes and UIDs and
 * modseqs become visible in the order they were taken; pg_wcommit writes
 * the counter back, commits, then publishes the changes to the hub.
 * Reads that need one snapshot run in REPEATABLE READ READ ONLY.
 */
#ifndef LOFT_PG_PRIVATE_H
#define LOFT_PG_PRIVATE_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "pg-notify.h"
#include "store-private.h"

#define PG_SCHEMA_VERSION 12

struct s3;
struct blob_cache;

struct pg_conn {
	PGconn *db;
	struct store *store;    /* its test hooks */
	/* statements prepared on this connection: the sql pointers */
	const char **prepared;
	size_t prepared_count, prepared_cap;
	bool in_tx;
	bool broken;            /* reset before the next use */
};

struct pg_store {
	char *conninfo;
	char *blob_dir;
	unsigned timeout;       /* seconds */
	bool fsync;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct pg_conn **free_conns;
	size_t free_count;
	size_t open_count, max_conns;
	/* the hub across nodes (pg-hub.c) */
	uint64_t node_id;       /* random: tells our notifications apart */
	pthread_t listener;
	int wake[2];
	bool listening;
	/* the listener's view (pg-hub.c): its connection down (for
	 * /healthz), and what the primary said of its synchronous standby
	 * (-1 not asked yet, 0 one streams, 1 none named, 2 named but
	 * none streaming) */
	atomic_bool unreachable;
	int standby_state;
	/* bodies (pg-blob.c) */
	char *spool_dir;        /* a node's bodies while written */
	struct s3 *s3;          /* blobs = s3; NULL: the file driver */
	struct blob_cache *cache;  /* blobs = s3: the node's copies, or NULL */
	unsigned grace;         /* seconds a body stays unnamed */
	pthread_t collector;
	pthread_mutex_t collector_mu;
	pthread_cond_t collector_cond;
	bool collector_running, collector_stop;
	/* the reverse ACL index is written by trigger (pg-acl.c) */
	atomic_bool acl_index_kept;
	/* POP3 maildrop locks of this node (pg-lock.c) */
	pthread_mutex_t lock_mu;
	struct pg_conn *lock_conn;
	int64_t *locks_held;
	size_t locks_count, locks_cap;
	/* the database's clock minus this node's, in seconds, read at
	 * each connect (pg_now) */
	_Atomic int64_t clock_skew;
	/* tests: the next write transaction's connection is cut after its
	 * COMMIT is sent (1) or before (2) */
	_Atomic int test_cut_commit;
	/* tests: in a transaction, the connection is cut before the
	 * statement this counts down to (1: the next one; -1: every one) */
	_Atomic int test_cut_statement;
};
#define PGS(store) ((struct pg_store *)(store)->be)

/* An open account's node-local state (user->be). */
struct pg_store_user {
	/* undelete (pg-undelete.c): the account's policy as last read */
	_Atomic int64_t deleted_checked;
	atomic_bool deleted_off;
	/* views' syncs asking the same question at once (pg-delta.c) */
	struct pg_delta_share *delta;
};

/* pg-delta.c: the vtable's view_delta. Views of one mailbox synced to the
 * same modseq that ask at once share one read (pg_r_view_delta), each
 * getting an answer read after it asked. */
struct pg_delta_share *pg_delta_share_new(void);
void pg_delta_share_free(struct pg_delta_share **share);
int pg_view_delta_shared(struct store_user *user, uint32_t mailbox_id,
			 uint64_t since, struct store_mailbox_info *info_r,
			 uint32_t **expunged_r, size_t *expunged_count_r,
			 bool *complete_r,
			 void (*changed)(void *ctx, const struct store_msg *msg),
			 void *ctx, struct store_error *err);

/* One write transaction of one account. */
struct pg_tx {
	struct store_user *user;
	struct pg_conn *c;
	uint64_t modseq;        /* the account counter as locked */
	bool took_modseq;
	uint32_t last_uidvalidity;
	int64_t bytes, messages;        /* the account's usage (quota) */
	bool usage_dirty;
	struct store_change *changes;   /* published after the COMMIT */
	size_t change_count, change_cap;
	uint64_t start_ns;              /* BEGIN (loft_store_commit_seconds) */
};

/* ---- connections and statements (pg-db.c) --------------------------- */

struct pg_conn *pg_conn_get(struct store *store, struct store_error *err);
/* A libpq connection to the primary with the node's settings (timeouts,
 * keepalives, target_session_attrs=read-write; the admin's conninfo
 * wins); app is its application_name. Check PQstatus. */
PGconn *pg_connect(const struct pg_store *s, const char *app);
/* err = STORE_ERR_UNAVAILABLE (the database cannot be reached); -1. */
int pg_unavailable(struct store_error *err);
/* A connection of its own, outside the pool. */
struct pg_conn *pg_conn_open(struct store *store, struct store_error *err);
void pg_conn_free(struct pg_conn *c);
/* Times kept in rows (savedate, the expunge log, undelete, Sieve records)
 * and retention follow the database's clock, so node clocks apart do not
 * matter (docs/scale-out.md): pg_now is the database's time, pg_db_time
 * a time of this node's clock (a caller's "now") in the database's. */
time_t pg_now(struct store *store);
time_t pg_db_time(struct store *store, time_t node_time);
void pg_conn_put(struct store *store, struct pg_conn *c);

/* Parameters: text values (NULL: SQL NULL); a length > 0 in lens marks a
 * binary (bytea) value. */
struct pg_params {
	const char *v[24];
	int len[24];
	int fmt[24];
	char num[24][24];
	int n;
};
void pg_p_init(struct pg_params *p);
void pg_p_int(struct pg_params *p, int64_t v);
void pg_p_str(struct pg_params *p, const char *s);
void pg_p_bin(struct pg_params *p, const void *data, size_t len);

/* Runs a prepared statement (sql is the key: pass the same pointer, a
 * string literal). Returns the result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK) or NULL with err filled (TEMP) and the connection
 * marked broken when it is. */
PGresult *pg_exec(struct pg_conn *c, const char *sql,
		  const struct pg_params *p, struct store_error *err);
/* The same for a statement with no result wanted: 0 or -1. */
int pg_run(struct pg_conn *c, const char *sql, const struct pg_params *p,
	   struct store_error *err);
/* Plain text commands (BEGIN, COMMIT): 0 or -1. */
int pg_cmd(struct pg_conn *c, const char *sql, struct store_error *err);

/* Binary result values. */
int64_t pg_int(const PGresult *r, int row, int col);
bool pg_bool(const PGresult *r, int row, int col);
/* A malloced NUL-terminated copy (NULL for SQL NULL). */
char *pg_strdup(const PGresult *r, int row, int col);
/* Points into the result (NULL for SQL NULL). */
const char *pg_val(const PGresult *r, int row, int col, size_t *len_r);

/* ---- transactions ------------------------------------------------------ */

/* A read snapshot: REPEATABLE READ READ ONLY. */
struct pg_conn *pg_rbegin(struct store_user *user, struct store_error *err);
void pg_rend(struct store_user *user, struct pg_conn *c);
/* A write transaction with the account row locked. */
int pg_wbegin(struct store_user *user, struct pg_tx *tx,
	      struct store_error *err);
/* The modseq of this transaction (taken once, on first use). */
uint64_t pg_tx_modseq(struct pg_tx *tx);
void pg_tx_change(struct pg_tx *tx, uint32_t mailbox_id,
		  enum store_change_kind kind);
uint32_t pg_tx_uidvalidity(struct pg_tx *tx);
/* ret < 0: rolls back and returns -1; else commits (then publishes) and
 * returns 0, or -1 if the COMMIT failed. */
int pg_wend(struct pg_tx *tx, int ret, struct store_error *err);
/* Whether the transaction's effect is in the database (on a fresh
 * connection c): 1 yes, 0 no, -1 cannot tell. */
typedef int pg_committed_fn(struct pg_conn *c, void *ctx);
/* pg_wend, and when the COMMIT's answer was lost with its connection,
 * asks committed (a COMMIT that did happen is a success). */
int pg_wend_resolve(struct pg_tx *tx, int ret, pg_committed_fn *committed,
		    void *ctx, struct store_error *err);

/* ---- mailboxes (pg-mailbox.c) ------------------------------------------ */

struct pg_mbox {
	uint32_t id, uidvalidity, uidnext;
	uint64_t highestmodseq;
	unsigned special_use;
	bool noselect;
};
/* 1 found, 0 not, -1 error. */
int pg_mbox_get(struct store_user *user, struct pg_conn *c, const char *name,
		uint32_t id, struct pg_mbox *mb_r, struct store_error *err);
/* NOTFOUND for a missing or \Noselect mailbox. */
int pg_mbox_need(struct store_user *user, struct pg_conn *c,
		 const char *name, uint32_t id, struct pg_mbox *mb_r,
		 struct store_error *err);
/* A mailbox's info; for a view (view_load, view_delta), without the
 * \Recent count (a view counts its own) and has_children (no view
 * reads it: one statement less per sync). */
int pg_mbox_info(struct store_user *user, struct pg_conn *c, uint32_t id,
		 struct store_mailbox_info *info_r, bool for_view,
		 struct store_error *err);
int pg_create_defaults(struct pg_tx *tx, struct store_error *err);
/* In tx: name made (with its parents), or a \Noselect one made a
 * mailbox again (new UIDVALIDITY); EXISTS when it is one already. */
int pg_mbox_make(struct pg_tx *tx, const char *name, unsigned special_use,
		 struct store_error *err);
int pg_mbox_touch(struct pg_tx *tx, uint32_t id, uint32_t uidnext,
		  struct store_error *err);

int pg_mailbox_list(struct store_user *user, struct store_mailbox_info **list_r,
		    size_t *count_r, struct store_error *err);
/* The same in c's snapshot; recent: with \Recent counts (JMAP has
 * none). */
int pg_mailbox_list_in(struct store_user *user, struct pg_conn *c,
		       bool recent, struct store_mailbox_info **list_r,
		       size_t *count_r, struct store_error *err);
int pg_subscriptions(struct store_user *user, char ***names_r, size_t *count_r,
		     struct store_error *err);
int pg_mailbox_status(struct store_user *user, const char *name, uint32_t id,
		      struct store_mailbox_info *info_r,
		      struct store_error *err);
int pg_mailbox_create(struct store_user *user, const char *name,
		      unsigned special_use, struct store_error *err);
int pg_mailbox_delete(struct store_user *user, const char *name,
		      struct store_error *err);
int pg_mailbox_rename(struct store_user *user, const char *from, const char *to,
		      struct store_error *err);
int pg_mailbox_subscribe(struct store_user *user, const char *name,
			 bool subscribe, struct store_error *err);
char *pg_mailbox_find_special(struct store_user *user, unsigned special_use);
int pg_mailbox_keywords(struct store_user *user, const char *mailbox,
			char ***keywords_r, size_t *count_r,
			struct store_error *err);
int pg_mailbox_roles_ensure(struct store_user *user, struct store_error *err);
uint32_t pg_recent_claim(struct store_user *user, uint32_t mailbox_id,
			 uint32_t upto, bool peek);

/* ---- messages (pg-message.c) ------------------------------------------- */

int pg_body_create(struct store *store, struct store_body **body_r,
		   struct store_error *err);
int pg_body_write(struct store_body *body, const void *data, size_t len,
		  struct store_error *err);
uint64_t pg_body_size(const struct store_body *body);
void pg_body_set_binary(struct store_body *body);
int pg_body_finish(struct store_body *body, struct store_error *err);
int pg_body_deliver(struct store_body *body, struct store_user *user,
		    const char *mailbox, const char *prefix, size_t prefix_len,
		    const struct store_append_params *params, uint32_t *uid_r,
		    uint32_t *uidvalidity_r, struct store_error *err);
/* store_body_text: the analysis' text, unfolded (Sieve body :text). */
const char *pg_body_text(struct store_body *body, size_t *len_r);
/* store-private.h bodies_deliver (MULTIAPPEND): one transaction. */
int pg_bodies_deliver(struct store_body *const *bodies, size_t n,
		      struct store_user *user, const char *mailbox,
		      const struct store_append_params *params,
		      uint32_t *uids, uint32_t *uidvalidity_r,
		      struct store_error *err);
void pg_body_unref(struct store_body *body);
/* An upload (pg-jmail-tx.c): the bytes as written (no CRLF, no
 * analysis), at most max (0: no limit). */
void pg_body_set_raw(struct store_body *body, uint64_t max);
/* A finished body's name (SHA-256 hex), NULL before. */
const char *pg_body_sha(const struct store_body *body);
/* The account's limits ([store] limits callback): 0, or -1 TEMP. */
int pg_limits_get(struct store_user *user,
		  struct store_account_limits *limits, struct store_error *err);
/* What identifies one delivered copy (a lost COMMIT's answer: is its
 * row there?); pg_delivered is the pg_committed_fn that looks. */
struct pg_delivered {
	int64_t user_id;
	uint32_t mailbox, uid;
	int64_t blob;
};
int pg_delivered(struct pg_conn *c, void *ctx);
/* One copy of a finished body into mailbox inside tx: quota against
 * limits, the UID, the blob and msg rows (body_deliver, Sieve's
 * delivery, JMAP's Email/set create). */
int pg_deliver_tx(struct pg_tx *tx, struct store_body *b, const char *mailbox,
		  const char *prefix, size_t prefix_len,
		  const struct store_append_params *params,
		  const struct store_account_limits *limits,
		  struct pg_delivered *d_r, uint32_t *uidvalidity_r,
		  struct store_error *err);
/* What an import keeps (store_import_params): the blob row's id
 * (EMAILID), THREADID, the save date and POP3 UIDL; 0 or NULL: as a
 * delivery makes them. */
struct pg_deliver_want {
	int64_t blob, thread;
	time_t savedate;
	const char *pop3_uidl;
};
/* The blob row of a body, its bytes claimed, its JMAP row and thread
 * (want->blob, want->thread as below), no message row: the import of
 * undelete's kept messages (pg-undelete.c). *size_r: its bytes. */
int pg_blob_row_of(struct pg_tx *tx, struct store_body *b,
		   const struct pg_deliver_want *want, int64_t *blob_r,
		   uint64_t *size_r, struct store_error *err);
/* pg_deliver_tx with want (may be NULL). */
int pg_deliver_tx_as(struct pg_tx *tx, struct store_body *b,
		     const char *mailbox, const char *prefix, size_t prefix_len,
		     const struct store_append_params *params,
		     const struct store_account_limits *limits,
		     const struct pg_deliver_want *want,
		     struct pg_delivered *d_r, uint32_t *uidvalidity_r,
		     struct store_error *err);
int pg_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		 struct store_blob *blob_r, struct store_error *err);
/* The bytes of Email (blob) id, row and bytes in one read. */
int pg_blob_open_email(struct store_user *user, int64_t id,
		       struct store_blob *blob_r, struct store_error *err);
void pg_blob_close(struct store_blob *blob);
/* The bytes of the one row of r (sha256, body_size, prefix), read and
 * checked: NOTFOUND when r has no row. */
int pg_blob_from_row(struct store_user *user, const PGresult *r,
		     struct store_blob *blob_r, struct store_error *err);
/* The export stream (pg-export.c). */
int pg_export_begin(struct store_user *user, struct store_export **exp_r,
		    struct store_error *err);
const struct store_export_info *pg_export_info(const struct store_export *e);
int pg_export_messages(struct store_export *e, uint32_t mailbox_id,
		       struct store_error *err);
int pg_export_next(struct store_export *e, const struct store_export_msg **m,
		   struct store_error *err);
int pg_export_body(struct store_export *e, int64_t email,
		   struct store_blob *blob_r, struct store_error *err);
int pg_export_extra(struct store_export *e, struct store_account_extra *x,
		    struct store_error *err);
int pg_import_extra(struct store_user *user,
		    const struct store_account_extra *x, size_t *skipped_r,
		    struct store_error *err);
int pg_export_expunged(struct store_export *e, uint32_t mailbox_id,
		       struct store_expunged_range **ranges_r,
		       size_t *count_r, uint64_t *horizon_r,
		       struct store_error *err);
int pg_export_seen(struct store_export *e, uint32_t mailbox_id,
		   struct store_export_seen **rows_r, size_t *count_r,
		   struct store_error *err);
void pg_export_end(struct store_export **e);
int pg_fetch_begin(struct store_user *user, const char *mailbox,
		   const struct store_uid_range *ranges, size_t range_count,
		   unsigned fields, uint64_t changedsince,
		   struct store_fetch **fetch_r, struct store_error *err);
int pg_fetch_next(struct store_fetch *fetch, const struct store_msg **msg_r,
		  struct store_error *err);
void pg_fetch_end(struct store_fetch **fetch);
int pg_flags_update(struct store_user *user, const char *mailbox,
		    const struct store_uid_range *ranges, size_t range_count,
		    const struct store_flag_change *change,
		    uint32_t **changed_r, size_t *changed_count_r,
		    uint32_t **modified_r, size_t *modified_count_r,
		    struct store_error *err);
int pg_copy(struct store_user *user, const char *src,
	    const struct store_uid_range *ranges, size_t range_count,
	    const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	    uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	    struct store_error *err);
int pg_expunge(struct store_user *user, const char *mailbox,
	       const struct store_uid_range *ranges, size_t range_count,
	       bool force, uint32_t **uids_r, size_t *count_r,
	       struct store_error *err);
/* One more copy of (src_mailbox, uid) in dst_mailbox inside tx, quota
 * checked against limits (JMAP's Email/set mailboxIds). */
int pg_copy_one(struct pg_tx *tx, uint32_t src_mailbox, uint32_t uid,
		uint32_t dst_mailbox, const struct store_account_limits *limits,
		struct store_error *err);
/* The flags and keywords of one row, at the transaction's modseq. */
int pg_row_flags_set(struct pg_tx *tx, uint32_t mailbox, uint32_t uid,
		     unsigned flags, const char *keywords,
		     struct store_error *err);
/* uids as a bigint[] literal ("{1,2,3}") in out (initialised here). */
void pg_uid_array(struct buf *out, const uint32_t *uids, size_t n);
/* Removes the rows of uids in mailbox (and the blob rows nothing names
 * any more), logging them in the expunge log (PG_GONE_LOG) and keeping
 * them for undelete (PG_GONE_KEEP: see pg_deleted_keep). */
#define PG_GONE_LOG 1u
#define PG_GONE_KEEP 2u
int pg_expunge_uids(struct pg_tx *tx, uint32_t mailbox_id,
		    const uint32_t *uids, size_t n, unsigned how,
		    struct store_error *err);
/* The blob rows of blobs (a bigint[] literal) no message and no message
 * kept for undelete names. */
int pg_blob_rows_drop(struct pg_tx *tx, const char *blobs,
		      struct store_error *err);
/* Whether the quota takes bytes and messages more (limits' kept_* too). */
bool pg_over_quota(const struct pg_tx *tx,
		   const struct store_account_limits *l, uint64_t bytes,
		   uint64_t messages);
int pg_view_load(struct store_user *user, const char *mailbox,
		 uint32_t mailbox_id, struct store_mailbox_info *info_r,
		 uint32_t **uids_r, size_t *count_r, struct store_error *err);
int pg_view_delta(struct store_user *user, uint32_t mailbox_id, uint64_t since,
		  struct store_mailbox_info *info_r, uint32_t **expunged_r,
		  size_t *expunged_count_r, bool *complete_r,
		  void (*changed)(void *ctx, const struct store_msg *msg),
		  void *ctx, struct store_error *err);
/* pg_view_delta as viewer (> 0) sees it: its own \Seen (pg-seen.c). */
int pg_view_delta_as(struct store_user *user, uint32_t mailbox_id,
		     int64_t viewer, uint64_t since,
		     struct store_mailbox_info *info_r, uint32_t **expunged_r,
		     size_t *expunged_count_r, bool *complete_r,
		     void (*changed)(void *ctx, const struct store_msg *msg),
		     void *ctx, struct store_error *err);
int pg_first_unseen(struct store_user *user, uint32_t mailbox_id,
		    uint32_t *uid_r, struct store_error *err);
int pg_changed_since(struct store_user *user, const char *mailbox,
		     uint64_t modseq, const struct store_uid_range *ranges,
		     size_t range_count, uint32_t **uids_r, size_t *count_r,
		     struct store_error *err);
int pg_expunged_since(struct store_user *user, const char *mailbox,
		      uint64_t modseq, const struct store_uid_range *ranges,
		      size_t range_count, uint32_t **uids_r, size_t *count_r,
		      bool *complete_r, struct store_error *err);
/* A search needle folded as the stored texts are (folded, binary) and
 * the LIKE pattern that finds it in loft_text() of them (like, text):
 * both initialised here. */
void pg_needle_prepare(const char *needle, struct buf *folded,
		       struct buf *like);
int pg_search_text(struct store_user *user, const char *mailbox,
		   enum store_text_where where, const char *needle,
		   const struct store_uid_range *ranges, size_t range_count,
		   uint32_t **uids_r, size_t *count_r, struct store_error *err);
int pg_pop3_retrieved(struct store_user *user, uint32_t uid, time_t now,
		      struct store_error *err);
int pg_pop3_hide(struct store_user *user, const uint32_t *uids, size_t count,
		 size_t *hidden_r, struct store_error *err);
int pg_retention_run(struct store_user *user,
		     const struct store_retention_policy *policy, time_t now,
		     struct store_retention_report *report_r,
		     struct store_error *err);

/* ---- undelete (pg-undelete.c) ------------------------------------------ */

/* Whether a removal by user now keeps what it removes (the account's
 * deleted_retention_days, read at most every 30 s): call it before the
 * write transaction. */
bool pg_deleted_keep(struct store_user *user);
/* A kept message as undelete brings it back. */
struct pg_kept {
	int64_t blob;
	unsigned flags;
	char *keywords;
	int64_t internaldate;
	uint64_t size;
};
/* In tx: rows for kept[0..n) in dst with new UIDs from dst's UIDNEXT
 * (into uids), without \Deleted, saved at savedate (pg-message.c). */
int pg_rows_restore(struct pg_tx *tx, const struct pg_mbox *dst,
		    const struct pg_kept *kept, size_t n, time_t savedate,
		    uint32_t *uids, struct store_error *err);
/* pg_rows_restore's rows with the flags of kept but drop_flags (an
 * import's second copy of an Email: none dropped). */
int pg_rows_add(struct pg_tx *tx, const struct pg_mbox *dst,
		const struct pg_kept *kept, size_t n, time_t savedate,
		unsigned drop_flags, uint32_t *uids, struct store_error *err);
/* In tx: drops the kept messages removed before `before` (and their
 * blob rows nothing else names); *count_r += how many. */
int pg_deleted_purge(struct pg_tx *tx, time_t before, uint32_t *count_r,
		     struct store_error *err);
int pg_deleted_list(struct store_user *user,
		    const struct store_deleted_filter *filter,
		    store_deleted_fn *fn, void *ctx, struct store_error *err);
int pg_deleted_usage(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err);
int pg_export_kept(struct store_export *e, struct store_export_kept **rows_r,
		   size_t *count_r, struct store_error *err);
int pg_deleted_forget(struct store_user *user, const int64_t *ids,
		      size_t count, struct store_error *err);
int pg_drop_extra(struct store_user *user,
		  const struct store_account_extra *x, struct store_error *err);
int pg_import_kept(struct store_user *user, const struct store_import_kept *k,
		   struct store_body *body, struct store_error *err);
int pg_export_pop3_sum(struct store_export *e, struct store_pop3_sum *r,
		       struct store_error *err);
int pg_undelete(struct store_user *user,
		const struct store_deleted_filter *filter,
		struct store_undelete_report *report_r,
		struct store_error *err);

/* ---- import (pg-import.c; store.h "moving mail in and out") ----------- */

/* Schema step 8 -> 9: import marks and kept POP3 UIDLs. */
extern const char pg_import_schema_sql[];
int pg_import_mailbox(struct store_user *user,
		      const struct store_import_mailbox *spec,
		      struct store_mailbox_info *info_r,
		      struct store_error *err);
void pg_import_append_batch(struct store_user *user,
			    struct store_import_item *items, size_t count);
int pg_import_mark_add(struct store_user *user, const char *source,
		       const char *id, struct store_error *err);
int pg_import_marks(struct store_user *user, const char *source,
		    char ***ids_r, size_t *count_r, struct store_error *err);
int pg_import_exact(struct store_user *user,
		    const struct store_import_exact *x,
		    struct store_error *err);
int pg_modseq_raise(struct store_user *user, uint64_t modseq,
		    struct store_error *err);
/* pg_user_delete's first step: the account's messages removed in
 * slices, each its own transaction (each row runs the msg triggers: one
 * statement for a 10,000-message account outlasted postgres_timeout) */
int pg_import_purge(struct store *store, int64_t user_id,
		    struct store_error *err);

/* ---- JMAP mail (pg-jmail.c; states and changes: pg-rows.h) ------------ */

/* Schema step 7 -> 8: tables, backfill, plpgsql triggers
 * (pg-jmail-schema.h). */
extern const char pg_jmail_schema_sql[];
/* Schema step 9 -> 10: the mailbox counts kept by a trigger
 * (pg-mailbox.c). */
extern const char pg_mailbox_counts_sql[];
/* Schema step 10 -> 11: bodies named by blob rows uncounted
 * (pg-blob.c). */
extern const char pg_blob_names_sql[];
/* Schema step 11 -> 12: a blob row's thread made at its insert
 * (pg-jmail.c). */
extern const char pg_jmail_thread_sql[];
/* In the transaction that made an account's default mailboxes. */
int pg_jmail_account_created(struct pg_tx *tx, struct store_error *err);
/* In the transaction that added blob (its BODYSTRUCTURE as cached). */
int pg_jmail_blob_added(struct pg_tx *tx, int64_t blob,
			const char *bodystructure, struct store_error *err);
int pg_jmap_mailboxes(struct store_user *user,
		      struct store_jmap_mailbox **list_r, size_t *count_r,
		      struct store_error *err);
int pg_jmap_mailbox_update(struct store_user *user, uint32_t mailbox_id,
			   const uint32_t *sort_order,
			   const unsigned *special_use, struct store_error *err);
int pg_email_get(struct store_user *user, const int64_t *ids, size_t count,
		 struct store_email *emails, struct store_error *err);
int pg_email_open(struct store_user *user, int64_t id,
		  struct store_blob *blob_r, struct store_error *err);
int pg_email_scan(struct store_user *user, uint32_t mailbox_id,
		  bool newest_first, unsigned fields, store_email_row_fn *cb,
		  void *ctx, struct store_error *err);
int pg_email_rank(struct store_user *user, uint32_t mailbox_id, int64_t id,
		  uint64_t *rank_r, struct store_error *err);
int pg_email_moved_since(struct store_user *user, uint32_t mailbox_id,
			 const struct store_jmap_cursor *since, int64_t **ids_r,
			 size_t *count_r, bool *too_old_r,
			 struct store_error *err);
int pg_thread_emails(struct store_user *user, int64_t thread, int64_t **ids_r,
		     size_t *count_r, struct store_error *err);
int pg_email_search(struct store_user *user, enum store_text_where where,
		    const char *field, const char *needle, int64_t **ids_r,
		    size_t *count_r, struct store_error *err);
int pg_email_copies(struct store_user *user, const int64_t *ids, size_t count,
		    int64_t viewer, struct store_copy_row **rows_r,
		    size_t *count_r, struct store_error *err);
int pg_seen_newest(struct store_user *user, int64_t viewer,
		   uint64_t *modseq_r, struct store_error *err);
int pg_seen_emails_since(struct store_user *user, int64_t viewer,
			 uint64_t modseq, int64_t **ids_r, size_t *count_r,
			 struct store_error *err);
/* pg-jmail-tx.c */
int pg_email_tx_commit(struct store_user *user, struct store_email_tx *etx,
		       struct store_error *err);
int pg_upload_begin(struct store_user *user, uint64_t max_size,
		    struct store_upload **up_r, struct store_error *err);
int pg_upload_write(struct store_upload *up, const void *data, size_t len,
		    struct store_error *err);
int pg_upload_finish(struct store_upload **up, const char *type,
		     time_t expires, int64_t *id_r, uint64_t *size_r,
		     struct store_error *err);
void pg_upload_abort(struct store_upload **up);
int pg_upload_open(struct store_user *user, int64_t id,
		   struct store_blob *blob_r, char **type_r,
		   struct store_error *err);
int pg_upload_touch(struct store_user *user, int64_t id, time_t expires,
		    struct store_error *err);

/* ---- bodies and their collector (pg-blob.c) ---------------------------- */

int pg_blobs_open(struct store *store, struct store_error *err);
void pg_blobs_close(struct store *store);
/* The bytes of fd (spooled at tmp_path, fsynced) made durable under
 * their SHA-256 (hex) before any row names them. */
int pg_blobs_put(struct store *store, int fd, const char *tmp_path,
		 const char *sha, const unsigned char md5[16], uint64_t size,
		 struct store_error *err);
/* Reads size bytes of sha into out, SHA-256 checked: TEMP when missing,
 * unreachable or damaged (logged), never wrong bytes. */
int pg_blobs_read(struct store *store, int64_t user_id, const char *sha,
		  char *out, uint64_t size, struct store_error *err);
/* loftctl check: 0 intact, -1 missing, -2 damaged or unreadable. */
int pg_blobs_verify(struct store *store, const char *sha, uint64_t size);
/* Where sha is, for the admin (malloced). */
char *pg_blobs_name(struct store *store, const char *sha);
/* In the transaction that adds a row naming sha: locks its blob_object
 * row FOR KEY SHARE (other claims of it go on at once); TEMP when it may
 * be being collected. In the same round trip, id_r (or NULL): the next
 * blob row id; msgids (a text[] literal, or NULL) and threads_r: the
 * account's threads those Message-IDs are in, biggest first ("5,3",
 * malloced; NULL for none). */
int pg_blob_claim(struct pg_tx *tx, const char *sha, int64_t *id_r,
		  const char *msgids, char **threads_r,
		  struct store_error *err);
int pg_blobs_collect(struct store *store, unsigned grace,
		     struct store_collect_report *report_r,
		     struct store_error *err);
void pg_collector_start(struct store *store);
void pg_collector_stop(struct store *store);
/* store_object_* (store.h): bytes of another module's rows (the queue). */
bool pg_objects(struct store *store, unsigned *grace_r);
int pg_object_put(struct store *store, int fd, const char *path,
		  uint64_t size, char sha_r[65], struct store_error *err);
int pg_object_read(struct store *store, const char *sha, char *out,
		   uint64_t size, struct store_error *err);
void pg_object_release(struct store *store, const char *sha);

/* ---- POP3 maildrop locks across nodes (pg-lock.c) ---------------------- */

int pg_maildrop_lock(struct store *store, int64_t user_id,
		     struct store_error *err);
void pg_maildrop_unlock(struct store *store, int64_t user_id);
void pg_maildrop_close(struct store *store);

/* ---- the hub across nodes (pg-hub.c) ----------------------------------- */

int pg_hub_start(struct store *store);
/* store_reachable: the listener's connection is up (or not started). */
bool pg_reachable(struct store *store);
void pg_hub_stop(struct store *store);
void pg_notify_send(struct store *store, struct pg_conn *c,
		    const struct store_change *changes, size_t count);
void pg_end_sessions(struct store *store, int64_t user_id);

/* ---- loftctl check (pg-check.c) ---------------------------------------- */

int pg_check(struct store *store, int64_t user_id, bool repair,
	     store_report_fn *report, void *ctx, struct store_error *err);

extern const struct store_backend_vfuncs store_postgres_vfuncs;

#endif
