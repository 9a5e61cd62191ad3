/*
 * Delivery (delivery.h): recipients resolved through src/auth (address or
 * alias, else without its +detail, which names a folder), the data
 * streamed once into one store body (store.h "delivery": stored, parsed
 * and analysed once), and one copy per distinct (user, folder) with that
 * copy's trace fields in front, committed side by side (different users'
 * indexes, so their fsyncs overlap). A recipient's 250 follows its copy's
 * commit; a failure leaves nothing of that copy and does not touch the
 * others.
 */
#include "delivery.h"
#include "delivery-private.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

struct delivery *delivery_create(struct store *store, struct auth *auth,
				 const char *hostname)
{
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->store = store;
	d->auth = auth;
	snprintf(d->hostname, sizeof(d->hostname), "%s",
		 hostname ? hostname : "localhost");
	return d;
}

void delivery_destroy(struct delivery **dp)
{
	free(*dp);
	*dp = NULL;
}

void delivery_set_filter(struct delivery *d, delivery_filter_fn *fn, void *ctx)
{
	d->filter = fn;
	d->filter_ctx = ctx;
}

static void reply_set(struct delivery_reply *r, int code, const char *status,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply_set(struct delivery_reply *r, int code, const char *status,
		      const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* Every refused recipient leaves one log line an admin can grep for:
 * who it was for, which client sent it, the status code and why. */
static void log_refused(const struct delivery_session *s,
			const struct delivery_reply *r)
{
	if (r->code < 400)
		return;
	const char *why = r->text;
	if (why[0] == '<') {
		const char *end = strstr(why, "> ");
		if (end != NULL)
			why = end + 2;
	}
	const char *to = r->text[0] == '<' ? r->text + 1 : "";
	int to_len = r->text[0] == '<' ? (int)strcspn(to, ">") : 0;
	log_info("delivery", s->sid, "refused: to=<%.*s> from=<%s> client=%s "
		 "helo=%s proto=%s status=\"%d %s\" reason=\"%s\"", to_len, to,
		 s->sender != NULL ? s->sender : "", s->peer ? s->peer : "?",
		 s->helo ? s->helo : "", s->with ? s->with : "?", r->code,
		 r->status, why);
}

/* ---- sessions ----------------------------------------------------- */

struct delivery_session *delivery_session_create(struct delivery *d,
						 const char *sid)
{
	struct delivery_session *s = xcalloc(1, sizeof(*s));

	s->d = d;
	snprintf(s->sid, sizeof(s->sid), "%s", sid ? sid : "-");
	buf_init(&s->copy, 0);
	return s;
}

static void env_free(struct delivery_session *s)
{
	free(s->sender);
	free(s->helo);
	free(s->peer);
	free(s->with);
	free(s->id);
	free(s->extra);
	free(s->spam_action);
	s->sender = s->helo = s->peer = s->with = s->id = s->extra = NULL;
	s->spam_action = NULL;
	memset(&s->env, 0, sizeof(s->env));
}

void delivery_end(struct delivery_session *s)
{
	for (unsigned i = 0; i < s->count; i++) {
		struct drcpt *r = &s->rcpts[i];
		if (r->user != NULL)
			store_user_unref(&r->user);
		free(r->mailbox);
		free(r->address);
		free(r->display);
		dsieve_plan_free(&r->plan);
	}
	store_body_unref(&s->body);
	s->count = 0;
	s->started = false;
	s->too_big = false;
	buf_free(&s->copy);
	buf_init(&s->copy, 0);
}

void delivery_session_destroy(struct delivery_session **sp)
{
	struct delivery_session *s = *sp;

	if (s == NULL)
		return;
	delivery_end(s);
	env_free(s);
	for (unsigned i = 0; i < USER_CACHE; i++)
		if (s->cache[i] != NULL)
			store_user_unref(&s->cache[i]);
	free(s->rcpts);
	free(s);
	*sp = NULL;
}

bool delivery_session_busy(const struct delivery_session *s)
{
	if (s == NULL)
		return false;
	if (s->count > 0)
		return true;
	for (unsigned i = 0; i < USER_CACHE; i++)
		if (s->cache[i] != NULL)
			return true;
	return false;
}

static char *dup_or_null(const char *v)
{
	return v != NULL ? xstrdup(v) : NULL;
}

void delivery_begin(struct delivery_session *s,
		    const struct delivery_envelope *env)
{
	delivery_end(s);
	env_free(s);
	s->sender = xstrdup(env->sender ? env->sender : "");
	s->helo = xstrdup(env->helo ? env->helo : "unknown");
	s->peer = dup_or_null(env->peer);
	s->with = xstrdup(env->with ? env->with : "ESMTP");
	s->id = xstrdup(env->id ? env->id : s->sid);
	s->extra = dup_or_null(env->extra_fields);
	s->env = *env;
	s->env.sender = s->sender;
	s->env.helo = s->helo;
	s->env.peer = s->peer;
	s->env.with = s->with;
	s->env.id = s->id;
	s->env.extra_fields = s->extra;
	s->env.spam_action = NULL;
}

void delivery_set_verdict(struct delivery_session *s,
			  const struct delivery_verdict *v)
{
	free(s->extra);
	free(s->spam_action);
	s->extra = dup_or_null(v->fields);
	s->spam_action = dup_or_null(v->spam_action);
	s->env.extra_fields = s->extra;
	s->env.junk = v->junk;
	s->env.spam_scanned = v->spam_scanned;
	s->env.spam_score = v->spam_score;
	s->env.spam_threshold = v->spam_threshold;
	s->env.spam_action = s->spam_action;
	s->env.virus_status = v->virus_status;
}

unsigned delivery_rcpt_count(const struct delivery_session *s)
{
	return s != NULL ? s->count : 0;
}

/* ---- recipients --------------------------------------------------- */

/* A shared address's +folder takes mail from outside only where anyone
 * holds p (issue 15, RFC 4314 2.1); else its INBOX. Takes folder. */
static char *shared_folder(struct delivery_session *s, int64_t owner_id,
			   char *folder)
{
	if (strcmp(folder, "INBOX") == 0 ||
	    auth_user_is_shared(s->d->auth, owner_id) != 1)
		return folder;
	struct store_viewer outside = {.user_id = 0};
	struct store_user *v;
	unsigned rights = 0;
	if (store_user_open_as(s->d->store, owner_id, &outside, &v, NULL) == 0) {
		if (store_viewer_rights(v, folder, &rights, NULL) < 0)
			rights = 0;
		store_user_unref(&v);
	}
	if (rights & STORE_RIGHT_POST)
		return folder;
	free(folder);
	return xstrdup("INBOX");
}

/* The +detail folder if the user has it (exact name first, then
 * case-insensitively, as users type addresses), else INBOX. */
static char *resolve_folder(struct store_user *user, const char *detail)
{
	struct store_mailbox_info info, *list = NULL;
	size_t count = 0;
	char *found = NULL;

	if (detail[0] == '\0' || strcasecmp(detail, "INBOX") == 0)
		return xstrdup("INBOX");
	/* a \Noselect parent holds no messages: such a detail is INBOX */
	if (store_mailbox_status(user, detail, &info, NULL) == 0) {
		bool ok = !info.noselect;
		store_mailbox_info_free(&info);
		return xstrdup(ok ? detail : "INBOX");
	}
	if (store_mailbox_list(user, &list, &count, NULL) == 0) {
		for (size_t i = 0; i < count && found == NULL; i++)
			if (strcasecmp(list[i].name, detail) == 0 &&
			    !list[i].noselect)
				found = xstrdup(list[i].name);
		store_mailbox_list_free(list, count);
	}
	return found != NULL ? found : xstrdup("INBOX");
}

/* The account: the address (or alias) as given, else without its
 * +detail. 1/0/-1 like auth_lookup; detail_r gets the detail. */
static int lookup_rcpt(struct auth *auth, const char *addr,
		       struct auth_user *user_r, char *detail_r,
		       size_t detail_size)
{
	const char *at = strrchr(addr, '@');
	size_t local_len = at != NULL ? (size_t)(at - addr) : strlen(addr);
	const char *plus = memchr(addr, '+', local_len);
	char base[600];
	int ret;

	detail_r[0] = '\0';
	ret = auth_lookup(auth, addr, user_r);
	if (ret == 0 && plus != NULL) {
		snprintf(base, sizeof(base), "%.*s%s", (int)(plus - addr), addr,
			 addr + local_len);
		snprintf(detail_r, detail_size, "%.*s",
			 (int)(local_len - (size_t)(plus + 1 - addr)), plus + 1);
		ret = auth_lookup(auth, base, user_r);
	}
	/* RFC 5321 4.5.1: postmaster@ of every domain served here works
	 * even without an account or alias of that name */
	if (ret == 0 && at != NULL && plus == NULL && local_len == 10 &&
	    strncasecmp(addr, "postmaster", 10) == 0 &&
	    auth_domain_exists(auth, at + 1))
		ret = auth_lookup_postmaster(auth, at + 1, user_r);
	return ret;
}

int delivery_resolve(struct delivery *d, const char *address,
		     struct auth_user *user_r)
{
	char detail[300];

	return lookup_rcpt(d->auth, address, user_r, detail, sizeof(detail));
}

/* RFC 1870-style early refusal: an account already at its quota (or that
 * the declared SIZE would overflow) is refused at RCPT. The commit checks
 * again, exactly. */
static bool over_quota(struct delivery_session *s, struct store_user *user,
		       const struct auth_policy *pol)
{
	struct store_usage usage;
	uint64_t need = s->env.declared_size > 0 ? s->env.declared_size : 1;

	if (pol->quota_bytes == 0 && pol->quota_messages == 0)
		return false;
	if (store_user_usage(user, &usage, NULL) < 0)
		return false;
	if (pol->quota_messages != 0 && usage.messages >= pol->quota_messages)
		return true;
	return pol->quota_bytes != 0 && usage.bytes + need > pol->quota_bytes;
}

static int user_get(struct delivery_session *s, int64_t user_id,
		    struct store_user **user_r, struct store_error *err)
{
	struct store_user **slot;

	for (unsigned i = 0; i < USER_CACHE; i++) {
		struct store_user *u = s->cache[i];
		if (u != NULL && store_user_id(u) == user_id) {
			store_user_ref(u);
			*user_r = u;
			return 0;
		}
	}
	if (store_user_open(s->d->store, user_id, user_r, err) < 0)
		return -1;
	slot = &s->cache[s->cache_next];
	s->cache_next = (s->cache_next + 1) % USER_CACHE;
	if (*slot != NULL)
		store_user_unref(slot);
	store_user_ref(*user_r);
	*slot = *user_r;
	return 0;
}

static void rcpt_add(struct delivery_session *s, const char *address,
		     const char *display, int64_t user_id,
		     struct store_user *user, char *mailbox, bool tempfail)
{
	struct drcpt *r;

	if (s->count == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->cap * sizeof(*s->rcpts));
	}
	r = &s->rcpts[s->count];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->display = xstrdup(display);
	r->user_id = user_id;
	r->user = user;
	r->mailbox = mailbox;
	r->over_quota_tempfail = tempfail;
	r->dup_of = -1;
	/* a second address of the same user and folder shares the copy:
	 * a message is stored once per mailbox */
	for (unsigned i = 0; i < s->count; i++) {
		if (s->rcpts[i].user_id == user_id && s->rcpts[i].dup_of < 0 &&
		    strcmp(s->rcpts[i].mailbox, mailbox) == 0) {
			r->dup_of = (int)i;
			break;
		}
	}
	s->count++;
}

void delivery_rcpt(struct delivery_session *s, const char *address,
		   const char *display, struct delivery_reply *rep)
{
	struct delivery *d = s->d;
	struct auth_policy pol = {0};
	struct store_user *user = NULL;
	struct store_error err = {0};
	struct auth_user au;
	char detail[300];
	int ret = lookup_rcpt(d->auth, address, &au, detail, sizeof(detail));

	if (ret < 0) {
		reply_set(rep, 451, "4.3.0", "<%s> Temporary user lookup failure",
			  display);
	} else if (ret == 0) {
		const char *at = strrchr(address, '@');
		if (at == NULL || !auth_domain_exists(d->auth, at + 1))
			reply_set(rep, 550, "5.1.2",
				  "<%s> Domain is not served here", display);
		else
			reply_set(rep, 550, "5.1.1", "<%s> User doesn't exist",
				  display);
	} else if (au.disabled) {
		reply_set(rep, 550, "5.2.1", "<%s> Mailbox disabled", display);
	} else if (user_get(s, au.id, &user, &err) < 0) {
		log_error("delivery", s->sid, "opening mail of %s: %s", display,
			  err.msg);
		reply_set(rep, 451, "4.3.0",
			  "<%s> Temporary internal error (session %s)", display,
			  s->sid);
	} else {
		if (auth_user_policy(d->auth, au.id, &pol) < 0)
			memset(&pol, 0, sizeof(pol));
		if (over_quota(s, user, &pol)) {
			if (pol.over_quota_tempfail)
				reply_set(rep, 452, "4.2.2", "<%s> Quota exceeded "
					  "(mailbox for user is full)", display);
			else
				reply_set(rep, 552, "5.2.2", "<%s> Quota exceeded "
					  "(mailbox for user is full)", display);
			store_user_unref(&user);
		} else {
			rcpt_add(s, address, display, au.id, user,
				 shared_folder(s, au.id,
					       resolve_folder(user, detail)),
				 pol.over_quota_tempfail);
			reply_set(rep, 250, "2.1.5", "<%s> OK", display);
		}
	}
	log_refused(s, rep);
}

/* ---- data --------------------------------------------------------- */

static void reply_from_store_error(struct delivery_session *s, struct drcpt *r,
				   const struct store_error *err)
{
	switch (err->kind) {
	case STORE_ERR_QUOTA:
		if (r->over_quota_tempfail)
			reply_set(&r->reply, 452, "4.2.2", "<%s> Quota exceeded "
				  "(mailbox for user is full)", r->display);
		else
			reply_set(&r->reply, 552, "5.2.2", "<%s> Quota exceeded "
				  "(mailbox for user is full)", r->display);
		break;
	case STORE_ERR_LIMIT:
		reply_set(&r->reply, 552, "5.3.4",
			  "<%s> Message too big for system", r->display);
		break;
	case STORE_ERR_TEMP:
		/* the sender keeps it and retries: "mail system full" only
		 * when it is (RFC 3463 4.3.1), else a lock timeout, an I/O
		 * error, a busy database */
		if (err->full)
			reply_set(&r->reply, 452, "4.3.1", "<%s> Insufficient "
				  "system storage, try again later",
				  r->display);
		else
			reply_set(&r->reply, 451, "4.3.0", "<%s> Temporary "
				  "failure of the mail store, try again later "
				  "(session %s)", r->display, s->sid);
		break;
	case STORE_ERR_UNAVAILABLE:
		/* the store's database away (failing over, cut off) */
		reply_set(&r->reply, 451, "4.3.0", "<%s> Mail store not "
			  "reachable, try again later", r->display);
		break;
	case STORE_ERR_NOTFOUND:
		/* the +folder vanished between RCPT and now */
		reply_set(&r->reply, 450, "4.2.0", "<%s> Mailbox changed during "
			  "delivery, try again", r->display);
		break;
	default:
		reply_set(&r->reply, 451, "4.3.0", "<%s> Temporary internal "
			  "error (session %s)", r->display, s->sid);
		break;
	}
	log_warn("delivery", s->sid, "delivery to %s failed: %s", r->display,
		 err->msg);
}

/* The trace fields of one copy (RFC 5321 4.4): Return-Path, Delivered-To,
 * and Received naming the client, us, the protocol (RFC 3848), the id,
 * the recipient and the date. */
static void trace_fields(struct delivery_session *s, const struct drcpt *r,
			 struct buf *out)
{
	const char *peer = s->env.peer;
	char date[64], from[400];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (peer == NULL)
		snprintf(from, sizeof(from), "%s", s->env.helo);
	else if (strcmp(peer, "unix") == 0)
		snprintf(from, sizeof(from), "%s (unix socket)", s->env.helo);
	else if (strchr(peer, ':') != NULL)
		snprintf(from, sizeof(from), "%s ([IPv6:%s])", s->env.helo, peer);
	else
		snprintf(from, sizeof(from), "%s ([%s])", s->env.helo, peer);
	buf_printf(out, "Return-Path: <%s>\r\n", s->env.sender);
	buf_printf(out, "Delivered-To: %s\r\n", r->display);
	buf_printf(out, "Received: from %s\r\n\tby %s (Loft) with %s id %s\r\n"
			"\tfor <%s>; %s\r\n",
		   from, s->d->hostname, s->env.with, s->env.id, r->display,
		   date);
	if (s->env.extra_fields != NULL)
		buf_append_str(out, s->env.extra_fields);
}

void delivery_trace_fields(struct delivery_session *s, const struct drcpt *r,
			   struct buf *out)
{
	trace_fields(s, r, out);
}

void delivery_reply_store_error(struct delivery_session *s, struct drcpt *r,
				const struct store_error *err)
{
	reply_from_store_error(s, r, err);
}

void delivery_reply_set(struct delivery_reply *r, int code,
			const char *status, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

static bool rcpt_pending(const struct drcpt *r)
{
	return r->dup_of < 0 && r->reply.code == 0;
}

/* Writing the one body failed: every recipient still waiting gets that
 * error. */
static void body_failed(struct delivery_session *s,
			const struct store_error *err)
{
	for (unsigned i = 0; i < s->count; i++) {
		struct drcpt *r = &s->rcpts[i];
		if (rcpt_pending(r))
			reply_from_store_error(s, r, err);
	}
	store_body_unref(&s->body);
}

static void start_body(struct delivery_session *s)
{
	struct store_error err = {0};

	s->started = true;
	if (store_body_create(s->d->store, &s->body, &err) < 0)
		body_failed(s, &err);
}

void delivery_data(struct delivery_session *s, const void *data, size_t len)
{
	struct store_error err = {0};

	if (s->too_big || len == 0)
		return;
	if (!s->started)
		start_body(s);
	if (s->d->filter != NULL || dsieve_enabled())
		buf_append(&s->copy, data, len);
	if (s->body != NULL &&
	    store_body_write(s->body, data, len, &err) < 0)
		body_failed(s, &err);
}

void delivery_too_big(struct delivery_session *s)
{
	s->too_big = true;
	store_body_unref(&s->body);
	for (unsigned i = 0; i < s->count; i++) {
		struct drcpt *r = &s->rcpts[i];
		reply_set(&r->reply, 552, "5.3.4", "<%s> Message size exceeds "
			  "fixed maximum message size", r->display);
		log_refused(s, &r->reply);
	}
	buf_free(&s->copy);
	buf_init(&s->copy, 0);
}

/* The checks say Junk (DMARC quarantine, spam): the account's Junk
 * folder (made again if the user deleted it), unless a +detail chose a
 * folder; the filter may still choose another. */
static void to_junk(struct delivery_session *s, struct drcpt *r)
{
	struct store_error err = {0};
	char *junk;

	if (strcmp(r->mailbox, "INBOX") != 0)
		return;
	junk = store_mailbox_find_special(r->user, STORE_SPECIAL_JUNK);
	if (junk == NULL && store_mailbox_roles_ensure(r->user, &err) == 0)
		junk = store_mailbox_find_special(r->user, STORE_SPECIAL_JUNK);
	if (junk == NULL) {
		log_warn("delivery", s->sid, "%s has no Junk folder: INBOX",
			 r->display);
		return;
	}
	free(r->mailbox);
	r->mailbox = junk;
}

/* Sieve's place: before the commit, per recipient. */
static void run_filter(struct delivery_session *s, struct drcpt *r)
{
	struct delivery_action act = {0};

	s->d->filter(s->d->filter_ctx, r->user_id, r->address, &s->env,
		     s->copy.data, s->copy.len, &act);
	if (act.reject) {
		reply_set(&r->reply, 550, "5.7.1", "<%s> %s", r->display,
			  act.reject_text[0] ? act.reject_text : "Rejected");
	} else if (act.discard) {
		reply_set(&r->reply, 250, "2.0.0", "<%s> Accepted", r->display);
	} else if (act.mailbox != NULL) {
		free(r->mailbox);
		r->mailbox = act.mailbox;
		act.mailbox = NULL;
	}
	r->flags = act.flags;
	free(act.mailbox);
}

/* One recipient's copy: its own trace fields in front of the shared
 * body. */
static void commit_rcpt(struct delivery_session *s, struct drcpt *r)
{
	struct store_append_params params = {.flags = r->flags};
	struct store_error err = {0};
	struct buf prefix;
	uint32_t uid = 0;

	if (r->plan != NULL) {
		dsieve_commit(s, r);
		return;
	}
	buf_init(&prefix, 0);
	trace_fields(s, r, &prefix);
	int ret = store_body_deliver(s->body, r->user, r->mailbox, prefix.data,
				     prefix.len, &params, &uid, NULL, &err);
	uint64_t size = prefix.len + store_body_size(s->body);
	buf_free(&prefix);
	if (ret < 0) {
		reply_from_store_error(s, r, &err);
		return;
	}
	reply_set(&r->reply, 250, "2.0.0", "<%s> %s Saved", r->display,
		  s->env.id);
	log_info("delivery", s->sid, "saved: to=<%s> from=<%s> mailbox=%s "
		 "uid=%u size=%llu id=%s", r->display, s->env.sender, r->mailbox,
		 uid, (unsigned long long)size, s->env.id);
}

struct commit_job {
	struct delivery_session *s;
	struct drcpt *r;
	pthread_t thread;
	bool started;
};

static void *commit_thread(void *arg)
{
	struct commit_job *j = arg;
	commit_rcpt(j->s, j->r);
	return NULL;
}

void delivery_commit(struct delivery_session *s)
{
	struct commit_job jobs[PARALLEL_COMMITS];
	struct store_error err = {0};
	unsigned i = 0;

	if (!s->started && !s->too_big)
		start_body(s);
	if (s->body != NULL && store_body_finish(s->body, &err) < 0)
		body_failed(s, &err);
	if (s->env.junk && s->body != NULL)
		for (unsigned k = 0; k < s->count; k++)
			if (rcpt_pending(&s->rcpts[k]))
				to_junk(s, &s->rcpts[k]);
	if (s->d->filter != NULL && s->body != NULL)
		for (unsigned k = 0; k < s->count; k++)
			if (rcpt_pending(&s->rcpts[k]))
				run_filter(s, &s->rcpts[k]);
	/* Sieve decides every copy before any commits: a recipient's
	 * copies and records then commit in one transaction */
	if (dsieve_enabled() && s->body != NULL)
		for (unsigned k = 0; k < s->count; k++)
			if (rcpt_pending(&s->rcpts[k]))
				dsieve_plan(s, &s->rcpts[k]);
	while (s->body != NULL && i < s->count) {
		unsigned n = 0;
		for (; i < s->count && n < PARALLEL_COMMITS; i++) {
			struct drcpt *r = &s->rcpts[i];
			if (rcpt_pending(r))
				jobs[n++] = (struct commit_job){.s = s, .r = r};
		}
		for (unsigned k = 1; k < n; k++)
			jobs[k].started = pthread_create(&jobs[k].thread, NULL,
							 commit_thread,
							 &jobs[k]) == 0;
		for (unsigned k = 0; k < n; k++) {
			if (k == 0 || !jobs[k].started)
				commit_rcpt(s, jobs[k].r);
			else
				pthread_join(jobs[k].thread, NULL);
		}
	}
	store_body_unref(&s->body);
	/* replies, redirects and refusals leave once the copy is durable */
	for (unsigned k = 0; k < s->count; k++)
		if (s->rcpts[k].plan != NULL)
			dsieve_send(s, &s->rcpts[k]);
	for (unsigned k = 0; k < s->count; k++) {
		struct drcpt *r = &s->rcpts[k];
		if (r->dup_of >= 0) {
			const struct delivery_reply *o = &s->rcpts[r->dup_of].reply;
			reply_set(&r->reply, o->code, o->status, "<%s> %s",
				  r->display, o->code == 250 ? "Saved (same copy)"
							     : "Not saved");
		} else if (r->reply.code == 0) {
			reply_set(&r->reply, 451, "4.3.0", "<%s> Temporary "
				  "internal error (session %s)", r->display,
				  s->sid);
		}
		log_refused(s, &r->reply);
		metrics_count("loft_deliveries_total", "Recipients of incoming "
			      "mail, by outcome.", r->reply.code / 100 == 2 ?
			      "result=\"ok\"" : r->reply.code / 100 == 4 ?
			      "result=\"tempfail\"" : "result=\"permfail\"");
	}
}

const struct delivery_reply *delivery_result(const struct delivery_session *s,
					     unsigned i)
{
	return &s->rcpts[i].reply;
}

const char *delivery_rcpt_address(const struct delivery_session *s,
				  unsigned i)
{
	return s->rcpts[i].address;
}

void delivery_message(struct delivery *d, const struct delivery_envelope *env,
		      const char *const *addresses, size_t count,
		      const void *data, size_t len,
		      struct delivery_reply *replies)
{
	struct delivery_session *s = delivery_session_create(d, env->id);
	unsigned *index = xcalloc(count ? count : 1, sizeof(*index));

	delivery_begin(s, env);
	for (size_t i = 0; i < count; i++) {
		delivery_rcpt(s, addresses[i], addresses[i], &replies[i]);
		index[i] = replies[i].code == 250 ? s->count - 1 : UINT32_MAX;
	}
	if (s->count > 0) {
		delivery_data(s, data, len);
		delivery_commit(s);
		for (size_t i = 0; i < count; i++)
			if (index[i] != UINT32_MAX)
				replies[i] = *delivery_result(s, index[i]);
	}
	free(index);
	delivery_session_destroy(&s);
}
