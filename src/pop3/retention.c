/*
 * The retention runner: for each account, reads its policy from auth
 * (server defaults overridden per account, fresh at every run so an admin
 * change applies at the next run) and lets the store remove what the
 * policy says is due as of a given time. The clock is a parameter so that
 * `loftctl retention run --now DATE` and tests control it.
 */
#include "retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "log.h"
#include "store.h"

static void policy_to_store(const struct auth_policy *p,
			    struct store_retention_policy *r)
{
	memset(r, 0, sizeof(*r));
	r->pop3_retention_days = p->pop3_retention_days;
	switch (p->pop3_delete) {
	case AUTH_POP3_EXPUNGE:
		r->pop3_delete = STORE_POP3_EXPUNGE;
		break;
	case AUTH_POP3_HIDE:
		r->pop3_delete = STORE_POP3_HIDE;
		break;
	case AUTH_POP3_TRASH:
		r->pop3_delete = STORE_POP3_TRASH;
		break;
	}
	r->trash_retention_days = p->trash_retention_days;
	r->junk_retention_days = p->junk_retention_days;
}

/* Returns 0, -1 on failure, 1 when report asked to stop. */
static int retention_one(struct store *store, struct auth *auth,
			 const struct auth_user *u, time_t now,
			 pop3_retention_report_fn *report, void *ctx)
{
	struct auth_policy policy;
	struct store_retention_policy rp;
	struct store_retention_report rr = {0};
	struct store_error err = {0};
	struct store_user *mail = NULL;

	bool policy_ok = false;

	if (auth_user_policy(auth, u->id, &policy) < 0) {
		snprintf(err.msg, sizeof(err.msg), "cannot read the account policy");
		goto fail;
	}
	policy_ok = true;
	policy_to_store(&policy, &rp);
	if (rp.pop3_retention_days == 0 && rp.trash_retention_days == 0 &&
	    rp.junk_retention_days == 0) {
		return report != NULL && !report(ctx, u, &policy, &rr, NULL) ? 1 : 0;
	}
	if (store_user_open(store, u->id, &mail, &err) < 0)
		goto fail;
	int r = store_retention_run(mail, &rp, now, &rr, &err);
	store_user_unref(&mail);
	if (r < 0)
		goto fail;
	if (rr.pop3_removed + rr.trash_expunged + rr.junk_expunged > 0)
		log_info("retention", NULL,
			 "user=%s pop3_removed=%u (%s) trash_expunged=%u junk_expunged=%u",
			 u->address, rr.pop3_removed,
			 auth_pop3_delete_name(policy.pop3_delete),
			 rr.trash_expunged, rr.junk_expunged);
	return report != NULL && !report(ctx, u, &policy, &rr, NULL) ? 1 : 0;
fail:
	log_error("retention", NULL, "user=%s: %s", u->address, err.msg);
	if (report != NULL && !report(ctx, u, policy_ok ? &policy : NULL, NULL, err.msg))
		return 1;
	return -1;
}

struct address_list {
	char **names;
	size_t count, cap;
};

static void collect_address(void *ctx, const char *name, const char *extra)
{
	struct address_list *l = ctx;

	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->names = xrealloc(l->names, l->cap * sizeof(*l->names));
	}
	l->names[l->count++] = xstrdup(name);
}

int pop3_retention_run(struct store *store, struct auth *auth, int64_t user_id,
		       time_t now, pop3_retention_report_fn *report, void *ctx)
{
	struct auth_user u;
	int ret = 0;

	if (user_id >= 0) {
		if (auth_lookup_id(auth, user_id, &u) <= 0) {
			log_error("retention", NULL, "no account with id %lld",
				  (long long)user_id);
			return -1;
		}
		return retention_one(store, auth, &u, now, report, ctx) == 0 ? 0 : -1;
	}

	/* Collect first: the listing holds a database connection, and the
	 * store work per account may take a while. */
	struct address_list list = {0};
	char *error = NULL;
	if (auth_user_list(auth, collect_address, &list, &error) < 0) {
		log_error("retention", NULL, "cannot list accounts: %s",
			  error != NULL ? error : "?");
		free(error);
		ret = -1;
	}
	bool stop = false;
	for (size_t i = 0; i < list.count; i++) {
		/* An account removed since the listing is simply skipped. */
		if (!stop && auth_lookup(auth, list.names[i], &u) == 1) {
			int r = retention_one(store, auth, &u, now, report, ctx);
			if (r != 0)
				ret = -1;
			stop = r > 0;
		}
		free(list.names[i]);
	}
	free(list.names);
	return ret;
}

/* ---- the background task -------------------------------------------- */

struct pop3_retention_task {
	struct store *store;
	struct auth *auth;
	unsigned interval;
	pthread_t thread;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool stop;
	/* Written by the task after each pass, read by POP3 sessions. */
	_Atomic uint32_t expire_min;
	_Atomic bool expire_known;
};

struct expire_scan {
	struct pop3_retention_task *task;
	uint32_t min;       /* 0: none seen yet */
};

static bool task_stopping(struct pop3_retention_task *t)
{
	pthread_mutex_lock(&t->mutex);
	bool stop = t->stop;
	pthread_mutex_unlock(&t->mutex);
	return stop;
}

static bool task_report(void *ctx, const struct auth_user *user,
			const struct auth_policy *policy,
			const struct store_retention_report *report,
			const char *error)
{
	struct expire_scan *scan = ctx;
	uint32_t days = policy != NULL ? policy->pop3_retention_days : 0;

	if (days > 0 && (scan->min == 0 || days < scan->min))
		scan->min = days;
	return !task_stopping(scan->task);
}

bool pop3_retention_task_expire_min(struct pop3_retention_task *t,
				    uint32_t *days_r)
{
	if (t == NULL || !atomic_load(&t->expire_known))
		return false;
	*days_r = atomic_load(&t->expire_min);
	return true;
}

/* Waits up to seconds; returns true when asked to stop. */
static bool task_wait(struct pop3_retention_task *t, unsigned seconds)
{
	struct timespec until;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&t->mutex);
	while (!t->stop) {
		if (pthread_cond_timedwait(&t->cond, &t->mutex, &until) == ETIMEDOUT)
			break;
	}
	stop = t->stop;
	pthread_mutex_unlock(&t->mutex);
	return stop;
}

static void *task_main(void *arg)
{
	struct pop3_retention_task *t = arg;

	/* Start-up must not wait on this, nor compete with it. */
	if (task_wait(t, t->interval < 60 ? t->interval : 60))
		return NULL;
	do {
		struct expire_scan scan = {t, 0};
		/* A failed account is logged by the run; its policy still
		 * counted, so only a stopped pass leaves EXPIRE as it was. */
		pop3_retention_run(t->store, t->auth, -1, time(NULL), task_report, &scan);
		if (!task_stopping(t)) {
			atomic_store(&t->expire_min, scan.min);
			atomic_store(&t->expire_known, true);
		}
	} while (!task_wait(t, t->interval));
	return NULL;
}

struct pop3_retention_task *pop3_retention_task_start(struct store *store,
						      struct auth *auth,
						      unsigned interval)
{
	struct pop3_retention_task *t = xcalloc(1, sizeof(*t));

	t->store = store;
	t->auth = auth;
	t->interval = interval;
	pthread_mutex_init(&t->mutex, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (pthread_create(&t->thread, NULL, task_main, t) != 0) {
		log_error("retention", NULL, "cannot start the retention task");
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->mutex);
		free(t);
		return NULL;
	}
	return t;
}

void pop3_retention_task_stop(struct pop3_retention_task **taskp)
{
	struct pop3_retention_task *t = *taskp;

	if (t == NULL)
		return;
	*taskp = NULL;
	pthread_mutex_lock(&t->mutex);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->mutex);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->mutex);
	free(t);
}
