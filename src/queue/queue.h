/*
 * The durable outbound queue: every message that leaves Loft (SMTP
 * submission, JMAP EmailSubmission, the webmail, Sieve's vacation,
 * redirect and reject, delivery status notifications) enters here, and
 * local recipients of such a message are stored through the same call.
 *
 *   enqueue   queue_enqueue (a buffer, e.g. a mapped store blob) or the
 *             streaming queue_writer_*: returns only when the message is
 *             on disk (fsynced) or, for local recipients, stored in their
 *             mailbox. The caller's 250 / "sent" may follow at once.
 *   delivery  queue threads (never an I/O thread, never a worker of the
 *             net pool) take due recipients under a lease, group them by
 *             destination, and send them: to `[queue] smarthost`, or by MX
 *             (with DANE/MTA-STS where published). A temporary failure is
 *             retried with backoff until `[queue] max_age`; a permanent
 *             one, or max_age, sends a DSN (RFC 3464) to the sender.
 *   outcomes  per recipient: queue_message_get, and queue_observe for a
 *             front-end (JMAP deliveryStatus) that wants to be told.
 *   admin     list / show / retry / delete / hold / release: loftctl
 *             calls them on the files directly whether loftd runs or not;
 *             a running loftd notices within a second.
 *
 * Durability contract: after kill -9 at any instant, every message that
 * queue_enqueue acknowledged is still queued or delivered; a delivery cut
 * short (its lease not released) is retried, so a remote may receive a
 * message twice only if it was in flight at the crash.
 *
 * Scale-out: the state lives behind a backend (queue-private.h); the
 * embedded one is SQLite in data_dir/queue/. Delivery claims work with a
 * lease (owner, expiry), which a shared backend (PostgreSQL) can hand to
 * many nodes: nothing here assumes one process.
 *
 * Threads: one struct queue is shared by every thread; every call is
 * thread-safe and may block (disk): call it on a worker, never on an I/O
 * thread.
 */
#ifndef LOFT_QUEUE_H
#define LOFT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;
struct config;
struct dns;
struct queue;
struct queue_writer;

/* A queue id: 16 characters of [0-9A-Z], sortable by enqueue time. */
#define QUEUE_ID_SIZE 24

enum queue_error_kind {
	QUEUE_ERR_NONE = 0,
	QUEUE_ERR_TEMP,       /* I/O error, database busy or away: 451 4.3.0,
				 retry */
	QUEUE_ERR_RATE,       /* the user's hourly limit: 451 4.7.1 */
	QUEUE_ERR_LIMIT,      /* message too big: 552 5.3.4 */
	QUEUE_ERR_INVALID,    /* bad envelope (no recipient, bad address) */
	QUEUE_ERR_NOTFOUND,   /* admin: no such queue id */
	QUEUE_ERR_INTERNAL,   /* details in the log */
	QUEUE_ERR_FULL,       /* disk full or over a disk quota (ENOSPC,
				 EDQUOT, SQLITE_FULL): 452 4.3.1, retry */
};

struct queue_error {
	enum queue_error_kind kind;
	char msg[256];        /* safe to show a user */
};

/* ---- settings ----------------------------------------------------- */

enum queue_tls_mode {
	QUEUE_TLS_REQUIRED,       /* verified certificate, or no delivery */
	QUEUE_TLS_OPPORTUNISTIC,  /* STARTTLS when offered, unverified */
	QUEUE_TLS_NONE,           /* never (a trusted local relay) */
};

struct queue_settings {
	const char *data_dir;         /* data_dir/queue/ */
	const char *hostname;         /* EHLO name, DSN Reporting-MTA */
	/* [queue] smarthost = HOST:PORT: all non-local mail goes there
	 * (no MX, DANE or MTA-STS). NULL: deliver by MX. */
	const char *smarthost;
	enum queue_tls_mode smarthost_tls;      /* default required */
	const char *smarthost_user;             /* AUTH PLAIN, or NULL */
	const char *smarthost_password_file;    /* first line is the password */
	const char *tls_ca_file;      /* [queue] tls_ca_file: extra trusted CAs
					 (tests); NULL: the system's */
	uint64_t max_age;             /* seconds; default 5d */
	uint64_t delay_warning;       /* seconds before a delay DSN; 0 off;
					 default 4h */
	uint64_t retry_min;           /* first retry; default 5m (tests: 1s) */
	uint64_t retry_max;           /* longest interval; default 1h */
	unsigned workers;             /* delivery threads; default 16 */
	unsigned per_domain;          /* connections per destination; 4 */
	uint64_t connect_timeout;     /* seconds; default 30 */
	uint64_t command_timeout;     /* seconds per reply; default 5m
					 (RFC 5321 4.5.3.2) */
	/* Per-account submission limits per hour (0: none); the account's
	 * policy may override them (auth). Default 1000 / 5000. */
	uint64_t user_messages_per_hour;
	uint64_t user_recipients_per_hour;
	bool fsync;                   /* [store] fsync; false: tests only */
	/* A queue shared by the nodes of one database (docs/scale-out.md):
	 * [store] backend = postgres with the file blob driver. postgres:
	 * its connection string (NULL: the embedded queue.db); shared_dir:
	 * [store] blob_dir, where the message files go (DIR/queue). */
	const char *postgres;
	const char *shared_dir;
	/* [store] backend = postgres with blobs = s3: the rows in postgres
	 * as above, the messages' bytes in the store's object store
	 * (queue_set_objects), so any node delivers any message. */
	bool objects;
	uint64_t lease;               /* [queue] lease: a claim's lease on a
					 shared queue, renewed while the
					 node runs; default 5m */
	struct dns *dns;              /* set by the caller (MX, TLSA, ...);
					 NULL: only a smarthost works */
};

/* Fills set_r from the top-level data_dir and hostname, [queue] and
 * [store] fsync. Strings point into cfg. Returns 0, or -1 with
 * "FILE:LINE: message\n" lines appended to errors (unknown keys too). */
int queue_settings_from_config(const struct config *cfg,
			       struct queue_settings *set_r,
			       struct buf *errors);

/* ---- hooks -------------------------------------------------------- */

/* What the queue asks of the modules above it, set by the daemon (so the
 * queue depends on nothing above it): local recipients are stored through
 * the delivery module, and DKIM keys may live in a process of their own. */
struct queue_rcpt;
struct queue_rcpt_result;
struct queue_hooks {
	/* Whether the domain is served here (its mail is stored, not sent). */
	bool (*is_local)(void *ctx, const char *domain);
	/* Stores data for count local recipients; fills results[i] for
	 * each: 2xx stored, 4xx try again later, 5xx refused for good. */
	void (*deliver)(void *ctx, const char *sender,
			const struct queue_rcpt *rcpts, size_t count,
			const void *data, size_t len,
			struct queue_rcpt_result *results);
	/* Optional: DKIM-signs data for its From: domain with every key of
	 * that domain, appending the DKIM-Signature fields to out (nothing
	 * when the domain has no key). -1: no signature could be made. */
	int (*sign)(void *ctx, const void *data, size_t len, struct buf *out);
	void *ctx;
};

/* Where a queue with settings.objects keeps the messages' bytes: the
 * store's object store (store.h, store_object_*), reached through these
 * so the queue depends on nothing above it. Set before queue_start (and
 * before loftctl reads or deletes a message). put: the size bytes of fd
 * (spooled at path) durable under their SHA-256 (sha_r, hex) before the
 * row naming them commits; -1 with a reason for the log. read: size
 * bytes of sha, checked against it: -1 (logged) when missing,
 * unreachable or damaged. release: no row names sha now (its object
 * goes). grace: a row must name a put's bytes within grace seconds
 * (the store's collector takes them after). */
struct queue_objects {
	int (*put)(void *ctx, int fd, const char *path, uint64_t size,
		   char sha_r[65], char *why, size_t why_size);
	int (*read)(void *ctx, const char *sha, char *out, uint64_t size);
	void (*release)(void *ctx, const char *sha);
	unsigned grace;
	void *ctx;
};

/* ---- opening ------------------------------------------------------ */

/* Opens (creating) data_dir/queue/. Delivery does not start until
 * queue_start; loftctl opens the queue without starting it. */
int queue_open(const struct queue_settings *set, struct queue **q_r,
	       struct queue_error *err);
void queue_set_hooks(struct queue *q, const struct queue_hooks *hooks);
/* The object store of a queue opened with settings.objects. */
void queue_set_objects(struct queue *q, const struct queue_objects *objects);
/* Whether the queue keeps its messages' bytes in the object store (its
 * opener must call queue_set_objects). */
bool queue_uses_objects(const struct queue *q);
/* The resolver the queue was opened with (settings.dns), or NULL: front
 * ends that check incoming mail (SMTP MX) share it. */
struct dns *queue_dns(struct queue *q);
/* Starts the scheduler and delivery threads. In-flight leases of an
 * earlier run of this node are released first (their deliveries were cut
 * short: they are retried). */
int queue_start(struct queue *q, struct queue_error *err);
/* Stops delivery (connections are closed after their current reply) and
 * closes the queue. */
void queue_close(struct queue **q);

/* ---- enqueue ------------------------------------------------------ */

enum queue_notify {                     /* RFC 3461 4.1 NOTIFY */
	QUEUE_NOTIFY_DEFAULT = 0,       /* as FAILURE,DELAY */
	QUEUE_NOTIFY_NEVER = 1 << 0,
	QUEUE_NOTIFY_SUCCESS = 1 << 1,
	QUEUE_NOTIFY_FAILURE = 1 << 2,
	QUEUE_NOTIFY_DELAY = 1 << 3,
};

enum queue_ret { QUEUE_RET_DEFAULT, QUEUE_RET_FULL, QUEUE_RET_HDRS };

enum queue_flags {
	QUEUE_F_8BITMIME = 1 << 0,    /* BODY=8BITMIME */
	QUEUE_F_SMTPUTF8 = 1 << 1,    /* RFC 6531 */
	QUEUE_F_REQUIRETLS = 1 << 2,  /* RFC 8689: never send in clear */
	QUEUE_F_SIGN = 1 << 3,        /* DKIM-sign (queue_hooks.sign) */
	QUEUE_F_SUBMISSION = 1 << 4,  /* counts against user_id's hourly
					 limits (QUEUE_ERR_RATE beyond) */
	QUEUE_F_LOCAL_RETRY = 1 << 5, /* the recipients are local ones whose
					 store failed: retried, not sent */
};

struct queue_rcpt {
	const char *address;          /* "local@domain", no angle brackets */
	unsigned notify;              /* enum queue_notify bits */
	const char *orcpt;            /* RFC 3461 ORCPT "rfc822;a@b", xtext
					 decoded; NULL if none */
};

struct queue_envelope {
	const char *sender;           /* reverse-path; "" is the null sender */
	const struct queue_rcpt *rcpts;
	size_t rcpt_count;
	enum queue_ret ret;           /* RFC 3461 RET */
	const char *envid;            /* RFC 3461 ENVID (decoded), or NULL */
	unsigned flags;               /* enum queue_flags */
	int64_t user_id;              /* the submitting account, 0 none */
};

enum queue_rcpt_status {
	QUEUE_RCPT_QUEUED,            /* on disk, will be sent or retried */
	QUEUE_RCPT_DELIVERED,         /* stored locally / accepted remotely */
	QUEUE_RCPT_FAILED,            /* refused for good (DSN sent if asked) */
};

struct queue_rcpt_result {
	enum queue_rcpt_status status;
	int code;                     /* SMTP reply code, 0 if none yet */
	char enhanced[12];            /* "5.1.1", "" if none */
	char text[256];               /* the reply text or our reason */
};

/* Enqueues a message: data is the whole RFC 5322 message with CRLF line
 * ends (to send a stored message: store_blob_open, pass its bytes). Local
 * recipients are stored at once (a temporary failure stays queued);
 * remote ones are written to disk. Returns 0 when every recipient is
 * either stored, queued durably, or refused (results_r, one per
 * recipient, may be NULL; id_r gets the queue id, "" when nothing had to
 * be queued). -1: nothing was queued nor stored (err says why). */
int queue_enqueue(struct queue *q, const struct queue_envelope *env,
		  const void *data, size_t len, char id_r[QUEUE_ID_SIZE],
		  struct queue_rcpt_result *results_r, struct queue_error *err);

/* Streaming: the message in pieces (SMTP DATA), written straight to a
 * file of the queue; commit is queue_enqueue with that file. */
int queue_writer_create(struct queue *q, struct queue_writer **w_r,
			struct queue_error *err);
int queue_writer_write(struct queue_writer *w, const void *data, size_t len,
		       struct queue_error *err);
uint64_t queue_writer_size(const struct queue_writer *w);
/* Frees *w either way. */
int queue_writer_commit(struct queue_writer **w,
			const struct queue_envelope *env,
			char id_r[QUEUE_ID_SIZE],
			struct queue_rcpt_result *results_r,
			struct queue_error *err);
void queue_writer_abort(struct queue_writer **w);

/* A DSN (RFC 3464) about the message in w (which stays usable) whose
 * recipients were decided outside the queue: SMTP MX stores local copies
 * itself, and one refused for good after the 250 was given for the
 * others (over quota, Sieve reject), or stored with NOTIFY=SUCCESS, is
 * reported to the sender this way. failed: they failed for good; else
 * they were delivered. Nothing is sent for the null sender. */
struct queue_report_rcpt {
	const char *address;
	const char *orcpt;            /* RFC 3461 ORCPT, or NULL */
	struct queue_rcpt_result result;
};
int queue_writer_report(struct queue_writer *w, const char *sender,
			const char *envid, enum queue_ret ret, bool failed,
			const struct queue_report_rcpt *rcpts, size_t count,
			struct queue_error *err);

/* Whether the account may submit count more messages with rcpts
 * recipients this hour (SMTP asks at MAIL/RCPT to refuse early;
 * queue_enqueue counts them). */
bool queue_user_within_limits(struct queue *q, int64_t user_id,
			      unsigned messages, unsigned rcpts);

/* ---- outcomes and administration ---------------------------------- */

struct queue_rcpt_info {
	char *address;
	char *orcpt;
	unsigned notify;
	enum queue_rcpt_status status;
	unsigned attempts;
	time_t next_attempt;          /* 0 when final */
	int code;                     /* last reply, 0 none */
	char *last_error;             /* last reply or our reason, or NULL */
	char *remote;                 /* the host that answered, or NULL */
};

struct queue_message_info {
	char id[QUEUE_ID_SIZE];
	char *sender;
	char *envid;
	int64_t user_id;
	unsigned flags;
	uint64_t size;
	time_t created;
	bool held;
	struct queue_rcpt_info *rcpts;
	size_t rcpt_count;
};

/* A message and every recipient's state (also the final ones, until the
 * message leaves the queue). -1 with NOTFOUND when it is gone. */
int queue_message_get(struct queue *q, const char *id,
		      struct queue_message_info **info_r,
		      struct queue_error *err);
void queue_message_info_free(struct queue_message_info **info);

/* Every message that still has a pending recipient, oldest first; only
 * pending recipients are listed. fn returns false to stop. */
typedef bool queue_list_fn(void *ctx, const struct queue_message_info *info);
int queue_list(struct queue *q, queue_list_fn *fn, void *ctx,
	       struct queue_error *err);

/* Admin actions on queue ids (id NULL with retry: every message).
 * retry: next attempt now; hold: no delivery until release; release:
 * deliver now; delete: gone without a DSN. NOTFOUND if the id is not
 * queued. A running loftd sees them within a second. */
int queue_retry(struct queue *q, const char *id, struct queue_error *err);
int queue_hold(struct queue *q, const char *id, struct queue_error *err);
int queue_release(struct queue *q, const char *id, struct queue_error *err);
int queue_delete(struct queue *q, const char *id, struct queue_error *err);
/* The message as queued (its DKIM-Signature fields first), for `loftctl
 * queue show --body` and JMAP. Caller frees *data_r. */
int queue_message_data(struct queue *q, const char *id, char **data_r,
		       size_t *len_r, struct queue_error *err);

/* Told of every recipient's outcome: delivered, failed, or deferred
 * (status QUEUED with the reply that deferred it). Runs on a queue
 * thread: keep it short. One observer; NULL removes it. */
typedef void queue_observe_fn(void *ctx, const char *id, const char *rcpt,
			      const struct queue_rcpt_result *result);
void queue_observe(struct queue *q, queue_observe_fn *fn, void *ctx);

#endif
