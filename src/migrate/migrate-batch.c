/*
 * Messages into the store in batches: the drivers (Maildir, mbox, IMAP,
 * POP3, restore) queue each finished body with migrate_msg_commit, and a
 * batch goes to store_import_append_batch as one commit (one commit per
 * message was most of an import's time; the store's group commit makes
 * a batch one WAL sync, and its large bodies' directory syncs go to the
 * fsync pool together). Resume marks commit with their messages, so a
 * run killed -9 leaves whole messages only and the next run continues
 * after the last committed batch.
 *
 * A pipeline over the machine's cores. Bodies come written but not
 * finished (store_body_finish: MIME analysis, search text folded and
 * compressed, most of an import's CPU): each is handed to a pool of
 * finishing threads, as many as the cores this process may use, the
 * moment it is queued, while the driver's thread goes on reading the
 * source (files, an mbox, an IMAP connection). Two batches at most are
 * in flight: the one being filled and the one sealed before it, which
 * is committed by the driver's thread as soon as its bodies are
 * finished (or when the next one is full), so reading, analysing and
 * committing overlap. Memory stays bounded: at most two batches of
 * BATCH_MESSAGES / BATCH_BYTES (a large body is a spill file, not
 * memory). A batch is sealed after SEAL_AFTER_NS even when not full, so
 * a slow source's messages still reach IDLE clients within a second.
 * Before (one thread read a whole batch, then finished it on two
 * threads, then committed it) the cores idled while the reader read and
 * the commit wrote.
 *
 * After the commit each message is counted or reported here; a message
 * whose kept ids are taken (other mail reached the folder, an EMAILID in
 * use) is added again alone with new ones, and one whose POP3 UIDL Loft
 * cannot give is added without it. Over quota the import stops at that
 * message: the later ones of its batch, and the batch filled after it,
 * are not tried (the next run resumes there).
 */
#include "migrate-private.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define BATCH_MESSAGES 128
#define BATCH_BYTES (8u * 1024 * 1024)
#define POOL_MAX 16
#define SEAL_AFTER_NS (500 * 1000000ull)

struct batch;

struct queued {
	struct store_body *body;
	char *folder, *label, *pop3_uidl, *mark_source, *mark_id;
	char *mark_renumbered;
	char **keywords;
	size_t keyword_count;
	uint64_t size;
	struct batch *batch;
	int finish_ret;               /* store_body_finish's */
	struct store_error finish_err;
};

struct batch {
	struct queued q[BATCH_MESSAGES];
	struct store_import_item items[BATCH_MESSAGES];
	size_t n;
	uint64_t bytes;
	uint64_t first_ns;            /* when its first message came */
	size_t finished;              /* bodies finished (pool.mu) */
};

/* The bodies waiting for a finishing thread, in queue order: those of
 * the sealed batch, then the filling one's (2 * BATCH_MESSAGES at most) */
#define RING (2 * BATCH_MESSAGES)

struct migrate_batch {
	struct batch *fill, *sealed, *spare;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct queued *ring[RING];
	size_t head, count;
	bool stop;
	pthread_t tids[POOL_MAX];
	size_t threads;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Finishes one body; the caller holds nothing. */
static void finish_one(struct migrate_batch *mb, struct queued *q)
{
	q->finish_ret = store_body_finish(q->body, &q->finish_err);
	pthread_mutex_lock(&mb->mu);
	q->batch->finished++;
	pthread_cond_broadcast(&mb->done);
	pthread_mutex_unlock(&mb->mu);
}

/* The next queued body (mb->mu held), or NULL. */
static struct queued *take(struct migrate_batch *mb)
{
	if (mb->count == 0)
		return NULL;
	struct queued *q = mb->ring[mb->head];
	mb->head = (mb->head + 1) % RING;
	mb->count--;
	return q;
}

static void *finisher(void *arg)
{
	struct migrate_batch *mb = arg;
	pthread_mutex_lock(&mb->mu);
	for (;;) {
		struct queued *q = take(mb);
		if (q == NULL) {
			if (mb->stop)
				break;
			pthread_cond_wait(&mb->work, &mb->mu);
			continue;
		}
		pthread_mutex_unlock(&mb->mu);
		finish_one(mb, q);
		pthread_mutex_lock(&mb->mu);
	}
	pthread_mutex_unlock(&mb->mu);
	return NULL;
}

/* As many finishing threads as cores this process may run on. */
static size_t pool_size(void)
{
	cpu_set_t set;
	long n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > POOL_MAX ? POOL_MAX : (size_t)n;
}

static struct migrate_batch *pipeline_start(void)
{
	struct migrate_batch *mb = xcalloc(1, sizeof(*mb));
	pthread_mutex_init(&mb->mu, NULL);
	pthread_cond_init(&mb->work, NULL);
	pthread_cond_init(&mb->done, NULL);
	mb->fill = xcalloc(1, sizeof(*mb->fill));
	/* loftctl is a batch process: glibc's own growing thresholds (up
	 * to 32 MiB, trim at twice that) instead of the 128 KiB the store
	 * sets for an idle loftd (sq-idle.c), whose mmap and munmap of
	 * every body and text buffer past 128 KiB, with their page
	 * faults, were a fifth of an import's CPU */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	size_t want = pool_size();
	for (; mb->threads < want; mb->threads++)
		if (pthread_create(&mb->tids[mb->threads], NULL, finisher,
				   mb) != 0)
			break;   /* fewer: the driver's thread helps */
	return mb;
}

/* Until every body of b is finished; the caller's thread finishes
 * queued bodies meanwhile (all of them when no thread could start). */
static void wait_finished(struct migrate_batch *mb, struct batch *b)
{
	pthread_mutex_lock(&mb->mu);
	while (b->finished < b->n) {
		struct queued *q = take(mb);
		if (q != NULL) {
			pthread_mutex_unlock(&mb->mu);
			finish_one(mb, q);
			pthread_mutex_lock(&mb->mu);
			continue;
		}
		pthread_cond_wait(&mb->done, &mb->mu);
	}
	pthread_mutex_unlock(&mb->mu);
}

static bool is_finished(struct migrate_batch *mb, struct batch *b)
{
	pthread_mutex_lock(&mb->mu);
	bool r = b->finished >= b->n;
	pthread_mutex_unlock(&mb->mu);
	return r;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void queued_free(struct queued *q)
{
	store_body_unref(&q->body);
	free(q->folder);
	free(q->label);
	free(q->pop3_uidl);
	free(q->mark_source);
	free(q->mark_id);
	free(q->mark_renumbered);
	for (size_t i = 0; i < q->keyword_count; i++)
		free(q->keywords[i]);
	free(q->keywords);
	memset(q, 0, sizeof(*q));
}

/* After the batch: a failed message alone again, with new ids or
 * without its UIDL, when the failure says that helps; the final result
 * in it. */
static void retry_alone(struct migrate *m, struct store_import_item *it,
			const struct queued *q)
{
	struct store_import_params *p = &it->p;
	enum store_error_kind k = it->err.kind;
	if (k == STORE_ERR_QUOTA || k == STORE_ERR_TEMP ||
	    strncmp(it->err.msg, "Already", 7) == 0)
		return;
	if (k != STORE_ERR_INVALID && (p->uid != 0 || p->email != 0)) {
		/* ids taken (other mail reached the folder, the Email is
		 * another's): added with new ones */
		bool had_uid = p->uid != 0;
		if (had_uid && q->mark_renumbered != NULL)
			p->mark_id = q->mark_renumbered;
		p->uid = 0;
		p->email = p->thread = 0;
		p->modseq = 0;
		it->ret = store_import_append(m->user, it->mailbox, it->body, p,
					      &it->uid, &it->err);
		if (it->ret == 0 && had_uid && m->cur != NULL)
			m->cur->renumbered++;
	}
	if (it->ret < 0 && it->err.kind == STORE_ERR_INVALID &&
	    p->pop3_uidl != NULL) {
		/* a UIDL Loft cannot give: the message without it */
		migrate_error(m, q->folder, q->label, "POP3 UIDL not kept: %s",
			      it->err.msg);
		p->pop3_uidl = NULL;
		it->ret = store_import_append(m->user, it->mailbox, it->body, p,
					      &it->uid, &it->err);
	}
}

static void count_failed(struct migrate *m)
{
	m->failed++;
	if (m->cur != NULL)
		m->cur->failed++;
}

/* A batch the store could not take at all (every item TEMP: its BEGIN
 * or COMMIT failed, the index busy past SQLite's 30 s wait) is tried
 * again after a pause, up to TEMP_TRIES times. Another process's writer
 * can hold an account that long: loftd's indexer, catching up on what
 * an import added once loftd opened the account, runs its batches back
 * to back and a waiting writer elsewhere seldom gets in between. */
#define TEMP_TRIES 6

static bool all_temp(const struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].ret == 0 ||
		    b->items[i].err.kind != STORE_ERR_TEMP)
			return false;
	return b->n > 0;
}

/* Empties b for the next messages (its bodies freed). */
static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		queued_free(&b->q[i]);
	b->n = 0;
	b->bytes = 0;
	b->first_ns = 0;
	b->finished = 0;
}

static void commit_batch(struct migrate *m, struct batch *b)
{
	store_import_append_batch(m->user, b->items, b->n);
	for (unsigned t = 0; t < TEMP_TRIES && all_temp(b); t++) {
		sleep(t < 4 ? 1u << t : 15);
		store_import_append_batch(m->user, b->items, b->n);
	}
}

/* The modseqs this commit's messages got, as one mark of their own
 * (one more commit per batch): a restore killed before it finishes a
 * folder finds them on its rerun (migrate-backup.c). Killed before this
 * mark, those messages keep the counter's modseqs. */
static void got_mark(struct migrate *m, size_t from)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = from; i < m->got_n; i++)
		buf_printf(&b, "%s%u=%llu", b.len ? "," : "", m->got[i].uid,
			   (unsigned long long)m->got[i].modseq);
	char *id = buf_steal(&b, NULL);
	struct store_error err;
	if (store_import_mark_add(m->user, m->got_mark_source, id, &err) < 0)
		migrate_error(m, m->cur != NULL ? m->cur->name : NULL, NULL,
			      "the modseqs of a commit not kept for a rerun:"
			      " %s", err.msg);
	free(id);
}

/* Commits b, whose bodies are finished, and reports each message;
 * empties b. */
static void commit_finished(struct migrate *m, struct batch *b)
{
	/* a body that could not be finished is reported and left out; the
	 * rest keep their order */
	size_t kept = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct queued *q = &b->q[i];
		if (q->finish_ret < 0) {
			migrate_error(m, q->folder, q->label, "%s",
				      q->finish_err.msg);
			count_failed(m);
			queued_free(q);
			continue;
		}
		if (kept != i) {
			b->q[kept] = *q;
			b->items[kept] = b->items[i];
			memset(q, 0, sizeof(*q));
		}
		kept++;
	}
	b->n = kept;
	if (!m->quota_stop)
		commit_batch(m, b);
	bool stored = false;
	size_t got_from = m->got_n;
	for (size_t i = 0; i < b->n; i++) {
		struct store_import_item *it = &b->items[i];
		struct queued *q = &b->q[i];
		if (m->quota_stop)
			break;   /* not tried: the next run resumes there */
		if (it->ret < 0)
			retry_alone(m, it, q);
		if (it->ret == 0) {
			stored = true;
			migrate_count(m, q->size, true);
			if (m->got_record && it->p.uid != 0 &&
			    it->uid == it->p.uid) {
				if (m->got_n == m->got_cap) {
					m->got_cap = m->got_cap ? m->got_cap * 2
								: 256;
					m->got = xrealloc(m->got, m->got_cap *
								  sizeof(*m->got));
				}
				m->got[m->got_n++] = (struct migrate_got){
					it->uid, it->modseq};
			}
		} else if (it->err.kind == STORE_ERR_EXISTS) {
			m->skipped++;
			if (m->cur != NULL)
				m->cur->skipped++;
		} else if (it->err.kind == STORE_ERR_QUOTA) {
			migrate_error(m, q->folder, q->label, "over quota:"
				      " nothing more imported; the next run"
				      " resumes at this message");
			count_failed(m);
			m->quota_stop = true;
		} else {
			migrate_error(m, q->folder, q->label, "%s",
				      it->err.msg);
			count_failed(m);
		}
	}
	if (m->got_mark_source != NULL && m->got_n > got_from)
		got_mark(m, got_from);
	batch_clear(b);
	if (stored && m->committed != NULL)
		m->committed(m->account_ctx, m->user);
}

/* Waits for b's bodies, then commits it (after a quota stop: only
 * drops it, not tried). */
static void commit_when_finished(struct migrate *m, struct batch *b)
{
	struct migrate_batch *mb = m->batch;
	wait_finished(mb, b);
	if (m->quota_stop) {
		batch_clear(b);
		return;
	}
	commit_finished(m, b);
}

/* Commits the sealed batch (waiting for its bodies), then seals the
 * filling one: its bodies finish while the driver reads on. */
static void seal(struct migrate *m)
{
	struct migrate_batch *mb = m->batch;
	if (mb->sealed != NULL) {
		commit_when_finished(m, mb->sealed);
		mb->spare = mb->sealed;
		mb->sealed = NULL;
	}
	if (mb->fill->n == 0)
		return;
	mb->sealed = mb->fill;
	mb->fill = mb->spare != NULL ? mb->spare
				     : xcalloc(1, sizeof(*mb->fill));
	mb->spare = NULL;
}

int migrate_msg_flush(struct migrate *m)
{
	struct migrate_batch *mb = m->batch;
	if (mb == NULL)
		return m->quota_stop ? -2 : 0;
	seal(m);   /* commits the sealed one, seals the filling one */
	seal(m);   /* commits that */
	return m->quota_stop ? -2 : 0;
}

int migrate_msg_commit(struct migrate *m, struct store_body **body,
		       const struct migrate_msg *in, bool keep_uids)
{
	if (m->quota_stop) {
		store_body_unref(body);
		return -2;
	}
	if (m->batch == NULL)
		m->batch = pipeline_start();
	struct migrate_batch *mb = m->batch;
	struct batch *b = mb->fill;
	struct queued *q = &b->q[b->n];
	memset(q, 0, sizeof(*q));
	q->body = *body;
	*body = NULL;
	q->batch = b;
	q->folder = xstrdup(in->folder);
	q->label = dup_or_null(in->label);
	q->pop3_uidl = dup_or_null(in->pop3_uidl);
	q->mark_source = dup_or_null(in->mark_source);
	q->mark_id = dup_or_null(in->mark_id);
	q->mark_renumbered = dup_or_null(in->mark_renumbered);
	q->size = in->size;
	if (in->keyword_count > 0) {
		q->keywords = xcalloc(in->keyword_count, sizeof(char *));
		for (size_t i = 0; i < in->keyword_count; i++)
			q->keywords[i] = xstrdup(in->keywords[i]);
		q->keyword_count = in->keyword_count;
	}
	struct store_import_item *it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->mailbox = q->folder;
	it->body = q->body;
	it->p.append.flags = in->flags;
	it->p.append.keywords = (const char *const *)q->keywords;
	it->p.append.keyword_count = q->keyword_count;
	it->p.append.internaldate = in->date;
	it->p.uid = keep_uids ? in->uid : 0;
	it->p.modseq = keep_uids ? in->modseq : 0;
	it->p.email = in->email;
	it->p.thread = in->thread;
	it->p.savedate = in->savedate;
	it->p.pop3_uidl = q->pop3_uidl;
	it->p.pop3_hidden = in->pop3_hidden;
	it->p.pop3_first_retr = in->pop3_first_retr;
	it->p.mark_source = q->mark_source;
	it->p.mark_id = q->mark_id;
	uint64_t now = mono_ns();
	if (b->n == 0)
		b->first_ns = now;
	b->bytes += in->size;
	/* to a finishing thread now */
	pthread_mutex_lock(&mb->mu);
	b->n++;
	mb->ring[(mb->head + mb->count) % RING] = q;
	mb->count++;
	pthread_cond_signal(&mb->work);
	pthread_mutex_unlock(&mb->mu);
	/* the sealed batch is committed as soon as it is ready; the
	 * filling one is sealed when full, or old enough that its first
	 * messages would wait too long to be seen */
	if (mb->sealed != NULL && is_finished(mb, mb->sealed)) {
		commit_when_finished(m, mb->sealed);
		mb->spare = mb->sealed;
		mb->sealed = NULL;
	}
	if (b->n >= BATCH_MESSAGES || b->bytes >= BATCH_BYTES ||
	    now - b->first_ns >= SEAL_AFTER_NS)
		seal(m);
	return m->quota_stop ? -2 : 0;
}

static void batch_drop(struct migrate_batch *mb, struct batch **bp)
{
	struct batch *b = *bp;
	if (b == NULL)
		return;
	wait_finished(mb, b);
	for (size_t i = 0; i < b->n; i++)
		queued_free(&b->q[i]);
	free(b);
	*bp = NULL;
}

void migrate_batch_free(struct migrate *m)
{
	free(m->got);
	m->got = NULL;
	m->got_n = m->got_cap = 0;
	struct migrate_batch *mb = m->batch;
	if (mb == NULL)
		return;
	batch_drop(mb, &mb->sealed);
	batch_drop(mb, &mb->fill);
	batch_drop(mb, &mb->spare);
	pthread_mutex_lock(&mb->mu);
	mb->stop = true;
	pthread_cond_broadcast(&mb->work);
	pthread_mutex_unlock(&mb->mu);
	for (size_t i = 0; i < mb->threads; i++)
		pthread_join(mb->tids[i], NULL);
	pthread_cond_destroy(&mb->work);
	pthread_cond_destroy(&mb->done);
	pthread_mutex_destroy(&mb->mu);
	free(mb);
	m->batch = NULL;
}
