/*
 * The queue's front door (queue.h): settings, opening, enqueueing (the
 * message's bytes made durable -- a file fsynced and renamed into msg/,
 * or an object put (queue-body.c) -- then its row committed: a crash
 * between the two leaves an orphan file that the next start removes, or
 * an object the store's collector removes), local recipients stored at
 * once through the delivery hook, hourly submission limits, and the
 * admin calls.
 */
#include "queue-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------ */

void queue_set_error(struct queue_error *err, enum queue_error_kind kind,
		     const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void queue_set_errno(struct queue_error *err, int e)
{
	if (e == ENOSPC || e == EDQUOT)
		queue_set_error(err, QUEUE_ERR_FULL,
				"Insufficient system storage");
	else
		queue_set_error(err, QUEUE_ERR_TEMP, "Local error in "
				"processing, try again later");
}

void queue_result_set(struct queue_rcpt_result *r, enum queue_rcpt_status st,
		      int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	r->status = st;
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

char *queue_msg_path(const struct queue *q, const char *id)
{
	return xasprintf("%s/%s", q->msg_dir, id);
}

const char *queue_addr_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

void qjob_free(struct qjob *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->rcpt_count; i++) {
		free(job->rcpts[i].address);
		free(job->rcpts[i].orcpt);
	}
	free(job->rcpts);
	free(job->sender);
	free(job->envid);
	free(job->prefix);
	free(job->dest);
	free(job);
}

void queue_message_info_free(struct queue_message_info **info)
{
	struct queue_message_info *m = *info;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->rcpt_count; i++) {
		free(m->rcpts[i].address);
		free(m->rcpts[i].orcpt);
		free(m->rcpts[i].last_error);
		free(m->rcpts[i].remote);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->envid);
	free(m);
	*info = NULL;
}

/* ---- settings ----------------------------------------------------- */

enum qset_kind { QSET_STR, QSET_DURATION, QSET_UINT, QSET_TLS };

static const struct qset {
	const char *key;
	enum qset_kind kind;
	uint64_t min, max;
	const char *expect;
} qsettings[] = {
	{"smarthost", QSET_STR, 0, 0, "HOST:PORT"},
	{"smarthost_tls", QSET_TLS, 0, 0, "required, opportunistic or none"},
	{"smarthost_user", QSET_STR, 0, 0, "a user name"},
	{"smarthost_password_file", QSET_STR, 0, 0, "a file name"},
	{"tls_ca_file", QSET_STR, 0, 0, "a PEM file of CA certificates"},
	{"max_age", QSET_DURATION, 60, 90 * 86400,
	 "a duration from 1m to 90d, like 5d"},
	{"delay_warning", QSET_DURATION, 0, 90 * 86400,
	 "a duration (0 = off), like 4h"},
	{"retry_min", QSET_DURATION, 1, 86400, "a duration from 1s to 1d"},
	{"retry_max", QSET_DURATION, 1, 7 * 86400, "a duration from 1s to 7d"},
	{"workers", QSET_UINT, 1, 1000, "a number from 1 to 1000"},
	{"per_domain", QSET_UINT, 1, 1000, "a number from 1 to 1000"},
	{"connect_timeout", QSET_DURATION, 1, 3600, "a duration from 1s to 1h"},
	{"command_timeout", QSET_DURATION, 1, 3600, "a duration from 1s to 1h"},
	{"user_messages_per_hour", QSET_UINT, 0, 100000000,
	 "a number (0 = no limit)"},
	{"user_recipients_per_hour", QSET_UINT, 0, 100000000,
	 "a number (0 = no limit)"},
	{"lease", QSET_DURATION, 3, 86400, "a duration from 3s to 1d"},
};
#define QSET_COUNT (sizeof(qsettings) / sizeof(qsettings[0]))

static void settings_defaults(struct queue_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->data_dir = "/var/lib/loft";
	set->hostname = "localhost";
	set->smarthost_tls = QUEUE_TLS_REQUIRED;
	set->max_age = 5 * 86400;
	set->delay_warning = 4 * 3600;
	set->retry_min = 300;
	set->retry_max = 3600;
	set->workers = 16;
	set->per_domain = 4;
	set->connect_timeout = 30;
	set->command_timeout = 300;
	set->user_messages_per_hour = 1000;
	set->user_recipients_per_hour = 5000;
	set->fsync = true;
}

static int apply_setting(struct queue_settings *set, const struct qset *qs,
			 const char *value)
{
	uint64_t v = 0;

	switch (qs->kind) {
	case QSET_STR:
		if (value[0] == '\0')
			return -1;
		if (strcmp(qs->key, "smarthost") == 0) {
			const char *colon = strrchr(value, ':');
			if (colon == NULL || colon == value ||
			    config_parse_uint(colon + 1, 65535, &v) < 0 || v == 0)
				return -1;
			set->smarthost = value;
		} else if (strcmp(qs->key, "smarthost_user") == 0) {
			set->smarthost_user = value;
		} else if (strcmp(qs->key, "smarthost_password_file") == 0) {
			set->smarthost_password_file = value;
		} else {
			set->tls_ca_file = value;
		}
		return 0;
	case QSET_TLS:
		if (strcmp(value, "required") == 0)
			set->smarthost_tls = QUEUE_TLS_REQUIRED;
		else if (strcmp(value, "opportunistic") == 0)
			set->smarthost_tls = QUEUE_TLS_OPPORTUNISTIC;
		else if (strcmp(value, "none") == 0)
			set->smarthost_tls = QUEUE_TLS_NONE;
		else
			return -1;
		return 0;
	case QSET_DURATION:
		if (config_parse_duration(value, &v) < 0)
			return -1;
		break;
	case QSET_UINT:
		if (config_parse_uint(value, qs->max, &v) < 0)
			return -1;
		break;
	}
	if (v < qs->min || v > qs->max)
		return -1;
	if (strcmp(qs->key, "max_age") == 0) set->max_age = v;
	else if (strcmp(qs->key, "delay_warning") == 0) set->delay_warning = v;
	else if (strcmp(qs->key, "retry_min") == 0) set->retry_min = v;
	else if (strcmp(qs->key, "retry_max") == 0) set->retry_max = v;
	else if (strcmp(qs->key, "workers") == 0) set->workers = (unsigned)v;
	else if (strcmp(qs->key, "per_domain") == 0) set->per_domain = (unsigned)v;
	else if (strcmp(qs->key, "connect_timeout") == 0) set->connect_timeout = v;
	else if (strcmp(qs->key, "command_timeout") == 0) set->command_timeout = v;
	else if (strcmp(qs->key, "user_messages_per_hour") == 0)
		set->user_messages_per_hour = v;
	else if (strcmp(qs->key, "user_recipients_per_hour") == 0)
		set->user_recipients_per_hour = v;
	else if (strcmp(qs->key, "lease") == 0)
		set->lease = v;
	return 0;
}

int queue_settings_from_config(const struct config *cfg,
			       struct queue_settings *set_r,
			       struct buf *errors)
{
	const char *path = cfg->path ? cfg->path : "config";
	const char *v;
	bool ok = true;

	settings_defaults(set_r);
	if ((v = config_get(cfg, "", "data_dir")) != NULL && v[0] != '\0')
		set_r->data_dir = v;
	if ((v = config_get(cfg, "", "hostname")) != NULL && v[0] != '\0')
		set_r->hostname = v;
	if ((v = config_get(cfg, "store", "fsync")) != NULL)
		config_parse_bool(v, &set_r->fsync);
	/* Nodes on one database share the queue (docs/scale-out.md, "The
	 * queue"): its rows in the database, the messages' bytes in the
	 * blob directory they share (the file driver) or in the object
	 * store (blobs = s3). */
	v = config_get(cfg, "store", "backend");
	const char *blobs = config_get(cfg, "store", "blobs");
	if (v != NULL && strcmp(v, "postgres") == 0 &&
	    (blobs == NULL || strcmp(blobs, "file") == 0)) {
		set_r->postgres = config_get(cfg, "store", "postgres");
		set_r->shared_dir = config_get(cfg, "store", "blob_dir");
		if (set_r->postgres == NULL || set_r->shared_dir == NULL)
			set_r->postgres = set_r->shared_dir = NULL;
	} else if (v != NULL && strcmp(v, "postgres") == 0 &&
		   strcmp(blobs, "s3") == 0) {
		set_r->postgres = config_get(cfg, "store", "postgres");
		set_r->objects = set_r->postgres != NULL;
	}
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		const struct qset *qs = NULL;

		if (strcmp(e->section, "queue") != 0)
			continue;
		for (size_t k = 0; k < QSET_COUNT; k++)
			if (strcmp(qsettings[k].key, e->key) == 0)
				qs = &qsettings[k];
		if (qs == NULL) {
			buf_printf(errors, "%s:%d: [queue]: unknown key '%s'\n",
				   path, e->line, e->key);
			ok = false;
		} else if (apply_setting(set_r, qs, e->value) < 0) {
			buf_printf(errors, "%s:%d: %s: expected %s\n", path,
				   e->line, e->key, qs->expect);
			ok = false;
		}
	}
	if (set_r->retry_max < set_r->retry_min)
		set_r->retry_max = set_r->retry_min;
	if (set_r->smarthost_user != NULL &&
	    set_r->smarthost_password_file == NULL) {
		buf_printf(errors, "%s: [queue] smarthost_user needs "
			   "smarthost_password_file\n", path);
		ok = false;
	}
	if (set_r->smarthost_password_file != NULL &&
	    access(set_r->smarthost_password_file, R_OK) < 0) {
		buf_printf(errors, "%s: [queue] smarthost_password_file %s: %s\n",
			   path, set_r->smarthost_password_file,
			   strerror(errno));
		ok = false;
	}
	return ok ? 0 : -1;
}

/* ---- open / close ------------------------------------------------- */

static int mkdir_if_missing(const char *path)
{
	return mkdir(path, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

static char *read_password(const char *file)
{
	char line[1024];
	FILE *f = fopen(file, "r");

	if (f == NULL)
		return NULL;
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line);
}

/* Temporary files of writers cut short (at start, before any writer). */
static void sweep_tmp(struct queue *q)
{
	DIR *dir = opendir(q->tmp_dir);
	struct dirent *de;

	if (dir == NULL)
		return;
	time_t now = time(NULL);
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", q->tmp_dir, de->d_name);
		struct stat st;
		/* a shared directory: other nodes write theirs now; only
		 * what nobody touched for an hour was cut short */
		if (!q->shared ||
		    (stat(p, &st) == 0 && st.st_mtime < now - 3600))
			unlink(p);
		free(p);
	}
	closedir(dir);
}

/* The time (ms, as next_id writes it) in a queue id; 0 if it is none. */
static uint64_t id_ms(const char *id)
{
	uint64_t ms = 0;

	if (strlen(id) != 16)
		return 0;
	for (int i = 0; i < 11; i++) {
		char c = id[i];
		int v = c >= '0' && c <= '9' ? c - '0'
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (v < 0)
			return 0;
		ms = ms * 16 + (uint64_t)v;
	}
	return ms;
}

void queue_sweep_orphans(struct queue *q, uint64_t before_ms)
{
	DIR *dir = opendir(q->msg_dir);
	struct dirent *de;
	unsigned n = 0;

	/* objects: the store's collector takes those no row names */
	if (dir == NULL || q->objects) {
		if (dir != NULL)
			closedir(dir);
		return;
	}
	/* a shared directory: another node may be between its rename and
	 * its commit, with a file named before this node started */
	if (q->shared)
		before_ms -= 600 * 1000;
	while ((de = readdir(dir)) != NULL) {
		uint64_t ms = id_ms(de->d_name);
		/* a file named after this run started may be a message
		 * being queued now (renamed in, not yet committed) */
		if (de->d_name[0] == '.' || ms == 0 || ms >= before_ms ||
		    q->be->exists(q, de->d_name))
			continue;
		char *p = queue_msg_path(q, de->d_name);
		log_info("queue", NULL, "removing orphaned message file %s",
			 de->d_name);
		unlink(p);
		free(p);
		n++;
	}
	closedir(dir);
	if (n > 0)
		log_info("queue", NULL, "%u orphaned message files removed", n);
}

static void rate_loaded(void *ctx, int64_t user_id, int64_t minute,
			unsigned messages, unsigned rcpts);

int queue_open(const struct queue_settings *set, struct queue **q_r,
	       struct queue_error *err)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct timeval tv;

	*q_r = NULL;
	q->set = *set;
	q->dir = xasprintf("%s/queue", set->data_dir);
	q->shared = set->postgres != NULL && set->shared_dir != NULL;
	q->objects = set->postgres != NULL && set->objects && !q->shared;
	char *files = q->shared ? xasprintf("%s/queue", set->shared_dir)
				: xstrdup(q->dir);
	q->msg_dir = xasprintf("%s/msg", files);
	q->tmp_dir = xasprintf("%s/tmp", files);
	bool pg = q->shared || q->objects;
	q->be = pg ? &queue_pg_backend : &queue_sqlite_backend;
	q->lease_secs = pg ? (unsigned)(set->lease ? set->lease : 300)
			   : QUEUE_LEASE_SECONDS;
	pthread_mutex_init(&q->mu, NULL);
	gettimeofday(&tv, NULL);
	q->id_seq = ((uint64_t)tv.tv_usec * 7919u + (uint64_t)getpid()) & 0xfffff;
	int made = mkdir_if_missing(set->data_dir) < 0 ||
		   mkdir_if_missing(q->dir) < 0 ||
		   mkdir_if_missing(files) < 0 ||
		   mkdir_if_missing(q->msg_dir) < 0 ||
		   mkdir_if_missing(q->tmp_dir) < 0 ? -1 : 0;
	free(files);
	if (made < 0) {
		queue_set_error(err, QUEUE_ERR_INTERNAL, "cannot create %s: %s",
				q->dir, strerror(errno));
		queue_close(&q);
		return -1;
	}
	if (set->smarthost_password_file != NULL) {
		q->smarthost_password = read_password(set->smarthost_password_file);
		if (q->smarthost_password == NULL) {
			queue_set_error(err, QUEUE_ERR_INTERNAL, "cannot read %s: %s",
					set->smarthost_password_file,
					strerror(errno));
			queue_close(&q);
			return -1;
		}
	}
	if (q->be->open(q, err) < 0) {
		queue_close(&q);
		return -1;
	}
	/* the hourly limits outlive a restart */
	q->be->rates_load(q, (int64_t)(time(NULL) / 60) - 60, rate_loaded, q);
	*q_r = q;
	return 0;
}

void queue_set_hooks(struct queue *q, const struct queue_hooks *hooks)
{
	pthread_mutex_lock(&q->mu);
	if (hooks != NULL)
		q->hooks = *hooks;
	else
		memset(&q->hooks, 0, sizeof(q->hooks));
	pthread_mutex_unlock(&q->mu);
}

struct dns *queue_dns(struct queue *q)
{
	return q->set.dns;
}

/* ---- a node's own queue, taken into the shared one ----------------- */

struct local_ids {
	char (*ids)[QUEUE_ID_SIZE];
	size_t count;
};

static bool local_id(void *ctx, const struct queue_message_info *info)
{
	struct local_ids *l = ctx;
	l->ids = xrealloc(l->ids, (l->count + 1) * sizeof(*l->ids));
	snprintf(l->ids[l->count++], QUEUE_ID_SIZE, "%s", info->id);
	return true;
}

/* One message of the old queue enqueued again in q with its pending
 * recipients, then deleted there (a crash between the two sends it
 * twice at worst, never not at all). */
static int local_move(struct queue *q, struct queue *old, const char *id)
{
	struct queue_message_info *m = NULL;
	struct queue_error e = {0};
	char *data = NULL, nid[QUEUE_ID_SIZE];
	size_t len = 0;
	int rc = -1;

	if (queue_message_get(old, id, &m, &e) < 0 ||
	    queue_message_data(old, id, &data, &len, &e) < 0)
		goto out;
	struct queue_rcpt *rcpts = xcalloc(m->rcpt_count + 1, sizeof(*rcpts));
	size_t n = 0;
	for (size_t i = 0; i < m->rcpt_count; i++) {
		if (m->rcpts[i].status != QUEUE_RCPT_QUEUED)
			continue;
		rcpts[n].address = m->rcpts[i].address;
		rcpts[n].notify = m->rcpts[i].notify;
		rcpts[n++].orcpt = m->rcpts[i].orcpt;
	}
	/* signed already (its DKIM-Signature fields lead data), counted
	 * already against the sender's hour */
	struct queue_envelope env = {
		.sender = m->sender, .rcpts = rcpts, .rcpt_count = n,
		.envid = m->envid, .user_id = m->user_id,
		.flags = m->flags & ~(unsigned)(QUEUE_F_SIGN | QUEUE_F_SUBMISSION),
	};
	rc = n == 0 ? 0 : queue_enqueue(q, &env, data, len, nid, NULL, &e);
	free(rcpts);
	if (rc == 0 && n > 0 && m->held && nid[0] != '\0')
		queue_hold(q, nid, &e);
	if (rc == 0 && queue_delete(old, id, &e) < 0)
		log_warn("queue", NULL, "%s: left in the node's own queue too: %s",
			 id, e.msg);
	if (rc == 0)
		log_info("queue", NULL, "%s: moved from this node's own queue "
			 "to the shared one as %s", id, n > 0 ? nid : "nothing");
out:
	if (rc < 0)
		log_error("queue", NULL, "%s: not moved from this node's own "
			  "queue (tried again at the next start): %s", id, e.msg);
	queue_message_info_free(&m);
	free(data);
	return rc;
}

/* A node that kept its own queue (data_dir/queue/queue.db: blobs = s3
 * before the queue went through the object store) hands what waits
 * there to the shared queue, which any node delivers. */
static void local_take_over(struct queue *q)
{
	char *path = xasprintf("%s/queue.db", q->dir);
	bool there = access(path, F_OK) == 0;
	free(path);
	if (!there)
		return;
	struct queue_settings set = q->set;
	set.postgres = NULL;
	set.shared_dir = NULL;
	set.objects = false;
	struct queue *old = NULL;
	struct queue_error e = {0};
	if (queue_open(&set, &old, &e) < 0) {
		log_error("queue", NULL, "this node's own queue: %s", e.msg);
		return;
	}
	struct local_ids l = {0};
	if (queue_list(old, local_id, &l, &e) < 0)
		log_error("queue", NULL, "this node's own queue: %s", e.msg);
	unsigned moved = 0;
	for (size_t i = 0; i < l.count; i++)
		moved += local_move(q, old, l.ids[i]) == 0;
	if (l.count > 0)
		log_info("queue", NULL, "%u of %zu messages of this node's own "
			 "queue moved to the shared queue", moved, l.count);
	free(l.ids);
	queue_close(&old);
}

int queue_start(struct queue *q, struct queue_error *err)
{
	if (q->objects && q->obj.put == NULL) {
		queue_set_error(err, QUEUE_ERR_INTERNAL, "the queue keeps its "
				"messages in the object store, which is not "
				"open");
		return -1;
	}
	if (q->be->release_leases(q, err) < 0)
		return -1;
	sweep_tmp(q);
	if (q->objects)
		local_take_over(q);
	/* the message files the backend does not know are swept by the
	 * scheduler once it runs (a directory of 100,000 files is not read
	 * before the greeting) */
	return queue_runner_start(q, err);
}

void queue_close(struct queue **qp)
{
	struct queue *q = *qp;

	if (q == NULL)
		return;
	if (q->runner != NULL)
		queue_runner_stop(q);
	if (q->be_ctx != NULL)
		q->be->close(q);
	pthread_mutex_destroy(&q->mu);
	if (q->smarthost_password != NULL) {
		explicit_bzero(q->smarthost_password,
			       strlen(q->smarthost_password));
		free(q->smarthost_password);
	}
	free(q->rates);
	free(q->dir);
	free(q->msg_dir);
	free(q->tmp_dir);
	free(q);
	*qp = NULL;
}

void queue_observe(struct queue *q, queue_observe_fn *fn, void *ctx)
{
	pthread_mutex_lock(&q->mu);
	q->observe = fn;
	q->observe_ctx = ctx;
	pthread_mutex_unlock(&q->mu);
}

void queue_notify_observer(struct queue *q, const char *id, const char *rcpt,
			   const struct queue_rcpt_result *r)
{
	queue_observe_fn *fn;
	void *ctx;

	pthread_mutex_lock(&q->mu);
	fn = q->observe;
	ctx = q->observe_ctx;
	pthread_mutex_unlock(&q->mu);
	if (fn != NULL)
		fn(ctx, id, rcpt, r);
}

/* ---- hourly limits ------------------------------------------------ */

/* Sixty one-minute buckets per user: a sliding hour. */
struct queue_rate {
	int64_t user_id;
	time_t minute[60];
	uint32_t messages[60];
	uint32_t rcpts[60];
};

static struct queue_rate *rate_find(struct queue *q, int64_t user_id,
				    bool create)
{
	for (size_t i = 0; i < q->rate_count; i++)
		if (q->rates[i].user_id == user_id)
			return &q->rates[i];
	if (!create)
		return NULL;
	if (q->rate_count == q->rate_cap) {
		q->rate_cap = q->rate_cap ? q->rate_cap * 2 : 16;
		q->rates = xrealloc(q->rates, q->rate_cap * sizeof(*q->rates));
	}
	memset(&q->rates[q->rate_count], 0, sizeof(*q->rates));
	q->rates[q->rate_count].user_id = user_id;
	return &q->rates[q->rate_count++];
}

static void rate_sums(const struct queue_rate *r, time_t now,
		      uint64_t *messages_r, uint64_t *rcpts_r)
{
	time_t this_minute = now / 60;

	*messages_r = *rcpts_r = 0;
	for (int i = 0; i < 60; i++) {
		if (r->minute[i] > this_minute - 60) {
			*messages_r += r->messages[i];
			*rcpts_r += r->rcpts[i];
		}
	}
}

static bool within(struct queue *q, const struct queue_rate *r, time_t now,
		   unsigned messages, unsigned rcpts)
{
	uint64_t m = 0, n = 0;

	if (r != NULL)
		rate_sums(r, now, &m, &n);
	if (q->set.user_messages_per_hour != 0 &&
	    m + messages > q->set.user_messages_per_hour)
		return false;
	return q->set.user_recipients_per_hour == 0 ||
	       n + rcpts <= q->set.user_recipients_per_hour;
}

bool queue_user_within_limits(struct queue *q, int64_t user_id,
			      unsigned messages, unsigned rcpts)
{
	bool ok;

	pthread_mutex_lock(&q->mu);
	ok = within(q, rate_find(q, user_id, false), time(NULL), messages,
		    rcpts);
	pthread_mutex_unlock(&q->mu);
	return ok;
}

/* A minute's counts read back from the backend at open. */
static void rate_loaded(void *ctx, int64_t user_id, int64_t minute,
			unsigned messages, unsigned rcpts)
{
	struct queue *q = ctx;
	struct queue_rate *r;
	int slot = (int)(minute % 60);

	pthread_mutex_lock(&q->mu);
	r = rate_find(q, user_id, true);
	if (r->minute[slot] != minute) {
		r->minute[slot] = (time_t)minute;
		r->messages[slot] = r->rcpts[slot] = 0;
	}
	r->messages[slot] += messages;
	r->rcpts[slot] += rcpts;
	pthread_mutex_unlock(&q->mu);
}

/* Counts a submission if it fits; false (nothing counted) if not. */
static bool rate_take(struct queue *q, int64_t user_id, unsigned rcpts)
{
	time_t now = time(NULL);
	struct queue_rate *r;
	bool ok;

	pthread_mutex_lock(&q->mu);
	r = rate_find(q, user_id, true);
	ok = within(q, r, now, 1, rcpts);
	if (ok) {
		int slot = (int)((now / 60) % 60);
		if (r->minute[slot] != now / 60) {
			r->minute[slot] = now / 60;
			r->messages[slot] = r->rcpts[slot] = 0;
		}
		r->messages[slot]++;
		r->rcpts[slot] += rcpts;
	}
	pthread_mutex_unlock(&q->mu);
	return ok;
}

/* ---- writer ------------------------------------------------------- */

static const char *map_file(int fd, size_t skip, size_t len);
static void unmap_file(const char *data, size_t skip, size_t len);

struct queue_writer {
	struct queue *q;
	char *tmp_path;
	int fd;
	uint64_t size;            /* the message's bytes */
	uint64_t skip;            /* before them: qbody_mark's line */
	bool failed;
	int failed_errno;           /* the write's */
};

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void next_id(struct queue *q, char id[QUEUE_ID_SIZE])
{
	struct timeval tv;
	uint64_t ms, seq;

	gettimeofday(&tv, NULL);
	ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
	pthread_mutex_lock(&q->mu);
	seq = q->id_seq++ & 0xfffff;
	pthread_mutex_unlock(&q->mu);
	snprintf(id, QUEUE_ID_SIZE, "%011llX%05llX",
		 (unsigned long long)(ms & 0xfffffffffffULL),
		 (unsigned long long)seq);
}

int queue_writer_create(struct queue *q, struct queue_writer **w_r,
			struct queue_error *err)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	char id[QUEUE_ID_SIZE];

	w->q = q;
	w->fd = -1;
	/* a shared directory: another node may have taken the same id in
	 * the same millisecond (O_EXCL says so); the next one is free */
	for (int i = 0; i < 8 && w->fd < 0; i++) {
		next_id(q, id);
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/%s", q->tmp_dir, id);
		w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			     0640);
		if (w->fd < 0 && errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		int e = errno;
		queue_set_errno(err, e);
		log_error("queue", NULL, "creating %s: %s", w->tmp_path,
			  strerror(e));
		free(w->tmp_path);
		free(w);
		return -1;
	}
	/* objects: the line that makes this message's object its own */
	struct buf mark;
	buf_init(&mark, 0);
	qbody_mark(q, strrchr(w->tmp_path, '/') + 1, &mark);
	if (mark.len > 0 && write_all(w->fd, mark.data, mark.len) < 0) {
		w->failed_errno = errno ? errno : ENOSPC;
		log_error("queue", NULL, "writing %s: %s", w->tmp_path,
			  strerror(w->failed_errno));
		w->failed = true;
	}
	w->skip = mark.len;
	buf_free(&mark);
	*w_r = w;
	return 0;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len,
		       struct queue_error *err)
{
	const char *p = data;

	while (len > 0 && !w->failed) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->failed_errno = n < 0 ? errno : ENOSPC;
			log_error("queue", NULL, "writing %s: %s", w->tmp_path,
				  strerror(w->failed_errno));
			w->failed = true;
			break;
		}
		p += n;
		len -= (size_t)n;
		w->size += (uint64_t)n;
	}
	if (w->failed) {
		queue_set_errno(err, w->failed_errno);
		return -1;
	}
	return 0;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->size;
}

void queue_writer_abort(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;

	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	unlink(w->tmp_path);
	free(w->tmp_path);
	free(w);
	*wp = NULL;
}

int queue_writer_report(struct queue_writer *w, const char *sender,
			const char *envid, enum queue_ret ret, bool failed,
			const struct queue_report_rcpt *rcpts, size_t count,
			struct queue_error *err)
{
	struct qdsn_rcpt *r;
	const char *data;
	int rc;

	if (sender[0] == '\0' || count == 0)
		return 0;
	if (w->failed) {
		queue_set_errno(err, w->failed_errno);
		return -1;
	}
	data = map_file(w->fd, (size_t)w->skip, (size_t)w->size);
	if (data == NULL) {
		queue_set_error(err, QUEUE_ERR_INTERNAL, "Internal queue error");
		return -1;
	}
	r = xcalloc(count, sizeof(*r));
	for (size_t i = 0; i < count; i++) {
		r[i].address = rcpts[i].address;
		r[i].orcpt = rcpts[i].orcpt;
		r[i].result = &rcpts[i].result;
	}
	struct qdsn d = {
		.id = strrchr(w->tmp_path, '/') + 1, .sender = sender,
		.envid = envid, .ret = ret, .created = time(NULL), .local = true,
		.rcpts = r, .count = count,
	};
	rc = queue_dsn_enqueue(w->q, &d, failed ? QDSN_FAILED : QDSN_DELIVERED,
			       data, (size_t)w->size, err);
	unmap_file(data, (size_t)w->skip, (size_t)w->size);
	free(r);
	return rc;
}

/* ---- enqueue ------------------------------------------------------ */

static bool valid_envelope(const struct queue_envelope *env,
			   struct queue_error *err)
{
	if (env->rcpt_count == 0) {
		queue_set_error(err, QUEUE_ERR_INVALID, "No recipients");
		return false;
	}
	if (env->sender == NULL || strpbrk(env->sender, "\r\n<>") != NULL) {
		queue_set_error(err, QUEUE_ERR_INVALID, "Invalid sender");
		return false;
	}
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const char *a = env->rcpts[i].address;
		if (a == NULL || strchr(a, '@') == NULL ||
		    strpbrk(a, "\r\n<> ") != NULL || strlen(a) > 256) {
			queue_set_error(err, QUEUE_ERR_INVALID,
					"Invalid recipient address");
			return false;
		}
	}
	return true;
}

struct enqueue_plan {
	bool *queued;
	bool *local;
	const char **domains;
	struct queue_rcpt_result *results;
	size_t queued_count;
};

static void plan_free(struct enqueue_plan *p)
{
	free(p->queued);
	free(p->local);
	free(p->domains);
	free(p->results);
}

/* Stores what goes to local recipients; decides what is queued. */
static void plan(struct queue *q, const struct queue_envelope *env,
		 const void *data, size_t len, struct enqueue_plan *p)
{
	struct queue_hooks h;
	size_t n = env->rcpt_count, local_count = 0;
	struct queue_rcpt *locals = xcalloc(n, sizeof(*locals));
	size_t *index = xcalloc(n, sizeof(*index));
	struct queue_rcpt_result *lres;

	pthread_mutex_lock(&q->mu);
	h = q->hooks;
	pthread_mutex_unlock(&q->mu);
	p->queued = xcalloc(n, sizeof(bool));
	p->local = xcalloc(n, sizeof(bool));
	p->domains = xcalloc(n, sizeof(char *));
	p->results = xcalloc(n, sizeof(*p->results));
	for (size_t i = 0; i < n; i++) {
		const char *domain = queue_addr_domain(env->rcpts[i].address);
		bool is_local = h.is_local != NULL && h.is_local(h.ctx, domain);
		p->local[i] = is_local;
		p->domains[i] = is_local || q->set.smarthost == NULL ? domain : "";
		if (is_local && h.deliver != NULL &&
		    !(env->flags & QUEUE_F_LOCAL_RETRY)) {
			index[local_count] = i;
			locals[local_count++] = env->rcpts[i];
		} else {
			p->queued[i] = true;
			queue_result_set(&p->results[i], QUEUE_RCPT_QUEUED, 0,
					 "", "Queued");
		}
	}
	if (local_count > 0) {
		lres = xcalloc(local_count, sizeof(*lres));
		h.deliver(h.ctx, env->sender, locals, local_count, data, len,
			  lres);
		for (size_t k = 0; k < local_count; k++) {
			size_t i = index[k];
			p->results[i] = lres[k];
			if (lres[k].code >= 200 && lres[k].code < 300) {
				p->results[i].status = QUEUE_RCPT_DELIVERED;
			} else if (lres[k].code >= 500) {
				p->results[i].status = QUEUE_RCPT_FAILED;
			} else {
				/* stored later, from the queue */
				p->results[i].status = QUEUE_RCPT_QUEUED;
				p->queued[i] = true;
			}
		}
		free(lres);
	}
	for (size_t i = 0; i < n; i++)
		p->queued_count += p->queued[i];
	free(locals);
	free(index);
}

/* Maps the finished file's message (after skip bytes) for signing and
 * local delivery. */
static const char *map_file(int fd, size_t skip, size_t len)
{
	void *m;

	if (len == 0)
		return "";
	m = mmap(NULL, skip + len, PROT_READ, MAP_PRIVATE, fd, 0);
	return m == MAP_FAILED ? NULL : (const char *)m + skip;
}

static void unmap_file(const char *data, size_t skip, size_t len)
{
	if (len > 0 && data != NULL)
		munmap((void *)(data - skip), skip + len);
}

/* The jobs of a message just inserted with its remote recipients leased
 * (m->lease_until), one per destination, as a claim makes them. */
static struct qjob *direct_jobs(const struct qmsg_new *m, int64_t msg_row)
{
	const struct queue_envelope *env = m->env;
	struct qjob *jobs = NULL;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct qjob *job;
		struct qjob_rcpt *r;
		if (!m->queued[i] || m->local[i])
			continue;
		for (job = jobs; job != NULL; job = job->next)
			if (strcmp(job->dest, m->domains[i]) == 0)
				break;
		if (job == NULL) {
			job = xcalloc(1, sizeof(*job));
			snprintf(job->id, sizeof(job->id), "%s", m->id);
			job->msg_row = msg_row;
			job->sender = xstrdup(env->sender);
			job->envid = env->envid ? xstrdup(env->envid) : NULL;
			job->ret = env->ret;
			job->flags = env->flags;
			job->user_id = env->user_id;
			job->size = m->size;
			job->created = m->created;
			job->prefix = m->prefix ? xstrdup(m->prefix) : NULL;
			job->dest = xstrdup(m->domains[i]);
			snprintf(job->sha, sizeof(job->sha), "%s",
				 m->sha ? m->sha : "");
			job->body_size = m->body_size;
			job->rcpts = xcalloc(env->rcpt_count, sizeof(*job->rcpts));
			job->next = jobs;
			jobs = job;
		}
		r = &job->rcpts[job->rcpt_count++];
		r->row = m->rows_r[i];
		r->address = xstrdup(env->rcpts[i].address);
		r->orcpt = env->rcpts[i].orcpt ? xstrdup(env->rcpts[i].orcpt)
					       : NULL;
		r->notify = env->rcpts[i].notify;
	}
	return jobs;
}

static int commit_file(struct queue_writer *w, const struct queue_envelope *env,
		       char id_r[QUEUE_ID_SIZE],
		       struct queue_rcpt_result *results_r,
		       struct queue_error *err)
{
	struct queue *q = w->q;
	struct enqueue_plan p = {0};
	struct buf prefix;
	const char *data;
	char id[QUEUE_ID_SIZE], sha[65] = "";
	int64_t *rows = NULL;
	int rc = -1;

	buf_init(&prefix, 0);
	data = map_file(w->fd, (size_t)w->skip, (size_t)w->size);
	if (data == NULL) {
		queue_set_error(err, QUEUE_ERR_INTERNAL, "Internal queue error");
		return -1;
	}
	if ((env->flags & QUEUE_F_SIGN) && q->hooks.sign != NULL &&
	    q->hooks.sign(q->hooks.ctx, data, (size_t)w->size, &prefix) < 0)
		log_warn("queue", NULL, "message not DKIM-signed (see above)");
	plan(q, env, data, (size_t)w->size, &p);
	if (p.queued_count == 0) {
		/* nothing queued: the hourly count is kept on its own */
		if ((env->flags & QUEUE_F_SUBMISSION) && env->user_id != 0)
			q->be->rate_add(q, env->user_id, time(NULL) / 60,
					(unsigned)env->rcpt_count);
		rc = 0;
		goto out;
	}
	/* sortable ids name files; the temporary name was already one */
	snprintf(id, sizeof(id), "%s", strrchr(w->tmp_path, '/') + 1);
	/* the bytes durable (a file, or an object) before the row */
	if (qbody_keep(q, w->fd, w->tmp_path, w->skip + w->size, id, sha,
		       err) < 0)
		goto fail;
	time_t now = time(NULL);
	/* the runner takes it at once when it has room: leased at insert,
	 * no claim (a transaction and a scheduler round) before it leaves */
	bool direct = queue_runner_has_room(q);
	int64_t msg_row = 0;
	rows = direct ? xcalloc(env->rcpt_count, sizeof(*rows)) : NULL;
	struct qmsg_new m = {
		.id = id,
		.env = env,
		.prefix = prefix.len > 0 ? prefix.data : NULL,
		.size = w->size + prefix.len,
		.created = now,
		.sha = sha[0] != '\0' ? sha : NULL,
		.body_size = w->skip + w->size,
		.queued = p.queued,
		.domains = p.domains,
		.local = p.local,
		.results = p.results,
		.lease_until = direct ? now + q->lease_secs : 0,
		.rows_r = rows,
		.msg_row_r = &msg_row,
	};
	if (q->be->insert(q, &m, err) < 0) {
		qbody_unkeep(q, id, sha);
		goto fail;
	}
	snprintf(id_r, QUEUE_ID_SIZE, "%s", id);
	log_info("queue", NULL, "queued %s: from=<%s> rcpts=%zu size=%llu", id,
		 env->sender, p.queued_count, (unsigned long long)m.size);
	if (direct)
		queue_runner_push(q, direct_jobs(&m, msg_row));
	else
		queue_runner_kick(q);
	rc = 0;
	goto out;
fail:
	/* Local copies already stored stay stored: reporting them as
	 * failed would make the client send them again. Only the queued
	 * part failed; the caller sees -1 only if nothing was stored. */
	for (size_t i = 0; i < env->rcpt_count; i++)
		if (p.results[i].status == QUEUE_RCPT_DELIVERED)
			rc = 0;
	if (rc == 0) {
		for (size_t i = 0; i < env->rcpt_count; i++)
			if (p.queued[i])
				queue_result_set(&p.results[i], QUEUE_RCPT_FAILED,
						 err->kind == QUEUE_ERR_FULL
							 ? 452 : 451,
						 err->kind == QUEUE_ERR_FULL
							 ? "4.3.1" : "4.3.0",
						 "%s", err->msg);
	}
out:
	if (results_r != NULL && p.results != NULL)
		memcpy(results_r, p.results,
		       env->rcpt_count * sizeof(*results_r));
	unmap_file(data, (size_t)w->skip, (size_t)w->size);
	plan_free(&p);
	buf_free(&prefix);
	free(rows);
	return rc;
}

int queue_writer_commit(struct queue_writer **wp,
			const struct queue_envelope *env,
			char id_r[QUEUE_ID_SIZE],
			struct queue_rcpt_result *results_r,
			struct queue_error *err)
{
	struct queue_writer *w = *wp;
	struct queue_error dummy;
	int rc = -1;

	if (err == NULL)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	id_r[0] = '\0';
	if (w->failed) {
		queue_set_errno(err, w->failed_errno);
	} else if (valid_envelope(env, err) &&
		   (!(env->flags & QUEUE_F_SUBMISSION) || env->user_id == 0 ||
		    rate_take(w->q, env->user_id, (unsigned)env->rcpt_count))) {
		rc = commit_file(w, env, id_r, results_r, err);
	} else if (err->kind == QUEUE_ERR_NONE) {
		queue_set_error(err, QUEUE_ERR_RATE,
				"Sending limit reached, try again later");
	}
	queue_writer_abort(wp); /* the file was renamed, or goes now */
	return rc;
}

int queue_enqueue(struct queue *q, const struct queue_envelope *env,
		  const void *data, size_t len, char id_r[QUEUE_ID_SIZE],
		  struct queue_rcpt_result *results_r, struct queue_error *err)
{
	struct queue_writer *w;

	id_r[0] = '\0';
	if (queue_writer_create(q, &w, err) < 0)
		return -1;
	if (queue_writer_write(w, data, len, err) < 0) {
		queue_writer_abort(&w);
		return -1;
	}
	return queue_writer_commit(&w, env, id_r, results_r, err);
}

int queue_enqueue_internal(struct queue *q, const struct queue_envelope *env,
			   const void *data, size_t len,
			   struct queue_error *err)
{
	char id[QUEUE_ID_SIZE];
	return queue_enqueue(q, env, data, len, id, NULL, err);
}

/* ---- administration ----------------------------------------------- */

int queue_message_get(struct queue *q, const char *id,
		      struct queue_message_info **info_r,
		      struct queue_error *err)
{
	return q->be->get(q, id, false, info_r, err);
}

int queue_list(struct queue *q, queue_list_fn *fn, void *ctx,
	       struct queue_error *err)
{
	return q->be->list(q, fn, ctx, err);
}

static int admin(struct queue *q, const char *verb, const char *id,
		 struct queue_error *err)
{
	int rc;

	/* before the update: a job taken meanwhile must not be deferred
	 * again for a destination the admin wants tried now */
	if (strcmp(verb, "retry") == 0)
		queue_runner_forget_dead(q);
	/* delete: what names the bytes, before the row goes */
	char sha[65] = "", *prefix = NULL;
	uint64_t size = 0;
	if (strcmp(verb, "delete") == 0 && id != NULL) {
		if (q->be->body_ref(q, id, &prefix, sha, &size, err) < 0)
			return -1;
		free(prefix);
	}
	rc = q->be->admin(q, verb, id, err);
	if (rc == 0 && strcmp(verb, "delete") == 0) {
		qbody_remove(q, id, sha);
		log_info("queue", NULL, "%s deleted by the admin", id);
	}
	if (rc == 0 && q->runner != NULL)
		queue_runner_kick(q);
	return rc;
}

int queue_retry(struct queue *q, const char *id, struct queue_error *err)
{
	return admin(q, "retry", id, err);
}

int queue_hold(struct queue *q, const char *id, struct queue_error *err)
{
	return admin(q, "hold", id, err);
}

int queue_release(struct queue *q, const char *id, struct queue_error *err)
{
	return admin(q, "release", id, err);
}

int queue_delete(struct queue *q, const char *id, struct queue_error *err)
{
	return admin(q, "delete", id, err);
}

int queue_message_data(struct queue *q, const char *id, char **data_r,
		       size_t *len_r, struct queue_error *err)
{
	char *prefix = NULL, sha[65] = "";
	uint64_t size = 0;
	struct qbody body;
	struct buf b;

	*data_r = NULL;
	*len_r = 0;
	if (q->be->body_ref(q, id, &prefix, sha, &size, err) < 0)
		return -1;
	int rc = qbody_open(q, id, sha, size, &body);
	if (rc < 0) {
		free(prefix);
		if (rc == -1)
			queue_set_error(err, QUEUE_ERR_NOTFOUND, "%s is not "
					"queued", id);
		else
			queue_set_error(err, QUEUE_ERR_TEMP, "The bytes of %s "
					"cannot be read now", id);
		return -1;
	}
	buf_init(&b, 0);
	if (prefix != NULL)
		buf_append_str(&b, prefix);
	buf_append(&b, body.data, body.len);
	qbody_close(&body);
	free(prefix);
	*data_r = buf_steal(&b, len_r);
	return 0;
}
