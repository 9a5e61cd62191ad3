/*
 * Retention as a store-level task (DESIGN.md "POP3 policies"): for each
 * account, asks the caller's source for its policy (fresh at every run,
 * so an admin change applies at the next one) and lets the backend
 * remove what is due as of a given time (store_retention_run). loftd
 * runs it in the background (store_retention_start); `loftctl retention
 * run` calls store_retention_run_accounts with the clock it is given.
 * The store knows nothing of accounts.db: src/auth provides the source
 * (auth_retention_source).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "store-private.h"

/* Returns 0, -1 on failure, 1 when report asked to stop. */
static int retention_one(struct store *store,
			 const struct store_retention_source *src,
			 int64_t user_id, time_t now,
			 store_retention_report_fn *report, void *ctx)
{
	struct store_retention_policy policy;
	struct store_retention_report rr = {0};
	struct store_error err = {0};
	struct store_user *mail = NULL;
	bool policy_ok = false;

	int r = src->policy(src->ctx, user_id, &policy);
	if (r > 0)
		return 0;   /* the account went away meanwhile */
	if (r < 0) {
		snprintf(err.msg, sizeof(err.msg), "cannot read the account policy");
		goto fail;
	}
	policy_ok = true;
	/* An account whose mail was never opened has nothing to remove, and
	 * must not get an index just for this. */
	if (store_user_open_existing(store, user_id, &mail, &err) < 0) {
		if (err.kind == STORE_ERR_NOTFOUND)
			return report != NULL &&
			       !report(ctx, user_id, &policy, &rr, NULL) ? 1 : 0;
		goto fail;
	}
	/* every account: messages kept for undelete are purged by it */
	r = store_retention_run(mail, &policy, now, &rr, &err);
	/* JMAP's change logs and expired uploads go by the same clock */
	if (r == 0)
		r = store_jmap_prune(mail, now, &err);
	store_user_unref(&mail);
	if (r < 0)
		goto fail;
	if (rr.pop3_removed + rr.trash_expunged + rr.junk_expunged +
	    rr.deleted_purged > 0)
		log_info("retention", NULL,
			 "user=%lld pop3_removed=%u trash_expunged=%u"
			 " junk_expunged=%u deleted_purged=%u",
			 (long long)user_id, rr.pop3_removed, rr.trash_expunged,
			 rr.junk_expunged, rr.deleted_purged);
	return report != NULL && !report(ctx, user_id, &policy, &rr, NULL) ? 1 : 0;
fail:
	log_error("retention", NULL, "user=%lld: %s", (long long)user_id, err.msg);
	if (report != NULL &&
	    !report(ctx, user_id, policy_ok ? &policy : NULL, NULL, err.msg))
		return 1;
	return -1;
}

int store_retention_run_accounts(struct store *store,
				 const struct store_retention_source *src,
				 int64_t user_id, time_t now,
				 store_retention_report_fn *report, void *ctx)
{
	if (user_id > 0)
		return retention_one(store, src, user_id, now, report, ctx) == 0
			       ? 0 : -1;
	/* Listed first: the listing may hold a database connection, and
	 * the store work per account may take a while. */
	int64_t *ids = NULL;
	size_t count = 0;
	int ret = 0;
	if (src->accounts(src->ctx, &ids, &count) < 0) {
		log_error("retention", NULL, "cannot list the accounts");
		ret = -1;
	}
	for (size_t i = 0; i < count; i++) {
		int r = retention_one(store, src, ids[i], now, report, ctx);
		if (r != 0)
			ret = -1;
		if (r > 0)
			break;
	}
	free(ids);
	return ret;
}

/* ---- the background task -------------------------------------------- */

struct store_retention_task {
	struct store *store;
	struct store_retention_source src;
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
	struct store_retention_task *task;
	uint32_t min;       /* 0: none seen yet */
};

static bool task_stopping(struct store_retention_task *t)
{
	pthread_mutex_lock(&t->mutex);
	bool stop = t->stop;
	pthread_mutex_unlock(&t->mutex);
	return stop;
}

static bool task_report(void *ctx, int64_t user_id,
			const struct store_retention_policy *policy,
			const struct store_retention_report *report,
			const char *error)
{
	struct expire_scan *scan = ctx;
	uint32_t days = policy != NULL ? policy->pop3_retention_days : 0;

	if (days > 0 && (scan->min == 0 || days < scan->min))
		scan->min = days;
	return !task_stopping(scan->task);
}

bool store_retention_expire_min(struct store *store, uint32_t *days_r)
{
	struct store_retention_task *t = store->retention;
	if (t == NULL || !atomic_load(&t->expire_known))
		return false;
	*days_r = atomic_load(&t->expire_min);
	return true;
}

/* Waits up to seconds; returns true when asked to stop. */
static bool task_wait(struct store_retention_task *t, unsigned seconds)
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
	struct store_retention_task *t = arg;

	/* Start-up must not wait on this, nor compete with it. */
	if (task_wait(t, t->interval < 60 ? t->interval : 60))
		return NULL;
	do {
		struct expire_scan scan = {t, 0};
		/* A failed account is logged by the run; its policy still
		 * counted, so only a stopped pass leaves EXPIRE as it was. */
		store_retention_run_accounts(t->store, &t->src, -1, time(NULL),
					     task_report, &scan);
		if (!task_stopping(t)) {
			atomic_store(&t->expire_min, scan.min);
			atomic_store(&t->expire_known, true);
		}
	} while (!task_wait(t, t->interval));
	return NULL;
}

int store_retention_start(struct store *store,
			  const struct store_retention_source *src,
			  unsigned interval)
{
	if (interval == 0 || store->retention != NULL)
		return 0;
	struct store_retention_task *t = xcalloc(1, sizeof(*t));

	t->store = store;
	t->src = *src;
	t->interval = interval;
	pthread_mutex_init(&t->mutex, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (pthread_create(&t->thread, NULL, task_main, t) != 0) {
		log_error("retention", NULL, "cannot start the retention task");
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->mutex);
		free(t);
		return -1;
	}
	store->retention = t;
	return 0;
}

void store_retention_stop(struct store *store)
{
	struct store_retention_task *t = store->retention;

	if (t == NULL)
		return;
	store->retention = NULL;
	pthread_mutex_lock(&t->mutex);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->mutex);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->mutex);
	free(t);
}
