/*
 * The resolver: one libunbound context in threaded async mode, one thread
 * of ours that waits on its descriptor and runs its callbacks, and
 * batches whose callers wait on a condition variable with a deadline
 * (dns.h). A batch is reference counted by its unanswered queries, so a
 * callback arriving after its caller gave up finds it still there.
 */
#include "dns.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"

#define DEFAULT_TRUST_ANCHOR "/usr/share/dns/root.key"

struct dns {
	struct ub_ctx *ub;
	pthread_t thread;
	int stop_pipe[2];
	unsigned timeout_ms;
	unsigned message_timeout_ms;
};

struct dns_query {
	struct dns_batch *batch;
	size_t index;
	int async_id;
	bool done;
};

struct dns_batch {
	struct dns *dns;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned refs;           /* the caller + each unanswered query */
	size_t count, cap, pending;
	struct dns_query **queries;
	struct dns_answer *answers;
};

/* ---- settings ----------------------------------------------------- */

int dns_settings_from_config(const struct config *cfg,
			     struct dns_settings *set_r, struct buf *errors)
{
	const char *path = cfg->path ? cfg->path : "config";
	bool ok = true;

	memset(set_r, 0, sizeof(*set_r));
	set_r->timeout_ms = 5000;
	set_r->message_timeout_ms = 20000;
	set_r->trust_anchor = DEFAULT_TRUST_ANCHOR;
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		uint64_t v;

		if (strcmp(e->section, "dns") != 0)
			continue;
		if (strcmp(e->key, "resolvers") == 0) {
			for (size_t k = 0; k < set_r->resolver_count; k++)
				free(set_r->resolvers[k]);
			free(set_r->resolvers);
			set_r->resolvers = config_split_list(e->value,
							     &set_r->resolver_count);
			if (set_r->resolver_count == 0) {
				buf_printf(errors, "%s:%d: resolvers: expected "
					   "ADDRESS[:PORT], ...\n", path, e->line);
				ok = false;
			}
		} else if (strcmp(e->key, "timeout") == 0) {
			if (config_parse_duration(e->value, &v) < 0 || v < 1 ||
			    v > 300) {
				buf_printf(errors, "%s:%d: timeout: expected a "
					   "duration from 1s to 5m\n", path,
					   e->line);
				ok = false;
			} else {
				set_r->timeout_ms = (unsigned)v * 1000;
			}
		} else if (strcmp(e->key, "message_timeout") == 0) {
			if (config_parse_duration(e->value, &v) < 0 || v < 1 ||
			    v > 600) {
				buf_printf(errors, "%s:%d: message_timeout: "
					   "expected a duration from 1s to 10m\n",
					   path, e->line);
				ok = false;
			} else {
				set_r->message_timeout_ms = (unsigned)v * 1000;
			}
		} else if (strcmp(e->key, "trust_anchor") == 0) {
			if (strcmp(e->value, "none") == 0) {
				set_r->trust_anchor = NULL;
			} else if (access(e->value, R_OK) < 0) {
				buf_printf(errors, "%s:%d: trust_anchor: cannot "
					   "read %s: %s\n", path, e->line,
					   e->value, strerror(errno));
				ok = false;
			} else {
				set_r->trust_anchor = e->value;
			}
		} else {
			buf_printf(errors, "%s:%d: [dns]: unknown key '%s'\n",
				   path, e->line, e->key);
			ok = false;
		}
	}
	if (set_r->trust_anchor != NULL &&
	    strcmp(set_r->trust_anchor, DEFAULT_TRUST_ANCHOR) == 0 &&
	    access(DEFAULT_TRUST_ANCHOR, R_OK) < 0)
		set_r->trust_anchor = NULL; /* dns-root-data not installed */
	return ok ? 0 : -1;
}

void dns_settings_deinit(struct dns_settings *set)
{
	for (size_t i = 0; i < set->resolver_count; i++)
		free(set->resolvers[i]);
	free(set->resolvers);
	set->resolvers = NULL;
	set->resolver_count = 0;
}

/* "1.2.3.4", "1.2.3.4:5353", "[::1]:53", "::1" -> unbound's "addr@port". */
static char *forwarder(const char *s)
{
	const char *colon = strrchr(s, ':');

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL)
			return NULL;
		if (end[1] == ':')
			return xasprintf("%.*s@%s", (int)(end - s - 1), s + 1,
					 end + 2);
		return xstrndup(s + 1, (size_t)(end - s - 1));
	}
	if (colon != NULL && strchr(s, ':') == colon)
		return xasprintf("%.*s@%s", (int)(colon - s), s, colon + 1);
	return xstrdup(s);
}

size_t dns_settings_ports(const struct dns_settings *set, uint16_t *ports,
			  size_t max)
{
	size_t n = 0;
	if (max == 0)
		return 0;
	ports[n++] = 53;
	for (size_t i = 0; i < set->resolver_count; i++) {
		char *fwd = forwarder(set->resolvers[i]);
		const char *at = fwd != NULL ? strchr(fwd, '@') : NULL;
		unsigned long port = at != NULL ? strtoul(at + 1, NULL, 10) : 53;
		bool seen = false;
		for (size_t k = 0; k < n; k++)
			seen = seen || ports[k] == port;
		if (!seen && port > 0 && port < 65536 && n < max)
			ports[n++] = (uint16_t)port;
		free(fwd);
	}
	return n;
}

/* ---- the resolver ------------------------------------------------- */

static void *dns_thread(void *arg)
{
	struct dns *dns = arg;
	struct pollfd pfd[2] = {
		{.fd = ub_fd(dns->ub), .events = POLLIN},
		{.fd = dns->stop_pipe[0], .events = POLLIN},
	};

	for (;;) {
		int n = poll(pfd, 2, -1);
		if (n < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents != 0)
			ub_process(dns->ub);
	}
	return NULL;
}

int dns_create(const struct dns_settings *set, struct dns **dns_r,
	       char **error_r)
{
	struct dns *dns = xcalloc(1, sizeof(*dns));
	int rc;

	*dns_r = NULL;
	dns->timeout_ms = set->timeout_ms ? set->timeout_ms : 5000;
	dns->message_timeout_ms = set->message_timeout_ms ? set->message_timeout_ms
							   : 20000;
	dns->ub = ub_ctx_create();
	if (dns->ub == NULL) {
		*error_r = xstrdup("cannot create the DNS resolver");
		free(dns);
		return -1;
	}
	/* threads, not a forked process: we are a threaded server */
	rc = ub_ctx_async(dns->ub, 1);
	if (rc == 0 && set->resolver_count == 0)
		rc = ub_ctx_resolvconf(dns->ub, NULL);
	for (size_t i = 0; rc == 0 && i < set->resolver_count; i++) {
		char *fwd = forwarder(set->resolvers[i]);
		rc = fwd != NULL ? ub_ctx_set_fwd(dns->ub, fwd) : UB_SYNTAX;
		free(fwd);
	}
	if (rc == 0 && set->trust_anchor != NULL)
		rc = ub_ctx_add_ta_file(dns->ub, set->trust_anchor);
	if (rc == 0)
		rc = pipe(dns->stop_pipe) < 0 ? UB_INITFAIL : 0;
	if (rc == 0 && pthread_create(&dns->thread, NULL, dns_thread, dns) != 0)
		rc = UB_INITFAIL;
	if (rc != 0) {
		*error_r = xasprintf("DNS resolver: %s", ub_strerror(rc));
		ub_ctx_delete(dns->ub);
		free(dns);
		return -1;
	}
	*dns_r = dns;
	return 0;
}

void dns_destroy(struct dns **dnsp)
{
	struct dns *dns = *dnsp;

	if (dns == NULL)
		return;
	if (write(dns->stop_pipe[1], "x", 1) == 1)
		pthread_join(dns->thread, NULL);
	close(dns->stop_pipe[0]);
	close(dns->stop_pipe[1]);
	ub_ctx_delete(dns->ub);
	free(dns);
	*dnsp = NULL;
}

unsigned dns_timeout_ms(const struct dns *dns)
{
	return dns->timeout_ms;
}

unsigned dns_message_timeout_ms(const struct dns *dns)
{
	return dns->message_timeout_ms;
}

/* ---- answers ------------------------------------------------------ */

void dns_answer_free(struct dns_answer *a)
{
	for (size_t i = 0; i < a->count; i++)
		free(a->data[i]);
	free(a->data);
	free(a->len);
	free(a->canonical);
	memset(a, 0, sizeof(*a));
	a->status = DNS_TEMPFAIL;
}

static void answer_fill(struct dns_answer *a, int err, struct ub_result *r)
{
	size_t n = 0;

	memset(a, 0, sizeof(*a));
	if (err != 0 || r == NULL) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	a->secure = r->secure != 0;
	if (r->bogus) {
		a->status = DNS_BOGUS;
		return;
	}
	if (r->rcode == 3) {
		a->status = DNS_NXDOMAIN;
		return;
	}
	if (r->rcode != 0) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	if (!r->havedata) {
		a->status = DNS_NODATA;
		return;
	}
	while (r->data[n] != NULL)
		n++;
	a->status = DNS_OK;
	a->count = n;
	a->data = xcalloc(n ? n : 1, sizeof(*a->data));
	a->len = xcalloc(n ? n : 1, sizeof(*a->len));
	for (size_t i = 0; i < n; i++) {
		size_t len = (size_t)r->len[i];
		a->data[i] = xmalloc(len ? len : 1);
		memcpy(a->data[i], r->data[i], len);
		a->len[i] = len;
	}
	if (r->canonname != NULL)
		a->canonical = xstrdup(r->canonname);
}

/* ---- batches ------------------------------------------------------ */

struct dns_batch *dns_batch_create(struct dns *dns)
{
	struct dns_batch *b = xcalloc(1, sizeof(*b));

	b->dns = dns;
	b->refs = 1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cond, NULL);
	return b;
}

static void batch_unref_locked(struct dns_batch *b)
{
	bool last = --b->refs == 0;

	pthread_mutex_unlock(&b->mu);
	if (!last)
		return;
	for (size_t i = 0; i < b->count; i++) {
		dns_answer_free(&b->answers[i]);
		free(b->queries[i]);
	}
	free(b->answers);
	free(b->queries);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cond);
	free(b);
}

static void query_done(void *arg, int err, struct ub_result *result)
{
	struct dns_query *dq = arg;
	struct dns_batch *b = dq->batch;

	pthread_mutex_lock(&b->mu);
	if (!dq->done) {
		dq->done = true;
		answer_fill(&b->answers[dq->index], err, result);
		b->pending--;
		pthread_cond_broadcast(&b->cond);
	}
	if (result != NULL)
		ub_resolve_free(result);
	batch_unref_locked(b);
}

size_t dns_batch_add(struct dns_batch *b, const char *name, enum dns_type type)
{
	struct dns_query *dq = xcalloc(1, sizeof(*dq));
	size_t index;
	int rc;

	pthread_mutex_lock(&b->mu);
	if (b->count == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 4;
		b->queries = xrealloc(b->queries, b->cap * sizeof(*b->queries));
		b->answers = xrealloc(b->answers, b->cap * sizeof(*b->answers));
	}
	index = b->count++;
	b->queries[index] = dq;
	memset(&b->answers[index], 0, sizeof(b->answers[index]));
	b->answers[index].status = DNS_TEMPFAIL;
	dq->batch = b;
	dq->index = index;
	b->pending++;
	b->refs++;
	pthread_mutex_unlock(&b->mu);
	rc = ub_resolve_async(b->dns->ub, name, (int)type, 1, dq, query_done,
			      &dq->async_id);
	if (rc != 0) {
		pthread_mutex_lock(&b->mu);
		dq->done = true;
		b->pending--;
		batch_unref_locked(b);
	}
	return index;
}

void dns_batch_wait(struct dns_batch *b, unsigned deadline_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += deadline_ms / 1000;
	until.tv_nsec += (long)(deadline_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mu);
	while (b->pending > 0) {
		if (pthread_cond_timedwait(&b->cond, &b->mu, &until) == ETIMEDOUT)
			break;
	}
	/* Give up on the rest: TEMPFAIL. A callback already on its way
	 * still finds the batch (it holds a reference). */
	for (size_t i = 0; i < b->count; i++) {
		struct dns_query *dq = b->queries[i];
		if (dq->done)
			continue;
		dq->done = true;
		b->pending--;
		if (ub_cancel(b->dns->ub, dq->async_id) == 0)
			b->refs--; /* its callback will never run */
	}
	pthread_mutex_unlock(&b->mu);
}

const struct dns_answer *dns_batch_answer(const struct dns_batch *b,
					  size_t index)
{
	return &b->answers[index];
}

void dns_batch_free(struct dns_batch **bp)
{
	struct dns_batch *b = *bp;

	if (b == NULL)
		return;
	pthread_mutex_lock(&b->mu);
	batch_unref_locked(b);
	*bp = NULL;
}

void dns_query(struct dns *dns, const char *name, enum dns_type type,
	       struct dns_answer *answer_r)
{
	struct dns_batch *b = dns_batch_create(dns);
	size_t i = dns_batch_add(b, name, type);

	dns_batch_wait(b, dns->timeout_ms);
	pthread_mutex_lock(&b->mu);
	*answer_r = b->answers[i];
	memset(&b->answers[i], 0, sizeof(b->answers[i]));
	pthread_mutex_unlock(&b->mu);
	dns_batch_free(&b);
}
