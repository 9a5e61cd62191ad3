/*
 * One read of a mailbox's changes for the many views that ask at once
 * (the view_delta entry of the postgres backend). A change wakes every
 * session of the account that has the mailbox selected, on this node and
 * on every other (pg-hub.c), and each resyncs its view: the same question
 * ("what changed in mailbox m since modseq s?") asked by each session in
 * its own transaction, seven statements each, one session after another
 * on the pool. Here the views asking the same question share one read:
 *
 *  - a read that is running began before a newcomer asked, so it may miss
 *    a commit the newcomer's client already knows of (APPENDUID from
 *    another node): the newcomer waits for the next read, never takes the
 *    running one's answer;
 *  - the next read starts once the running one ended, and serves everyone
 *    who asked meanwhile.
 * Each answer is therefore at least as new as the moment it was asked for,
 * as if the view had read alone; twenty sessions woken together make two
 * reads instead of twenty. A few slots per account (a mailbox and a modseq
 * each); a question that finds every slot busy with another reads alone.
 * An answer is kept only while someone still has to copy it.
 */
#include "pg-private.h"
#include "pg-rows.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* One read's answer, copied out by each view that waited for it. */
struct delta_answer {
	int refs;                  /* under the share's mu */
	int ret;
	struct store_error err;
	struct store_mailbox_info info;
	uint32_t *expunged;
	size_t nexp;
	bool complete;
	struct store_msg *msgs;    /* keywords: their own copies */
	size_t count, cap;
};

struct delta_slot {
	uint32_t mailbox_id;
	uint64_t since;
	uint64_t started, done;    /* reads begun, the last one finished */
	bool running;
	unsigned waiters;
	struct delta_answer *answer;   /* of read `done` */
};

#define DELTA_SLOTS 4

struct pg_delta_share {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct delta_slot slots[DELTA_SLOTS];
};

struct pg_delta_share *pg_delta_share_new(void)
{
	struct pg_delta_share *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	return s;
}

static void answer_unref(struct delta_answer **ap)
{
	struct delta_answer *a = *ap;
	*ap = NULL;
	if (a == NULL || --a->refs > 0)
		return;
	if (a->ret == 0)
		store_mailbox_info_free(&a->info);
	free(a->expunged);
	for (size_t i = 0; i < a->count; i++) {
		for (size_t k = 0; k < a->msgs[i].keyword_count; k++)
			free((char *)a->msgs[i].keywords[k]);
		free((void *)a->msgs[i].keywords);
	}
	free(a->msgs);
	free(a);
}

void pg_delta_share_free(struct pg_delta_share **sp)
{
	struct pg_delta_share *s = *sp;
	*sp = NULL;
	if (s == NULL)
		return;
	for (size_t i = 0; i < DELTA_SLOTS; i++)
		answer_unref(&s->slots[i].answer);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void answer_changed(void *ctx, const struct store_msg *msg)
{
	struct delta_answer *a = ctx;
	if (a->count == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->msgs = xrealloc(a->msgs, a->cap * sizeof(*a->msgs));
	}
	/* what a view's sync takes of a changed message (store-view.c) */
	struct store_msg *m = &a->msgs[a->count++];
	memset(m, 0, sizeof(*m));
	m->uid = msg->uid;
	m->modseq = msg->modseq;
	m->flags = msg->flags;
	m->size = msg->size;
	m->internaldate = msg->internaldate;
	m->savedate = msg->savedate;
	memcpy(m->emailid, msg->emailid, sizeof(m->emailid));
	memcpy(m->threadid, msg->threadid, sizeof(m->threadid));
	m->keyword_count = msg->keyword_count;
	const char **kw = xcalloc(msg->keyword_count + 1, sizeof(char *));
	for (size_t i = 0; i < msg->keyword_count; i++)
		kw[i] = xstrdup(msg->keywords[i]);
	m->keywords = kw;
}

/* The read itself, outside the share's lock. */
static struct delta_answer *answer_read(struct store_user *user,
					uint32_t mailbox_id, uint64_t since)
{
	struct delta_answer *a = xcalloc(1, sizeof(*a));
	a->refs = 1;
	a->ret = pg_r_view_delta(user, mailbox_id, since, &a->info,
				 &a->expunged, &a->nexp, &a->complete,
				 answer_changed, a, &a->err);
	return a;
}

/* Under mu: the slot of (mailbox_id, since), or an idle one taken for
 * it, or NULL when every slot serves another question. */
static struct delta_slot *slot_for(struct pg_delta_share *s,
				   uint32_t mailbox_id, uint64_t since)
{
	struct delta_slot *idle = NULL;
	for (size_t i = 0; i < DELTA_SLOTS; i++) {
		struct delta_slot *sl = &s->slots[i];
		if (sl->mailbox_id == mailbox_id && sl->since == since &&
		    (sl->running || sl->waiters > 0))
			return sl;
		if (idle == NULL && !sl->running && sl->waiters == 0)
			idle = sl;
	}
	if (idle != NULL) {
		answer_unref(&idle->answer);
		idle->mailbox_id = mailbox_id;
		idle->since = since;
		idle->started = idle->done = 0;
	}
	return idle;
}

/* Under mu: waits until a read that began after this call has ended (or
 * runs it: *read_r), and returns its answer with a reference. */
static struct delta_answer *slot_wait(struct pg_delta_share *s,
				      struct delta_slot *sl,
				      struct store_user *user, bool *read_r)
{
	uint64_t need = sl->started + 1;
	sl->waiters++;
	while (sl->done < need) {
		if (sl->running) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		sl->running = true;
		*read_r = true;
		uint64_t mine = ++sl->started;
		uint32_t mailbox_id = sl->mailbox_id;
		uint64_t since = sl->since;
		pthread_mutex_unlock(&s->mu);
		struct delta_answer *a = answer_read(user, mailbox_id, since);
		pthread_mutex_lock(&s->mu);
		answer_unref(&sl->answer);
		sl->answer = a;
		sl->done = mine;
		sl->running = false;
		pthread_cond_broadcast(&s->cv);
	}
	struct delta_answer *a = sl->answer;
	a->refs++;
	if (--sl->waiters == 0)
		answer_unref(&sl->answer);   /* nobody else is to copy it */
	return a;
}

/* The caller's copy of an answer (the answer itself is shared). */
static int answer_copy(const struct delta_answer *a,
		       struct store_mailbox_info *info_r,
		       uint32_t **expunged_r, size_t *expunged_count_r,
		       bool *complete_r,
		       void (*changed)(void *ctx, const struct store_msg *msg),
		       void *ctx, struct store_error *err)
{
	if (a->ret < 0) {
		if (err != NULL)
			*err = a->err;
		return -1;
	}
	*info_r = a->info;
	info_r->name = a->info.name != NULL ? xstrdup(a->info.name) : NULL;
	*expunged_r = NULL;
	if (a->nexp > 0) {
		*expunged_r = xmalloc(a->nexp * sizeof(uint32_t));
		memcpy(*expunged_r, a->expunged, a->nexp * sizeof(uint32_t));
	}
	*expunged_count_r = a->nexp;
	*complete_r = a->complete;
	for (size_t i = 0; i < a->count; i++)
		changed(ctx, &a->msgs[i]);
	return 0;
}

static void count_read(bool read)
{
	metrics_count("loft_pg_view_syncs_total", "Views' syncs on postgres:"
		      " those that read the changes, and those that took the"
		      " answer of a read made for them by another view.",
		      read ? "answer=\"read\"" : "answer=\"shared\"");
}

int pg_view_delta_shared(struct store_user *user, uint32_t mailbox_id,
			 uint64_t since, struct store_mailbox_info *info_r,
			 uint32_t **expunged_r, size_t *expunged_count_r,
			 bool *complete_r,
			 void (*changed)(void *ctx, const struct store_msg *msg),
			 void *ctx, struct store_error *err)
{
	struct pg_store_user *pu = user->be;
	struct pg_delta_share *s = pu != NULL ? pu->delta : NULL;
	struct delta_slot *sl = NULL;
	if (s != NULL) {
		pthread_mutex_lock(&s->mu);
		sl = slot_for(s, mailbox_id, since);
		if (sl == NULL)
			pthread_mutex_unlock(&s->mu);
	}
	if (sl == NULL) {
		count_read(true);
		return pg_r_view_delta(user, mailbox_id, since, info_r,
				       expunged_r, expunged_count_r,
				       complete_r, changed, ctx, err);
	}
	bool read = false;
	struct delta_answer *a = slot_wait(s, sl, user, &read);
	pthread_mutex_unlock(&s->mu);
	count_read(read);
	int ret = answer_copy(a, info_r, expunged_r, expunged_count_r,
			      complete_r, changed, ctx, err);
	pthread_mutex_lock(&s->mu);
	answer_unref(&a);
	pthread_mutex_unlock(&s->mu);
	return ret;
}
