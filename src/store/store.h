/*
 * The store API: the only way front-ends (IMAP, POP3, LMTP, later HTTP)
 * and loftctl reach mail. Types are opaque; a backend (store-private.h,
 * sqlite/) implements them. Mailbox names are UTF-8 with "/" as hierarchy
 * separator; they are data, never paths. INBOX is case-insensitive.
 *
 * Threads: a struct store is shared by all threads. A struct store_user is
 * reference counted and may be used from several threads at once (each
 * call takes what it needs); a struct store_view belongs to one session and
 * is used by one thread at a time.
 *
 * Durability: every call that changes something returns only after the
 * change is on disk (blob fsynced, index committed with synchronous WAL).
 * Concurrent writers of one user share one commit (group commit).
 *
 * Changes: every change takes the next value of the user's change counter
 * (one per account, not per mailbox); that value is the IMAP MODSEQ. After
 * every commit, subscribers of that user are told (store_subscribe).
 *
 * Errors: functions return 0 on success and -1 on failure, filling
 * *err (may be NULL) with a kind and a short message safe to show a user.
 */
#ifndef LOFT_STORE_H
#define LOFT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store;
struct store_user;
struct store_view;
struct store_fetch;
struct store_blob_writer;
struct store_subscription;
struct config;
struct buf;

enum store_error_kind {
	STORE_ERR_NONE = 0,
	STORE_ERR_NOTFOUND,   /* no such mailbox / message / user */
	STORE_ERR_EXISTS,     /* mailbox already exists */
	STORE_ERR_PERM,       /* not allowed (e.g. delete INBOX) */
	STORE_ERR_QUOTA,      /* over quota: nothing was stored */
	STORE_ERR_LIMIT,      /* a size or count limit */
	STORE_ERR_TEMP,       /* temporary: disk full, lock timeout; retry */
	STORE_ERR_INTERNAL,   /* a bug or corruption; details are in the log */
	STORE_ERR_MODIFIED,   /* conditional store failed (CONDSTORE) */
	STORE_ERR_INVALID,    /* malformed argument (bad mailbox name, ...) */
	STORE_ERR_NOPERM,     /* a right of the viewer's is missing (ACL) */
	/* scale-out (docs/scale-out.md): the store's database cannot be
	 * reached (down, failing over, cut off); retry later. IMAP NO
	 * [UNAVAILABLE], POP3 -ERR [SYS/TEMP], LMTP/SMTP 451 4.3.0, JMAP
	 * serverUnavailable. */
	STORE_ERR_UNAVAILABLE,
};

struct store_error {
	enum store_error_kind kind;
	/* STORE_ERR_TEMP because a disk (or the file system's quota, or
	 * the database's disk) is full: LMTP/SMTP say 452 4.3.1 for it, 451
	 * 4.3.0 for any other temporary failure (RFC 3463) */
	bool full;
	/* a message's stored bytes are missing or fail their checksum
	 * (kind STORE_ERR_TEMP: another copy may serve it later): only that
	 * message cannot be read, the others around it can */
	bool damaged;
	char msg[256];
};

/* System flags, as a bit set. \Recent is per session, not stored. */
enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
};

/* Special-use attributes (RFC 6154), as a bit set. */
enum store_special_use {
	STORE_SPECIAL_NONE = 0,
	STORE_SPECIAL_SENT = 1 << 0,
	STORE_SPECIAL_DRAFTS = 1 << 1,
	STORE_SPECIAL_TRASH = 1 << 2,
	STORE_SPECIAL_JUNK = 1 << 3,
	STORE_SPECIAL_ARCHIVE = 1 << 4,
	STORE_SPECIAL_ALL = 1 << 5,
	STORE_SPECIAL_FLAGGED = 1 << 6,
	STORE_SPECIAL_IMPORTANT = 1 << 7,
};

/* ---- the store ---------------------------------------------------- */

/* What the store needs to know about an account that lives in
 * accounts.db (owned by src/auth). The store asks through this callback
 * each time it needs a fresh answer, so an admin change takes effect at
 * once. 0 means "no limit". */
struct store_account_limits {
	uint64_t quota_bytes;
	uint64_t quota_messages;
	/* undelete (store.h "undelete"): days a removed message is kept
	 * (0: not kept), and whether kept ones count in the quota */
	uint32_t deleted_retention_days;
	bool deleted_in_quota;
	/* where the account's mail lives (enum store_backend below), read
	 * only when the store has both backends (store_move_account) */
	int backend;
	/* filled by the store, not the callback: what messages kept for
	 * undelete take when deleted_in_quota (counted with the usage) */
	uint64_t kept_bytes, kept_messages;
};
typedef int store_limits_fn(void *ctx, int64_t user_id,
			    struct store_account_limits *limits_r);

/* An ACL entry names an account or a group by id, never by address
 * text: an address given to a later account inherits nothing. */
enum store_acl_kind {
	STORE_ACL_USER = 1,
	STORE_ACL_GROUP = 2,             /* "$name" in the owner's domain */
	STORE_ACL_ANYONE = 3,            /* anyone (also mail from outside) */
	STORE_ACL_AUTHENTICATED = 4,     /* any logged-in account */
};
/* The reverse index (who granted what to whom): before an ACL commit
 * that gives a right to (kind, id) in owner's mail, the store calls
 * this hint (store_settings.acl_hint) so LIST need not open every
 * index. A crash after it leaves a stale hint, never a missing one. */
typedef int store_acl_hint_fn(void *ctx, int64_t owner_id,
			      int kind /* enum store_acl_kind */, int64_t id);

struct store_settings {
	const char *data_dir;          /* data_dir/mail/<shard>/<user-id>/ */
	uint64_t max_message_size;     /* 0: no limit */
	store_limits_fn *limits;       /* NULL: no quotas */
	void *limits_ctx;
	bool fsync;                    /* false only for tests and benches */
	unsigned retention_interval;   /* seconds between retention passes
					  (store_retention_start) */
	store_acl_hint_fn *acl_hint;   /* NULL: no reverse index (tests) */
	void *acl_hint_ctx;
	/* Privilege separation (src/daemon): where the users' directories
	 * are; NULL means data_dir/mail. The mail process chrooted into
	 * data_dir/mail (no Landlock) sets "/". */
	const char *mail_dir;
	/* Scale-out (docs/scale-out.md): which backend, and the PostgreSQL
	 * one's keys. Strings as data_dir (copied by the backend). */
	enum store_backend { STORE_BACKEND_SQLITE, STORE_BACKEND_POSTGRES }
		backend;
	const char *postgres;          /* libpq connection string */
	unsigned postgres_pool;        /* connections per node (0: 16) */
	unsigned postgres_timeout;     /* seconds (0: 10) */
	const char *blob_dir;          /* the file driver's directory (and
					  the spool of either driver) */
	enum store_blobs { STORE_BLOBS_FILE, STORE_BLOBS_S3 } blobs;
	/* [s3] (blobs = s3): any S3 API (radosgw, MinIO, AWS) */
	const char *s3_endpoint;       /* http(s)://host[:port] */
	const char *s3_bucket;         /* made if missing */
	const char *s3_region;         /* default us-east-1 */
	const char *s3_access_key;
	const char *s3_secret_key_file;  /* the secret key, one line */
	bool s3_virtual;               /* addressing = virtual (default path) */
	unsigned s3_timeout;           /* seconds (0: 30) */
	uint64_t blob_cache;           /* blobs = s3: bytes of bodies a node
					  keeps in data_dir/blobcache (0:
					  none; loftctl keeps none) */
	/* [sharing] seen = shared: viewers of a mailbox without its own
	 * setting share the owner's \Seen (default: per user) */
	bool seen_shared;
};

/* Fills set_r from the configuration (loftd and loftctl share it):
 *   data_dir = PATH              (top level; default /var/lib/loft)
 *   [limits] max_message_size = SIZE   (default 50M; 0 = no limit)
 *   [store] fsync = yes|no       (default yes; "no" only for tests and
 *                                 benches: a crash may lose mail)
 *   [sharing] seen = per-user|shared  (default per-user)
 *   [store] retention_interval = DURATION  (default 1h; 0: no task;
 *                                 the older [pop3] retention_interval
 *                                 is read when this is not set)
 *   [store] backend = sqlite | postgres   (default sqlite)
 *   [store] postgres = CONNINFO, postgres_pool = N (default 16),
 *           postgres_timeout = DURATION (default 10s),
 *           blobs = file | s3 (default file),
 *           blob_dir = PATH (required with postgres; outside data_dir;
 *           with s3 only the node's spool),
 *           blob_cache = SIZE (default 1G, 0 = none; blobs = s3)
 *   [s3] endpoint = URL, bucket = NAME, region = NAME (us-east-1),
 *        access_key = ID, secret_key_file = PATH,
 *        addressing = path | virtual (path), timeout = DURATION (30s):
 *           checked here, never connecting (loftd --check)
 * limits/limits_ctx are left NULL for the caller. Strings point into cfg.
 * Returns 0, or -1 with "FILE:LINE: message\n" lines appended to errors. */
int store_settings_from_config(const struct config *cfg,
			       struct store_settings *set_r,
			       struct buf *errors);

/* Scale-out: the TCP ports the postgres backend connects to (from
 * [store] postgres; 5432 when it names none), for the mail process's
 * sandbox. Returns how many were put in ports (0 for sqlite, or a
 * connection string over Unix sockets only). */
size_t store_backend_ports(const struct store_settings *set, uint16_t *ports,
			   size_t max);

int store_open(const struct store_settings *set, struct store **store_r,
	       struct store_error *err);
/* Starts the background sweep of orphaned blobs and other slow start-up
 * work; returns at once. Call after the listeners are up. */
void store_start_background(struct store *store);
void store_close(struct store **store);

/* ---- users -------------------------------------------------------- */

/* Opens (creating on first use, with INBOX, Sent, Drafts, Trash, Junk and
 * Archive and their special-use) the mail of a user. user_id is the
 * account's id from accounts.db; handles are shared: opening the same
 * user twice returns the same handle with one more reference. After the
 * last unref the store keeps a few idle handles open (least recently used
 * go first), so a delivery to a user with no session stays cheap. */
int store_user_open(struct store *store, int64_t user_id,
		    struct store_user **user_r, struct store_error *err);
/* Like store_user_open, but NOTFOUND instead of creating the account
 * (background work, loftctl check: nothing brings a deleted account
 * back or makes an index for one that has no mail). */
int store_user_open_existing(struct store *store, int64_t user_id,
			     struct store_user **user_r,
			     struct store_error *err);
void store_user_ref(struct store_user *user);
void store_user_unref(struct store_user **user);
int64_t store_user_id(const struct store_user *user);
/* Removes a user's mail entirely (loftctl user del). */
int store_user_delete(struct store *store, int64_t user_id,
		      struct store_error *err);

struct store_usage {
	uint64_t bytes;
	uint64_t messages;
};
int store_user_usage(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err);

/* Bytes on disk now (loftctl user show): blob_bytes the bodies and
 * prefixes as stored (files or index rows; a body shared with other
 * users counted in full, as quota does), index_bytes everything else
 * (WAL included), search_bytes the part of index_bytes that serves
 * SEARCH. index_bytes + blob_bytes is what the account's files hold. */
struct store_disk {
	uint64_t index_bytes;
	uint64_t search_bytes;
	uint64_t blob_bytes;
	/* messages whose search text the trigram index does not cover yet
	 * (the indexer catches up in the background; search is exact
	 * meanwhile, by reading their text) */
	uint64_t unindexed;
};
int store_user_disk(struct store_user *user, struct store_disk *disk_r,
		    struct store_error *err);

/* Compaction (loftctl compact): gives back the space expunged messages
 * left in the account's index, now, in bounded steps that deliveries
 * interleave with (the store also does it by itself for idle accounts).
 * An index from an older Loft is converted once (converted = true; it
 * holds the account's writes until done). bytes_* are the index's size
 * (its pages) before and after, the file follows at the next checkpoint
 * past every older reader; free_pages what was free. */
struct store_compact_report {
	uint64_t bytes_before;
	uint64_t bytes_after;
	uint64_t free_pages;
	bool converted;
};
int store_compact(struct store *store, int64_t user_id,
		  struct store_compact_report *report_r,
		  struct store_error *err);

/* ---- mailboxes ---------------------------------------------------- */

struct store_mailbox_info {
	char *name;               /* UTF-8, "/" separated */
	uint32_t id;              /* stable while the mailbox exists */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;          /* messages without \Seen */
	uint32_t recent;          /* delivered since the last SELECT (not EXAMINE) */
	uint32_t deleted;         /* messages with \Deleted */
	uint64_t size;            /* sum of message sizes */
	unsigned special_use;     /* enum store_special_use bits */
	bool subscribed;
	bool has_children;
	bool noselect;            /* a deleted parent kept for its children */
	char objectid[32];        /* RFC 8474 MAILBOXID, survives rename */
	/* store_mailbox_list: the caller's rights (RFC 4314), all on one's
	 * own mail, a viewer's from the ACL */
	unsigned rights;
};

void store_mailbox_info_free(struct store_mailbox_info *info);

/* All mailboxes, sorted by name (INBOX first). Caller frees with
 * store_mailbox_list_free. Counts are filled in. */
int store_mailbox_list(struct store_user *user,
		       struct store_mailbox_info **list_r, size_t *count_r,
		       struct store_error *err);
void store_mailbox_list_free(struct store_mailbox_info *list, size_t count);

/* Names subscribed to, including ones that no longer exist (LSUB). */
int store_subscriptions(struct store_user *user, char ***names_r,
			size_t *count_r, struct store_error *err);
void store_names_free(char **names, size_t count);

/* NOTFOUND also for a \Noselect mailbox (RFC 3501 6.3.10): only LIST
 * shows those. */
int store_mailbox_status(struct store_user *user, const char *name,
			 struct store_mailbox_info *info_r,
			 struct store_error *err);
/* Sent, Drafts, Trash, Junk and Archive come back when the user deleted
 * them (called at login): each missing role goes to the mailbox of its
 * usual name, created if needed ("Trash 2" if "Trash" is taken by
 * another role). Costs one read when nothing is missing. */
int store_mailbox_roles_ensure(struct store_user *user,
			       struct store_error *err);
/* Creates name and any missing parents (RFC 3501 6.3.3). A special_use
 * another mailbox has already: INVALID (one mailbox per role). */
int store_mailbox_create(struct store_user *user, const char *name,
			 unsigned special_use, struct store_error *err);
/* Fails with PERM for INBOX; a mailbox with children keeps them (it
 * becomes \Noselect only if it has children, RFC 3501 6.3.4). */
int store_mailbox_delete(struct store_user *user, const char *name,
			 struct store_error *err);
/* Renames with all children. Renaming INBOX moves its messages to the new
 * mailbox and leaves INBOX empty (RFC 3501 6.3.5). */
int store_mailbox_rename(struct store_user *user, const char *from,
			 const char *to, struct store_error *err);
int store_mailbox_subscribe(struct store_user *user, const char *name,
			    bool subscribe, struct store_error *err);
/* The name of the mailbox with the given special use, or NULL. Caller
 * frees. */
char *store_mailbox_find_special(struct store_user *user, unsigned special_use);

/* ---- messages ----------------------------------------------------- */

/* A sorted set of UID ranges, lo <= hi, as given by a front-end. */
struct store_uid_range {
	uint32_t lo, hi;
};

/* Ascending UIDs as the fewest ranges that cover exactly them (a newly
 * allocated array, at least one element; *count_r set). */
struct store_uid_range *store_uid_ranges(const uint32_t *uids, size_t n,
					 size_t *count_r);

/* Metadata of one message. Which fields are filled depends on the fetch
 * mask; strings belong to the store_fetch iterator and stay valid until
 * the next store_fetch_next call. */
enum store_fetch_field {
	STORE_FETCH_FLAGS = 1 << 0,      /* flags, keywords, modseq */
	STORE_FETCH_SIZE = 1 << 1,       /* size, internaldate, savedate */
	STORE_FETCH_ENVELOPE = 1 << 2,   /* cached IMAP ENVELOPE text */
	STORE_FETCH_STRUCTURE = 1 << 3,  /* cached BODYSTRUCTURE and BODY */
	STORE_FETCH_PARTS = 1 << 4,      /* cached part map (for sections) */
	STORE_FETCH_SORT = 1 << 5,       /* cached sort/thread fields */
	STORE_FETCH_PREVIEW = 1 << 6,
	STORE_FETCH_POP3 = 1 << 7,       /* pop3 hidden mark, first RETR */
	STORE_FETCH_OBJECTID = 1 << 8,   /* threadid (emailid is always set) */
};

struct store_msg {
	uint32_t uid;
	uint64_t modseq;
	unsigned flags;               /* enum store_flag */
	const char *const *keywords;  /* NULL-terminated */
	size_t keyword_count;
	uint64_t size;                /* RFC822.SIZE: bytes of the CRLF blob */
	time_t internaldate;
	time_t savedate;              /* when it came into this mailbox */
	char emailid[32];             /* RFC 8474 EMAILID (same blob, same id) */
	char threadid[32];            /* RFC 8474 THREADID ("" unless a cached
	                                 field or OBJECTID was asked for) */
	/* cached results of src/mail at write time */
	const char *envelope;         /* IMAP ENVELOPE, parenthesised */
	const char *bodystructure;    /* IMAP BODYSTRUCTURE, parenthesised */
	const char *body;             /* IMAP BODY (no extension data) */
	const void *parts;            /* serialized part map (mail/) */
	size_t parts_len;
	const char *preview;          /* up to 200 chars of UTF-8 */
	/* sort fields (RFC 5256): base subject, first From/To/Cc address,
	 * Date header as time_t (internaldate if missing/invalid) */
	const char *sort_subject;
	const char *sort_from;
	const char *sort_to;
	const char *sort_cc;
	const char *sort_display_from;
	const char *sort_display_to;
	time_t sent_date;
	const char *message_id;
	const char *in_reply_to;
	const char *references;
	bool pop3_hidden;
	time_t pop3_first_retr;       /* 0: never retrieved over POP3 */
	const char *pop3_uidl;        /* STORE_FETCH_POP3: the UIDL kept
	                                 from an import, NULL: none */
};

/* Appends one message. data is the raw message (LF or CRLF line ends; it
 * is stored with CRLF). keywords may be NULL. internaldate 0 means now.
 * On success *uid_r and *uidvalidity_r (may be NULL) say where it went.
 * Over quota: STORE_ERR_QUOTA and nothing is stored. */
struct store_append_params {
	unsigned flags;
	const char *const *keywords;
	size_t keyword_count;
	time_t internaldate;
};
int store_append(struct store_user *user, const char *mailbox,
		 const char *data, size_t len,
		 const struct store_append_params *params, uint32_t *uid_r,
		 uint32_t *uidvalidity_r, struct store_error *err);

/* Streaming append: the front-end writes the message in pieces (an IMAP
 * literal) and then commits it into one mailbox of one user, or aborts.
 * Line endings are normalised to CRLF while writing. write returns -1
 * with LIMIT past max_message_size, or TEMP on a write error (disk full).
 * A message for several users is a struct store_body (below). */
int store_blob_writer_create(struct store_user *user,
			     struct store_blob_writer **w_r,
			     struct store_error *err);
int store_blob_writer_write(struct store_blob_writer *w, const void *data,
			    size_t len, struct store_error *err);
uint64_t store_blob_writer_size(const struct store_blob_writer *w);
/* Keeps the bytes exactly as written, bare LF included: content sent as
 * binary (an IMAP literal8, RFC 3516 4.4) is stored as sent. Call before
 * the first write. -1 with INVALID if the backend cannot. */
int store_blob_writer_set_binary(struct store_blob_writer *w,
				 struct store_error *err);
/* The message is complete: made durable and analysed now rather than at
 * the commit, so a MULTIAPPEND's messages are analysed as their literals
 * end, while the client sends the next ones. Optional: the commit
 * finishes any that are not. Errors as store_body_finish's. */
int store_blob_writer_finish(struct store_blob_writer *w,
			     struct store_error *err);
/* Finishes the blob (fsync) and adds it to mailbox; frees w either way. */
int store_blob_writer_commit(struct store_blob_writer **w, const char *mailbox,
			     const struct store_append_params *params,
			     uint32_t *uid_r, uint32_t *uidvalidity_r,
			     struct store_error *err);
void store_blob_writer_abort(struct store_blob_writer **w);
/* The same into a mailbox of another handle's mail (an APPEND into a
 * shared mailbox: a viewer's handle needs i there). */
int store_blob_writer_commit_to(struct store_blob_writer **w,
				struct store_user *user, const char *mailbox,
				const struct store_append_params *params,
				uint32_t *uid_r, uint32_t *uidvalidity_r,
				struct store_error *err);
/* n writers at once (MULTIAPPEND, RFC 3502), in the same group commit
 * where the backend can: one WAL sync for all the small ones. params: n
 * of them (or NULL). Frees every writer. 0 if all were stored; else -1
 * with the first failure's error, and uids[i] 0 for each message not
 * stored (the others are stored: the caller undoes them if it must). */
int store_blob_writers_commit_to(struct store_blob_writer **ws, size_t n,
				 struct store_user *user, const char *mailbox,
				 const struct store_append_params *params,
				 uint32_t *uids, uint32_t *uidvalidity_r,
				 struct store_error *err);

/* ---- delivery: one body, several recipients ------------------------ */

/* A message body written once and delivered to any number of users
 * (LMTP and SMTP delivery, Sieve fileinto, import). The body is stored,
 * parsed and analysed once (ENVELOPE, BODYSTRUCTURE, search text); each
 * copy adds a message row whose prefix (the copy's own trace fields:
 * Return-Path, Delivered-To, Received, RFC 5321 4.4, as CRLF header
 * lines) every reader puts in front of the shared body. What a user
 * downloads (store_blob_open: FETCH BODY[], RFC822.SIZE, POP3 RETR/TOP,
 * JMAP blobs) is prefix + body, octet counts exact; no protocol shows
 * that a body is shared. Quota charges each copy its full size; the
 * space goes with the last copy.
 *
 * Order: store_body_create, store_body_write (any pieces; bare LF made
 * CRLF), store_body_finish (durable and analysed), then
 * store_body_deliver once per copy -- from several threads at once if
 * wanted; each returns after its own copy is durable, with its own error
 * (one recipient over quota does not affect the others) -- and
 * store_body_unref. Memory does not grow with the number of copies. */
struct store_body;
int store_body_create(struct store *store, struct store_body **body_r,
		      struct store_error *err);
/* -1 with LIMIT past max_message_size, TEMP on a write error. */
int store_body_write(struct store_body *body, const void *data, size_t len,
		     struct store_error *err);
uint64_t store_body_size(const struct store_body *body);
int store_body_finish(struct store_body *body, struct store_error *err);
/* Finishes bodies[0..n) at once, on up to 4 threads (the caller's and
 * short-lived helpers; bodies are independent): ret[i] and errs[i] are
 * store_body_finish's for bodies[i]. A MULTIAPPEND's and an import
 * batch's bodies, whose analysis is most of what they cost. */
void store_bodies_finish(struct store_body *const *bodies, size_t n,
			 int *ret, struct store_error *errs);
/* prefix: header lines ending in CRLF (bare LF is made CRLF), or NULL /
 * 0. On success *uid_r and *uidvalidity_r (may be NULL) say where the
 * copy went. */
int store_body_deliver(struct store_body *body, struct store_user *user,
		       const char *mailbox, const char *prefix,
		       size_t prefix_len,
		       const struct store_append_params *params,
		       uint32_t *uid_r, uint32_t *uidvalidity_r,
		       struct store_error *err);
void store_body_unref(struct store_body **body);

/* Reading a message: the whole message as this user sees it (its
 * prefix, then the body), read-only. The front-end gets bytes, never a
 * path. NOTFOUND when the message is gone (expunged meanwhile); TEMP when
 * it cannot be read or is damaged (its checksum does not match): it is
 * never served as if intact. */
struct store_blob {
	const char *data;
	size_t len;
	void *priv;
};
int store_blob_open(struct store_user *user, const char *mailbox,
		    uint32_t uid, struct store_blob *blob_r,
		    struct store_error *err);
/* The message's header as this user sees it -- its prefix, then the
 * body up to and including the first empty line ("\r\n" or "\n" alone;
 * all of it if there is none) -- for POP3 TOP n 0 and IMAP BODY[HEADER]:
 * read and checked against a checksum of that part alone, without
 * reading the rest of the body. A message whose header checksum the
 * store does not keep (stored before it did) comes whole, as from
 * store_blob_open: the caller reads up to the empty line either way.
 * Errors as store_blob_open's; a damaged header is never served. */
int store_blob_open_head(struct store_user *user, const char *mailbox,
			 uint32_t uid, struct store_blob *blob_r,
			 struct store_error *err);
void store_blob_close(struct store_blob *blob);

/* Iterates over messages of a mailbox whose UIDs fall in ranges (NULL:
 * all), in UID order, with the fields asked for. Returns 1 with *msg_r
 * filled, 0 at the end, -1 on error. */
int store_fetch_begin(struct store_user *user, const char *mailbox,
		      const struct store_uid_range *ranges, size_t range_count,
		      unsigned fields, struct store_fetch **fetch_r,
		      struct store_error *err);
/* The same, only messages whose modseq is above changedsince (FETCH
 * CHANGEDSINCE, RFC 7162 3.1.4): found through the modseq index, in time
 * proportional to the changes, not to the mailbox. */
int store_fetch_begin_since(struct store_user *user, const char *mailbox,
			    const struct store_uid_range *ranges,
			    size_t range_count, unsigned fields,
			    uint64_t changedsince, struct store_fetch **fetch_r,
			    struct store_error *err);
int store_fetch_next(struct store_fetch *fetch, const struct store_msg **msg_r,
		     struct store_error *err);
void store_fetch_end(struct store_fetch **fetch);

/* Flag changes (STORE). mode: add, remove or replace the given flags and
 * keywords. unchangedsince: 0, or the CONDSTORE UNCHANGEDSINCE value:
 * messages whose modseq is greater are not changed and their UIDs are
 * returned in *modified_r (caller frees). Each changed message gets a new
 * modseq. *changed_r / *changed_count_r (may be NULL) list the UIDs that
 * were changed (caller frees). */
enum store_flag_mode { STORE_FLAGS_ADD, STORE_FLAGS_REMOVE, STORE_FLAGS_REPLACE };
struct store_flag_change {
	enum store_flag_mode mode;
	unsigned flags;
	const char *const *keywords;
	size_t keyword_count;
	uint64_t unchangedsince;
	/* If not NULL: set to the modseq the changed messages got (one per
	 * call), so that a front-end can tell its own change from a later
	 * one (IMAP STORE .SILENT). */
	uint64_t *modseq_r;
};
int store_flags_update(struct store_user *user, const char *mailbox,
		       const struct store_uid_range *ranges, size_t range_count,
		       const struct store_flag_change *change,
		       uint32_t **changed_r, size_t *changed_count_r,
		       uint32_t **modified_r, size_t *modified_count_r,
		       struct store_error *err);

/* Keywords ever used in a mailbox (for FLAGS / PERMANENTFLAGS). */
int store_mailbox_keywords(struct store_user *user, const char *mailbox,
			   char ***keywords_r, size_t *count_r,
			   struct store_error *err);

/* COPY / MOVE: the same blobs get new UIDs in dst. src_uids_r and
 * dst_uids_r (same length, may be NULL) give the COPYUID mapping; caller
 * frees. Over quota (COPY only): QUOTA, nothing copied. */
int store_copy(struct store_user *user, const char *src,
	       const struct store_uid_range *ranges, size_t range_count,
	       const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	       uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	       struct store_error *err);

/* EXPUNGE: removes messages with \Deleted (within ranges if not NULL:
 * UID EXPUNGE); with force, removes every message in ranges whatever its
 * flags. The expunged UIDs are logged with their modseq for resync.
 * *uids_r (caller frees) lists what was removed, in UID order. */
int store_expunge(struct store_user *user, const char *mailbox,
		  const struct store_uid_range *ranges, size_t range_count,
		  bool force, uint32_t **uids_r, size_t *count_r,
		  struct store_error *err);

/* ---- views (a session's picture of a selected mailbox) ------------ */

/* A view holds the UIDs a session knows, in order (sequence number =
 * index + 1), and the modseq it last synchronised to. It changes only in
 * store_view_sync, so a front-end decides when the client may see
 * new messages and expunges (RFC 3501 7.4.1). */
enum store_view_flags {
	STORE_VIEW_READONLY = 1 << 0,   /* EXAMINE: do not clear \Recent */
};
int store_view_open(struct store_user *user, const char *mailbox,
		    unsigned flags, struct store_view **view_r,
		    struct store_error *err);
void store_view_close(struct store_view **view);

/* The mailbox's state as of the last sync (name, uidvalidity, uidnext,
 * highestmodseq, counts). */
const struct store_mailbox_info *store_view_info(const struct store_view *view);
uint32_t store_view_count(const struct store_view *view);
/* The mailbox's keywords as read in the view's open, handed over once
 * while no sync has read since (a SELECT's FLAGS without a read of its
 * own; the caller frees each and the array). false: not known, ask
 * store_mailbox_keywords. */
bool store_view_take_keywords(struct store_view *view, char ***keywords_r,
			      size_t *count_r);
/* seq is 1-based; returns 0 when out of range. */
uint32_t store_view_uid(const struct store_view *view, uint32_t seq);
/* Returns the sequence number of uid, or 0 if the view has no such UID. */
uint32_t store_view_seq(const struct store_view *view, uint32_t uid);
/* The sequence number of the first UID >= uid (count+1 if none). */
uint32_t store_view_seq_ceil(const struct store_view *view, uint32_t uid);
/* Whether seq was \Recent for this session (delivered since the last
 * SELECT, and this view was the one that took \Recent). */
bool store_view_is_recent(const struct store_view *view, uint32_t seq);
/* The sequence number of the first message without \Seen (SELECT's
 * [UNSEEN n], RFC 3501 7.1), 0 if none or if it is not in the view yet.
 * From the index, in time independent of the mailbox's size; asked per
 * view so that \Seen can become per viewer (shared mailboxes). */
uint32_t store_view_first_unseen(struct store_view *view,
				 struct store_error *err);
uint32_t store_view_recent_count(const struct store_view *view);

/* What a sync found. Expunges are reported in descending sequence order
 * so that each seq is valid when the front-end sends it (RFC 3501 7.4.1:
 * EXPUNGE n renumbers n+1...). */
struct store_view_callbacks {
	void (*expunged)(void *ctx, uint32_t seq, uint32_t uid);
	/* A message the view already knew changed flags (or modseq). */
	void (*changed)(void *ctx, uint32_t seq, const struct store_msg *msg);
	/* The message count grew to count (new messages at the end). */
	void (*exists)(void *ctx, uint32_t count);
};
/* Brings the view up to date with the store. With allow_expunge false,
 * expunged messages stay in the view (as ghosts whose fetch returns
 * nothing) until a later sync allows them. Callbacks may be NULL. */
int store_view_sync(struct store_view *view, bool allow_expunge,
		    const struct store_view_callbacks *cb, void *ctx,
		    struct store_error *err);
/* false when the backend can tell that nobody, in any process, has
 * committed to the view's account since the view's last sync (or its
 * open): a keepalive then has nothing to look for and leaves the index
 * closed. true when something may have changed, or it cannot tell. */
bool store_view_maybe_changed(struct store_view *view);
/* Whether the store has changes the view has not synced yet (cheap). */
bool store_view_has_changes(struct store_view *view);

/* CONDSTORE/QRESYNC: messages changed since modseq (UID order), and UIDs
 * expunged since modseq (from the expunge log). If the log does not reach
 * back that far, *complete_r is false and every UID ever possibly
 * expunged (those not in the mailbox, below uidnext) is reported. */
int store_changed_since(struct store_user *user, const char *mailbox,
			uint64_t modseq, const struct store_uid_range *ranges,
			size_t range_count, uint32_t **uids_r, size_t *count_r,
			struct store_error *err);
int store_expunged_since(struct store_user *user, const char *mailbox,
			 uint64_t modseq, const struct store_uid_range *ranges,
			 size_t range_count, uint32_t **uids_r,
			 size_t *count_r, bool *complete_r,
			 struct store_error *err);

/* SEARCH support: UIDs (in ranges, NULL: all) whose indexed, decoded
 * text contains needle (case-insensitive, substring, UTF-8). where says
 * which text: the body text, headers plus body (TEXT), or the header
 * fields alone, as "Name: decoded value" lines (a superset of the
 * messages SEARCH HEADER name value matches, for a front-end to confirm;
 * fields whose decoded value is empty are not in it). BODY and TEXT are
 * exact: the result equals what a scan of the decoded messages would
 * give. */
enum store_text_where { STORE_TEXT_BODY, STORE_TEXT_ALL, STORE_TEXT_HEADER };
int store_search_text(struct store_user *user, const char *mailbox,
		      enum store_text_where where, const char *needle,
		      const struct store_uid_range *ranges, size_t range_count,
		      uint32_t **uids_r, size_t *count_r,
		      struct store_error *err);

/* ---- POP3 --------------------------------------------------------- */

/* Marks first retrieval time (if not set) for uid in INBOX. Cheap: the
 * mark is written with the account's next commit (or when the account is
 * closed), not durably at once; a crash can only delay retention. */
int store_pop3_retrieved(struct store_user *user, uint32_t uid, time_t now,
			 struct store_error *err);
/* Hides UIDs from POP3 only (pop3_delete = hide). *hidden_r (may be
 * NULL): how many were in INBOX and not hidden yet. */
int store_pop3_hide(struct store_user *user, const uint32_t *uids,
		    size_t count, size_t *hidden_r, struct store_error *err);

/* ---- client activity ------------------------------------------------ */

/* A synchronising client (IMAP; later JMAP, the webmail) logged in at
 * now. Kept to the hour: most logins write nothing. */
int store_note_sync_login(struct store_user *user, time_t now,
			  struct store_error *err);
/* When a synchronising client last logged in (0: never). pop3_delete =
 * auto hides while it is within STORE_SYNC_ACTIVE_DAYS, else trashes. */
int store_last_sync_login(struct store_user *user, time_t *when_r,
			  struct store_error *err);
#define STORE_SYNC_ACTIVE_DAYS 30
/* Whether a sync login at last (0: never) is recent as of now. */
static inline bool store_sync_active(time_t last, time_t now)
{
	return last != 0 && now - last < (time_t)STORE_SYNC_ACTIVE_DAYS * 86400;
}

/* ---- retention ---------------------------------------------------- */

struct store_retention_policy {
	uint32_t pop3_retention_days;     /* 0: off */
	/* AUTO: HIDE while a syncing client logged in within
	 * STORE_SYNC_ACTIVE_DAYS (store_last_sync_login), else TRASH. */
	enum { STORE_POP3_EXPUNGE, STORE_POP3_HIDE, STORE_POP3_TRASH,
	       STORE_POP3_AUTO } pop3_delete;
	uint32_t trash_retention_days;    /* 0: off */
	uint32_t junk_retention_days;     /* 0: off */
	/* removed messages kept for undelete are purged after this many
	 * days (0: all of them) */
	uint32_t deleted_retention_days;
};
struct store_retention_report {
	uint32_t pop3_removed;
	uint32_t trash_expunged;
	uint32_t junk_expunged;
	uint32_t deleted_purged;          /* kept removed messages dropped */
};
/* Applies the policies as of now (a test may pass any time). */
int store_retention_run(struct store_user *user,
			const struct store_retention_policy *policy, time_t now,
			struct store_retention_report *report_r,
			struct store_error *err);

/* Retention over every account (store-retention.c). The accounts and
 * their policies live outside the store (accounts.db): the caller gives
 * a source (src/auth: auth_retention_source). */
struct store_retention_source {
	/* Every account's id (caller frees *ids_r); 0 or -1. */
	int (*accounts)(void *ctx, int64_t **ids_r, size_t *count_r);
	/* The account's policy now: 0, 1 when the account is gone, -1. */
	int (*policy)(void *ctx, int64_t user_id,
		      struct store_retention_policy *policy_r);
	void *ctx;
};
/* Called once per account with its policy (NULL if it could not be
 * read): report holds what was removed, or error (a short reason) is set
 * and report is NULL. Returns false to stop before the next account. */
typedef bool store_retention_report_fn(void *ctx, int64_t user_id,
				       const struct store_retention_policy *policy,
				       const struct store_retention_report *report,
				       const char *error);
/* Applies retention as of now to user_id, or to every account when
 * user_id <= 0. An account whose mail was never opened is skipped. 0 when
 * every account was processed, -1 if any failed (each failure reported
 * and logged; the others still run) or report asked to stop. */
int store_retention_run_accounts(struct store *store,
				 const struct store_retention_source *src,
				 int64_t user_id, time_t now,
				 store_retention_report_fn *report, void *ctx);
/* loftd's background task: every account one minute after the start,
 * then every interval seconds (0: no task). Stopped by store_close. */
int store_retention_start(struct store *store,
			  const struct store_retention_source *src,
			  unsigned interval);
void store_retention_stop(struct store *store);
/* The smallest pop3_retention_days of any account as of the task's last
 * pass (0: every account keeps mail forever), for POP3's "EXPIRE n USER"
 * before login (RFC 2449 6.7). False until a first pass has run. */
bool store_retention_expire_min(struct store *store, uint32_t *days_r);

/* ---- shared mailboxes: rights (RFC 4314), the "open as" handle ------ */

/* Rights of RFC 4314 2.1, as a bit set. The obsolete "c" and "d"
 * (2.1.1) are not bits: "c" is k, "d" is x, t and e, as Dovecot does. */
enum store_right {
	STORE_RIGHT_LOOKUP = 1 << 0,     /* l: LIST shows it, SUBSCRIBE */
	STORE_RIGHT_READ = 1 << 1,       /* r: SELECT, EXAMINE, STATUS, FETCH */
	STORE_RIGHT_SEEN = 1 << 2,       /* s: keep \Seen */
	STORE_RIGHT_WRITE = 1 << 3,      /* w: other flags and keywords */
	STORE_RIGHT_INSERT = 1 << 4,     /* i: APPEND, COPY/MOVE into */
	STORE_RIGHT_POST = 1 << 5,       /* p: deliver to it */
	STORE_RIGHT_CREATE = 1 << 6,     /* k: CREATE below, RENAME into */
	STORE_RIGHT_DELETE = 1 << 7,     /* x: DELETE, RENAME from */
	STORE_RIGHT_DELETED = 1 << 8,    /* t: \Deleted */
	STORE_RIGHT_EXPUNGE = 1 << 9,    /* e: EXPUNGE, MOVE from */
	STORE_RIGHT_ADMIN = 1 << 10,     /* a: SETACL, GETACL, ... */
};
#define STORE_RIGHTS_ALL 0x7ffu
/* "lrswipkxtea": the letters in bit order. */
extern const char store_rights_letters[];

/* Parses a rights string of SETACL (RFC 4314 3.1): the letters above,
 * "c" and "d"; any other character (upper case included) is -1. An
 * empty string is 0 rights. */
int store_rights_parse(const char *s, size_t len, unsigned *rights_r);
/* Formats rights as letters, with "c" when k is there and "d" when any
 * of x t e is (2.1.1). out holds at least 16 bytes. */
void store_rights_format(unsigned rights, char out[16]);

struct store_acl_entry {
	enum store_acl_kind kind;
	int64_t id;                      /* user or group id; 0 otherwise */
	bool negative;                   /* "-name": rights taken away */
	unsigned rights;
};

/* Who looks at another account's mail. The caller (a front-end, with
 * src/auth) fills it for one owner. */
struct store_viewer {
	int64_t user_id;                 /* 0: nobody logged in (a delivery) */
	const int64_t *groups;           /* groups the viewer is in */
	size_t group_count;
	/* The viewer's domain is the owner's. With cross_domain false no
	 * right reaches another domain, and anyone/authenticated mean the
	 * owner's domain ([sharing] cross_domain). */
	bool same_domain;
	bool cross_domain;
	/* Rights held on every mailbox of this owner whatever its ACL
	 * (shared_admin: "la" on the domain's shared mailboxes). */
	unsigned extra_rights;
};

/* The rights a viewer holds from an ACL: the union of the rights of the
 * entries naming them, minus the union of the negative entries naming
 * them (RFC 4314 2), plus extra_rights. Pure. */
unsigned store_acl_evaluate(const struct store_acl_entry *entries,
			    size_t count, const struct store_viewer *viewer);

/* A handle on owner_id's mail as viewer sees it: every call on it
 * (mailbox, message, view and ACL calls of this header) is checked in
 * store.c against the viewer's rights on that mailbox before the
 * backend runs. Without l a mailbox fails exactly as a missing one
 * (NOTFOUND "Mailbox doesn't exist"); with l, a missing right is
 * STORE_ERR_NOPERM. Calls on the whole account (JMAP, POP3, retention,
 * disk, delete) are PERM. store_user_id gives the owner. viewer is
 * copied. Unref as any handle. owner_id equal to viewer->user_id is an
 * ordinary handle. NOTFOUND (the same text) when the owner has no
 * mail. */
int store_user_open_as(struct store *store, int64_t owner_id,
		       const struct store_viewer *viewer,
		       struct store_user **user_r, struct store_error *err);
/* Whether user is a viewer's handle on someone else's mail. */
bool store_user_is_shared(const struct store_user *user);
/* The viewer's rights on mailbox (every right on an ordinary handle).
 * NOTFOUND when the mailbox does not exist; a viewer's handle also gets
 * 0 rights (and 0 returned) for a mailbox it cannot see. */
int store_myrights(struct store_user *user, const char *mailbox,
		   unsigned *rights_r, struct store_error *err);

/* The rights of a viewer's handle on mailbox with no visibility rule:
 * for the server's own decisions (where a delivery goes), never shown
 * to a client. Every right on an ordinary handle. */
int store_viewer_rights(struct store_user *user, const char *mailbox,
			unsigned *rights_r, struct store_error *err);
/* The ACL of a mailbox (needs a on a viewer's handle). The owner is not
 * listed: the front-end shows it with every right. */
int store_acl_get(struct store_user *user, const char *mailbox,
		  struct store_acl_entry **entries_r, size_t *count_r,
		  struct store_error *err);
/* SETACL: rights replace (mode 0), are added (+1) or removed (-1) from
 * the entry named by (kind, id, negative); an entry left with no right
 * is dropped. LIMIT when the mailbox has max_entries entries already
 * (0: no limit). Committed with a change the mailbox's watchers see. */
int store_acl_set(struct store_user *user, const char *mailbox,
		  const struct store_acl_entry *entry, int mode,
		  unsigned max_entries, struct store_error *err);
/* DELETEACL: NOTFOUND-free (deleting nothing is fine). */
int store_acl_delete(struct store_user *user, const char *mailbox,
		     enum store_acl_kind kind, int64_t id, bool negative,
		     struct store_error *err);
/* Every entry of every mailbox of the account, with the mailbox's name
 * (loftctl check rebuilds the reverse index from it; LIST). Caller frees
 * with store_acl_all_free. */
struct store_acl_row {
	char *mailbox;
	uint32_t mailbox_id;
	struct store_acl_entry entry;
};
int store_acl_all(struct store_user *user, struct store_acl_row **rows_r,
		  size_t *count_r, struct store_error *err);
void store_acl_all_free(struct store_acl_row *rows, size_t count);

/* COPY / MOVE from a mailbox of src's mail into one of dst's, two
 * handles of any accounts (store-copy.c): store_copy when both reach the
 * same account; otherwise each message is appended through dst (i,
 * flags dst may not set dropped) with its flags as src sees them, all
 * or none (a failure removes the copies made), and a MOVE (t and e on
 * the source) expunges the sources once every copy is made. Output as
 * store_copy. */
int store_copy_between(struct store_user *src, const char *src_mailbox,
		       const struct store_uid_range *ranges,
		       size_t range_count, struct store_user *dst,
		       const char *dst_mailbox, bool move,
		       uint32_t *dst_uidvalidity_r, uint32_t **src_uids_r,
		       uint32_t **dst_uids_r, size_t *count_r,
		       struct store_error *err);

/* ---- shared mailboxes: per-user \Seen (store-seen.c) ---------------
 * In another account's mailbox a viewer (store_user_open_as, logged in)
 * has its own \Seen, hence its own UNSEEN, unless the mailbox's \Seen is
 * shared. The owner keeps the common \Seen. A viewer's change of its
 * own \Seen takes the owner's next modseq and is seen only by that
 * viewer: every call on its handle (fetch, views, status, list,
 * CHANGEDSINCE) shows the message's modseq as the higher of the common
 * one and its own, and the mailbox's HIGHESTMODSEQ likewise; nobody
 * else's modseq, state or FETCH moves. Other flags are common. */
enum store_seen_mode {
	STORE_SEEN_DEFAULT = -1,     /* [sharing] seen (store_settings) */
	STORE_SEEN_PER_USER = 0,
	STORE_SEEN_SHARED = 1,
};
/* The mailbox's setting (any handle of the owner: loftctl). */
int store_mailbox_seen_mode(struct store_user *user, const char *mailbox,
			    enum store_seen_mode *mode_r,
			    struct store_error *err);
int store_mailbox_set_seen_mode(struct store_user *user, const char *mailbox,
				enum store_seen_mode mode,
				struct store_error *err);
/* Between store.c and a backend: a viewer's own \Seen of one message,
 * and a change of it. */
struct store_seen_row {
	uint32_t uid;
	bool seen;
	uint64_t modseq;
};
struct store_seen_change {
	bool seen;                   /* set or clear the viewer's \Seen */
	uint64_t unchangedsince;     /* 0, or as store_flag_change */
	uint32_t *changed, *modified;   /* out (malloced, UID order) */
	size_t changed_count, modified_count;
	uint64_t modseq;             /* out: the modseq the changes took */
};

/* ---- metadata (RFC 5464) and URLAUTH keys (RFC 4467) --------------
 * (imap-state) Annotations of the server (mailbox NULL) or of a mailbox:
 * names as IMAP METADATA writes them, "/private/..." or "/shared/...",
 * in lower case; values are octets (NULs allowed). Kept in the user's
 * index (sqlite/sq-metadata.c), removed with their mailbox. Setting a
 * mailbox's entry takes a modseq of the account's counter (RFC 7162 3.2
 * counts it as a change of the mailbox) and publishes
 * STORE_CHANGE_METADATA; a server entry publishes it with mailbox 0. */
#define STORE_METADATA_MAX_VALUE (64 * 1024)   /* octets of one value */
#define STORE_METADATA_MAX_ENTRIES 500         /* entries of an account */
#define STORE_METADATA_MAX_TOTAL (1024 * 1024) /* octets of all values */
struct store_metadata {
	char *name;
	char *value;              /* NULL: no such entry / remove it */
	size_t value_len;
};
void store_metadata_free(struct store_metadata *entries, size_t count);
/* On a viewer's handle (another account's mailbox): reading and setting
 * need l and any of r s w i p on the mailbox (RFC 5464 3.3). /shared
 * entries are the mailbox's, the same for everyone; /private entries are
 * each user's own (RFC 5464 3.2): the viewer reads and sets its own, never
 * the owner's nor another viewer's, kept in the owner's index with the
 * mailbox (limits apart from the owner's). A viewer nobody logged in as
 * has none (setting one is PERM with this text). The server's entries
 * are the owner's own (PERM). */
#define STORE_METADATA_NOPRIVATE \
	"Private annotations are kept for users only"

/* The entries of mailbox (NULL: the server) named in names, and with
 * depth 1 their children, with depth -1 ("infinity") all their
 * descendants (RFC 5464 4.2.2); those that exist, sorted by name. */
int store_metadata_get(struct store_user *user, const char *mailbox,
		       const char *const *names, size_t name_count, int depth,
		       struct store_metadata **entries_r, size_t *count_r,
		       struct store_error *err);
/* Sets (value not NULL) or removes entries, all or nothing. LIMIT when a
 * value is over STORE_METADATA_MAX_VALUE or the account would go over
 * the entry or total limits; NOTFOUND for no such mailbox. */
int store_metadata_set(struct store_user *user, const char *mailbox,
		       const struct store_metadata *entries, size_t count,
		       struct store_error *err);
/* URLAUTH's mailbox access key (RFC 4467 6): 32 random octets, made when
 * first needed. reset: a new key, which voids every URL signed with the
 * old (RESETKEY); mailbox NULL with reset: every mailbox's. NOTFOUND for
 * no such mailbox. Keys are per user and mailbox (RFC 4467 3): a viewer's
 * handle gets the viewer's own key of the owner's mailbox, which needs r
 * on it (so a URL stops resolving when its user loses r) and which only
 * the viewer resets (l; mailbox NULL: all its keys of this owner). */
#define STORE_URLAUTH_KEY_LEN 32
int store_urlauth_key(struct store_user *user, const char *mailbox,
		      bool reset, unsigned char key_r[STORE_URLAUTH_KEY_LEN],
		      struct store_error *err);

/* ---- change notifications ----------------------------------------- */

enum store_change_kind {
	STORE_CHANGE_APPEND,
	STORE_CHANGE_FLAGS,
	STORE_CHANGE_EXPUNGE,
	STORE_CHANGE_MAILBOXES,   /* create / delete / rename / subscribe */
	STORE_CHANGE_METADATA,    /* an annotation of the mailbox (server:
				     mailbox_id 0) was set (RFC 5464) */
	STORE_CHANGE_LOGOUT,      /* every session of the account must end
				     (store_end_sessions) */
	STORE_CHANGE_OBJECTS,     /* JMAP stored objects (store_jobject_*) */
	STORE_CHANGE_ACL,         /* a mailbox's ACL changed: viewers'
				     rights may have (store_acl_set) */
};
struct store_change {
	int64_t user_id;
	uint32_t mailbox_id;      /* 0 for STORE_CHANGE_MAILBOXES */
	enum store_change_kind kind;
	uint64_t modseq;
};
/* cb runs on the committing thread, after the commit: it must be quick
 * and thread-safe (typically it wakes a session's I/O thread). */
typedef void store_change_fn(void *ctx, const struct store_change *change);
/* Subscribing to this user id gets every account's STORE_CHANGE_ACL (a
 * grant may show someone another account: JMAP push). */
#define STORE_HUB_ACL 0
int store_subscribe(struct store *store, int64_t user_id, store_change_fn *cb,
		    void *ctx, struct store_subscription **sub_r);
void store_unsubscribe(struct store_subscription **sub);
/* The same for a session of another account that only watches user_id's
 * mail (IMAP NOTIFY on other users' mailboxes): it gets every change,
 * STORE_CHANGE_LOGOUT too, but is not one of user_id's sessions:
 * store_subscriber_count leaves it out, so ending them (loftctl kick,
 * user del) does not wait for it. Freed with store_unsubscribe. */
int store_watch(struct store *store, int64_t user_id, store_change_fn *cb,
		void *ctx, struct store_subscription **sub_r);

/* ---- ending sessions (loftctl kick, user del) ---------------------- */

/* Publishes STORE_CHANGE_LOGOUT (mailbox_id 0, modseq 0) to every
 * subscriber of user_id: each session of the account ends on it (IMAP
 * "* BYE", POP3 "-ERR", JMAP 401) and unsubscribes. Returns how many
 * subscriptions were told. Across nodes (scale-out) the hub carries it
 * like any change. */
unsigned store_end_sessions(struct store *store, int64_t user_id);

/* Scale-out (docs/scale-out.md): the collector of message bodies no row
 * names. One node at a time (a lease in the database, expiring in the
 * database's time) removes bodies unnamed for longer than grace seconds
 * (loftd: 1 h, longer than any command, so a running read is never cut
 * short; a commit naming a body unnamed for longer is refused, so
 * collection never races an append). busy: another node holds the
 * lease (nothing done). The embedded backend removes a body with its
 * last row: nothing to collect (0, all zero). */
struct store_collect_report {
	uint64_t removed, bytes;       /* bodies removed, their bytes */
	uint64_t waiting;              /* unnamed, still in their grace */
	bool busy;
};
int store_blobs_collect(struct store *store, unsigned grace,
			struct store_collect_report *report_r,
			struct store_error *err);

/* Scale-out with [store] blobs = s3: bytes another module's rows in the
 * same database name (the outbound queue's, docs/scale-out.md "The
 * queue"), kept as message bodies are: one object named by their
 * SHA-256, counted in blob_object by the store's trigger function
 * loft_blob_ref() on that module's table (columns sha256, body_size),
 * removed by store_blobs_collect once no row names them.
 *   store_objects      whether the store has an object store (postgres
 *                      with blobs = s3); *grace_r: its grace period.
 *   store_object_put   the size bytes of fd (spooled at path) durable
 *                      in the object store (PUT 200, Content-MD5) before
 *                      any row names them; sha_r their SHA-256 (hex).
 *                      The transaction adding the row claims them first:
 *                      SELECT 1 FROM blob_object WHERE sha256 = $1 AND
 *                      (refs > 0 OR orphan_since > now() - grace) FOR
 *                      UPDATE, refused when there is no such row.
 *   store_object_read  size bytes of sha (the node's cache first),
 *                      SHA-256 checked: TEMP when missing, unreachable or
 *                      damaged (logged), never wrong bytes.
 *   store_object_release  no row names sha any more: its object goes now,
 *                      under its blob_object row's lock as the collector
 *                      does (kept when a row names it again; left to the
 *                      collector when S3 fails). Only for bytes no other
 *                      writer uploads at the same time (the queue's are
 *                      unique to one message).
 * Without an object store: store_objects false, the others TEMP. */
bool store_objects(struct store *store, unsigned *grace_r);
int store_object_put(struct store *store, int fd, const char *path,
		     uint64_t size, char sha_r[65], struct store_error *err);
int store_object_read(struct store *store, const char *sha, char *out,
		      uint64_t size, struct store_error *err);
void store_object_release(struct store *store, const char *sha);

/* Scale-out: POP3's maildrop lock across nodes (RFC 1939 7: one session
 * per maildrop; a second gets [IN-USE]). The POP3 server keeps its own
 * lock among this node's sessions and asks this once per maildrop it
 * locks. The postgres backend holds an advisory lock on one connection
 * per node, which dies with that connection (a node that dies or is cut
 * off gives its locks up); the embedded backend is one node (always 1).
 * 1 taken, 0 held by a session on another node, -1 TEMP. */
int store_maildrop_lock(struct store *store, int64_t user_id,
			struct store_error *err);
void store_maildrop_unlock(struct store *store, int64_t user_id);

/* Scale-out: whether this node reaches the store's database now (for
 * /healthz: a load balancer drops a node that cannot serve). Cheap: the
 * backend's background listener keeps the answer (postgres: its LISTEN
 * connection up); true for the embedded backend and before
 * store_start_background. */
bool store_reachable(struct store *store);
/* How many subscriptions user_id has: sessions not ended yet. */
unsigned store_subscriber_count(struct store *store, int64_t user_id);

/* ---- JMAP (RFC 8620, RFC 8621): Emails, Threads, states, changes ---- */

/* What JMAP (src/jmap) needs from the store; any backend implements it.
 *
 * An Email is every message (copy) that shares one EMAILID; its number n
 * is the one in the EMAILID "M<user>-<n>" (store_objectid_format). A copy
 * with \Deleted does not count for JMAP (RFC 8621 4.1.1): an Email whose
 * copies all have it is invisible, like one that no longer exists. A
 * Thread is a THREADID ("T<user>-<n>"); a Mailbox is its MAILBOXID.
 *
 * Keywords of an Email whose copies differ: it has $seen only if every
 * visible copy has \Seen, and any other flag or keyword if one copy has
 * it (docs/compat.md). Get and query read the same merged value.
 *
 * One state for all protocols: whatever protocol makes a change, it takes
 * the account's next change counter value (the IMAP MODSEQ), and in the
 * same transaction the store keeps what JMAP reads: per Email its merged
 * keywords and the counter value of its last change, per Mailbox the JMAP
 * counts, tombstones of destroyed objects and a log of the Emails that
 * entered or left each mailbox. A JMAP state is a position in that
 * history: (modseq, id), id 0 meaning "all changes up to modseq". The
 * logs are kept STORE_JMAP_LOG_DAYS; older states are refused (too_old).
 */
#define STORE_JMAP_LOG_DAYS 45

enum store_jmap_kind {
	STORE_JMAP_MAILBOX,
	STORE_JMAP_EMAIL,
	STORE_JMAP_THREAD,
	/* stored objects (store_jobject_*): JSON kept for src/jmap */
	STORE_JMAP_IDENTITY,
	STORE_JMAP_SUBMISSION,
	STORE_JMAP_VACATION,
	STORE_JMAP_PUSH,
	STORE_JMAP_SETTINGS,
	/* Sieve scripts (store.h "Sieve"): one jobject row per script, its
	 * data the script's name, kept in step by every store_sieve_* change */
	STORE_JMAP_SIEVE,
	STORE_JMAP_KINDS
};

struct store_jmap_cursor {
	uint64_t modseq;
	int64_t id;
	/* On a viewer's handle (JMAP on a shared account, below): the
	 * viewer's rights the state was taken under (0 on an own handle).
	 * A state of other rights is too_old. */
	uint32_t scope;
};

/* "M<user hex>-<n hex>" (kind 'M'), "T..." threads, "B..." message bytes
 * and so on: the store's object id syntax (RFC 8474 characters). parse
 * returns false unless s is exactly that kind for user_id. */
void store_objectid_format(char out[32], char kind, int64_t user_id,
			   int64_t n);
bool store_objectid_parse(const char *s, char kind, int64_t user_id,
			  int64_t *n_r);

/* The state of every kind, read in one snapshot. */
int store_jmap_states(struct store_user *user,
		      struct store_jmap_cursor states_r[STORE_JMAP_KINDS],
		      struct store_error *err);

/* An object that changed: its number (Emails, Threads, stored objects)
 * or mailbox id, and for mailboxes the MAILBOXID. */
struct store_jmap_change {
	int64_t id;
	char objectid[32];
};
struct store_jmap_changes {
	struct store_jmap_change *created, *updated, *destroyed;
	size_t created_count, updated_count, destroyed_count;
	struct store_jmap_cursor new_state;
	bool more;          /* hasMoreChanges: call again from new_state */
	bool counts_only;   /* Mailbox: only the counts of updated ones moved */
	bool too_old;       /* since is older than the logs: nothing filled */
};
/* What changed after since, at most max objects (0: no limit). Returns
 * -1 only on errors; a state the logs no longer reach sets too_old. */
int store_jmap_changes(struct store_user *user, enum store_jmap_kind kind,
		       const struct store_jmap_cursor *since, size_t max,
		       struct store_jmap_changes *changes_r,
		       struct store_error *err);
void store_jmap_changes_free(struct store_jmap_changes *changes);

/* Drops tombstones and membership log entries older than
 * STORE_JMAP_LOG_DAYS before now, and uploads past their time. */
int store_jmap_prune(struct store_user *user, time_t now,
		     struct store_error *err);

/* Mailboxes as JMAP sees them: store_mailbox_info plus the JMAP counts
 * (over visible Emails; unread = neither $seen nor $draft; a thread is
 * unread in a mailbox when one of its copies there is). */
struct store_jmap_mailbox {
	struct store_mailbox_info info;
	uint32_t emails, unread_emails, threads, unread_threads;
	uint32_t sort_order;
	unsigned rights;             /* enum store_right: the viewer's, on a
					viewer's handle; every right else */
};
int store_jmap_mailboxes(struct store_user *user,
			 struct store_jmap_mailbox **list_r, size_t *count_r,
			 struct store_error *err);
void store_jmap_mailboxes_free(struct store_jmap_mailbox *list, size_t count);
/* Mailbox/set properties the IMAP side has no command for: sortOrder and
 * the role (special_use, 0 for none; a role another mailbox has is
 * EXISTS). */
int store_jmap_mailbox_update(struct store_user *user, uint32_t mailbox_id,
			      const uint32_t *sort_order,
			      const unsigned *special_use,
			      struct store_error *err);

/* One Email, as get reads it. */
struct store_email {
	int64_t id;                  /* 0: no such (visible) Email */
	int64_t thread;
	uint64_t size;
	time_t received;             /* the earliest internal date of a copy */
	unsigned flags;              /* merged enum store_flag (no \Deleted) */
	char **keywords;             /* merged, as stored (case kept) */
	size_t keyword_count;
	uint32_t *mailboxes;         /* ids of mailboxes with a visible copy */
	size_t mailbox_count;
	bool has_attachment;
	char *preview;
	time_t sent_date;            /* Date: header, 0 if none */
	struct store_jmap_cursor modseq;   /* its last change */
};
/* Fills emails_r[i] for ids[i] (an array of count; caller frees). */
int store_email_get(struct store_user *user, const int64_t *ids,
		    size_t count, struct store_email **emails_r,
		    struct store_error *err);
void store_email_free(struct store_email *emails, size_t count);
/* The bytes of an Email (what a download of its blobId gives). */
int store_email_open(struct store_user *user, int64_t id,
		     struct store_blob *blob_r, struct store_error *err);

/* Walking Emails for a query: one row per visible copy in mailbox_id
 * (0: one per visible Email of the account), newest first (received,
 * then id) or oldest first. cb returns 0 to go on, 1 to stop. The strings
 * are valid during the call. */
struct store_email_row {
	int64_t id, thread;
	time_t received, sent;
	uint64_t size;
	unsigned flags;
	const char *keywords;        /* merged, space-separated, may repeat */
	bool has_attachment;
	/* with STORE_EMAIL_ROW_SORT: the cached sort fields */
	const char *subject, *from, *to;
};
enum store_email_row_fields { STORE_EMAIL_ROW_SORT = 1 << 0 };
typedef int store_email_row_fn(void *ctx, const struct store_email_row *row);
int store_email_scan(struct store_user *user, uint32_t mailbox_id,
		     bool newest_first, unsigned fields,
		     store_email_row_fn *cb, void *ctx,
		     struct store_error *err);
/* How many visible copies in mailbox_id come before Email id when newest
 * come first (its index in the inMailbox view by receivedAt); NOTFOUND
 * if it has no visible copy there. */
int store_email_rank(struct store_user *user, uint32_t mailbox_id,
		     int64_t id, uint64_t *rank_r, struct store_error *err);
/* The Emails that entered or left mailbox_id after since (distinct,
 * ascending); too_old when the log does not reach back. */
int store_email_moved_since(struct store_user *user, uint32_t mailbox_id,
			    const struct store_jmap_cursor *since,
			    int64_t **ids_r, size_t *count_r, bool *too_old_r,
			    struct store_error *err);
/* The visible Emails of a thread, oldest first (RFC 8621 3). */
int store_thread_emails(struct store_user *user, int64_t thread,
			int64_t **ids_r, size_t *count_r,
			struct store_error *err);

/* Text search over the account, through the search index (exact, as
 * store_search_text): Emails (ascending, unique) whose decoded text
 * contains needle. field: NULL for the body (STORE_TEXT_BODY) or body and
 * every header (STORE_TEXT_ALL); else a header field name (where is
 * ignored), e.g. "subject", and only that field's decoded value counts. */
int store_email_search(struct store_user *user, enum store_text_where where,
		       const char *field, const char *needle, int64_t **ids_r,
		       size_t *count_r, struct store_error *err);

/* Changes to Emails, all in one transaction (Email/set, import, copy):
 * creates from finished bodies, keyword and mailbox updates,
 * destroys. Each operation succeeds or fails on its own (results[i],
 * kind STORE_ERR_NONE on success); the ones that succeed are on disk
 * when commit returns 0. */
struct store_email_tx;
struct store_email_update {
	/* keywords: replace all (replace), or add and remove */
	bool replace_keywords;
	unsigned flags, flags_remove;              /* enum store_flag */
	const char *const *keywords;               /* add (or the new set) */
	size_t keyword_count;
	const char *const *keywords_remove;
	size_t keyword_remove_count;
	/* mailboxes: replace all (replace), or add and remove */
	bool replace_mailboxes;
	const uint32_t *mailboxes;                 /* add (or the new set) */
	size_t mailbox_count;
	const uint32_t *mailboxes_remove;
	size_t mailbox_remove_count;
};
struct store_email_result {
	struct store_error err;
	int64_t id, thread;
	uint64_t size;
};
int store_email_tx_begin(struct store_user *user, struct store_email_tx **tx_r);
/* Takes the body (finished with store_body_finish; the transaction
 * unrefs it): a new Email in each of mailboxes (ids, at least one), with
 * params' flags, keywords and internal date. */
void store_email_tx_create(struct store_email_tx *tx,
			   struct store_body **body,
			   const uint32_t *mailboxes, size_t mailbox_count,
			   const struct store_append_params *params);
void store_email_tx_update(struct store_email_tx *tx, int64_t id,
			   const struct store_email_update *update);
void store_email_tx_destroy(struct store_email_tx *tx, int64_t id);
/* Runs everything; *results_r (caller frees) has one entry per
 * operation, in order. -1 only when nothing could be done at all. */
int store_email_tx_commit(struct store_email_tx **tx,
			  struct store_email_result **results_r,
			  size_t *count_r, struct store_error *err);
void store_email_tx_abort(struct store_email_tx **tx);

/* Uploads (RFC 8620 6.1): bytes kept as they are (no line-end change)
 * until expires (the JMAP layer sets an hour or more after the last use). */
struct store_upload;
int store_upload_begin(struct store_user *user, uint64_t max_size,
		       struct store_upload **up_r, struct store_error *err);
/* LIMIT past max_size, TEMP on a write error. */
int store_upload_write(struct store_upload *up, const void *data,
		       size_t len, struct store_error *err);
/* Durable when it returns 0; frees up either way. */
int store_upload_finish(struct store_upload **up, const char *type,
			time_t expires, int64_t *id_r, uint64_t *size_r,
			struct store_error *err);
void store_upload_abort(struct store_upload **up);
/* type_r (may be NULL; caller frees). NOTFOUND once expired. */
int store_upload_open(struct store_user *user, int64_t id,
		      struct store_blob *blob_r, char **type_r,
		      struct store_error *err);
/* Pushes an upload's expiry out (it was just used). */
int store_upload_touch(struct store_user *user, int64_t id, time_t expires,
		       struct store_error *err);

/* Stored objects (Identity, EmailSubmission, VacationResponse,
 * PushSubscription, settings): JSON text per (kind, id), with the same
 * states and changes as every other kind. put with id 0 creates (*id_r). */
struct store_jobject {
	int64_t id;
	char *data;
	struct store_jmap_cursor modseq;
};
int store_jobject_list(struct store_user *user, enum store_jmap_kind kind,
		       struct store_jobject **list_r, size_t *count_r,
		       struct store_error *err);
void store_jobject_list_free(struct store_jobject *list, size_t count);
int store_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		      int64_t id, const char *data, int64_t *id_r,
		      struct store_error *err);
int store_jobject_delete(struct store_user *user, enum store_jmap_kind kind,
			 int64_t id, struct store_error *err);

/* ---- JMAP on a viewer's handle: another account's mail (issue 15) --
 * The JMAP read calls above also take a viewer's handle
 * (store_user_open_as): they show the owner's mail as the viewer may see
 * it, the rights coming from the one ACL evaluation every other call
 * uses (store-acl.c), in store-jshare.c:
 * - store_jmap_mailboxes lists the mailboxes with l, each with the
 *   viewer's rights, not subscribed, and with the viewer's own unread
 *   counts where \Seen is per user;
 * - an Email is visible when a copy without \Deleted lies in a mailbox
 *   with r; its mailboxes are those; $seen is the viewer's own \Seen in
 *   a mailbox whose \Seen is per user (every visible copy seen);
 *   store_email_get, _open, _scan (a mailbox needs r), _rank,
 *   _moved_since, store_thread_emails and store_email_search keep to it;
 * - states carry the viewer's rights (store_jmap_cursor.scope), so a
 *   change of rights makes older states too_old, and the Email and
 *   Mailbox states move with the viewer's own \Seen changes;
 *   store_jmap_changes answers MAILBOX, EMAIL and THREAD: an Email the
 *   viewer may no longer see is destroyed;
 * - the email transaction creates only (i on each mailbox; flags the
 *   viewer may not set dropped; \Seen becomes the viewer's own): a
 *   front-end changes keywords and mailboxes through store_flags_update,
 *   store_copy and store_expunge on the handle, which check as always.
 * Uploads, stored objects, store_jmap_mailbox_update and prune stay
 * the owner's (PERM). */

/* The copies of Email id the handle may see: each (mailbox, uid) with
 * its flags, \Seen as the handle's viewer has it. NOTFOUND when none. */
struct store_email_copy {
	uint32_t mailbox, uid;
	unsigned flags;
};
int store_email_copies(struct store_user *user, int64_t id,
		       struct store_email_copy **copies_r, size_t *count_r,
		       struct store_error *err);

/* ---- moving mail in and out: import, export, backup, restore ------ */

/* What src/migrate (loftctl import, export, backup, restore) needs from
 * any backend: mailboxes and messages made as a source had them, resume
 * marks that commit with their message, and one consistent snapshot of an
 * account to read out. Messages go through the same path as a delivery
 * (quota, search index, threads, change counter, group commit). */

/* A folder as the source has it. */
struct store_import_mailbox {
	const char *name;          /* UTF-8, "/" separated */
	uint32_t uidvalidity;      /* 0: the store picks one */
	uint32_t uidnext;          /* raise UIDNEXT to at least this (0) */
	const char *objectid;      /* MAILBOXID to keep (NULL: the store's) */
	unsigned special_use;      /* role to give, if no other mailbox has
				      it (one mailbox per role) */
	bool subscribe;
};
/* Makes name ready for an import (creating it and missing parents). A
 * mailbox made here, or one that never held a message (UIDNEXT 1: a new
 * account's INBOX, Sent, ...), takes uidvalidity, objectid and the role
 * as given, so the source's UIDs can be kept; a mailbox that held mail
 * keeps its own (info_r->uidvalidity says which one it has). A
 * UIDVALIDITY given raises the account's last one, so a mailbox made
 * later never repeats it. info_r (may be NULL; free with
 * store_mailbox_info_free) is the state afterwards. */
int store_import_mailbox(struct store_user *user,
			 const struct store_import_mailbox *spec,
			 struct store_mailbox_info *info_r,
			 struct store_error *err);

struct store_import_params {
	struct store_append_params append;  /* flags, keywords, date */
	uint32_t uid;         /* 0: UIDNEXT; else at least UIDNEXT, or
				 EXISTS and nothing stored */
	uint64_t modseq;      /* 0: the next change; else the counter is
				 first raised to modseq - 1, so the message
				 gets modseq if that is above the counter */
	int64_t email;        /* the number n of EMAILID M<user>-<n> to
				 keep (0: a new one). If the account has
				 that Email, the message is a copy of it and
				 body may be NULL; else n must be free. */
	int64_t thread;       /* THREADID's n (0: threaded as delivered) */
	time_t savedate;      /* 0: now */
	const char *pop3_uidl;   /* NULL: POP3's UIDL from UID+UIDVALIDITY */
	/* POP3's marks as the source had them: hidden from POP3
	 * (pop3_delete = hide) and the first RETR (retention counts from
	 * it; 0: never retrieved) */
	bool pop3_hidden;
	time_t pop3_first_retr;
	/* Resume mark: (mark_source, mark_id) commits with the message;
	 * if the account has it already, EXISTS and nothing is stored (a
	 * re-run after a kill stores each message once). NULL: none. */
	const char *mark_source;
	const char *mark_id;
	/* The given modseq even when the counter is above it (the counter
	 * stays): only into an account no session is served from (a
	 * move's target), where no client can have seen the counter. A
	 * backend may ignore it (store_import_exact sets it after). */
	bool modseq_below;
};
/* Adds one message (body finished with store_body_finish, or NULL as
 * said above) to mailbox; the body stays the caller's (unref it).
 * *uid_r (may be NULL): where it went. */
int store_import_append(struct store_user *user, const char *mailbox,
			struct store_body *body,
			const struct store_import_params *p, uint32_t *uid_r,
			struct store_error *err);
/* Several messages in one commit (an import's batch: one commit per
 * message is most of an import's cost). Each item is added as
 * store_import_append would add it, in order, and succeeds or fails
 * alone: ret 0 with uid, or -1 with err. After an item over quota the
 * later ones are not tried (QUOTA too): an import stops at the first.
 * The batch commits as one, marks with their messages: after a crash
 * the account has the whole batch or none of it. */
struct store_import_item {
	const char *mailbox;
	struct store_body *body;     /* as store_import_append's */
	struct store_import_params p;
	int ret;                     /* out */
	uint32_t uid;                /* out */
	uint64_t modseq;             /* out: the modseq it got */
	struct store_error err;      /* out */
};
void store_import_append_batch(struct store_user *user,
			       struct store_import_item *items, size_t count);
/* Records (source, id) as a mark of its own, not with a message (an
 * IMAP import's HIGHESTMODSEQ after a folder, for CHANGEDSINCE next
 * time); already there is no error. */
int store_import_mark_add(struct store_user *user, const char *source,
			  const char *id, struct store_error *err);
/* Every mark_id of mark_source (caller frees with store_names_free). */
int store_import_marks(struct store_user *user, const char *source,
		       char ***ids_r, size_t *count_r,
		       struct store_error *err);
/* A process beside the server (loftctl: import, restore, undelete): the
 * search text of every message it adds is stored with it as always
 * (SEARCH is exact at once, reading the text of what is not indexed),
 * but filling the trigram index over it is left to the server: loftd's
 * indexer takes an account when told it changed (store_changed_elsewhere)
 * and whenever it opens one whose index lags (store_disk.unindexed says
 * how far). An import that indexed as it went spent most of its CPU
 * there, holding the account's writer between its own batches, and
 * stopped wherever it was when the process exited. Call right after
 * store_open. */
void store_index_elsewhere(struct store *store);
/* Raises the account's change counter (the MODSEQ) to at least modseq:
 * an IMAP import goes above the source's HIGHESTMODSEQ (RFC 7162), so a
 * client that cached it misses no later change. */
int store_modseq_raise(struct store_user *user, uint64_t modseq,
		       struct store_error *err);

/* A restore's last step for a folder it filled with the source's UIDVALIDITY
 * and UIDs (one that never held mail, or the rerun of such a restore
 * killed): the source's modseqs, expunge log and HIGHESTMODSEQ, in one
 * commit, so a CONDSTORE/QRESYNC client's cache from the source stays
 * good (RFC 7162). Messages are appended first with modseqs from the
 * counter (store_import_append_batch: item.modseq says which), so an IDLE
 * session sees them arrive in order; then each message whose modseq is
 * still the one it got (nothing changed it since) takes the source's, the
 * log entries are written (a UID the folder holds or at or above UIDNEXT
 * is left out; an entry there keeps the higher modseq), the log's horizon
 * rises to expunge_horizon, HIGHESTMODSEQ becomes the highest of
 * highestmodseq and every modseq left in the folder, and the account's
 * counter rises to at least highestmodseq (it never goes down: no modseq
 * handed out is handed out again). JMAP: states before jmap_horizon are
 * refused (cannotCalculateChanges), as the backup has no tombstones.
 * INVALID, and nothing changes, when the folder's UIDVALIDITY is not
 * uidvalidity. Only for a restore: a folder with other mail keeps the
 * counter's modseqs. */
struct store_expunged_range {
	uint32_t first, last;        /* UIDs */
	uint64_t modseq;             /* store_import_exact: 0 a new one (a
					restore's messages left out: to a
					client that cached the source, they
					are expunged now) */
	time_t at;                   /* when (the log keeps it from then) */
};
struct store_import_exact_msg {
	uint32_t uid;
	uint64_t got;                /* the modseq its append got */
	uint64_t modseq;             /* the source's */
};
/* POP3's marks a message lacks at the target (a move's delta: marks
 * move no modseq); marks are only ever set, so these only add */
struct store_import_pop3 {
	uint32_t uid;
	bool hidden;
	time_t first_retr;           /* 0: none to give */
};
struct store_import_exact {
	const char *name;
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	uint64_t expunge_horizon;    /* the source's: older resyncs are not
					incremental (0: all are) */
	uint64_t jmap_horizon;       /* 0: JMAP states left as they are */
	const struct store_import_exact_msg *msgs;
	size_t msg_count;
	const struct store_expunged_range *expunged;
	size_t expunged_count;
	/* a move's second phase (store-move.c): a UID the target expunged
	 * itself gets the source's modseq even when lower (no client has
	 * seen the target); otherwise the higher of the two stays */
	bool log_as_given;
	/* a move's delta: marks given where the message has none */
	const struct store_import_pop3 *pop3;
	size_t pop3_count;
};
int store_import_exact(struct store_user *user,
		       const struct store_import_exact *x,
		       struct store_error *err);

/* The export stream: one read snapshot of an account, held from begin
 * to end (mail delivered or expunged meanwhile is not seen, and a body
 * it names stays readable until end). */
struct store_export;
struct store_export_info {
	uint64_t modseq;                      /* the change counter */
	struct store_mailbox_info *mailboxes; /* sorted by name */
	size_t mailbox_count;
	char **subscriptions;
	size_t subscription_count;
	struct store_usage usage;
};
struct store_export_msg {
	uint32_t uid;
	uint64_t modseq;
	unsigned flags;               /* enum store_flag */
	const char *const *keywords;
	size_t keyword_count;
	time_t internaldate, savedate;
	uint64_t size;                /* bytes of store_export_body */
	int64_t email, thread;        /* n of EMAILID and THREADID */
	const char *pop3_uidl;        /* NULL: none kept */
	bool pop3_hidden;
	time_t pop3_first_retr;
};
int store_export_begin(struct store_user *user, struct store_export **exp_r,
		       struct store_error *err);
const struct store_export_info *
store_export_info(const struct store_export *exp);
/* Starts the messages of a mailbox (an id of the info), UID order;
 * next returns 1 with *msg_r (valid until the next call), 0 at the
 * end, -1 on error. */
int store_export_messages(struct store_export *exp, uint32_t mailbox_id,
			  struct store_error *err);
int store_export_next(struct store_export *exp,
		      const struct store_export_msg **msg_r,
		      struct store_error *err);
/* The bytes of an Email in the snapshot (close with store_blob_close). */
int store_export_body(struct store_export *exp, int64_t email,
		      struct store_blob *blob_r, struct store_error *err);
void store_export_end(struct store_export **exp);
/* Readers' own \Seen (per-user \Seen of a shared mailbox) in the
 * snapshot: the messages of mailbox_id each viewer (a user id) has seen,
 * ordered by viewer then UID (caller frees *rows_r). A backend without
 * per-user \Seen gives none. */
struct store_export_seen {
	int64_t viewer;
	uint32_t uid;
};
int store_export_seen(struct store_export *exp, uint32_t mailbox_id,
		      struct store_export_seen **rows_r, size_t *count_r,
		      struct store_error *err);
/* The expunge log of mailbox_id in the snapshot: UIDs expunged with the
 * modseq and time of their expunge, in ranges (UID order within each
 * (modseq, at); caller frees *ranges_r), and the log's horizon (a resync
 * from a modseq below it cannot be incremental). A backend without one
 * gives none. */
int store_export_expunged(struct store_export *exp, uint32_t mailbox_id,
			  struct store_expunged_range **ranges_r,
			  size_t *count_r, uint64_t *horizon_r,
			  struct store_error *err);
/* Restore: viewer's own \Seen set on the messages of the owner's
 * mailbox in ranges (as that viewer setting \Seen would, whatever its
 * rights today). PERM on a backend without per-user \Seen. */
int store_import_seen(struct store_user *owner, const char *mailbox,
		      int64_t viewer, const struct store_uid_range *ranges,
		      size_t range_count, struct store_error *err);
/* The same with seen false: viewer's own \Seen cleared (a move's delta,
 * store-move.c, when the reader cleared it while the account was
 * copied). */
int store_import_seen_set(struct store_user *owner, const char *mailbox,
			  int64_t viewer, const struct store_uid_range *ranges,
			  size_t range_count, bool seen,
			  struct store_error *err);

/* The rest of an account beside its folders and mail, in the export
 * snapshot (a move and a backup carry it, docs/backup.md): annotations
 * (RFC 5464) and URLAUTH access keys (RFC 4467) by mailbox name (NULL:
 * the server's), viewer 0 the owner's, else that user's own; Sieve's
 * records (vacation replies RFC 5230, duplicate RFC 7352) with their
 * expiry; JMAP stored objects (Identity, VacationResponse, settings,
 * EmailSubmission, RFC 8621; PushSubscription, RFC 8620) with their
 * ids. Every string is malloced. */
struct store_extra_annotation {
	char *mailbox;               /* NULL: the server */
	int64_t viewer;
	char *name;
	char *value;
	size_t value_len;
};
struct store_extra_key {
	char *mailbox;
	int64_t viewer;
	unsigned char key[STORE_URLAUTH_KEY_LEN];
};
struct store_extra_record {
	char *key;
	time_t expires;
};
struct store_extra_object {
	int kind;                    /* enum store_jmap_kind */
	int64_t id;
	char *data;                  /* JSON as src/jmap keeps it */
};
struct store_account_extra {
	struct store_extra_annotation *annotations;
	size_t annotation_count;
	struct store_extra_key *keys;
	size_t key_count;
	struct store_extra_record *records;
	size_t record_count;
	struct store_extra_object *objects;
	size_t object_count;
};
void store_account_extra_free(struct store_account_extra *x);
/* What the snapshot has (none on a backend without them). */
int store_export_extra(struct store_export *exp,
		       struct store_account_extra *x_r,
		       struct store_error *err);
/* Writes them into user's account in one commit, each as it was (an
 * object keeps its id, a record its expiry); one the account already
 * has (same folder, reader and name; folder and reader; key; kind and
 * id) stays as it is: a restore into an account that has them changes
 * nothing (an URLAUTH key reset since stays reset). An annotation or key of a mailbox the
 * account does not have is left out (*skipped_r counts them; may be
 * NULL). Annotations are not checked against the limits: they were
 * within them where they came from. */
int store_import_extra(struct store_user *user,
		       const struct store_account_extra *x, size_t *skipped_r,
		       struct store_error *err);
/* A move's delta (store-move.c): removes from user's account the rows
 * x names, by the same keys (values, expiries and objects' data are not
 * looked at), in one commit; one the account does not have, or of a
 * mailbox it does not have, is nothing to remove. Then store_import_extra
 * of the rows as the source has them now carries a change or a
 * removal. */
int store_import_extra_drop(struct store_user *user,
			    const struct store_account_extra *x,
			    struct store_error *err);

/* Undelete's kept messages in the export snapshot (a move and a backup
 * carry them, docs/backup.md): each as store_deleted_list has it, with
 * the Email (n) and thread its bytes have; the bytes through
 * store_export_body(email). Oldest removal first; none on a backend
 * without them. Free with store_export_kept_free. */
struct store_export_kept {
	char *mailbox;               /* the folder it was removed from */
	uint32_t uid;                /* its UID there */
	unsigned flags;              /* enum store_flag, as it was */
	char *keywords;              /* space separated, "" for none */
	time_t internaldate, savedate;
	time_t deleted_at;           /* removed then: retention runs on */
	uint64_t size;               /* bytes of store_export_body */
	int64_t email, thread;       /* n of EMAILID and THREADID */
};
int store_export_kept(struct store_export *exp,
		      struct store_export_kept **rows_r, size_t *count_r,
		      struct store_error *err);
void store_export_kept_free(struct store_export_kept *rows, size_t count);
/* POP3's marks in the snapshot, summed: they move no change counter, so
 * a backup's unchanged test (docs/backup.md) compares these. Marks are
 * only ever set (a restore or move writes them as they were), so every
 * new one changes a count or raises a sum. One aggregate over the
 * account's messages, no bodies. Zeros on a backend without them. */
struct store_pop3_sum {
	uint64_t hidden, hidden_uids;       /* hidden, and their UIDs' sum */
	uint64_t retrieved, first_retr;     /* retrieved, their times' sum */
};
int store_export_pop3_sum(struct store_export *exp, struct store_pop3_sum *r,
			  struct store_error *err);
/* Adds one kept message to user's account as the source had it: removed
 * from mailbox (which need not exist) at deleted_at, so its retention
 * period runs on from then; invisible to IMAP, POP3, JMAP and search as
 * any kept one, outside the quota unless deleted_in_quota (not checked
 * against the limits: it was within them where it came from). email as
 * in store_import_params: if the account has Email n, the kept message
 * names its bytes and body may be NULL; else body (finished; it stays
 * the caller's) is stored, as Email n when n is given (n must be free),
 * in thread `thread` when given. One the account keeps already (same
 * folder name, UID, removal time and internal date: a rerun, a restore
 * into the account it came from) is not added again: EXISTS. */
struct store_import_kept {
	const char *mailbox;
	uint32_t uid;
	unsigned flags;
	const char *keywords;        /* space separated; NULL or "": none */
	time_t internaldate, savedate, deleted_at;
	int64_t email, thread;
};
int store_import_kept(struct store_user *user,
		      const struct store_import_kept *k,
		      struct store_body *body, struct store_error *err);
/* A move's delta (store-move.c): forgets the kept messages ids names
 * (store_deleted.id) as the retention run's purge does, their bytes
 * going with the last row that names them. An id the account does not
 * keep is nothing to forget. */
int store_deleted_forget(struct store_user *user, const int64_t *ids,
			 size_t count, struct store_error *err);

/* ---- undelete: removed messages kept for a while (issue 17) -------- */

/* Every removal of a message but a move (IMAP MOVE, JMAP changing an
 * Email's mailboxes, POP3 to Trash), a JMAP Email/set destroy of a
 * draft (a draft replaced) and a thread merge's re-creation -- IMAP
 * EXPUNGE, a folder DELETE, POP3 DELE under pop3_delete = expunge,
 * JMAP destroy, Trash/Junk/POP3 retention -- keeps the message for the
 * account's deleted_retention_days (store_account_limits; 0: not kept):
 * invisible to IMAP, POP3, JMAP and search, outside the quota unless
 * deleted_in_quota. The retention run purges those past the period. */
struct store_deleted {
	int64_t id;               /* of the kept message, for store_undelete */
	const char *mailbox;      /* the folder it was removed from */
	uint32_t uid;             /* its UID there */
	unsigned flags;           /* enum store_flag, as it was */
	const char *keywords;     /* space separated, "" for none */
	time_t internaldate, savedate;
	time_t deleted_at;
	uint64_t size;
	/* from the message, for a list a person reads ("" when absent):
	 * Subject and From as decoded, and the start of the text */
	const char *subject;
	const char *from;
	const char *preview;
};
/* Which kept messages: all fields 0/NULL for every one. */
struct store_deleted_filter {
	const char *mailbox;      /* removed from this folder (exact name) */
	time_t since;             /* removed at or after (0: any time) */
	const int64_t *ids;       /* only these (store_deleted.id) */
	size_t id_count;
};
/* Calls fn for each kept message the filter takes, newest removal
 * first; fn returns false to stop. 0 or -1. */
typedef bool store_deleted_fn(void *ctx, const struct store_deleted *d);
int store_deleted_list(struct store_user *user,
		       const struct store_deleted_filter *filter,
		       store_deleted_fn *fn, void *ctx,
		       struct store_error *err);
/* What the kept messages take (loftctl user show reports it apart). */
int store_deleted_usage(struct store_user *user, struct store_usage *usage_r,
			struct store_error *err);
struct store_undelete_report {
	uint32_t messages;        /* brought back */
	uint64_t bytes;
	uint32_t mailboxes_made;  /* folders recreated (deleted since) */
};
/* Brings the kept messages the filter takes back into their folder (by
 * name; made again, with its parents, if it no longer exists) with new
 * UIDs, in one transaction: flags without \Deleted, keywords, internal
 * date; saved now (Trash retention counts from the undelete). Clients
 * see them as new mail (IDLE, JMAP push). STORE_ERR_QUOTA when they do not
 * fit and deleted_in_quota is off (nothing brought back). Nothing to
 * bring back is no error (report says 0). */
int store_undelete(struct store_user *user,
		   const struct store_deleted_filter *filter,
		   struct store_undelete_report *report_r,
		   struct store_error *err);

/* Another process (loftctl undelete, import, restore) changed user_id's
 * mail: every session of the account in this process is told as if the
 * change were its own (each mailbox's APPEND/EXPUNGE, the list), so IDLE
 * and push see it at once instead of at their next poll. Returns how
 * many subscriptions were told. loftd runs it for the control verb
 * "changed USER_ID". */
int store_changed_elsewhere(struct store *store, int64_t user_id,
			    unsigned *told_r, struct store_error *err);

/* ---- moving an account between backends (issue 18) ----------------- */

/* With [store] backend = sqlite and [store] postgres set, the store has
 * both backends: each account is served from the one its row in
 * accounts.db names (store_account_limits.backend, read through the
 * limits callback when a handle is opened), sqlite unless moved. */
bool store_has_both(const struct store *store);
/* Where user_id's mail is served from now. */
int store_user_backend(struct store *store, int64_t user_id,
		       enum store_backend *backend_r, struct store_error *err);

/* The account is locked while it moves: data_dir/moving/<id> held with
 * an open file description lock by the moving process, so a kill -9
 * frees it. loftd refuses to open a locked account (UNAVAILABLE: IMAP
 * NO [UNAVAILABLE], LMTP 451 4.3.0), and store_move_quiesce ends what
 * it has open: sessions end with STORE_CHANGE_LOGOUT of modseq
 * STORE_LOGOUT_UNAVAILABLE (IMAP "* BYE [UNAVAILABLE]"), then it waits
 * until no handle of the account is left (idle ones closed). -1 with
 * TEMP when something still holds it after timeout_ms. */
#define STORE_LOGOUT_UNAVAILABLE 1
int store_move_quiesce(struct store *store, int64_t user_id,
		       unsigned timeout_ms, unsigned *sessions_r,
		       struct store_error *err);
/* store release (loftctl migrate-store, before it removes the account's
 * files on the side that does not serve it: a leftover target, the old
 * source): closes this process's handles of user_id on that side (idle
 * ones at once, others once let go, within timeout_ms; nothing opens
 * one again, store_user_open_served) and ends no session. -1 with TEMP
 * when one is still held. */
int store_move_release(struct store *store, int64_t user_id,
		       unsigned timeout_ms, unsigned *closed_r,
		       struct store_error *err);

/* loftctl migrate-store: moves user_id's mail to backend `to`. Locks the
 * account, calls hooks->quiesce (loftctl asks a running loftd for
 * store_move_quiesce), empties whatever an interrupted move left at the
 * target, copies through the export stream and the import calls
 * (restore's), checks the copy (mailboxes, UIDVALIDITY, UIDs, flags,
 * keywords, modseqs, bodies by SHA-256), calls hooks->flip (the row
 * changes: from then on the account is served from `to`), unlocks and
 * only then removes the source's copy. Any failure or kill before flip
 * leaves the account as it was, served from the source. */
struct store_move_hooks {
	int (*quiesce)(void *ctx, int64_t user_id, struct store_error *err);
	int (*flip)(void *ctx, int64_t user_id, enum store_backend to,
		    struct store_error *err);
	void *ctx;
	/* before files of the side not serving the account are removed:
	 * loftctl asks a running loftd for store_move_release (NULL: none) */
	int (*release)(void *ctx, int64_t user_id, struct store_error *err);
};
struct store_move_report {
	uint32_t mailboxes;
	uint64_t messages, bytes;
	uint64_t modseq_exact;         /* messages whose MODSEQ was kept */
	uint64_t locked_ms;            /* lock to flip */
	uint64_t live_ms;              /* the copy while served on */
	uint64_t delta_messages;       /* of messages, those under the lock */
	uint64_t delta_changes;        /* all that was copied under the lock */
	uint32_t rounds;               /* catch-up copies while served on */
	bool full_locked;              /* the delta failed: copied whole
					  under the lock (full_reason) */
	char full_reason[256];
	bool already;                  /* it was there: nothing done */
	bool source_kept;              /* removing the source failed (said
					  in source_error): harmless, served
					  from the target */
	char source_error[256];
};
int store_move_account(struct store *store, int64_t user_id,
		       enum store_backend to,
		       const struct store_move_hooks *hooks,
		       struct store_move_report *report_r,
		       struct store_error *err);
const char *store_backend_name(enum store_backend b);

/* ---- Sieve: scripts, vacation and duplicate records ---------------- */

/* A user's Sieve scripts (RFC 5228, ManageSieve RFC 5804, JMAP RFC 9661):
 * the source byte for byte as uploaded, the compiled image src/sieve
 * made from it (so a delivery never parses text), and which one is
 * active (at most one). Names are UTF-8 data, never paths. */
struct store_sieve_script {
	char *name;
	bool active;
	uint64_t size;          /* bytes of source */
	time_t modified;
	/* its JMAP id (RFC 9661 SieveScript), never reused; 0 for a script
	 * stored before ids existed until store_sieve_ids gives it one */
	int64_t jmap_id;
};
int store_sieve_list(struct store_user *user,
		     struct store_sieve_script **list_r, size_t *count_r,
		     struct store_error *err);
void store_sieve_list_free(struct store_sieve_script *list, size_t count);
/* One script: source (NUL-terminated after len), and the compiled image
 * (may be NULL: not compiled by this build); NULL outputs are skipped.
 * NOTFOUND when there is no such script. */
int store_sieve_get(struct store_user *user, const char *name,
		    char **source_r, size_t *len_r, void **image_r,
		    size_t *image_len_r, bool *active_r,
		    struct store_error *err);
/* Creates or replaces a script (its active flag kept). */
int store_sieve_put(struct store_user *user, const char *name,
		    const char *source, size_t len, const void *image,
		    size_t image_len, struct store_error *err);
/* Makes name the active script (NULL or "": none). NOTFOUND. */
int store_sieve_activate(struct store_user *user, const char *name,
			 struct store_error *err);
/* NOTFOUND; EXISTS when the script is the active one (RFC 5804 2.10). */
int store_sieve_delete(struct store_user *user, const char *name,
		       struct store_error *err);
/* NOTFOUND (from), EXISTS (to). */
int store_sieve_rename(struct store_user *user, const char *from,
		       const char *to, struct store_error *err);
/* Gives every script without a JMAP id one (scripts stored before ids
 * existed); a no-op when all have one. */
int store_sieve_ids(struct store_user *user, struct store_error *err);
/* The active script's name, source and image: 1, or 0 when none is. */
int store_sieve_active(struct store_user *user, char **name_r,
		       char **source_r, size_t *len_r, void **image_r,
		       size_t *image_len_r, struct store_error *err);
/* A number that moves whenever the user's scripts or its JMAP
 * VacationResponse change, whichever process changed them (loftd,
 * loftctl, a restore), read without the index: a delivery keeps the
 * compiled active script and the vacation settings while it stays the
 * same. Ask it BEFORE reading them (a change after the read then shows
 * as a new number). 0: unknown, read them every time. */
uint64_t store_sieve_version(struct store_user *user);

/* Records of what was done for a sender or a message (vacation replies,
 * duplicate tracking, redirects, error notices): a key and when it
 * expires. seen: whether key is recorded and not expired at now. */
int store_sieve_record_seen(struct store_user *user, const char *key,
			    time_t now, bool *seen_r, struct store_error *err);

/* A delivery with Sieve's actions: every copy (a body into an existing
 * folder with its own flags: fileinto :create makes the folder first)
 * and every record, in one transaction of the user's index: all or
 * none. uid_r of each copy is set on success. */
struct store_sieve_copy {
	struct store_body *body;
	const char *mailbox;
	const char *prefix;
	size_t prefix_len;
	const struct store_append_params *params;
	uint32_t uid_r;
};
struct store_sieve_record {
	const char *key;
	time_t expires;
};
int store_sieve_deliver(struct store_user *user,
			struct store_sieve_copy *copies, size_t count,
			const struct store_sieve_record *records,
			size_t record_count, struct store_error *err);

/* The text a finished body's analysis gathered, not case-folded: every
 * text part decoded to UTF-8 (mail_analyze's MAIL_TEXT_BODY text), what
 * Sieve's body :text tests (RFC 5173), so a delivery analyses a message
 * once. NULL when the backend kept none (a big text, or no such
 * support): the caller then analyses the message itself. Valid until
 * store_body_unref. */
const char *store_body_text(struct store_body *body, size_t *len_r);

/* ---- consistency -------------------------------------------------- */

/* Verifies a user's index against its blobs and repairs what it can.
 * report(ctx, line) is called once per finding/repair. Returns 0 if the
 * account is consistent afterwards, -1 if something could not be
 * repaired. */
typedef void store_report_fn(void *ctx, const char *line);
int store_check(struct store *store, int64_t user_id, bool repair,
		store_report_fn *report, void *ctx, struct store_error *err);
/* The schema version the user's index had when this handle opened it
 * (before the open upgraded it; 0: the open made it) and the newest this
 * build knows. loftctl check reads it on the handle it holds for every
 * index access. */
void store_user_index_version(struct store_user *user, unsigned *found_r,
			      unsigned *known_r);
/* The schema version of a user's index as it is on disk (0: no index
 * yet) and the newest this build can open. Only reads: opening the user
 * upgrades an older index, and refuses (STORE_ERR_TEMP) a newer one. */
int store_index_version(struct store *store, int64_t user_id,
			unsigned *found_r, unsigned *known_r,
			struct store_error *err);

#endif
