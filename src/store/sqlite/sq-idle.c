/*
 * Idle trim: what an account's index costs while nobody uses it. Every
 * SQ_IDLE_CHECK_S a thread looks at the open accounts; one unused for
 * SQ_IDLE_AFTER_S gives back its pooled read connections and its writer
 * connection (each holds the parsed schema, ~100 KB with the triggers,
 * its statements and its page cache; the next use opens them again), and
 * malloc hands freed memory back to the system (glibc keeps it in its
 * arenas otherwise, and a server that was busy an hour ago would stay at
 * its peak). An account whose sessions all sit in IDLE costs then no
 * SQLite memory at all. SQLite keeps the index's POSIX locks right
 * across connections of one process (a close while another connection
 * holds a lock is deferred), so closing one is safe at any time.
 */
#include "sq-private.h"

#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define SQ_IDLE_CHECK_S 5
#define SQ_IDLE_AFTER_S 10
/* WAL frames (pages) after which a checkpoint is asked for, in the
 * background; past the second, the committing thread does one itself
 * (PASSIVE: it never waits for readers), so the WAL stays bounded even
 * when the background falls behind. SQLite's own automatic checkpoint
 * (1,000 frames) ran on the commit path: with message bodies in the
 * index it came every few dozen deliveries, and its database fsync
 * stalled them. */
#define SQ_CKPT_FRAMES 1000
#define SQ_CKPT_INLINE_FRAMES 16000

static int wal_hook(void *ctx, sqlite3 *db, const char *name, int frames)
{
	struct sq_user *u = ctx;
	(void)name;
	if (frames >= SQ_CKPT_INLINE_FRAMES) {
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	} else if (frames >= SQ_CKPT_FRAMES &&
		   !atomic_exchange(&u->ckpt_wanted, true)) {
		struct sq_store *s = SQS(u->user->store);
		if (s->idle_started) {
			pthread_mutex_lock(&s->idle_mu);
			s->idle_kick = true;
			pthread_cond_signal(&s->idle_cond);
			pthread_mutex_unlock(&s->idle_mu);
		}
	}
	return SQLITE_OK;
}

void sq_wal_hook_install(struct sq_user *u)
{
	/* replaces SQLite's automatic checkpoint */
	sqlite3_wal_hook(u->writer->db, wal_hook, u);
}

static void ckpt_one(struct store_user *user, void *ctx)
{
	(void)ctx;
	struct sq_user *u = SQU(user);
	if (u == NULL || !atomic_exchange(&u->ckpt_wanted, false))
		return;
	struct sq_conn *c = sq_reader_get(u, NULL);
	if (c == NULL)
		return;
	sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
				  NULL);
	sq_reader_put(u, c);
}

void sq_touch(struct sq_user *u)
{
	atomic_store(&u->last_use_ns, sq_now_ns());
}

static void stamp_mix(uint64_t *h, uint64_t v)
{
	*h = (*h ^ v) * 1099511628211ULL;
}

/* The account's directory, opened once (O_PATH: no read access, a
 * descriptor per open account) so that the stamp's two stat() calls each
 * resolve one name instead of the whole path: the lookup was two thirds
 * of their cost, and the stamp is taken at every sync. -1: no directory
 * (yet), or no descriptor to spare. */
static int stamp_dir_fd(struct sq_user *u)
{
	int fd = atomic_load(&u->dir_fd);
	if (fd >= 0)
		return fd;
	fd = open(u->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int none = -1;
	if (!atomic_compare_exchange_strong(&u->dir_fd, &none, fd)) {
		close(fd);   /* another thread's is in place */
		fd = none;
	}
	return fd;
}

/* The index as the file system shows it, as a content stamp: while the
 * WAL holds frames, the WAL alone (every commit, of any process, appends
 * to it or restarts it; a checkpoint only reads it and writes the
 * database file, so the idle thread's checkpoints leave the stamp); with
 * no WAL, or an empty one (the last connection's close deletes it, the
 * next reader makes it again, empty), the database file. The database's
 * inode is in both: an index put in place of another is another stamp. */
static uint64_t stamp_raw(const struct stat *db, const struct stat *wal)
{
	uint64_t h = 14695981039346656037ULL;
	stamp_mix(&h, (uint64_t)db->st_ino);
	if (wal != NULL) {
		stamp_mix(&h, 1);
		stamp_mix(&h, (uint64_t)wal->st_ino);
		stamp_mix(&h, (uint64_t)wal->st_size);
		stamp_mix(&h, (uint64_t)wal->st_mtim.tv_sec);
		stamp_mix(&h, (uint64_t)wal->st_mtim.tv_nsec);
	} else {
		stamp_mix(&h, (uint64_t)db->st_size);
		stamp_mix(&h, (uint64_t)db->st_mtim.tv_sec);
		stamp_mix(&h, (uint64_t)db->st_mtim.tv_nsec);
	}
	return h != 0 ? h : 1;
}

/* What a raw stamp reads as: the idle trim's close of the last
 * connection moves the files from "WAL with frames" to "database alone"
 * without changing a byte of content; stamp_hold_end recorded that. */
static uint64_t stamp_alias(struct sq_user *u, uint64_t raw)
{
	pthread_mutex_lock(&u->stamp_mu);
	if (raw == u->stamp_alias_raw)
		raw = u->stamp_alias_to;
	pthread_mutex_unlock(&u->stamp_mu);
	return raw;
}

uint64_t sq_change_stamp(struct store_user *user)
{
	struct sq_user *u = SQU(user);
	struct stat db, wal;
	int dfd = stamp_dir_fd(u);
	if (dfd < 0)
		return 0;
	bool frames = fstatat(dfd, "index.db-wal", &wal, 0) == 0 &&
		      wal.st_size > 0;
	if (fstatat(dfd, "index.db", &db, 0) < 0)
		return 0;
	return stamp_alias(u, stamp_raw(&db, frames ? &wal : NULL));
}

/* The stamp across the trim's close. Taken after the trim's checkpoint,
 * with the connections still open: the WAL (a descriptor kept on it, so
 * that its last state can be read after the close deletes it) and the
 * database file. */
struct stamp_hold {
	int wal_fd;
	struct stat wal, db;
	uint64_t before;
};

static bool stamp_hold_begin(struct sq_user *u, struct stamp_hold *h)
{
	int dfd = stamp_dir_fd(u);
	if (dfd < 0)
		return false;
	h->wal_fd = openat(dfd, "index.db-wal", O_RDONLY | O_CLOEXEC);
	if (h->wal_fd < 0)
		return false;
	if (fstat(h->wal_fd, &h->wal) < 0 || h->wal.st_size == 0 ||
	    fstatat(dfd, "index.db", &h->db, 0) < 0) {
		close(h->wal_fd);
		return false;   /* no frames: the close changes nothing */
	}
	h->before = stamp_alias(u, stamp_raw(&h->db, &h->wal));
	return true;
}

static bool same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* After the close: if it deleted the WAL, and neither the WAL (up to its
 * deletion: another process's commit before it) nor the database file
 * (the close had nothing left to checkpoint; another process's commit
 * and close after it rewrites the file) moved since stamp_hold_begin,
 * the files now show the content that was there before: the new raw
 * stamp reads as the old one. Otherwise the stamp moves, and the views
 * read once more (the safe side). */
static void stamp_hold_end(struct sq_user *u, struct stamp_hold *h)
{
	int dfd = stamp_dir_fd(u);
	struct stat wal, db;
	if (fstatat(dfd, "index.db-wal", &wal, 0) == 0 && wal.st_size > 0)
		goto out;   /* not the last connection: the stamp is as it was */
	if (fstat(h->wal_fd, &wal) < 0 || !same_file_state(&wal, &h->wal) ||
	    fstatat(dfd, "index.db", &db, 0) < 0 ||
	    !same_file_state(&db, &h->db))
		goto out;
	uint64_t raw = stamp_raw(&db, NULL);
	pthread_mutex_lock(&u->stamp_mu);
	u->stamp_alias_raw = raw;
	u->stamp_alias_to = h->before;
	pthread_mutex_unlock(&u->stamp_mu);
out:
	close(h->wal_fd);
}

/* Gives back what an idle account holds; 1 if it held anything. *kept_r:
 * something was in use meanwhile (a reader out, a batch in the writer)
 * and comes back to the account afterwards, so the account is not done. */
static int trim_user(struct sq_user *u, bool *kept_r)
{
	pthread_mutex_lock(&u->readers_mu);
	struct sq_conn *readers = u->readers;
	u->readers = NULL;
	*kept_r = u->readers_out > 0;
	pthread_mutex_unlock(&u->readers_mu);
	/* The writer is used only by a batch's leader, and becoming leader
	 * takes mu: holding it with no leader and no queue, nobody is in
	 * the writer. Taken away then, the next leader opens another
	 * (sq_writer_open); closed outside mu, so a delivery meanwhile
	 * does not wait. */
	pthread_mutex_lock(&u->mu);
	struct sq_conn *writer = NULL;
	if (!u->leader && u->queue == NULL) {
		writer = u->writer;
		u->writer = NULL;
	} else {
		*kept_r = true;
	}
	pthread_mutex_unlock(&u->mu);
	if (readers == NULL && writer == NULL)
		return 0;
	/* The last connection's close checkpoints the WAL and deletes it.
	 * Checkpointed first, the close has nothing to write to the
	 * database file, and the change stamp can be carried across it
	 * (stamp_hold_end): the sessions' IDLE keepalives then leave the
	 * closed index closed instead of each reading it once more. */
	struct sq_conn *any = writer != NULL ? writer : readers;
	sqlite3_wal_checkpoint_v2(any->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
				  NULL, NULL);
	struct stamp_hold h;
	bool held = !*kept_r && stamp_hold_begin(u, &h);
	while (readers != NULL) {
		struct sq_conn *c = readers;
		readers = c->next;
		sq_conn_close(c);
	}
	sq_conn_close(writer);
	if (held)
		stamp_hold_end(u, &h);
	return 1;
}

struct trim_round {
	int64_t idle_since;
	unsigned trimmed;
};

static void trim_one(struct store_user *user, void *ctx)
{
	struct trim_round *r = ctx;
	struct sq_user *u = SQU(user);
	if (u == NULL)
		return;
	int64_t last = atomic_load(&u->last_use_ns);
	if (last > r->idle_since || last == atomic_load(&u->trimmed_use_ns))
		return;
	/* space expunged mail left in the index, a few bounded steps
	 * (their commits count as a use: the next ones come after the
	 * account has been idle again) */
	bool more = sq_compact_idle(u);
	/* Done until the next use, unless a compaction has more to do or
	 * something was in use during the trim: a reader that was out goes
	 * back to the pool after it, a batch leaves the writer open; a use
	 * that began meanwhile moved last_use_ns past the mark. (A flag
	 * set here and cleared by sq_touch lost a use that began during
	 * the trim, and its reader stayed pooled until the next use.) */
	last = atomic_load(&u->last_use_ns);
	bool kept;
	if (trim_user(u, &kept) > 0)
		r->trimmed++;
	if (!more && !kept)
		atomic_store(&u->trimmed_use_ns, last);
}

/* Free bytes in malloc's arenas after the last malloc_trim (mallinfo2's
 * fordblks: it counts the pages given back too, so the mark, not zero,
 * is the level to compare with); only the idle thread (and tests) touch
 * it. */
static size_t heap_free_mark;
_Atomic uint64_t sq_heap_trims;

/* What a trim is worth beside the accounts': memory freed by what is not
 * an account's index (sessions that logged out after their accounts'
 * trim, TLS handshakes, a big FETCH's buffers) stays in the arenas
 * until something calls malloc_trim, and with every account already
 * trimmed nothing did: a server that was busy an hour ago kept it. */
#define SQ_HEAP_FREED_TRIM ((size_t)4 << 20)

static void heap_trim(void)
{
	sq_mem_release();
	malloc_trim(0);   /* every arena: each worker thread's too */
	heap_free_mark = mallinfo2().fordblks;
	atomic_fetch_add(&sq_heap_trims, 1);
}

/* One round: every account idle long enough; then the heap, if an
 * account gave something back or 4 MiB more are free than after the
 * last trim. */
unsigned sq_idle_trim(struct store *store, int64_t idle_ns)
{
	struct trim_round r = {sq_now_ns() - idle_ns, 0};
	store_users_foreach(store, trim_one, &r);
	if (r.trimmed > 0) {
		heap_trim();
	} else {
		size_t free_now = mallinfo2().fordblks;
		if (free_now > heap_free_mark + SQ_HEAP_FREED_TRIM)
			heap_trim();
		else if (free_now < heap_free_mark)
			heap_free_mark = free_now;   /* reused: count from here */
	}
	return r.trimmed;
}

static void *idle_main(void *arg)
{
	struct store *store = arg;
	struct sq_store *s = SQS(store);
	pthread_mutex_lock(&s->idle_mu);
	while (!s->idle_stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += SQ_IDLE_CHECK_S;
		int r = 0;
		while (!s->idle_stop && !s->idle_kick && r == 0)
			r = pthread_cond_timedwait(&s->idle_cond, &s->idle_mu,
						   &until);
		if (s->idle_stop)
			break;
		bool kicked = s->idle_kick;
		s->idle_kick = false;
		pthread_mutex_unlock(&s->idle_mu);
		if (kicked)
			store_users_foreach(store, ckpt_one, NULL);
		if (r != 0)   /* the pause is over */
			sq_idle_trim(store, (int64_t)SQ_IDLE_AFTER_S * 1000000000);
		pthread_mutex_lock(&s->idle_mu);
	}
	pthread_mutex_unlock(&s->idle_mu);
	return NULL;
}

/* glibc raises its mmap threshold to the size of each large block freed
 * (up to 32 MiB), and its trim threshold to twice that: after one big
 * message, bodies and buffers of up to that size come from the worker
 * threads' arenas instead of mmap, and the arenas' tops are no longer
 * given back. Set once, the thresholds stay (glibc's own defaults,
 * without the raising). A busy phase (MULTIAPPEND of 3,000 corpus
 * messages into a fresh server) left 26.2 MB once quiet, 23.2 MB of it
 * in thread arenas; 9.5 MB with these (2.7 in arenas); 12.7 with 256
 * KiB / 1 MiB (/work/notes/idlemem-left.py, GLIBC_TUNABLES). The cost:
 * an mmap and munmap per block past 128 KiB (large bodies). */
static void malloc_policy(void)
{
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

void sq_malloc_policy(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, malloc_policy);
}

void sq_idle_start(struct store *store)
{
	struct sq_store *s = SQS(store);
	pthread_mutex_init(&s->idle_mu, NULL);
	pthread_cond_init(&s->idle_cond, NULL);
	if (pthread_create(&s->idle_thread, NULL, idle_main, store) == 0)
		s->idle_started = true;
	else
		log_error("store", NULL, "cannot start the idle trim");
}

void sq_idle_stop(struct store *store)
{
	struct sq_store *s = SQS(store);
	if (!s->idle_started)
		return;
	pthread_mutex_lock(&s->idle_mu);
	s->idle_stop = true;
	pthread_cond_signal(&s->idle_cond);
	pthread_mutex_unlock(&s->idle_mu);
	pthread_join(s->idle_thread, NULL);
	s->idle_started = false;
	pthread_mutex_destroy(&s->idle_mu);
	pthread_cond_destroy(&s->idle_cond);
}
