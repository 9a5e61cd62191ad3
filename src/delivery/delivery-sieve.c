/*
 * Sieve at delivery (delivery-sieve.h): the plan of one recipient (which
 * copies, which records, which messages to send), its commit, and the
 * sending after it.
 *
 * Records (store.h "Sieve") make the rules that must survive a crash:
 *   vacation:HANDLE:SENDER     one reply per period (RFC 5230 4.2)
 *   redirect:MSGID:TARGET      a redirect is never repeated
 *   notice:SCRIPT              one error notice per script version
 *   dup-...                    duplicate (RFC 7352), the executor's ids
 * They commit with the copies, so a reply that left after a commit is
 * never sent again, even after kill -9; a crash before the commit sends
 * nothing and the MTA retries.
 */
#include "delivery-sieve.h"
#include "delivery-private.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "imap-ns.h"
#include "log.h"
#include "mail.h"
#include "metrics.h"
#include "queue.h"
#include "sieve.h"
#include "store.h"

#define DSIEVE_CACHE_SLOTS 256

struct delivery_sieve {
	int refs;
	struct sieve_limits limits;
	struct sieve_script **before, **after;
	size_t nbefore, nafter;
	char *global_dir;
	uint64_t vacation_min, vacation_max;
	bool redirect_from_sender;
	char *spamtest_header, *virustest_header;
	/* fileinto another account's folder: IMAP's names for it ([imap]
	 * other_users_namespace, shared_namespace) and [sharing]
	 * cross_domain */
	char *ns_other, *ns_shared;
	bool cross_domain;
	/* include :global: compiled once per version of the file (a
	 * delivery never compiles text); replaced ones stay until ds goes,
	 * as a run on another thread may still use them */
	pthread_mutex_t gmu;
	struct global_script *globals, *retired;
	/* the users' active scripts, compiled, while their store version
	 * (store_sieve_version) stays the same: a delivery reads no index
	 * for them (user_script) */
	pthread_mutex_t cmu;
	struct cached_script *cache[DSIEVE_CACHE_SLOTS];
};

/* One user's active script as compiled, shared by the deliveries that
 * run it (refs: the cache's and each run's). script NULL: the user has
 * no active script (or it does not compile). */
struct cached_script {
	int64_t user_id;
	uint64_t version;
	struct sieve_script *script;
	/* the JMAP VacationResponse (JSON, NULL: none), read when a
	 * delivery first needs it (vacation_read) */
	char *vacation;
	bool vacation_read;
	unsigned refs;
};

struct global_script {
	char *name;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	struct sieve_script *script;     /* NULL: it does not compile */
	struct global_script *next;
};

static pthread_mutex_t installed_mu = PTHREAD_MUTEX_INITIALIZER;
static struct delivery_sieve *installed;
static struct queue *installed_queue;

/* ---- settings ------------------------------------------------------ */

static int load_scripts(const char *cfgpath, const char *list,
			const struct sieve_limits *lim,
			struct sieve_script ***out, size_t *n_r,
			struct buf *errors)
{
	size_t n = 0;
	char **files = config_split_list(list, &n);
	int ret = 0;
	*out = xcalloc(n ? n : 1, sizeof(**out));
	*n_r = 0;
	for (size_t i = 0; i < n; i++) {
		FILE *f = fopen(files[i], "rb");
		if (f == NULL) {
			buf_printf(errors, "%s: [sieve] cannot read %s\n", cfgpath,
				   files[i]);
			ret = -1;
			continue;
		}
		struct buf text;
		buf_init(&text, lim->max_script_size + 1);
		char chunk[8192];
		size_t got;
		bool big = false;
		while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (buf_append(&text, chunk, got) < 0)
				big = true;
		fclose(f);
		struct sieve_errors e;
		struct sieve_script *s = big ? NULL
			: sieve_compile(text.data ? text.data : "", text.len,
					files[i], lim, &e);
		if (big) {
			buf_printf(errors, "%s:1:1: script over max_script_size\n",
				   files[i]);
			ret = -1;
		} else if (s == NULL) {
			for (size_t k = 0; k < e.count; k++)
				buf_printf(errors, "%s:%u:%u: %s\n", files[i],
					   e.items[k].line, e.items[k].column,
					   e.items[k].message);
			sieve_errors_free(&e);
			ret = -1;
		} else {
			sieve_errors_free(&e);
			(*out)[(*n_r)++] = s;
		}
		buf_free(&text);
	}
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return ret;
}

struct delivery_sieve *delivery_sieve_load(const struct config *cfg,
					   struct buf *errors)
{
	struct delivery_sieve *ds = xcalloc(1, sizeof(*ds));
	pthread_mutex_init(&ds->gmu, NULL);
	pthread_mutex_init(&ds->cmu, NULL);
	const char *path = cfg && cfg->path ? cfg->path : "config";
	bool ok = true;
	ds->refs = 1;
	sieve_limits_default(&ds->limits);
	ds->vacation_min = 86400;
	ds->vacation_max = 90 * 86400;
	const char *before = NULL, *after = NULL;
	for (size_t i = 0; cfg && i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, "sieve") != 0)
			continue;
		uint64_t v = 0;
		const char *k = e->key;
		int r = 0;
		if (strcmp(k, "before") == 0) {
			before = e->value;
		} else if (strcmp(k, "after") == 0) {
			after = e->value;
		} else if (strcmp(k, "global_dir") == 0) {
			free(ds->global_dir);
			ds->global_dir = xstrdup(e->value);
		} else if (strcmp(k, "spamtest_header") == 0) {
			free(ds->spamtest_header);
			ds->spamtest_header = xstrdup(e->value);
		} else if (strcmp(k, "virustest_header") == 0) {
			free(ds->virustest_header);
			ds->virustest_header = xstrdup(e->value);
		} else if (strcmp(k, "redirect_envelope_from") == 0) {
			if (strcmp(e->value, "sender") == 0)
				ds->redirect_from_sender = true;
			else if (strcmp(e->value, "recipient") == 0)
				ds->redirect_from_sender = false;
			else
				r = -1;
		} else if (strcmp(k, "max_script_size") == 0) {
			r = config_parse_size(e->value, &v);
			ds->limits.max_script_size = (size_t)v;
		} else if (strcmp(k, "max_variable_size") == 0) {
			r = config_parse_size(e->value, &v);
			ds->limits.max_variable_size = (size_t)v;
		} else if (strcmp(k, "max_actions") == 0) {
			r = config_parse_uint(e->value, 100000, &v);
			ds->limits.max_actions = (unsigned)v;
		} else if (strcmp(k, "max_redirects") == 0) {
			r = config_parse_uint(e->value, 1000, &v);
			ds->limits.max_redirects = (unsigned)v;
		} else if (strcmp(k, "max_include_depth") == 0) {
			r = config_parse_uint(e->value, 60, &v);
			ds->limits.max_include_depth = (unsigned)v;
		} else if (strcmp(k, "max_nesting") == 0) {
			r = config_parse_uint(e->value, 1000, &v);
			ds->limits.max_nesting = (unsigned)v;
		} else if (strcmp(k, "max_steps") == 0) {
			r = config_parse_uint(e->value, UINT64_MAX / 2, &v);
			ds->limits.max_steps = v;
		} else if (strcmp(k, "vacation_min_period") == 0) {
			r = config_parse_duration(e->value, &ds->vacation_min);
		} else if (strcmp(k, "vacation_max_period") == 0) {
			r = config_parse_duration(e->value, &ds->vacation_max);
		} else {
			buf_printf(errors, "%s:%d: [sieve]: unknown key '%s'\n", path,
				   e->line, k);
			ok = false;
			continue;
		}
		if (r < 0) {
			buf_printf(errors, "%s:%d: [sieve] %s: invalid value '%s'\n",
				   path, e->line, k, e->value);
			ok = false;
		}
	}
	if (ds->vacation_max < ds->vacation_min)
		ds->vacation_max = ds->vacation_min;
	/* (IMAP checks these values; here they only name folders) */
	const char *v = cfg ? config_get(cfg, "imap", "other_users_namespace")
			    : NULL;
	ds->ns_other = xstrdup(v ? v : "Other Users");
	v = cfg ? config_get(cfg, "imap", "shared_namespace") : NULL;
	ds->ns_shared = xstrdup(v ? v : "Shared");
	v = cfg ? config_get(cfg, "sharing", "cross_domain") : NULL;
	if (v != NULL && config_parse_bool(v, &ds->cross_domain) < 0)
		ds->cross_domain = false;
	if (before && load_scripts(path, before, &ds->limits, &ds->before,
				   &ds->nbefore, errors) < 0)
		ok = false;
	if (after && load_scripts(path, after, &ds->limits, &ds->after,
				  &ds->nafter, errors) < 0)
		ok = false;
	if (!ok)
		delivery_sieve_unref(&ds);
	return ds;
}

void delivery_sieve_unref(struct delivery_sieve **dsp)
{
	struct delivery_sieve *ds = *dsp;
	if (ds == NULL)
		return;
	*dsp = NULL;
	pthread_mutex_lock(&installed_mu);
	bool last = --ds->refs == 0;
	pthread_mutex_unlock(&installed_mu);
	if (!last)
		return;
	for (size_t i = 0; i < ds->nbefore; i++)
		sieve_script_free(&ds->before[i]);
	for (size_t i = 0; i < ds->nafter; i++)
		sieve_script_free(&ds->after[i]);
	free(ds->before);
	free(ds->after);
	free(ds->global_dir);
	free(ds->spamtest_header);
	free(ds->virustest_header);
	free(ds->ns_other);
	free(ds->ns_shared);
	for (int l = 0; l < 2; l++) {
		struct global_script *g = l ? ds->retired : ds->globals, *next;
		for (; g != NULL; g = next) {
			next = g->next;
			free(g->name);
			sieve_script_free(&g->script);
			free(g);
		}
	}
	pthread_mutex_destroy(&ds->gmu);
	for (size_t i = 0; i < DSIEVE_CACHE_SLOTS; i++)
		if (ds->cache[i] != NULL) {
			sieve_script_free(&ds->cache[i]->script);
			free(ds->cache[i]->vacation);
			free(ds->cache[i]);
		}
	pthread_mutex_destroy(&ds->cmu);
	free(ds);
}

void delivery_sieve_install(struct delivery_sieve *ds, struct queue *queue)
{
	pthread_mutex_lock(&installed_mu);
	struct delivery_sieve *old = installed;
	if (ds)
		ds->refs++;
	installed = ds;
	installed_queue = queue;
	pthread_mutex_unlock(&installed_mu);
	delivery_sieve_unref(&old);
}

const struct sieve_limits *delivery_sieve_limits(const struct delivery_sieve *ds)
{
	return &ds->limits;
}

bool delivery_sieve_installed_limits(struct sieve_limits *limits_r)
{
	pthread_mutex_lock(&installed_mu);
	bool on = installed != NULL;
	if (on)
		*limits_r = installed->limits;
	pthread_mutex_unlock(&installed_mu);
	return on;
}

enum delivery_sieve_quota delivery_sieve_quota(struct auth *auth,
					       struct store_user *su,
					       int64_t user_id,
					       const char *name, uint64_t size,
					       size_t max_script_size,
					       uint64_t *max_r,
					       struct store_error *err)
{
	uint64_t dummy;
	if (max_r == NULL)
		max_r = &dummy;
	if (size > max_script_size) {
		*max_r = max_script_size;
		return DSIEVE_QUOTA_SIZE;
	}
	struct auth_policy pol;
	if (auth == NULL || auth_user_policy(auth, user_id, &pol) < 0)
		auth_policy_defaults(&pol);
	struct store_sieve_script *l;
	size_t n;
	if (store_sieve_list(su, &l, &n, err) < 0)
		return DSIEVE_QUOTA_ERROR;
	uint64_t count = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (name != NULL && strcmp(l[i].name, name) == 0)
			continue;
		count++;
		bytes += l[i].size;
	}
	store_sieve_list_free(l, n);
	if (pol.sieve_max_storage && bytes + size > pol.sieve_max_storage) {
		*max_r = pol.sieve_max_storage;
		return DSIEVE_QUOTA_STORAGE;
	}
	if (pol.sieve_max_scripts && count + 1 > pol.sieve_max_scripts) {
		*max_r = pol.sieve_max_scripts;
		return DSIEVE_QUOTA_SCRIPTS;
	}
	return DSIEVE_QUOTA_OK;
}

static struct delivery_sieve *current(struct queue **queue_r)
{
	pthread_mutex_lock(&installed_mu);
	struct delivery_sieve *ds = installed;
	if (ds)
		ds->refs++;
	if (queue_r)
		*queue_r = installed_queue;
	pthread_mutex_unlock(&installed_mu);
	return ds;
}

bool dsieve_enabled(void)
{
	pthread_mutex_lock(&installed_mu);
	bool on = installed != NULL;
	pthread_mutex_unlock(&installed_mu);
	return on;
}

/* ---- the plan ------------------------------------------------------ */

struct dsieve_copy {
	char *mailbox;
	unsigned flags;
	char **keywords;
	size_t keyword_count;
	bool edited;      /* the editheader body */
	bool notice;      /* the error notice */
	/* another account's folder (fileinto "Other Users/bob@.../X"): the
	 * recipient's handle as a viewer there, and the owner's name of it;
	 * committed after the recipient's own copies (another index) */
	struct store_user *shared;
	char *owner_box;
};

struct dsieve_out {
	char *sender;
	char *rcpt;
	struct buf msg;
	const char *what;
};

struct dsieve_plan {
	struct dsieve_copy *copies;
	size_t ncopies;
	struct store_sieve_record *records;
	size_t nrecords;
	struct dsieve_out *outs;
	size_t nouts;
	struct store_body *edited, *notice;
	bool ereject;
	char ereject_text[200];
	bool nothing_kept;   /* discard, reject, redirect: 250 with no copy */
	bool committed;      /* the records are in: the outs are due */
};

void dsieve_plan_free(struct dsieve_plan **pp)
{
	struct dsieve_plan *p = *pp;
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->ncopies; i++) {
		free(p->copies[i].mailbox);
		free(p->copies[i].owner_box);
		if (p->copies[i].shared != NULL)
			store_user_unref(&p->copies[i].shared);
		for (size_t k = 0; k < p->copies[i].keyword_count; k++)
			free(p->copies[i].keywords[k]);
		free(p->copies[i].keywords);
	}
	free(p->copies);
	for (size_t i = 0; i < p->nrecords; i++)
		free((char *)p->records[i].key);
	free(p->records);
	for (size_t i = 0; i < p->nouts; i++) {
		free(p->outs[i].sender);
		free(p->outs[i].rcpt);
		buf_free(&p->outs[i].msg);
	}
	free(p->outs);
	store_body_unref(&p->edited);
	store_body_unref(&p->notice);
	free(p);
	*pp = NULL;
}

static time_t clock_now(void)
{
	time_t now = time(NULL);
	const char *path = getenv("LOFT_TEST_CLOCK");
	if (path != NULL && *path != '\0') {
		FILE *f = fopen(path, "r");
		double offset = 0;
		if (f != NULL) {
			if (fscanf(f, "%lf", &offset) != 1)
				offset = 0;
			fclose(f);
		}
		now += (time_t)offset;
	}
	return now;
}

static void add_record(struct dsieve_plan *p, char *key, time_t expires)
{
	for (size_t i = 0; i < p->nrecords; i++)
		if (strcmp(p->records[i].key, key) == 0) {
			free(key);
			return;
		}
	p->records = xrealloc(p->records, (p->nrecords + 1) *
			      sizeof(*p->records));
	p->records[p->nrecords].key = key;
	p->records[p->nrecords].expires = expires;
	p->nrecords++;
}

/* keep/fileinto flags: system flags as bits, the rest as keywords. */
static void copy_flags(struct dsieve_copy *c, char **flags, size_t n)
{
	static const struct { const char *name; unsigned bit; } sys[] = {
		{"\\Seen", STORE_FLAG_SEEN}, {"\\Answered", STORE_FLAG_ANSWERED},
		{"\\Flagged", STORE_FLAG_FLAGGED}, {"\\Deleted", STORE_FLAG_DELETED},
		{"\\Draft", STORE_FLAG_DRAFT},
	};
	for (size_t i = 0; i < n; i++) {
		bool done = false;
		for (size_t k = 0; k < sizeof(sys) / sizeof(sys[0]); k++)
			if (strcasecmp(flags[i], sys[k].name) == 0) {
				c->flags |= sys[k].bit;
				done = true;
			}
		if (done || flags[i][0] == '\\')
			continue;   /* \Recent and unknown system flags: not set */
		bool dup = false;
		for (size_t k = 0; k < c->keyword_count; k++)
			if (strcasecmp(c->keywords[k], flags[i]) == 0)
				dup = true;
		if (dup)
			continue;
		c->keywords = xrealloc(c->keywords, (c->keyword_count + 1) *
				       sizeof(char *));
		c->keywords[c->keyword_count++] = xstrdup(flags[i]);
	}
}

static struct dsieve_copy *add_copy(struct dsieve_plan *p, const char *box,
				    bool edited)
{
	for (size_t i = 0; i < p->ncopies; i++)
		if (strcmp(p->copies[i].mailbox, box) == 0 ||
		    (strcasecmp(box, "INBOX") == 0 &&
		     strcasecmp(p->copies[i].mailbox, "INBOX") == 0))
			return &p->copies[i];
	p->copies = xrealloc(p->copies, (p->ncopies + 1) * sizeof(*p->copies));
	struct dsieve_copy *c = &p->copies[p->ncopies++];
	memset(c, 0, sizeof(*c));
	c->mailbox = xstrdup(box);
	c->edited = edited;
	return c;
}

/* The rights the recipient holds on a shared target's folder (0 when it
 * is missing or unseen). */
static unsigned target_rights(struct store_user *u, const char *box)
{
	unsigned rights = 0;
	if (store_viewer_rights(u, box, &rights, NULL) < 0)
		rights = 0;
	return rights;
}

/* A copy into another account's folder, when the recipient holds p there
 * (and k for :create of a missing one, RFC 4314 2.1): NULL, or why not. */
static const char *shared_copy(struct dsieve_plan *p, struct store_user *su,
			       const char *obox, const char *name, bool create,
			       bool edited, char **flags, size_t nflags)
{
	unsigned rights = target_rights(su, obox);
	if (rights == 0 && create) {
		struct store_error err = {0};
		if (store_mailbox_create(su, obox, 0, &err) < 0 &&
		    err.kind != STORE_ERR_EXISTS)
			return err.kind == STORE_ERR_NOPERM
				       ? "no right to create it (k)"
				       : "cannot create it";
		rights = target_rights(su, obox);
	}
	if (!(rights & STORE_RIGHT_POST))
		return rights & STORE_RIGHT_LOOKUP
			       ? "no right to deliver there (p)"
			       : "no such folder";
	struct dsieve_copy *c = add_copy(p, name, edited);
	if (c->shared == NULL) {
		store_user_ref(su);
		c->shared = su;
		c->owner_box = xstrdup(obox);
	}
	copy_flags(c, flags, nflags);
	return NULL;
}

static void add_out(struct dsieve_plan *p, const char *sender,
		    const char *rcpt, const char *what, struct buf *msg)
{
	p->outs = xrealloc(p->outs, (p->nouts + 1) * sizeof(*p->outs));
	struct dsieve_out *o = &p->outs[p->nouts++];
	o->sender = xstrdup(sender);
	o->rcpt = xstrdup(rcpt);
	o->what = what;
	o->msg = *msg;
	buf_init(msg, 0);
}

/* ---- callbacks into the store -------------------------------------- */

struct run_ctx {
	struct delivery_session *s;
	struct drcpt *r;
	struct delivery_sieve *ds;
	struct sieve_script **loaded;
	size_t nloaded;
};

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at ? at + 1 : "";
}

/* A folder name in the other users' or the shared namespace, as IMAP
 * names it ("Other Users/bob@example.test/Family", "Shared/sales/X"):
 * 1 with the recipient's viewer handle on the owner's mail (*user_r) and
 * the owner's name of the folder (*box_r); 0 for a personal name; -1
 * when it names no account this one may reach (as a missing folder). */
static int shared_target(struct run_ctx *c, const char *name,
			 struct store_user **user_r, char **box_r)
{
	struct imap_ns_settings ns = {c->ds->ns_other, c->ds->ns_shared};
	struct auth *auth = c->s->d->auth;
	struct auth_user me, owner;
	const char *why;
	struct imap_ns_name n;
	if (auth == NULL || auth_lookup_id(auth, c->r->user_id, &me) != 1)
		return 0;
	int r = imap_ns_parse(&ns, domain_of(me.address), name, strlen(name),
			      &n, &why);
	if (r <= 0)
		return r;
	int ret = -1;
	if (n.owner == NULL || n.mailbox == NULL ||
	    auth_lookup(auth, n.owner, &owner) != 1 ||
	    (auth_user_is_shared(auth, owner.id) == 1) !=
		    (n.kind == IMAP_NS_SHARED))
		goto out;
	if (owner.id == c->r->user_id) {
		store_user_ref(c->r->user);
		*user_r = c->r->user;
	} else {
		int64_t *groups = NULL;
		size_t ng = 0;
		if (auth_user_groups(auth, me.id, &groups, &ng) < 0)
			goto out;
		struct store_viewer v = {
			.user_id = me.id, .groups = groups, .group_count = ng,
			.same_domain = strcasecmp(domain_of(owner.address),
						  domain_of(me.address)) == 0,
			.cross_domain = c->ds->cross_domain,
		};
		r = store_user_open_as(c->s->d->store, owner.id, &v, user_r,
				       NULL);
		free(groups);
		if (r < 0)
			goto out;
	}
	*box_r = n.mailbox;
	n.mailbox = NULL;
	ret = 1;
out:
	imap_ns_name_free(&n);
	return ret;
}

static bool cb_mailbox_exists(void *ctx, const char *name)
{
	struct run_ctx *c = ctx;
	struct store_user *u = NULL;
	char *box = NULL;
	int sh = shared_target(c, name, &u, &box);
	if (sh != 0) {
		/* RFC 5490 3.1: exists, and this user may deliver there */
		bool ok = sh > 0 && (target_rights(u, box) & STORE_RIGHT_POST);
		if (u != NULL)
			store_user_unref(&u);
		free(box);
		return ok;
	}
	struct store_mailbox_info info;
	if (store_mailbox_status(c->r->user, name, &info, NULL) < 0)
		return false;
	store_mailbox_info_free(&info);
	return true;
}

static bool cb_duplicate_seen(void *ctx, const char *id)
{
	struct run_ctx *c = ctx;
	bool seen = false;
	if (store_sieve_record_seen(c->r->user, id, clock_now(), &seen,
				    NULL) < 0)
		return false;
	return seen;
}

static struct sieve_script *compile_text(const char *name, const char *src,
					 size_t len,
					 const struct sieve_limits *lim)
{
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile(src, len, name, lim, &e);
	sieve_errors_free(&e);
	return s;
}

/* global_dir/NAME.sieve compiled, from the cache while the file is the
 * same (device, inode, size, mtime); NULL when there is none or it does
 * not compile. The script lives as long as ds. */
static const struct sieve_script *global_script(struct delivery_sieve *ds,
						const char *name)
{
	if (ds->global_dir == NULL || strchr(name, '/') != NULL)
		return NULL;
	char *path = xasprintf("%s/%s.sieve", ds->global_dir, name);
	struct stat st;
	FILE *f = fopen(path, "rb");
	free(path);
	if (f == NULL || fstat(fileno(f), &st) < 0) {
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	pthread_mutex_lock(&ds->gmu);
	struct global_script **gp = &ds->globals, *g;
	for (; (g = *gp) != NULL; gp = &g->next)
		if (strcmp(g->name, name) == 0)
			break;
	if (g != NULL && g->dev == st.st_dev && g->ino == st.st_ino &&
	    g->size == st.st_size && g->mtime.tv_sec == st.st_mtim.tv_sec &&
	    g->mtime.tv_nsec == st.st_mtim.tv_nsec) {
		const struct sieve_script *s = g->script;
		pthread_mutex_unlock(&ds->gmu);
		fclose(f);
		return s;
	}
	if (g != NULL) {
		/* a new version: the old one may be running elsewhere */
		*gp = g->next;
		g->next = ds->retired;
		ds->retired = g;
	}
	struct buf text;
	buf_init(&text, ds->limits.max_script_size);
	char chunk[8192];
	size_t got;
	bool big = false;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&text, chunk, got) < 0)
			big = true;
	fclose(f);
	g = xcalloc(1, sizeof(*g));
	g->name = xstrdup(name);
	g->dev = st.st_dev;
	g->ino = st.st_ino;
	g->size = st.st_size;
	g->mtime = st.st_mtim;
	g->script = big ? NULL : compile_text(name, text.data ? text.data : "",
					      text.len, &ds->limits);
	buf_free(&text);
	g->next = ds->globals;
	ds->globals = g;
	const struct sieve_script *s = g->script;
	pthread_mutex_unlock(&ds->gmu);
	return s;
}

static const struct sieve_script *cb_include(void *ctx, bool global,
					     const char *name)
{
	struct run_ctx *c = ctx;
	if (global)
		return global_script(c->ds, name);
	/* :personal: the stored image (compiled only if this build did not
	 * write it) */
	struct sieve_script *s = NULL;
	char *src = NULL;
	size_t len = 0, ilen = 0;
	void *img = NULL;
	if (store_sieve_get(c->r->user, name, &src, &len, &img, &ilen, NULL,
			    NULL) < 0)
		return NULL;
	if (img != NULL)
		s = sieve_script_load(img, ilen, name);
	if (s == NULL)
		s = compile_text(name, src, len, &c->ds->limits);
	free(src);
	free(img);
	if (s != NULL) {
		c->loaded = xrealloc(c->loaded, (c->nloaded + 1) *
				     sizeof(*c->loaded));
		c->loaded[c->nloaded++] = s;
	}
	return s;
}

/* ---- vacation ------------------------------------------------------ */

struct addr_list {
	char **v;
	size_t n;
};

static void addr_add(void *ctx, const char *name, const char *extra)
{
	(void)extra;
	struct addr_list *l = ctx;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(char *));
	l->v[l->n++] = xstrdup(name);
}

static char *lower_dup(const char *s)
{
	char *r = xstrdup(s);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static void plan_vacation(struct delivery_session *s, struct drcpt *r,
			  struct delivery_sieve *ds, struct dsieve_plan *p,
			  const struct sieve_action *a, time_t now)
{
	const char *from = s->env.sender;
	/* the checks that read nothing first: most mail that may not be
	 * answered (lists, bulk, bounces) costs no store or account read */
	const char *early = sieve_vacation_refusal_early(s->copy.data,
							 s->copy.len, from);
	if (early != NULL) {
		log_info("sieve", s->sid, "vacation for %s: no reply to <%s>: %s",
			 r->display, from, early);
		return;
	}
	char *sender = lower_dup(from);
	char *key = xasprintf("vacation:%s:%s", a->handle, sender);
	bool seen = false;
	if (store_sieve_record_seen(r->user, key, now, &seen, NULL) == 0 &&
	    seen) {
		free(key);
		free(sender);
		return;
	}
	/* the user's own addresses, its aliases, and :addresses */
	struct addr_list own = {0};
	addr_add(&own, r->address, NULL);
	char *base = xstrdup(r->address);
	char *plus = strchr(base, '+'), *at = strrchr(base, '@');
	if (plus && at && plus < at) {
		memmove(plus, at, strlen(at) + 1);
		addr_add(&own, base, NULL);
	}
	free(base);
	auth_send_addresses(s->d->auth, r->user_id, addr_add, &own, NULL);
	for (size_t i = 0; i < a->address_count; i++)
		addr_add(&own, a->addresses[i], NULL);
	const char *why = sieve_vacation_refusal(s->copy.data, s->copy.len, from,
						 (const char *const *)own.v,
						 own.n);
	if (why != NULL) {
		log_info("sieve", s->sid, "vacation for %s: no reply to <%s>: %s",
			 r->display, from, why);
	} else {
		uint64_t period = a->seconds;
		if (period < ds->vacation_min)
			period = ds->vacation_min;
		if (period > ds->vacation_max)
			period = ds->vacation_max;
		struct buf msg;
		buf_init(&msg, 0);
		sieve_vacation_compose(a, s->copy.data, s->copy.len, from,
				       own.v[own.n > 1 && strchr(r->address, '+')
					     ? 1 : 0],
				       s->d->hostname, now, &msg);
		add_out(p, "", from, "vacation reply", &msg);
		add_record(p, key, now + (time_t)period);
		key = NULL;
	}
	free(key);
	free(sender);
	for (size_t i = 0; i < own.n; i++)
		free(own.v[i]);
	free(own.v);
}

/* ---- redirect ------------------------------------------------------ */

/* Whether the message already carries our Delivered-To for r. */
static bool delivered_before(struct delivery_session *s, struct drcpt *r)
{
	size_t hs = mail_header_size(s->copy.data ? s->copy.data : "",
				     s->copy.len);
	struct mail_header_iter it;
	mail_header_iter_init(&it, s->copy.data ? s->copy.data : "", hs);
	struct slice name, value;
	while (mail_header_iter_next(&it, &name, &value) == 1) {
		if (!slice_eq_ci(name, "delivered-to"))
			continue;
		while (value.len && (value.ptr[value.len - 1] == ' ' ||
				     value.ptr[value.len - 1] == '\r'))
			value.len--;
		if ((value.len == strlen(r->display) &&
		     strncasecmp(value.ptr, r->display, value.len) == 0) ||
		    (value.len == strlen(r->address) &&
		     strncasecmp(value.ptr, r->address, value.len) == 0))
			return true;
	}
	return false;
}

static char *message_id(struct delivery_session *s)
{
	struct slice v;
	size_t hs = mail_header_size(s->copy.data ? s->copy.data : "",
				     s->copy.len);
	if (mail_header_find(s->copy.data ? s->copy.data : "", hs, "message-id",
			     &v)) {
		struct buf b;
		buf_init(&b, 0);
		mail_header_unfold(&b, v);
		size_t n;
		char *r = buf_steal(&b, &n);
		return r ? r : xstrdup("");
	}
	/* no Message-ID: the transaction stands for the message */
	return xasprintf("<%s@%s>", s->env.id, s->d->hostname);
}

/* false: not done (the message must then be kept). */
static bool plan_redirect(struct delivery_session *s, struct drcpt *r,
			  struct delivery_sieve *ds, struct dsieve_plan *p,
			  const struct sieve_action *a, time_t now)
{
	struct auth_user target;
	if (strcasecmp(a->address, r->address) == 0 ||
	    (delivery_resolve(s->d, a->address, &target) == 1 &&
	     target.id == r->user_id)) {
		log_info("sieve", s->sid, "redirect of %s to itself (%s) not "
			 "done: kept", r->display, a->address);
		return false;
	}
	if (delivered_before(s, r)) {
		log_info("sieve", s->sid, "redirect of %s to %s not done: the "
			 "message was delivered to %s before (a loop): kept",
			 r->display, a->address, r->display);
		return false;
	}
	char *mid = message_id(s);
	char *target_l = lower_dup(a->address);
	char *key = xasprintf("redirect:%s:%s", mid, target_l);
	free(mid);
	free(target_l);
	bool seen = false;
	if (store_sieve_record_seen(r->user, key, now, &seen, NULL) == 0 &&
	    seen) {
		log_info("sieve", s->sid, "redirect of %s to %s was done before "
			 "for this message: not repeated", r->display, a->address);
		free(key);
		return true;
	}
	struct buf msg;
	buf_init(&msg, 0);
	/* our Delivered-To goes along: a loop back is seen and stopped */
	buf_printf(&msg, "Delivered-To: %s\r\n", r->display);
	buf_append(&msg, s->copy.data, s->copy.len);
	const char *from = ds->redirect_from_sender || s->env.sender[0] == '\0'
		? s->env.sender : r->address;
	add_out(p, from, a->address, "redirect", &msg);
	add_record(p, key, now + 7 * 86400);
	return true;
}

/* ---- JMAP VacationResponse (RFC 8621 8) ----------------------------- */

/* "2026-12-06T10:00:00Z" (UTC, as JMAP's UTCDate) */
static bool utc_date(const char *s, time_t *t_r)
{
	struct tm tm = {0};
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
				&tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
				&tm.tm_sec) != 6)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*t_r = timegm(&tm);
	return true;
}

/* The account's VacationResponse as stored (JSON), or NULL. */
static char *jmap_vacation_read(struct drcpt *r)
{
	struct store_jobject *list = NULL;
	size_t n = 0;
	char *data = NULL;
	if (store_jobject_list(r->user, STORE_JMAP_VACATION, &list, &n,
			       NULL) == 0 && n > 0 && list[0].data != NULL)
		data = xstrdup(list[0].data);
	store_jobject_list_free(list, n);
	return data;
}

/* The VacationResponse (data as stored) as a vacation action, when it
 * is on now: run by the same engine after the scripts, with the same
 * records (handle "jmap-vacation"), so no message gets two replies. */
static bool jmap_vacation(const char *data, time_t now,
			  struct sieve_action *a)
{
	if (data == NULL)
		return false;
	json_t *o = json_loads(data, 0, NULL);
	bool on = false;
	if (json_is_object(o) && json_is_true(json_object_get(o, "isEnabled"))) {
		time_t from, to;
		const char *f = json_string_value(json_object_get(o, "fromDate"));
		const char *t = json_string_value(json_object_get(o, "toDate"));
		on = (f == NULL || (utc_date(f, &from) && now >= from)) &&
		     (t == NULL || (utc_date(t, &to) && now < to));
	}
	if (on) {
		const char *subj = json_string_value(json_object_get(o, "subject"));
		const char *text = json_string_value(json_object_get(o,
								     "textBody"));
		const char *html = json_string_value(json_object_get(o,
								     "htmlBody"));
		memset(a, 0, sizeof(*a));
		a->kind = SIEVE_ACT_VACATION;
		a->subject = subj ? xstrdup(subj) : NULL;
		if (text == NULL && html != NULL) {
			/* the HTML part as the whole reply */
			a->mime = true;
			a->text = xasprintf("Content-Type: text/html; "
					    "charset=utf-8\r\n\r\n%s", html);
		} else {
			a->text = xstrdup(text ? text : "");
		}
		a->handle = xstrdup("jmap-vacation");
		a->seconds = 7 * 86400;
	}
	json_decref(o);
	return on;
}

static void action_free(struct sieve_action *a)
{
	free(a->subject);
	free(a->text);
	free(a->handle);
	memset(a, 0, sizeof(*a));
}

/* ---- the plan of a recipient --------------------------------------- */

/* The virus scanner's word in the header an MTA in front wrote
 * ([sieve] virustest_header) as virustest's value (RFC 5235 3.2): a
 * digit 0-5 as it is; Clean/No/None/OK/Passed 1; Cured/Repaired/
 * Disinfected/Removed 3 (clamav-milter, amavis, rspamd's milter
 * headers); Suspicious/Heuristic/Possibly 4; any other text (Infected
 * (NAME), Yes, a virus's name as rspamd's X-Virus has it) 5. */
static int virus_word(const char *v, size_t len)
{
	while (len > 0 && (*v == ' ' || *v == '\t' || *v == '\r' ||
			   *v == '\n')) {
		v++;
		len--;
	}
	size_t w = 0;
	while (w < len && (isalnum((unsigned char)v[w]) || v[w] == '-'))
		w++;
	if (w == 0)
		return 0;
	if (w == 1 && v[0] >= '0' && v[0] <= '5')
		return v[0] - '0';
	static const struct { const char *word; int value; } words[] = {
		{"clean", 1}, {"no", 1}, {"none", 1}, {"ok", 1}, {"passed", 1},
		{"cured", 3}, {"repaired", 3}, {"disinfected", 3}, {"removed", 3},
		{"suspicious", 4}, {"heuristic", 4}, {"possibly", 4},
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].word) == w &&
		    strncasecmp(v, words[i].word, w) == 0)
			return words[i].value;
	return 5;
}

static void spam_verdict(struct delivery_session *s, struct delivery_sieve *ds,
			 struct sieve_input *in)
{
	in->virus_status = s->env.virus_status;
	if (in->virus_status == 0 && ds->virustest_header != NULL) {
		/* LMTP: the header the MTA's virus scanner wrote (the first
		 * one: the nearest MTA's) */
		struct slice v;
		size_t hs = mail_header_size(s->copy.data ? s->copy.data : "",
					     s->copy.len);
		if (mail_header_find(s->copy.data ? s->copy.data : "", hs,
				     ds->virustest_header, &v))
			in->virus_status = virus_word(v.ptr, v.len);
	}
	in->spam_scanned = s->env.spam_scanned;
	in->spam_score = s->env.spam_score;
	in->spam_threshold = s->env.spam_threshold;
	if (in->spam_scanned || ds->spamtest_header == NULL)
		return;
	/* LMTP: the header the MTA's scanner wrote ("5.3", "5.3/6",
	 * "Yes, score=5.3 required=6.0") */
	struct slice v;
	size_t hs = mail_header_size(s->copy.data ? s->copy.data : "",
				     s->copy.len);
	if (!mail_header_find(s->copy.data ? s->copy.data : "", hs,
			      ds->spamtest_header, &v))
		return;
	char tmp[200];
	snprintf(tmp, sizeof(tmp), "%.*s", (int)(v.len < 199 ? v.len : 199),
		 v.ptr);
	const char *sc = strstr(tmp, "score=");
	const char *rq = strstr(tmp, "required=");
	char *end;
	double score = strtod(sc ? sc + 6 : tmp, &end);
	if (end == (sc ? sc + 6 : tmp))
		return;
	double th = 5.0;
	if (rq)
		th = strtod(rq + 9, NULL);
	else if (*end == '/')
		th = strtod(end + 1, NULL);
	in->spam_scanned = true;
	in->spam_score = score;
	in->spam_threshold = th > 0 ? th : 5.0;
}

/* A notice in INBOX: the script, the line, the error. */
static struct store_body *notice_body(struct delivery_session *s,
				      struct drcpt *r, const char *script,
				      const struct sieve_result *res,
				      time_t now)
{
	struct buf m;
	buf_init(&m, 0);
	char date[64];
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(&m, "From: Mail System <MAILER-DAEMON@%s>\r\n"
		   "To: <%s>\r\nSubject: Your Sieve script \"%s\" failed\r\n"
		   "Date: %s\r\nAuto-Submitted: auto-generated\r\n"
		   "MIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n\r\n"
		   "Your mail filter \"%s\" stopped at line %u:\r\n\r\n"
		   "  %s\r\n\r\n"
		   "Messages are kept in INBOX, as if there were no filter,\r\n"
		   "until the script is fixed. This notice is sent once for\r\n"
		   "this version of the script.\r\n",
		   s->d->hostname, r->address, script, date, script,
		   res->error_line, res->error_text);
	struct store_body *b = NULL;
	struct store_error err = {0};
	if (store_body_create(s->d->store, &b, &err) < 0 ||
	    store_body_write(b, m.data, m.len, &err) < 0 ||
	    store_body_finish(b, &err) < 0)
		store_body_unref(&b);
	buf_free(&m);
	return b;
}

static uint64_t image_hash(const struct sieve_script *sc)
{
	size_t len;
	const unsigned char *p = sieve_script_image(sc, &len);
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void plan_error(struct delivery_session *s, struct drcpt *r,
		       struct dsieve_plan *p, const struct sieve_script *sc,
		       const struct sieve_result *res, time_t now)
{
	const char *name = sc ? sieve_script_name(sc) : "?";
	log_warn("sieve", s->sid, "script \"%s\" of %s failed at line %u: %s; "
		 "kept as if no script had run", name, r->display,
		 res->error_line, res->error_text);
	add_copy(p, r->mailbox, false);
	if (sc == NULL)
		return;
	char *key = xasprintf("notice:%s:%016llx", name,
			      (unsigned long long)image_hash(sc));
	bool seen = false;
	if (store_sieve_record_seen(r->user, key, now, &seen, NULL) == 0 &&
	    !seen && (p->notice = notice_body(s, r, name, res, now)) != NULL) {
		/* the notice is a copy of its own, after the message */
		p->copies = xrealloc(p->copies, (p->ncopies + 1) *
				     sizeof(*p->copies));
		struct dsieve_copy *n = &p->copies[p->ncopies++];
		memset(n, 0, sizeof(*n));
		n->mailbox = xstrdup("INBOX");
		n->notice = true;
		add_record(p, key, now + 10 * 366 * 86400);
		key = NULL;
	}
	free(key);
}

/* The user's active script from the store: the stored image, else
 * compiled now; NULL when there is none (or it does not compile). */
static struct sieve_script *user_script_read(struct delivery_session *s,
					     struct drcpt *r,
					     struct delivery_sieve *ds)
{
	char *name = NULL, *src = NULL;
	size_t len = 0, ilen = 0;
	void *img = NULL;
	struct store_error err = {0};
	int ret = store_sieve_active(r->user, &name, &src, &len, &img, &ilen,
				     &err);
	if (ret < 0)
		log_warn("sieve", s->sid, "reading the script of %s: %s",
			 r->display, err.msg);
	if (ret <= 0)
		return NULL;
	struct sieve_script *sc = img ? sieve_script_load(img, ilen, name) : NULL;
	if (sc == NULL) {
		struct sieve_errors e;
		sc = sieve_compile(src, len, name, &ds->limits, &e);
		if (sc == NULL)
			log_warn("sieve", s->sid, "the active script \"%s\" of %s "
				 "does not compile (line %u: %s): ignored", name,
				 r->display, e.count ? e.items[0].line : 0,
				 e.count ? e.items[0].message : "?");
		sieve_errors_free(&e);
	}
	free(name);
	free(src);
	free(img);
	return sc;
}

static void cached_unref(struct delivery_sieve *ds, struct cached_script *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&ds->cmu);
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&ds->cmu);
	if (last) {
		sieve_script_free(&c->script);
		free(c->vacation);
		free(c);
	}
}

/* The user's VacationResponse through the cache entry held (read once
 * per version). The text stays valid while the entry is held. */
static const char *vacation_text(struct delivery_sieve *ds, struct drcpt *r,
				 struct cached_script *c)
{
	pthread_mutex_lock(&ds->cmu);
	bool known = c->vacation_read;
	pthread_mutex_unlock(&ds->cmu);
	if (known)
		return c->vacation;
	char *v = jmap_vacation_read(r);
	pthread_mutex_lock(&ds->cmu);
	if (!c->vacation_read) {
		c->vacation = v;
		c->vacation_read = true;
		v = NULL;
	}
	pthread_mutex_unlock(&ds->cmu);
	free(v);   /* another run read it meanwhile */
	return c->vacation;
}

/* The user's active script, from the cache while the store's version of
 * the user's scripts stays the same (a delivery then reads no index for
 * it), else read and kept. *held_r: the reference to give back
 * (cached_unref) once the run is over. */
static const struct sieve_script *user_script(struct delivery_session *s,
					      struct drcpt *r,
					      struct delivery_sieve *ds,
					      struct cached_script **held_r)
{
	/* the version first: a change after it shows as a new one */
	uint64_t version = store_sieve_version(r->user);
	size_t slot = (size_t)((uint64_t)r->user_id % DSIEVE_CACHE_SLOTS);
	struct cached_script *c = NULL;
	if (version != 0) {
		pthread_mutex_lock(&ds->cmu);
		c = ds->cache[slot];
		if (c != NULL && c->user_id == r->user_id &&
		    c->version == version)
			c->refs++;
		else
			c = NULL;
		pthread_mutex_unlock(&ds->cmu);
	}
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		c->user_id = r->user_id;
		c->version = version;
		c->script = user_script_read(s, r, ds);
		c->refs = 1;
		if (version != 0) {
			/* kept for the next delivery (the slot's old one goes
			 * when its last run ends) */
			pthread_mutex_lock(&ds->cmu);
			struct cached_script *old = ds->cache[slot];
			ds->cache[slot] = c;
			c->refs++;
			pthread_mutex_unlock(&ds->cmu);
			cached_unref(ds, old);
		}
	}
	*held_r = c;
	return c->script;
}

static void plan(struct delivery_session *s, struct drcpt *r)
{
	struct queue *queue = NULL;
	struct delivery_sieve *ds = current(&queue);
	if (ds == NULL)
		return;
	struct cached_script *held = NULL;
	const struct sieve_script *mine = user_script(s, r, ds, &held);
	if (mine == NULL && ds->nbefore == 0 && ds->nafter == 0) {
		/* no script: only a JMAP vacation may want a plan */
		struct sieve_action jv;
		if (!jmap_vacation(vacation_text(ds, r, held), clock_now(),
				   &jv)) {
			cached_unref(ds, held);
			delivery_sieve_unref(&ds);
			return;
		}
		action_free(&jv);
	}
	size_t n = 0;
	const struct sieve_script **seq = xcalloc(ds->nbefore + ds->nafter + 1,
						  sizeof(*seq));
	for (size_t i = 0; i < ds->nbefore; i++)
		seq[n++] = ds->before[i];
	if (mine)
		seq[n++] = mine;
	for (size_t i = 0; i < ds->nafter; i++)
		seq[n++] = ds->after[i];
	time_t now = clock_now();
	struct run_ctx ctx = {.s = s, .r = r, .ds = ds};
	struct sieve_callbacks cb = {cb_mailbox_exists, cb_duplicate_seen,
				     cb_include};
	const char *at = strrchr(r->address, '@');
	struct sieve_input in = {
		.env_from = s->env.sender, .env_to = r->address,
		.data = s->copy.data ? s->copy.data : "", .len = s->copy.len,
		.domain = at ? at + 1 : "", .host = s->d->hostname,
		.remote_host = s->env.helo, .remote_ip = s->env.peer,
		.now = now, .cb = &cb, .cb_ctx = &ctx,
	};
	struct tm lt;
	localtime_r(&now, &lt);
	in.tz_offset = (int)(lt.tm_gmtoff / 60);
	/* body :text: the text the store's analysis gathered (one
	 * analysis per message), when it kept it */
	in.body_text = store_body_text(s->body, &in.body_text_len);
	spam_verdict(s, ds, &in);
	struct sieve_result res;
	struct dsieve_plan *p = xcalloc(1, sizeof(*p));
	r->plan = p;
	if (sieve_execute(seq, n, &in, &ds->limits, &res) < 0) {
		plan_error(s, r, p, res.error_script < n ? seq[res.error_script]
				    : NULL, &res, now);
		goto out;
	}
	if (res.header != NULL) {
		/* editheader: this recipient's own copy of the message */
		size_t hs = mail_header_size(s->copy.data ? s->copy.data : "",
					     s->copy.len);
		struct store_error err = {0};
		if (store_body_create(s->d->store, &p->edited, &err) < 0 ||
		    store_body_write(p->edited, res.header, res.header_len,
				     &err) < 0 ||
		    store_body_write(p->edited, s->copy.data + hs,
				     s->copy.len - hs, &err) < 0 ||
		    store_body_finish(p->edited, &err) < 0) {
			log_warn("sieve", s->sid, "editheader copy for %s: %s: "
				 "the message is kept unedited", r->display,
				 err.msg);
			store_body_unref(&p->edited);
		}
	}
	bool edited = p->edited != NULL;
	bool kept = false;
	for (size_t i = 0; i < res.count; i++) {
		const struct sieve_action *a = &res.actions[i];
		struct dsieve_copy *c;
		switch (a->kind) {
		case SIEVE_ACT_KEEP:
			c = add_copy(p, r->mailbox, edited);
			copy_flags(c, a->flags, a->flag_count);
			kept = true;
			break;
		case SIEVE_ACT_FILEINTO: {
			const char *box = a->mailbox;
			struct store_error err = {0};
			struct store_user *su = NULL;
			char *obox = NULL;
			int sh = shared_target(&ctx, box, &su, &obox);
			if (sh != 0) {
				const char *why = sh < 0 ? "no such folder"
					: shared_copy(p, su, obox, box, a->create,
						      edited, a->flags,
						      a->flag_count);
				if (why != NULL) {
					log_info("sieve", s->sid, "fileinto \"%s\" "
						 "for %s: %s: kept in INBOX", box,
						 r->display, why);
					c = add_copy(p, "INBOX", edited);
					copy_flags(c, a->flags, a->flag_count);
				}
				if (su != NULL)
					store_user_unref(&su);
				free(obox);
				kept = true;
				break;
			}
			if (!cb_mailbox_exists(&ctx, box)) {
				if (!a->create) {
					log_info("sieve", s->sid, "fileinto \"%s\" for "
						 "%s: no such folder: kept in INBOX",
						 box, r->display);
					box = "INBOX";
				} else if (store_mailbox_create(r->user, box, 0,
								&err) < 0 &&
					   err.kind != STORE_ERR_EXISTS) {
					log_info("sieve", s->sid, "fileinto :create "
						 "\"%s\" for %s: %s: kept in INBOX",
						 box, r->display, err.msg);
					box = "INBOX";
				}
			}
			c = add_copy(p, box, edited);
			copy_flags(c, a->flags, a->flag_count);
			kept = true;
			break;
		}
		case SIEVE_ACT_REDIRECT:
			if (!plan_redirect(s, r, ds, p, a, now)) {
				add_copy(p, "INBOX", edited);
				kept = true;
			}
			break;
		case SIEVE_ACT_DISCARD:
			break;
		case SIEVE_ACT_EREJECT:
			p->ereject = true;
			snprintf(p->ereject_text, sizeof(p->ereject_text), "%s",
				 a->text);
			for (char *q = p->ereject_text; *q; q++)
				if ((unsigned char)*q < 0x20)
					*q = ' ';
			break;
		case SIEVE_ACT_REJECT:
			if (s->env.sender[0] != '\0') {
				struct buf msg;
				buf_init(&msg, 0);
				sieve_reject_compose(a->text, s->copy.data,
						     s->copy.len, s->env.sender,
						     r->address, s->d->hostname,
						     now, &msg);
				add_out(p, "", s->env.sender, "refusal", &msg);
			}
			break;
		case SIEVE_ACT_VACATION:
			plan_vacation(s, r, ds, p, a, now);
			break;
		case SIEVE_ACT_DUPLICATE: {
			uint64_t sec = a->seconds;
			if (sec > 30 * 86400)
				sec = 30 * 86400;
			add_record(p, xstrdup(a->id), now + (time_t)sec);
			break;
		}
		}
	}
	p->nothing_kept = !kept;
	/* JMAP's VacationResponse: after the scripts, when none replied and
	 * the message was kept */
	bool replied = false;
	for (size_t i = 0; i < res.count; i++)
		if (res.actions[i].kind == SIEVE_ACT_VACATION)
			replied = true;
	struct sieve_action jv;
	if (kept && !replied &&
	    jmap_vacation(vacation_text(ds, r, held), now, &jv)) {
		plan_vacation(s, r, ds, p, &jv, now);
		action_free(&jv);
	}
	if (queue == NULL && p->nouts > 0)
		log_warn("sieve", s->sid, "no queue: %zu message(s) for %s not "
			 "sent", p->nouts, r->display);
out:
	sieve_result_free(&res);
	for (size_t i = 0; i < ctx.nloaded; i++)
		sieve_script_free(&ctx.loaded[i]);
	free(ctx.loaded);
	cached_unref(ds, held);
	free(seq);
	delivery_sieve_unref(&ds);
}

static uint64_t thread_cpu_us(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Sieve's own cost at delivery (reading the scripts, running them,
 * planning the copies and replies) as counters: what a script costs a
 * recipient, beside loftd's CPU for the whole delivery (bench/sieve.py
 * reads them). */
static struct metrics_series *plan_cpu, *plan_runs;
static pthread_once_t plan_metrics_once = PTHREAD_ONCE_INIT;

static void plan_metrics(void)
{
	plan_cpu = metrics_counter("loft_sieve_cpu_microseconds_total",
				   "Thread CPU time Sieve took at delivery "
				   "(scripts read and run, the plan made).",
				   NULL);
	plan_runs = metrics_counter("loft_sieve_plans_total", "Recipients "
				    "Sieve planned the delivery of.", NULL);
}

void dsieve_plan(struct delivery_session *s, struct drcpt *r)
{
	pthread_once(&plan_metrics_once, plan_metrics);
	uint64_t t0 = thread_cpu_us();
	plan(s, r);
	metrics_add(plan_cpu, thread_cpu_us() - t0);
	metrics_add(plan_runs, 1);
}

/* ---- commit and send ----------------------------------------------- */

/* The copies into other accounts' folders, once the recipient's own
 * committed (each is its own transaction there: a crash between them can
 * only lose the MTA's retry, never the message). One that fails now (the
 * right taken away meanwhile, the owner over quota) goes to the
 * recipient's INBOX instead. Returns how many copies were saved, or -1
 * (err) when one could go nowhere: the recipient's reply is then that
 * error, so the sender tries again (the copies made may come twice,
 * none is lost). */
static int commit_shared(struct delivery_session *s, struct drcpt *r,
			 struct dsieve_plan *p, const struct buf *prefix,
			 struct store_error *err_r)
{
	int saved = 0;
	for (size_t i = 0; i < p->ncopies; i++) {
		struct dsieve_copy *c = &p->copies[i];
		if (c->shared == NULL)
			continue;
		struct store_body *body = c->edited && p->edited ? p->edited
								 : s->body;
		struct store_append_params params = {
			.flags = c->flags,
			.keywords = (const char *const *)c->keywords,
			.keyword_count = c->keyword_count,
		};
		uint32_t uid = 0;
		struct store_error err = {0};
		if (store_body_deliver(body, c->shared, c->owner_box, prefix->data,
				       prefix->len, &params, &uid, NULL,
				       &err) == 0) {
			log_info("delivery", s->sid, "saved: to=<%s> from=<%s> "
				 "mailbox=%s uid=%u id=%s (sieve, shared)",
				 r->display, s->env.sender, c->mailbox, uid,
				 s->env.id);
			saved++;
			continue;
		}
		log_warn("sieve", s->sid, "fileinto \"%s\" for %s: %s: kept in "
			 "INBOX", c->mailbox, r->display, err.msg);
		params.flags = 0;
		params.keywords = NULL;
		params.keyword_count = 0;
		if (store_body_deliver(body, r->user, "INBOX", prefix->data,
				       prefix->len, &params, &uid, NULL,
				       err_r) < 0) {
			log_error("sieve", s->sid, "the copy for %s of \"%s\" "
				  "could go nowhere (INBOX: %s): the message is "
				  "refused for now", r->display, c->mailbox,
				  err_r->msg);
			return -1;
		}
		saved++;
	}
	return saved;
}

void dsieve_commit(struct delivery_session *s, struct drcpt *r)
{
	struct dsieve_plan *p = r->plan;
	struct buf prefix;
	buf_init(&prefix, 0);
	delivery_trace_fields(s, r, &prefix);
	struct store_sieve_copy *copies = xcalloc(p->ncopies ? p->ncopies : 1,
						  sizeof(*copies));
	struct store_append_params *params = xcalloc(p->ncopies ? p->ncopies : 1,
						     sizeof(*params));
	size_t n = 0;
	if (!p->ereject)
		for (size_t i = 0; i < p->ncopies; i++) {
			struct dsieve_copy *c = &p->copies[i];
			if (c->shared != NULL)
				continue;   /* after these: another index */
			params[n].flags = c->flags;
			params[n].keywords = (const char *const *)c->keywords;
			params[n].keyword_count = c->keyword_count;
			copies[n].body = c->notice ? p->notice
				: c->edited && p->edited ? p->edited : s->body;
			copies[n].mailbox = c->mailbox;
			copies[n].prefix = c->notice ? NULL : prefix.data;
			copies[n].prefix_len = c->notice ? 0 : prefix.len;
			copies[n].params = &params[n];
			n++;
		}
	struct store_error err = {0};
	int ret = 0, shared = 0;
	if (n > 0 || p->nrecords > 0)
		ret = store_sieve_deliver(r->user, copies, n, p->records,
					  p->nrecords, &err);
	p->committed = ret == 0;
	if (ret < 0) {
		delivery_reply_store_error(s, r, &err);
		/* nothing committed: nothing may be sent */
		p->nouts = 0;
	} else if (p->ereject) {
		delivery_reply_set(&r->reply, 550, "5.7.1", "<%s> %s", r->display,
				   p->ereject_text[0] ? p->ereject_text
						      : "Rejected by a filter");
	} else if ((shared = commit_shared(s, r, p, &prefix, &err)) < 0) {
		/* the records committed: what they promise is still sent */
		delivery_reply_store_error(s, r, &err);
	} else {
		delivery_reply_set(&r->reply, 250, "2.0.0", "<%s> %s %s",
				   r->display, s->env.id,
				   n + (size_t)shared > 0 ? "Saved"
				   : "Accepted");
		for (size_t i = 0; i < n; i++)
			log_info("delivery", s->sid, "saved: to=<%s> from=<%s> "
				 "mailbox=%s uid=%u id=%s (sieve)", r->display,
				 s->env.sender, copies[i].mailbox, copies[i].uid_r,
				 s->env.id);
		if (n + (size_t)shared == 0)
			log_info("delivery", s->sid, "no copy kept for %s (sieve: "
				 "discard, redirect or reject) id=%s", r->display,
				 s->env.id);
	}
	free(copies);
	free(params);
	buf_free(&prefix);
}

void dsieve_send(struct delivery_session *s, struct drcpt *r)
{
	struct dsieve_plan *p = r->plan;
	struct queue *queue = NULL;
	struct delivery_sieve *ds = current(&queue);
	delivery_sieve_unref(&ds);
	if (!p->committed)
		return;
	for (size_t i = 0; i < p->nouts; i++) {
		struct dsieve_out *o = &p->outs[i];
		if (queue == NULL)
			continue;
		struct queue_rcpt rc = {.address = o->rcpt,
					.notify = o->sender[0] ? 0
						: QUEUE_NOTIFY_NEVER};
		struct queue_envelope env = {
			.sender = o->sender, .rcpts = &rc, .rcpt_count = 1,
			.flags = QUEUE_F_SIGN | QUEUE_F_8BITMIME,
			.user_id = r->user_id,
		};
		char id[QUEUE_ID_SIZE];
		struct queue_rcpt_result res = {0};
		struct queue_error qerr = {0};
		if (queue_enqueue(queue, &env, o->msg.data, o->msg.len, id, &res,
				  &qerr) < 0)
			log_warn("sieve", s->sid, "%s for %s to <%s> not queued: %s",
				 o->what, r->display, o->rcpt, qerr.msg);
		else
			log_info("sieve", s->sid, "%s for %s to <%s> from <%s>: "
				 "queued as %s", o->what, r->display, o->rcpt,
				 o->sender, id);
	}
}
