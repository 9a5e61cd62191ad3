/*
 * The search indexer. A message's folded text is stored with its row, in
 * the same transaction (so search is exact at once); the trigram indexes
 * over that text are filled afterwards by this thread, in batches run as
 * jobs of the user's group commit. Batching halves the indexing cost
 * (FTS5 flushes and merges once per transaction, not once per message)
 * and keeps it off the delivery path. account.fts_upto records how far
 * the indexes reach; search scans the text rows above it.
 */
#include "sq-private.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

/* Text rows indexed per transaction: big enough to amortise FTS5's
 * per-transaction work, small enough not to hold deliveries up long. A
 * batch also ends after INDEX_BATCH_BYTES of text: the trigrams of a few
 * long texts (a big plain message is megabytes) would hold the user's
 * writer, and the deliveries queued behind it, for a second or more. */
#define INDEX_BATCH 64
#define INDEX_BATCH_BYTES (512 * 1024)

/* LOFT_TEST_INDEX_SLOW_MS=N (tests only): each batch takes one row and
 * holds the writer N ms more, so a test can make a backlog that takes
 * long to drain out of a few messages (proto/test_migrate_batch). */
static int index_slow_ms;
static pthread_once_t index_slow_once = PTHREAD_ONCE_INIT;

static void index_slow_read(void)
{
	const char *e = getenv("LOFT_TEST_INDEX_SLOW_MS");
	index_slow_ms = e != NULL ? atoi(e) : 0;
}

static const char *const fts_insert[2] = {
	"INSERT INTO text_hdr (rowid, t) VALUES (?, ?)",
	"INSERT INTO text_body (rowid, t) VALUES (?, ?)",
};
/* Adds one text row's entries (a damaged text row adds none: check
 * rebuilds it from the message). */
static int fts_row(struct sq_conn *c, int64_t id, sqlite3_stmt *src,
		   struct buf *tmp, size_t *bytes)
{
	for (int i = 0; i < 2; i++) {
		size_t len;
		const char *t = sq_text_column(src, 1 + i, tmp, &len);
		if (t == NULL)
			continue;
		*bytes += len;
		sqlite3_stmt *st = sq_stmt(c, fts_insert[i]);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, t, (int)len, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return 0;
}

/* Only the text row goes. Removing a row's trigram entries from a
 * contentless index means tokenizing its text again (as costly as adding
 * it), which would make expunging a big mailbox slow; a stale entry is
 * harmless instead: blob ids are never reused, and a candidate without a
 * text row and a message row is dropped by the search joins. store_check
 * rebuilds the index when it must, and the indexer starts it afresh when
 * stale entries outnumber live ones. */
int sq_text_delete(struct sq_user *u, struct sq_conn *c, int64_t blob)
{
	if (blob <= u->tx_fts_upto) {
		u->tx_fts_stale++;
		u->tx_dirty = true;
	}
	sqlite3_stmt *st = sq_stmt(c, "DELETE FROM text WHERE id = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, blob);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

struct index_arg {
	size_t done;
	bool more;      /* the batch ended at a limit: rows may be left */
};

/* Empties the trigram indexes: the indexer then fills them again from
 * the text rows, in batches; search stays exact meanwhile (it scans what
 * the indexes do not cover). */
int sq_fts_reset(struct sq_user *u, struct sq_conn *c)
{
	static const char *const del[] = {
		"INSERT INTO text_hdr (text_hdr) VALUES ('delete-all')",
		"INSERT INTO text_body (text_body) VALUES ('delete-all')",
	};
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st = sq_stmt(c, del[i]);
		if (st == NULL)
			return -1;
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	u->tx_fts_upto = 0;
	u->tx_fts_stale = 0;
	u->tx_dirty = true;
	return 0;
}

/* Whether stale entries (of removed messages) outnumber live ones. */
static int fts_mostly_stale(struct sq_user *u, struct sq_conn *c)
{
	if (u->tx_fts_stale < 1000)
		return 0;
	sqlite3_stmt *st = sq_stmt(c, "SELECT count(*) FROM text WHERE id <= ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, u->tx_fts_upto);
	int64_t live = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		live = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return -1;
	return u->tx_fts_stale > live;
}

static int index_job(struct sq_user *u, struct sq_conn *c, struct sq_job *job)
{
	struct index_arg *a = job->arg;
	a->done = 0;
	a->more = false;
	int stale = fts_mostly_stale(u, c);
	if (stale < 0 || (stale > 0 && sq_fts_reset(u, c) < 0))
		return sq_job_dberr(job, c);
	sqlite3_stmt *st = sq_stmt(c, "SELECT id, hdr, body FROM text"
				      " WHERE id > ? ORDER BY id LIMIT ?");
	if (st == NULL)
		return sq_job_dberr(job, c);
	sqlite3_bind_int64(st, 1, u->tx_fts_upto);
	sqlite3_bind_int(st, 2, INDEX_BATCH);
	int rc;
	int64_t last = u->tx_fts_upto;
	size_t bytes = 0;
	struct buf tmp;
	buf_init(&tmp, 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		last = sqlite3_column_int64(st, 0);
		if (fts_row(c, last, st, &tmp, &bytes) < 0) {
			sqlite3_reset(st);
			buf_free(&tmp);
			return sq_job_dberr(job, c);
		}
		a->done++;
		if (a->done == INDEX_BATCH || bytes >= INDEX_BATCH_BYTES ||
		    index_slow_ms > 0) {
			a->more = true;
			rc = SQLITE_DONE;
			break;
		}
	}
	buf_free(&tmp);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_job_dberr(job, c);
	if (last != u->tx_fts_upto) {
		u->tx_fts_upto = last;
		u->tx_dirty = true;
	}
	return 0;
}


static int index_job_slow(struct sq_user *u, struct sq_conn *c,
			  struct sq_job *job)
{
	int r = index_job(u, c, job);
	struct timespec ts = {index_slow_ms / 1000,
			      (long)(index_slow_ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	return r;
}

/* One batch: *more_r says whether rows may be left. */
static int index_batch(struct store_user *user, bool *more_r,
		       struct store_error *err)
{
	struct index_arg a;
	sq_job_fn *fn = index_slow_ms > 0 ? index_job_slow : index_job;
	if (sq_run(SQU(user), fn, &a, err) < 0)
		return -1;
	*more_r = a.more;
	return 0;
}

int sq_index_flush(struct store_user *user, struct store_error *err)
{
	bool more;
	do {
		if (index_batch(user, &more, err) < 0)
			return -1;
	} while (more);
	return 0;
}

/* ---- the thread --------------------------------------------------- */

/* Queues an account (index_mu held) unless it is queued already. */
static bool index_queue_add(struct sq_store *s, int64_t user_id)
{
	for (size_t i = 0; i < s->index_count; i++)
		if (s->index_queue[i] == user_id)
			return false;
	if (s->index_count == s->index_cap) {
		s->index_cap = s->index_cap ? s->index_cap * 2 : 16;
		s->index_queue = xrealloc(s->index_queue,
					  s->index_cap * sizeof(int64_t));
	}
	s->index_queue[s->index_count++] = user_id;
	return true;
}

void sq_indexer_kick(struct store *store, int64_t user_id)
{
	struct sq_store *s = SQS(store);
	/* loftd indexes what this process writes (store_index_elsewhere) */
	if (store->index_elsewhere)
		return;
	pthread_mutex_lock(&s->index_mu);
	s->index_last_kick_ns = metrics_now_ns();
	if (index_queue_add(s, user_id))
		pthread_cond_signal(&s->index_cond);
	pthread_mutex_unlock(&s->index_mu);
}

/* A MULTIAPPEND stream's text is indexed once the stream pauses for
 * INDEX_BULK_QUIET_MS (and at least every INDEX_BULK_MAX_MS): indexing
 * it as it came was a quarter of the CPU of a big fill, on the cores its
 * commands needed, and its batches held the writer their commits waited
 * for. SEARCH is exact meanwhile (text rows above fts_upto are read). */
#define INDEX_BULK_QUIET_MS 2000
#define INDEX_BULK_MAX_MS (10 * 60 * 1000)

static bool index_deferred(struct sq_user *u)
{
	uint64_t now = metrics_now_ns();
	uint64_t last = atomic_load(&u->bulk_ns);
	if (last == 0 || now - last >= INDEX_BULK_QUIET_MS * 1000000ull ||
	    (u->bulk_defer_since_ns != 0 &&
	     now - u->bulk_defer_since_ns >= INDEX_BULK_MAX_MS * 1000000ull)) {
		u->bulk_defer_since_ns = 0;
		return false;
	}
	if (u->bulk_defer_since_ns == 0)
		u->bulk_defer_since_ns = now;
	return true;
}

/* A round takes the users queued at its start, after this pause, so
 * while deliveries keep coming each account is indexed at most about
 * once per pause and its batch holds every message of the pause. With
 * a pause only after an empty queue, a steady stream over many accounts
 * gave batches of one or two messages, and FTS5's per-transaction flush
 * made the indexer a sixth of loftd's CPU under LMTP load (bench, perf). */
#define INDEX_PAUSE_MS 250
/* Past the pause, a round also waits for INDEX_QUIET_MS without a new
 * message, for at most INDEX_MAX_WAIT_MS after the pause began. Indexing
 * is most of the CPU a big delivery costs (trigrams of every copy's
 * text, in every recipient's index; perf of the bench's corpus case:
 * 58 % of loftd's CPU in the indexer while deliveries ran) and an index
 * job holds the user's writer; during a burst, deliveries get the CPU
 * and the writer, and the indexes catch up when it ends. Search stays
 * exact meanwhile (rows above fts_upto are scanned), and under a load
 * that never pauses each account is still indexed every few seconds. */
#define INDEX_QUIET_MS 400
#define INDEX_MAX_WAIT_MS 5000

static bool index_wait_until(struct sq_store *s, uint64_t until_ns)
{
	uint64_t now = metrics_now_ns();
	if (now >= until_ns)
		return false;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t d = until_ns - now;
	ts.tv_sec += (time_t)(d / 1000000000u);
	ts.tv_nsec += (long)(d % 1000000000u);
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&s->index_cond, &s->index_mu, &ts);
	return !s->index_stop;
}

/* Waits (index_mu held) for the pause and then for a quiet moment,
 * unless asked to stop. */
static void index_pause(struct sq_store *s)
{
	uint64_t start = metrics_now_ns();
	uint64_t pause_end = start + INDEX_PAUSE_MS * 1000000ull;
	uint64_t latest = start + INDEX_MAX_WAIT_MS * 1000000ull;
	while (index_wait_until(s, pause_end))
		;
	for (;;) {
		uint64_t quiet_at = s->index_last_kick_ns +
				    INDEX_QUIET_MS * 1000000ull;
		uint64_t until = quiet_at < latest ? quiet_at : latest;
		if (!index_wait_until(s, until))
			break;
	}
}

/* A round runs one batch per queued account; an account with rows left
 * goes to the back of the queue, and the next round begins after a
 * short gap instead of the pause: INDEX_YIELD_MS plus a quarter of what
 * the round's batches took (at most INDEX_YIELD_MAX_MS). In that gap
 * another process's writer (loftctl import, restore, user show), which
 * only has SQLite's busy wait (sq_busy, sq-db.c: a try every few ms),
 * takes the account's write lock. Back to back, the drain of a big
 * import's backlog (minutes) kept such a writer out until its 30 s
 * busy wait ran out ("database is locked"). loftd's own writers queue
 * with the batches in the group commit and need no gap. Under load the
 * gap grows with the batches (the waiting process needs the CPU too).
 * Accounts kicked meanwhile join those rounds; once no account has rows
 * left, rounds wait for the pause again. */
#define INDEX_YIELD_MS 10
#define INDEX_YIELD_MAX_MS 250

static void index_yield(struct sq_store *s, uint64_t held_ns)
{
	uint64_t gap = INDEX_YIELD_MS * 1000000ull + held_ns / 4;
	if (gap > INDEX_YIELD_MAX_MS * 1000000ull)
		gap = INDEX_YIELD_MAX_MS * 1000000ull;
	uint64_t until = metrics_now_ns() + gap;
	while (index_wait_until(s, until))
		;
}

static void *indexer_main(void *arg)
{
	struct store *store = arg;
	struct sq_store *s = SQS(store);
	size_t round_left = 0;
	uint64_t held_ns = 0;  /* what the last round's batches took */
	bool backlog = false;  /* and whether it left rows somewhere */
	pthread_mutex_lock(&s->index_mu);
	for (;;) {
		while (s->index_count == 0 && !s->index_stop)
			pthread_cond_wait(&s->index_cond, &s->index_mu);
		if (s->index_stop)
			break;
		if (round_left == 0) {
			if (backlog)
				index_yield(s, held_ns);
			else
				index_pause(s);
			if (s->index_stop)
				break;
			held_ns = 0;
			backlog = false;
			round_left = s->index_count;
			if (round_left == 0)
				continue;
		}
		round_left--;
		int64_t id = s->index_queue[0];
		memmove(s->index_queue, s->index_queue + 1,
			--s->index_count * sizeof(int64_t));
		pthread_mutex_unlock(&s->index_mu);

		struct store_user *user;
		struct store_error err;
		bool more = false, deferred = false;
		uint64_t t0 = metrics_now_ns();
		/* only an account this side serves (with both backends: not
		 * one a move is making or removing here) */
		if (store_user_open_served(store, id, &user, &err) == 0) {
			deferred = index_deferred(SQU(user));
			if (!deferred && index_batch(user, &more, &err) < 0)
				log_warn("store", NULL, "indexing user %lld: %s",
					 (long long)id, err.msg);
			store_user_unref(&user);
		} else if (err.kind == STORE_ERR_UNAVAILABLE) {
			/* locked for a move that may yet fail */
			deferred = true;
		}
		held_ns += metrics_now_ns() - t0;
		pthread_mutex_lock(&s->index_mu);
		if (more) {
			index_queue_add(s, id);
			backlog = true;
		} else if (deferred) {
			/* looked at again after the next pause */
			index_queue_add(s, id);
		}
	}
	pthread_mutex_unlock(&s->index_mu);
	return NULL;
}

void sq_indexer_start(struct store *store)
{
	struct sq_store *s = SQS(store);
	pthread_once(&index_slow_once, index_slow_read);
	pthread_mutex_init(&s->index_mu, NULL);
	pthread_cond_init(&s->index_cond, NULL);
	if (pthread_create(&s->indexer, NULL, indexer_main, store) == 0)
		s->indexer_started = true;
	else
		log_error("store", NULL, "cannot start the search indexer");
}

void sq_indexer_stop(struct store *store)
{
	struct sq_store *s = SQS(store);
	if (!s->indexer_started)
		return;
	pthread_mutex_lock(&s->index_mu);
	s->index_stop = true;
	pthread_cond_signal(&s->index_cond);
	pthread_mutex_unlock(&s->index_mu);
	pthread_join(s->indexer, NULL);
	s->indexer_started = false;
	pthread_mutex_destroy(&s->index_mu);
	pthread_cond_destroy(&s->index_cond);
	free(s->index_queue);
	s->index_queue = NULL;
}
