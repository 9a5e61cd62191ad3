/*
 * Queue internals: struct queue, the backend that keeps the queue's state
 * (queue-db.c: SQLite in data_dir/queue/queue.db beside one file per
 * message in data_dir/queue/msg/), the runner (queue-run.c: scheduler and
 * delivery threads), the outbound SMTP client (queue-client.c) and DSNs
 * (queue-dsn.c).
 *
 * The backend is a vtable so a shared one (PostgreSQL, issue "Scale-out")
 * can replace it: every call is a short transaction, and delivery works on
 * leases (claim -> deliver -> record), never on state held in memory
 * across calls. A message's bytes are a file named by its queue id, or
 * (a shared queue with blobs = s3) an object in the store's object
 * store: queue-body.c is the one way to them.
 */
#ifndef LOFT_QUEUE_PRIVATE_H
#define LOFT_QUEUE_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "queue.h"

/* A recipient's state in the backend. */
enum qrcpt_state {
	QRCPT_PENDING = 0,
	QRCPT_DELIVERED = 1,
	QRCPT_FAILED = 2,
};

/* What a claim hands the runner: recipients of one message to one
 * destination, leased until lease_until. */
struct qjob_rcpt {
	int64_t row;
	char *address;
	char *orcpt;
	unsigned notify;
	unsigned attempts;
	/* filled by the delivery */
	struct queue_rcpt_result result;
};

struct qjob {
	struct qjob *next;
	char id[QUEUE_ID_SIZE];
	int64_t msg_row;
	char *sender;
	char *envid;
	enum queue_ret ret;
	unsigned flags;
	int64_t user_id;
	uint64_t size;
	time_t created;
	bool warned;              /* a delay DSN went out already */
	char *prefix;             /* DKIM-Signature fields sent before the file */
	char *dest;               /* domain, or "" for the smarthost */
	bool local;               /* local recipients whose store failed */
	char remote[300];         /* the host that answered, "" if none */
	char tls[8];              /* qclient_tls_mode of that connection */
	/* Deferred without a try (its destination is marked unreachable):
	 * attempts stay as they were and the next attempt is defer_until
	 * (the destination's) instead of the message's own backoff. */
	bool untried;
	time_t defer_until;
	/* the bytes in the object store (queue-body.c), or "" and 0 */
	char sha[65];
	uint64_t body_size;
	struct qjob_rcpt *rcpts;
	size_t rcpt_count;
};

void qjob_free(struct qjob *job);

/* How long a claim leases its recipients (a crash releases them at the
 * next start; another node takes them when it ends). */
#define QUEUE_LEASE_SECONDS 3600

/* The message as the backend stores it. */
struct qmsg_new {
	const char *id;
	const struct queue_envelope *env;
	const char *prefix;
	uint64_t size;
	time_t created;
	/* the object holding the bytes (queue-body.c), or NULL: a file */
	const char *sha;
	uint64_t body_size;
	/* per recipient of env: queue it (remote or local retry)? */
	const bool *queued;
	const char *const *domains;   /* per recipient ("" for smarthost) */
	const bool *local;            /* per recipient: a local retry */
	const struct queue_rcpt_result *results;
	/* Not 0: the queued remote recipients are inserted leased until
	 * then, for the runner to take at once without a claim; their row
	 * ids go to rows_r[i] and the message's to *msg_row_r. */
	time_t lease_until;
	int64_t *rows_r;
	int64_t *msg_row_r;
};

struct queue_backend_vfuncs {
	int (*open)(struct queue *q, struct queue_error *err);
	void (*close)(struct queue *q);
	/* One transaction: the message and its queued recipients. */
	int (*insert)(struct queue *q, const struct qmsg_new *m,
		      struct queue_error *err);
	/* Releases leases this node held (a restart after a crash). */
	int (*release_leases)(struct queue *q, struct queue_error *err);
	/* Claims up to max due jobs (pending, not held, next_attempt and
	 * lease expired), leasing their recipients until now + lease. */
	int (*claim)(struct queue *q, time_t now, unsigned lease, unsigned max,
		     struct qjob **jobs_r, struct queue_error *err);
	/* Records a job's outcomes (job->rcpts[i].result; status QUEUED
	 * means deferred to next_attempt) and releases its lease. A message
	 * left with no pending recipient is removed (*removed_r: the caller
	 * unlinks its file). */
	int (*record)(struct queue *q, const struct qjob *job,
		      time_t next_attempt, bool warned, bool *removed_r,
		      struct queue_error *err);
	/* A destination found unreachable: every recipient queued for it
	 * (not leased, not held) that is due before until waits for until,
	 * with reason as its last reply, without a try of its own. Messages
	 * that are due a delay warning or past max_age (created at or before
	 * warn_before / expire_before) are left due, so the runner warns or
	 * bounces them. *count_r: how many recipients were deferred. */
	int (*defer_dest)(struct queue *q, const char *dest, time_t now,
			  time_t until, int code, const char *reason,
			  time_t expire_before, time_t warn_before,
			  unsigned *count_r, struct queue_error *err);
	/* Hourly submission counters (queue.c keeps them in memory): a
	 * submission's counts are written by insert itself (the message's
	 * transaction); rate_add writes those of a submission that queued
	 * nothing (every recipient local); rates_load gives the counts of
	 * minutes after since (at open: a restart keeps the limits). */
	void (*rate_add)(struct queue *q, int64_t user_id, int64_t minute,
			 unsigned rcpts);
	int (*rates_load)(struct queue *q, int64_t since,
			  void (*fn)(void *ctx, int64_t user_id, int64_t minute,
				     unsigned messages, unsigned rcpts),
			  void *ctx);
	/* The earliest next attempt of a claimable recipient, 0 if none. */
	time_t (*next_due)(struct queue *q);
	/* Whether another process changed the queue since the last call. */
	bool (*changed)(struct queue *q);
	int (*get)(struct queue *q, const char *id, bool pending_only,
		   struct queue_message_info **info_r,
		   struct queue_error *err);
	int (*list)(struct queue *q, queue_list_fn *fn, void *ctx,
		    struct queue_error *err);
	/* retry / hold / release / delete; id NULL: all (retry only). */
	int (*admin)(struct queue *q, const char *verb, const char *id,
		     struct queue_error *err);
	/* What names a message's bytes: its DKIM prefix (NULL if none)
	 * and, when they are an object, its SHA-256 and size ("" and 0 for
	 * a file). NOTFOUND when id is not queued. */
	int (*body_ref)(struct queue *q, const char *id, char **prefix_r,
			char sha_r[65], uint64_t *size_r,
			struct queue_error *err);
	/* Whether the backend knows id (the orphan sweep of files). */
	bool (*exists)(struct queue *q, const char *id);
	/* The MTA-STS policy cache: a domain's policy id and text until
	 * expires. get: 1 found, 0 none, -1 error. */
	int (*sts_get)(struct queue *q, const char *domain, char **id_r,
		       char **policy_r, time_t *expires_r);
	void (*sts_put)(struct queue *q, const char *domain, const char *id,
			const char *policy, time_t expires);
	/* Optional (a shared backend): extends every lease this node holds
	 * by its lease again; the runner calls it every third of the lease,
	 * so a node that stops (killed, cut off) lets them lapse. */
	int (*renew)(struct queue *q);
};

extern const struct queue_backend_vfuncs queue_sqlite_backend;
extern const struct queue_backend_vfuncs queue_pg_backend;

struct queue_runner;

struct queue {
	struct queue_settings set;
	char *dir;                /* data_dir/queue */
	char *msg_dir;            /* data_dir/queue/msg */
	char *tmp_dir;            /* data_dir/queue/tmp */
	char *smarthost_password; /* read at open */
	const struct queue_backend_vfuncs *be;
	void *be_ctx;
	unsigned lease_secs;      /* a claim's lease (QUEUE_LEASE_SECONDS, or
				     [queue] lease on a shared queue) */
	bool shared;              /* msg_dir is seen by other nodes */
	bool objects;             /* the bytes are objects (queue-body.c) */
	struct queue_objects obj; /* under mu */
	pthread_mutex_t mu;       /* hooks, observer, id counter */
	struct queue_hooks hooks;
	queue_observe_fn *observe;
	void *observe_ctx;
	uint64_t id_seq;
	struct queue_runner *runner;
	/* Hourly submission counters per user, kept by the backend too
	 * (read at open: a restart keeps them). */
	struct queue_rate *rates;
	size_t rate_count, rate_cap;
};

/* queue.c */
/* A file operation failed with errno e: QUEUE_ERR_FULL (452 4.3.1,
 * "Insufficient system storage") only when the disk or a quota is full,
 * else QUEUE_ERR_TEMP (451 4.3.0); the caller logs e. */
void queue_set_errno(struct queue_error *err, int e);
void queue_set_error(struct queue_error *err, enum queue_error_kind kind,
		     const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void queue_result_set(struct queue_rcpt_result *r, enum queue_rcpt_status st,
		      int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
char *queue_msg_path(const struct queue *q, const char *id);
/* The domain of an address ("" when it has none). */
const char *queue_addr_domain(const char *address);
void queue_notify_observer(struct queue *q, const char *id, const char *rcpt,
			   const struct queue_rcpt_result *r);
/* Removes message files the backend does not know (a crash between the
 * rename and the commit) named before before_ms (ms since the epoch:
 * later ones may be messages being queued now). */
void queue_sweep_orphans(struct queue *q, uint64_t before_ms);
/* Enqueues a DSN (or stores it, for a local sender). */
int queue_enqueue_internal(struct queue *q, const struct queue_envelope *env,
			   const void *data, size_t len,
			   struct queue_error *err);

/* queue-body.c: a message's bytes, wherever they are. Files: one per
 * message in msg_dir (data_dir/queue/msg, or blob_dir/queue/msg shared
 * by the nodes of one database). Objects: the store's object store
 * (queue_set_objects), named by SHA-256 and counted by the store's
 * collector; such an object is the message after a first line naming it
 * (QBODY_MARK id CRLF), so no other body has its name: the node that
 * finishes the message removes it at once, racing no upload of the same
 * bytes. */
#define QBODY_MARK "X-Loft-Queue-Id: "
struct qbody {
	const char *data;
	size_t len;
	void *base;               /* what to unmap or free */
	size_t base_len;
	bool heap;
};
/* The first line of the spooled file (objects only; "" for files). */
void qbody_mark(const struct queue *q, const char *id, struct buf *out);
/* The spooled file (fd at tmp_path, skip + size bytes) made durable
 * under the message's name before its row commits: files fsynced and
 * renamed into msg_dir; objects put (sha_r). */
int qbody_keep(struct queue *q, int fd, const char *tmp_path,
	       uint64_t file_size, const char *id, char sha_r[65],
	       struct queue_error *err);
/* The row did not commit: a file goes; an object is left to the
 * store's collector (it may be shared by nothing, but a row may have
 * committed after all). */
void qbody_unkeep(struct queue *q, const char *id, const char *sha);
/* The bytes: 0; -1 gone for good (a file missing); -2 not now (an
 * object missing, unreachable or damaged: logged; try later). */
int qbody_open(struct queue *q, const char *id, const char *sha,
	       uint64_t size, struct qbody *b);
void qbody_close(struct qbody *b);
/* Every row of the message is done: its bytes go. */
void qbody_remove(struct queue *q, const char *id, const char *sha);

/* queue-run.c */
int queue_runner_start(struct queue *q, struct queue_error *err);
void queue_runner_stop(struct queue *q);
void queue_runner_kick(struct queue *q);
/* Forgets which destinations were found unreachable (an admin's retry:
 * they are tried again at once). */
void queue_runner_forget_dead(struct queue *q);
/* Whether the runner takes a just-queued message at once (it runs and
 * has room in memory), and the hand-over of its jobs (leased at insert,
 * as a claim would). */
bool queue_runner_has_room(struct queue *q);
void queue_runner_push(struct queue *q, struct qjob *jobs);

/* queue-mtasts.c: MTA-STS (RFC 8461). */
#define QSTS_ID_MAX 32
enum qsts_mode { QSTS_NONE, QSTS_TESTING, QSTS_ENFORCE };
struct qsts_policy {
	enum qsts_mode mode;          /* NONE also when there is no policy */
	char **mx;                    /* patterns: "mx.example.com",
					 "*.example.com" */
	size_t mx_count;
	uint64_t max_age;
};
/* A policy file (RFC 8461 3.2); -1 with why when it is not valid. */
int qsts_policy_parse(const char *text, size_t len, struct qsts_policy *p,
		      char *why, size_t size);
void qsts_policy_free(struct qsts_policy *p);
bool qsts_mx_matches(const struct qsts_policy *p, const char *host);
/* The id of a "v=STSv1; id=..." TXT record (3.1); -1 if not valid. */
int qsts_txt_id(const char *txt, size_t len, char id[QSTS_ID_MAX + 1]);
/* The policy for delivery to domain: from the cache, or fetched when
 * the TXT record names a new id; mode NONE when there is none. */
void queue_mtasts_policy(struct queue *q, const char *domain,
			 struct qsts_policy *p_r);

/* queue-dsn.c: DSNs (RFC 3464). */
enum qdsn_kind { QDSN_FAILED, QDSN_DELAYED, QDSN_DELIVERED };
struct qdsn_rcpt {
	const char *address;
	const char *orcpt;
	const struct queue_rcpt_result *result;
};
/* What a DSN reports: the original message's envelope and the
 * recipients it is about. */
struct qdsn {
	const char *id;           /* names the original in logs and ids */
	const char *sender;       /* the DSN goes there */
	const char *envid;
	enum queue_ret ret;
	time_t created;
	const char *prefix;       /* fields sent before the original, or NULL */
	const char *remote;       /* the host that answered, or NULL */
	bool local;               /* stored here, not relayed */
	const struct qdsn_rcpt *rcpts;
	size_t count;
};
/* Builds the DSN with (part of) orig and enqueues it to d->sender. */
int queue_dsn_enqueue(struct queue *q, const struct qdsn *d,
		      enum qdsn_kind kind, const char *orig, size_t orig_len,
		      struct queue_error *err);
/* A DSN for the recipients of job whose which[i] is set. */
void queue_dsn_send(struct queue *q, const struct qjob *job,
		    enum qdsn_kind kind, const bool *which);

#endif
