/*
 * The queue runner: a scheduler thread claims due jobs from the backend
 * (a bounded number at a time, so the queue's size never becomes
 * memory), files them by destination (a domain, or the smarthost), and
 * delivery threads take them with at most per_domain at once per
 * destination. A thread that finished a job keeps its connection for the
 * next job of the same destination (connection reuse). Outcomes go back
 * to the backend in one short transaction per job, with the next attempt
 * (exponential backoff from retry_min to retry_max), the delay warning
 * and the final bounce (DSNs, queue-dsn.c) decided here.
 */
#include "queue-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "queue-client.h"


struct dest {
	char *name;
	unsigned active;          /* jobs being delivered */
	unsigned open;            /* connections up (it answers) */
	struct qjob *head, *tail; /* waiting */
};

/* A destination found unreachable (no connection to any of its hosts):
 * its jobs are deferred without a try until `until`, and the queued
 * recipients waiting for it are moved there in one statement, so a dead
 * destination costs one try per backoff period, not one per message
 * (Postfix's "delivery temporarily suspended"). In memory: a restart
 * tries once, and finds out again. */
struct dead_dest {
	char *name;
	time_t until;
	unsigned failures;        /* in a row: the backoff grows with them */
	int code;
	char enhanced[12];
	char reason[512];
	time_t swept;             /* the last bulk deferral (once a second) */
};

struct queue_runner {
	struct queue *q;
	pthread_mutex_t mu;
	pthread_cond_t work;      /* a job is waiting, or stop */
	pthread_cond_t wake;      /* the scheduler should look now */
	bool stop, kicked;
	pthread_t scheduler;
	pthread_t *threads;
	unsigned thread_count;
	struct dest *dests;
	size_t dest_count, dest_cap;
	unsigned waiting;         /* jobs in memory not yet taken */
	struct dead_dest *dead;
	size_t dead_count, dead_cap;
	unsigned max_waiting;     /* jobs held in memory at most */
};

/* ---- destinations ------------------------------------------------- */

static struct dest *dest_get(struct queue_runner *r, const char *name)
{
	for (size_t i = 0; i < r->dest_count; i++)
		if (strcmp(r->dests[i].name, name) == 0)
			return &r->dests[i];
	if (r->dest_count == r->dest_cap) {
		r->dest_cap = r->dest_cap ? r->dest_cap * 2 : 16;
		r->dests = xrealloc(r->dests, r->dest_cap * sizeof(*r->dests));
	}
	memset(&r->dests[r->dest_count], 0, sizeof(*r->dests));
	r->dests[r->dest_count].name = xstrdup(name);
	return &r->dests[r->dest_count++];
}

/* Destinations with nothing waiting or running are forgotten. */
static void dests_compact(struct queue_runner *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->dest_count; i++) {
		if (r->dests[i].active == 0 && r->dests[i].head == NULL) {
			free(r->dests[i].name);
			continue;
		}
		r->dests[n++] = r->dests[i];
	}
	r->dest_count = n;
}

static const char *job_dest_key(const struct qjob *job)
{
	return job->local ? "(local)" : job->dest;
}

static void job_push(struct queue_runner *r, struct qjob *job)
{
	struct dest *d = dest_get(r, job_dest_key(job));

	job->next = NULL;
	if (d->tail != NULL)
		d->tail->next = job;
	else
		d->head = job;
	d->tail = job;
	r->waiting++;
}

static struct qjob *dest_pop(struct queue_runner *r, struct dest *d)
{
	struct qjob *job = d->head;

	if (job == NULL)
		return NULL;
	d->head = job->next;
	if (d->head == NULL)
		d->tail = NULL;
	r->waiting--;
	return job;
}

/* A job whose destination has a free slot (under r->mu). */
static struct qjob *take_job(struct queue_runner *r, char **dest_r)
{
	unsigned limit = r->q->set.per_domain;

	for (size_t i = 0; i < r->dest_count; i++) {
		struct dest *d = &r->dests[i];
		if (d->head == NULL || (d->active >= limit &&
					strcmp(d->name, "(local)") != 0))
			continue;
		d->active++;
		*dest_r = xstrdup(d->name);
		return dest_pop(r, d);
	}
	return NULL;
}

/* ---- unreachable destinations ------------------------------------ */

static struct dead_dest *dead_get(struct queue_runner *r, const char *name,
				  bool create)
{
	for (size_t i = 0; i < r->dead_count; i++)
		if (strcmp(r->dead[i].name, name) == 0)
			return &r->dead[i];
	if (!create)
		return NULL;
	if (r->dead_count == r->dead_cap) {
		r->dead_cap = r->dead_cap ? r->dead_cap * 2 : 8;
		r->dead = xrealloc(r->dead, r->dead_cap * sizeof(*r->dead));
	}
	memset(&r->dead[r->dead_count], 0, sizeof(*r->dead));
	r->dead[r->dead_count].name = xstrdup(name);
	return &r->dead[r->dead_count++];
}

static void dead_drop(struct queue_runner *r, struct dead_dest *d)
{
	free(d->name);
	*d = r->dead[--r->dead_count];
}

/* Under r->mu. */
static void dead_forget_all(struct queue_runner *r)
{
	while (r->dead_count > 0)
		dead_drop(r, &r->dead[0]);
}

void queue_runner_forget_dead(struct queue *q)
{
	struct queue_runner *r = q->runner;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	dead_forget_all(r);
	pthread_mutex_unlock(&r->mu);
}

/* ---- the scheduler ------------------------------------------------ */

static void *scheduler_main(void *arg)
{
	struct queue_runner *r = arg;
	struct queue *q = r->q;
	unsigned max_waiting = r->max_waiting;
	struct timeval tv;
	time_t renewed = 0;

	/* files of a crashed run (named before this one started) */
	gettimeofday(&tv, NULL);
	queue_sweep_orphans(q, (uint64_t)tv.tv_sec * 1000 +
				       (uint64_t)tv.tv_usec / 1000 - 1000);
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		time_t now = time(NULL), due;
		bool look = r->kicked;
		struct qjob *jobs = NULL;
		struct queue_error err = {0};

		r->kicked = false;
		pthread_mutex_unlock(&r->mu);
		/* a shared queue: the leases this node holds stay its own
		 * while it runs */
		if (q->be->renew != NULL &&
		    now >= renewed + (time_t)(q->lease_secs / 3)) {
			if (q->be->renew(q) == 0)
				renewed = now;
		}
		/* another process (loftctl) changed the queue, or work is
		 * due: claim what fits in memory */
		if (q->be->changed(q)) {
			look = true;
			/* loftctl queue retry: unreachable destinations
			 * are tried again (any change from outside does it:
			 * one try more at worst) */
			pthread_mutex_lock(&r->mu);
			dead_forget_all(r);
			pthread_mutex_unlock(&r->mu);
		}
		due = q->be->next_due(q);
		if (due != 0 && due <= now)
			look = true;
		pthread_mutex_lock(&r->mu);
		if (look && r->waiting < max_waiting) {
			unsigned room = max_waiting - r->waiting;
			pthread_mutex_unlock(&r->mu);
			if (q->be->claim(q, now, q->lease_secs, room, &jobs,
					 &err) < 0)
				log_error("queue", NULL, "claim: %s", err.msg);
			pthread_mutex_lock(&r->mu);
			while (jobs != NULL) {
				struct qjob *next = jobs->next;
				if (jobs->rcpt_count > 0)
					job_push(r, jobs);
				else
					qjob_free(jobs);
				jobs = next;
			}
			pthread_cond_broadcast(&r->work);
			if (r->waiting < max_waiting && room > 0 && due != 0 &&
			    due <= now)
				continue; /* more may be due */
		}
		/* sleep until kicked, or half a second (admin changes from
		 * loftctl take effect within a second) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!r->stop && !r->kicked)
			pthread_cond_timedwait(&r->wake, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

bool queue_runner_has_room(struct queue *q)
{
	struct queue_runner *r = q->runner;
	bool room;

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->mu);
	room = !r->stop && r->waiting < r->max_waiting;
	pthread_mutex_unlock(&r->mu);
	return room;
}

void queue_runner_push(struct queue *q, struct qjob *jobs)
{
	struct queue_runner *r = q->runner;

	pthread_mutex_lock(&r->mu);
	while (jobs != NULL) {
		struct qjob *next = jobs->next;
		job_push(r, jobs);
		jobs = next;
	}
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->mu);
}

void queue_runner_kick(struct queue *q)
{
	struct queue_runner *r = q->runner;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->kicked = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->mu);
}

/* ---- delivering one job ------------------------------------------- */

struct worker_conn {
	struct queue *q;
	struct qclient *c;
	char *dest;
};

static void dest_closed(struct queue *q, const char *name);

static void conn_drop(struct worker_conn *wc, bool quit)
{
	if (wc->c != NULL && wc->dest != NULL)
		dest_closed(wc->q, wc->dest);
	qclient_close(&wc->c, quit);
	free(wc->dest);
	wc->dest = NULL;
}

static void defer_all(struct qjob *job, int code, const char *enhanced,
		      const char *text)
{
	for (size_t i = 0; i < job->rcpt_count; i++)
		queue_result_set(&job->rcpts[i].result, QUEUE_RCPT_QUEUED, code,
				 enhanced, "%s", text);
}

static void fail_all(struct qjob *job, int code, const char *enhanced,
		     const char *text)
{
	for (size_t i = 0; i < job->rcpt_count; i++)
		queue_result_set(&job->rcpts[i].result, QUEUE_RCPT_FAILED, code,
				 enhanced, "%s", text);
}

static void deliver_local(struct queue *q, struct qjob *job, const char *data,
			  size_t len)
{
	struct queue_hooks h;
	struct queue_rcpt *rcpts = xcalloc(job->rcpt_count, sizeof(*rcpts));
	struct queue_rcpt_result *res = xcalloc(job->rcpt_count, sizeof(*res));

	pthread_mutex_lock(&q->mu);
	h = q->hooks;
	pthread_mutex_unlock(&q->mu);
	if (h.deliver == NULL) {
		defer_all(job, 451, "4.3.0", "Local delivery is not available");
		goto out;
	}
	for (size_t i = 0; i < job->rcpt_count; i++) {
		rcpts[i].address = job->rcpts[i].address;
		rcpts[i].notify = job->rcpts[i].notify;
		rcpts[i].orcpt = job->rcpts[i].orcpt;
	}
	h.deliver(h.ctx, job->sender, rcpts, job->rcpt_count, data, len, res);
	for (size_t i = 0; i < job->rcpt_count; i++) {
		struct queue_rcpt_result *r = &job->rcpts[i].result;
		*r = res[i];
		r->status = res[i].code / 100 == 2   ? QUEUE_RCPT_DELIVERED
			    : res[i].code / 100 == 5 ? QUEUE_RCPT_FAILED
						     : QUEUE_RCPT_QUEUED;
	}
	snprintf(job->remote, sizeof(job->remote), "(local)");
out:
	free(rcpts);
	free(res);
}

/* ---- connecting to a destination ---------------------------------- */

/* The addresses of host: numeric as is, else AAAA and A. *secure_r: every
 * answer was DNSSEC-validated (RFC 7672 2.2.2: TLSA only then). */
static size_t host_addrs(struct queue *q, const char *host, char addrs[][64],
			 size_t max, bool *tempfail_r, bool *secure_r)
{
	unsigned char buf[16];
	size_t n = 0;

	*tempfail_r = false;
	*secure_r = false;
	if (inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1) {
		snprintf(addrs[0], 64, "%s", host);
		return 1;
	}
	if (q->set.dns == NULL) {
		/* no resolver (a smarthost by name): the system's */
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *a;
		if (getaddrinfo(host, NULL, &hints, &res) != 0) {
			*tempfail_r = true;
			return 0;
		}
		for (a = res; a != NULL && n < max; a = a->ai_next)
			if (getnameinfo(a->ai_addr, a->ai_addrlen, addrs[n], 64,
					NULL, 0, NI_NUMERICHOST) == 0)
				n++;
		freeaddrinfo(res);
		return n;
	}
	struct dns_batch *b = dns_batch_create(q->set.dns);
	size_t i6 = dns_batch_add(b, host, DNS_AAAA);
	size_t i4 = dns_batch_add(b, host, DNS_A);
	dns_batch_wait(b, dns_timeout_ms(q->set.dns));
	const size_t order[2] = {i6, i4};
	bool secure = true;
	for (int k = 0; k < 2; k++) {
		const struct dns_answer *a = dns_batch_answer(b, order[k]);
		if (a->status == DNS_TEMPFAIL || a->status == DNS_BOGUS)
			*tempfail_r = true;
		if (!a->secure)
			secure = false;
		for (size_t j = 0; a->status == DNS_OK && j < a->count && n < max;
		     j++) {
			int af = a->len[j] == 16 ? AF_INET6 : AF_INET;
			if (a->len[j] != 4 && a->len[j] != 16)
				continue;
			inet_ntop(af, a->data[j], addrs[n], 64);
			n++;
		}
	}
	*secure_r = secure && !*tempfail_r;
	dns_batch_free(&b);
	return n;
}

/* What one host's TLS must be. */
enum tls_need {
	TLS_MAY,        /* opportunistic: STARTTLS if offered, unverified */
	TLS_ENCRYPT,    /* TLS, unauthenticated (all TLSA records unusable) */
	TLS_PKIX,       /* a certificate valid for the host (MTA-STS,
			   smarthost_tls = required, REQUIRETLS) */
	TLS_DANE,       /* a TLSA record matches (RFC 7672) */
	TLS_NEVER,      /* smarthost_tls = none */
};

struct host_policy {
	enum tls_need need;
	struct qtlsa tlsa[16];
	size_t tlsa_count;
	struct dns_answer answer;     /* owns the TLSA data */
	const char *why;              /* for the log */
};

/* RFC 7672 2.2: the TLSA records of _25._tcp.HOST, when the MX and the
 * host's addresses were validated. -1: the lookup failed (bogus or
 * temporary): the host must not be used now (never a plain-text
 * fallback). */
static int dane_policy(struct queue *q, const char *host, unsigned port,
		       struct host_policy *hp)
{
	char name[300];

	snprintf(name, sizeof(name), "_%u._tcp.%s", port, host);
	dns_query(q->set.dns, name, DNS_TLSA, &hp->answer);
	if (hp->answer.status == DNS_BOGUS || hp->answer.status == DNS_TEMPFAIL)
		return -1;
	if (hp->answer.status != DNS_OK || !hp->answer.secure ||
	    hp->answer.count == 0)
		return 0;   /* secure denial or unsigned: no DANE */
	for (size_t i = 0; i < hp->answer.count && hp->tlsa_count < 16; i++) {
		const uint8_t *d = hp->answer.data[i];
		size_t n = hp->answer.len[i];
		/* usage 2 (DANE-TA) and 3 (DANE-EE) only (RFC 7672 3.1.3);
		 * selector 0/1, matching 0/1/2 */
		if (n < 4 || (d[0] != 2 && d[0] != 3) || d[1] > 1 || d[2] > 2)
			continue;
		hp->tlsa[hp->tlsa_count++] = (struct qtlsa){
			.usage = d[0], .selector = d[1], .mtype = d[2],
			.data = d + 3, .len = n - 3,
		};
	}
	/* RFC 7672 2.2: records present but none usable: TLS still */
	hp->need = hp->tlsa_count > 0 ? TLS_DANE : TLS_ENCRYPT;
	hp->why = hp->tlsa_count > 0 ? "DANE" : "DANE (no usable TLSA)";
	return 0;
}

/* Connects to one host (each of its addresses in turn), says EHLO, and
 * brings up TLS as hp says. NULL with why_r filled if none worked. */
static struct qclient *connect_host(struct queue *q, const char *host,
				    unsigned port, bool implicit,
				    const struct host_policy *hp,
				    struct qreply *why_r)
{
	char addrs[8][64];
	bool tempfail, secure;
	size_t n = host_addrs(q, host, addrs, 8, &tempfail, &secure);
	const struct queue_settings *set = &q->set;

	if (n == 0) {
		snprintf(why_r->text, sizeof(why_r->text),
			 "%s: %s", host, tempfail ? "address lookup failed"
						  : "host has no address");
		why_r->code = 0;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct qreply r;
		struct qclient *c = qclient_connect(
			host, addrs[i], port, (unsigned)set->connect_timeout,
			(unsigned)set->command_timeout, implicit,
			set->tls_ca_file, &r);
		*why_r = r;
		if (c == NULL)
			continue;
		if (qclient_hello(c, set->hostname, &r) < 0) {
			*why_r = r;
			qclient_close(&c, r.code != 0);
			continue;
		}
		bool must = hp->need == TLS_ENCRYPT || hp->need == TLS_PKIX ||
			    hp->need == TLS_DANE;
		if (!qclient_is_tls(c) && hp->need != TLS_NEVER &&
		    qclient_ext(c)->starttls) {
			enum qtls_verify v = hp->need == TLS_DANE ? QTLS_DANE
					     : hp->need == TLS_PKIX ? QTLS_PKIX
								    : QTLS_NONE;
			if (qclient_starttls(c, v, NULL, hp->tlsa, hp->tlsa_count,
					     set->hostname, &r) < 0) {
				snprintf(why_r->text, sizeof(why_r->text),
					 "%s[%s]: STARTTLS failed%s%s: %.200s", host,
					 addrs[i], hp->why ? " as " : "",
					 hp->why ? hp->why : "", r.text);
				why_r->code = 0;
				why_r->enhanced[0] = '\0';
				/* the next address may do better; never in
				 * clear where TLS is required */
				qclient_close(&c, false);
				continue;
			}
		}
		if (must && !qclient_is_tls(c)) {
			snprintf(why_r->text, sizeof(why_r->text),
				 "%s[%s]: TLS is required (%s) and the server "
				 "does not offer STARTTLS", host, addrs[i],
				 hp->why ? hp->why : "policy");
			why_r->code = 0;
			why_r->enhanced[0] = '\0';
			qclient_close(&c, true);
			continue;
		}
		return c;
	}
	return NULL;
}

static struct qclient *connect_smarthost(struct queue *q, struct qjob *job,
					 struct qreply *why_r)
{
	const struct queue_settings *set = &q->set;
	const char *colon = strrchr(set->smarthost, ':');
	char host[256];
	unsigned port = (unsigned)atoi(colon + 1);
	struct host_policy hp = {.need = TLS_MAY};
	struct qclient *c;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - set->smarthost),
		 set->smarthost);
	if (host[0] == '[') { /* [2001:db8::1]:25 */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (set->smarthost_tls == QUEUE_TLS_REQUIRED ||
	    (job->flags & QUEUE_F_REQUIRETLS)) {
		hp.need = TLS_PKIX;
		hp.why = "smarthost_tls = required";
	} else if (set->smarthost_tls == QUEUE_TLS_NONE) {
		hp.need = TLS_NEVER;
	}
	c = connect_host(q, host, port, port == 465, &hp, why_r);
	if (c != NULL && set->smarthost_user != NULL) {
		struct qreply r;
		if (qclient_auth_plain(c, set->smarthost_user,
				       q->smarthost_password ? q->smarthost_password
							     : "", &r) < 0) {
			*why_r = r;
			qclient_close(&c, r.code != 0);
			/* credentials may be fixed: a temporary failure */
			if (why_r->code / 100 == 5)
				why_r->code = 450;
		}
	}
	return c;
}

static struct qclient *connect_dest(struct queue *q, struct qjob *job,
				    struct qreply *why_r, bool *fail_r)
{
	const struct queue_settings *set = &q->set;
	bool require = (job->flags & QUEUE_F_REQUIRETLS) != 0;
	struct qclient *c = NULL;
	struct qsts_policy sts;

	*fail_r = false;
	memset(why_r, 0, sizeof(*why_r));
	if (set->smarthost != NULL)
		return connect_smarthost(q, job, why_r);
	if (set->dns == NULL) {
		snprintf(why_r->text, sizeof(why_r->text),
			 "no DNS resolver and no smarthost");
		return NULL;
	}
	struct dns_mx *mx = NULL;
	size_t count = 0;
	bool null_mx = false, secure = false;
	enum dns_status st;
	dns_mx_hosts(set->dns, job->dest, &mx, &count, &null_mx, &secure, &st);
	if (null_mx) {
		*fail_r = true;
		why_r->code = 556;
		snprintf(why_r->enhanced, sizeof(why_r->enhanced), "5.1.10");
		snprintf(why_r->text, sizeof(why_r->text),
			 "Domain %s accepts no mail (null MX)", job->dest);
		return NULL;
	}
	if (st == DNS_NXDOMAIN) {
		*fail_r = true;
		why_r->code = 550;
		snprintf(why_r->enhanced, sizeof(why_r->enhanced), "5.1.2");
		snprintf(why_r->text, sizeof(why_r->text),
			 "Domain %s does not exist", job->dest);
		return NULL;
	}
	if (count == 0) {
		snprintf(why_r->text, sizeof(why_r->text),
			 "MX lookup for %s failed%s", job->dest,
			 st == DNS_BOGUS ? " (DNSSEC validation failed)" : "");
		return NULL;
	}
	queue_mtasts_policy(q, job->dest, &sts);
	for (size_t i = 0; i < count && c == NULL; i++) {
		struct host_policy hp = {.need = require ? TLS_PKIX : TLS_MAY};
		bool dane = false;
		if (secure) {
			bool tf, asec;
			char tmp[1][64];
			host_addrs(q, mx[i].host, tmp, 1, &tf, &asec);
			if (asec && dane_policy(q, mx[i].host, 25, &hp) < 0) {
				snprintf(why_r->text, sizeof(why_r->text),
					 "%s: TLSA lookup failed (not sending "
					 "without it)", mx[i].host);
				why_r->code = 0;
				dns_answer_free(&hp.answer);
				continue;
			}
			dane = hp.need == TLS_DANE || hp.need == TLS_ENCRYPT;
		}
		/* DANE wins where both are published (RFC 8461 2) */
		if (!dane && sts.mode == QSTS_ENFORCE) {
			if (!qsts_mx_matches(&sts, mx[i].host)) {
				snprintf(why_r->text, sizeof(why_r->text),
					 "%s is not an MX of %s's MTA-STS policy",
					 mx[i].host, job->dest);
				why_r->code = 0;
				dns_answer_free(&hp.answer);
				continue;
			}
			hp.need = TLS_PKIX;
			hp.why = "MTA-STS";
		} else if (!dane && require) {
			hp.why = "REQUIRETLS";
		}
		c = connect_host(q, mx[i].host, 25, false, &hp, why_r);
		dns_answer_free(&hp.answer);
	}
	qsts_policy_free(&sts);
	free(mx);
	return c;
}

/* ---- the transaction ---------------------------------------------- */

static void xtext(struct buf *b, const char *s)
{
	/* RFC 3461 4: xtext */
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 33 || c > 126 || c == '+' || c == '=')
			buf_printf(b, "+%02X", c);
		else
			buf_append_char(b, (char)c);
	}
}

static void mail_params(const struct qjob *job, const struct qclient_ext *e,
			size_t body_len, struct buf *b)
{
	if (e->size)
		buf_printf(b, "SIZE=%zu", body_len);
	if ((job->flags & QUEUE_F_8BITMIME) && e->eightbit)
		buf_printf(b, "%sBODY=8BITMIME", b->len ? " " : "");
	if ((job->flags & QUEUE_F_SMTPUTF8) && e->smtputf8)
		buf_printf(b, "%sSMTPUTF8", b->len ? " " : "");
	if ((job->flags & QUEUE_F_REQUIRETLS) && e->requiretls)
		buf_printf(b, "%sREQUIRETLS", b->len ? " " : "");
	if (e->dsn) {
		if (job->ret != QUEUE_RET_DEFAULT)
			buf_printf(b, "%sRET=%s", b->len ? " " : "",
				   job->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
		if (job->envid != NULL) {
			buf_printf(b, "%sENVID=", b->len ? " " : "");
			xtext(b, job->envid);
		}
	}
}

static char *rcpt_params(const struct qjob_rcpt *r, const struct qclient_ext *e)
{
	struct buf b;

	buf_init(&b, 0);
	if (e->dsn && r->notify != QUEUE_NOTIFY_DEFAULT) {
		if (r->notify & QUEUE_NOTIFY_NEVER) {
			buf_append_str(&b, "NOTIFY=NEVER");
		} else {
			const char *sep = "NOTIFY=";
			if (r->notify & QUEUE_NOTIFY_SUCCESS) {
				buf_printf(&b, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_FAILURE) {
				buf_printf(&b, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_DELAY)
				buf_printf(&b, "%sDELAY", sep);
		}
	}
	if (e->dsn && r->orcpt != NULL) {
		const char *semi = strchr(r->orcpt, ';');
		buf_printf(&b, "%sORCPT=", b.len ? " " : "");
		if (semi != NULL) {
			buf_append(&b, r->orcpt, (size_t)(semi - r->orcpt + 1));
			xtext(&b, semi + 1);
		} else {
			buf_append_str(&b, "rfc822;");
			xtext(&b, r->orcpt);
		}
	}
	buf_append(&b, "", 0);
	return buf_steal(&b, NULL);
}

static void result_from_reply(struct queue_rcpt_result *res,
			      const struct qreply *r, const char *host)
{
	enum queue_rcpt_status st = r->code / 100 == 2   ? QUEUE_RCPT_DELIVERED
				    : r->code / 100 == 5 ? QUEUE_RCPT_FAILED
							 : QUEUE_RCPT_QUEUED;
	queue_result_set(res, st, r->code, r->enhanced, "%s%s%s",
			 host != NULL ? host : "", host != NULL ? " said: " : "",
			 r->text);
}

/* Sends job over c. Returns -1 when the connection is no longer usable. */
static int transact(struct queue *q, struct qclient *c, struct qjob *job,
		    const char *data, size_t len)
{
	const struct qclient_ext *e = qclient_ext(c);
	size_t n = job->rcpt_count;
	const char **addrs = xcalloc(n, sizeof(char *));
	char **params = xcalloc(n, sizeof(char *));
	struct qreply mail, data_r, *rr = xcalloc(n, sizeof(*rr));
	struct buf mp;
	char who[400];
	int rc;

	buf_init(&mp, 0);
	mail_params(job, e, len + (job->prefix ? strlen(job->prefix) : 0), &mp);
	buf_append(&mp, "", 0);
	for (size_t i = 0; i < n; i++) {
		addrs[i] = job->rcpts[i].address;
		params[i] = rcpt_params(&job->rcpts[i], e);
	}
	snprintf(who, sizeof(who), "%s[%s]", qclient_host(c), qclient_addr(c));
	snprintf(job->remote, sizeof(job->remote), "%.299s", who);
	snprintf(job->tls, sizeof(job->tls), "%s", qclient_tls_mode(c));
	if ((job->flags & QUEUE_F_REQUIRETLS) &&
	    (!qclient_is_tls(c) || !e->requiretls)) {
		fail_all(job, 550, "5.7.30",
			 "REQUIRETLS: the receiving server does not support it");
		rc = 0;
		goto out;
	}
	if (e->size && e->size_max > 0 && len > e->size_max) {
		for (size_t i = 0; i < n; i++)
			queue_result_set(&job->rcpts[i].result, QUEUE_RCPT_FAILED,
					 552, "5.3.4", "%s accepts at most %llu "
					 "bytes", who,
					 (unsigned long long)e->size_max);
		rc = 0;
		goto out;
	}
	rc = qclient_send(c, job->sender, mp.data, addrs,
			  (const char *const *)params, n, job->prefix, data, len,
			  &mail, rr, &data_r);
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt_result *res = &job->rcpts[i].result;
		if (mail.code != 250)
			result_from_reply(res, &mail, who);
		else if (rr[i].code / 100 != 2)
			result_from_reply(res, &rr[i], who);
		else
			result_from_reply(res, &data_r, who);
		if (res->code == 0)
			res->status = QUEUE_RCPT_QUEUED; /* lost: retry */
	}
	if (rc == 0 && (mail.code != 250 || data_r.code / 100 != 2))
		rc = qclient_rset(c);
out:
	for (size_t i = 0; i < n; i++)
		free(params[i]);
	free(params);
	free(addrs);
	free(rr);
	buf_free(&mp);
	return rc;
}

static time_t backoff(const struct queue_settings *set, unsigned attempts);

static void defer_waiting(struct queue *q, const char *dest, time_t now,
			  time_t until, int code, const char *reason,
			  const char *why);

/* Whether job's destination is marked unreachable: the job is deferred
 * without a try, to the destination's next try. What became due for it
 * since it was marked (mail that waited for a claim) is deferred with
 * it, in bulk, at most once a second. */
static bool defer_if_dead(struct queue *q, struct qjob *job)
{
	struct queue_runner *r = q->runner;
	struct dead_dest *d;
	bool dead = false, sweep = false;
	time_t now = time(NULL), until = 0;
	int code = 0;
	char reason[512];

	if (r == NULL)
		return false;
	pthread_mutex_lock(&r->mu);
	d = dead_get(r, job_dest_key(job), false);
	if (d != NULL && d->until > now) {
		dead = true;
		job->untried = true;
		job->defer_until = until = d->until;
		defer_all(job, d->code, d->enhanced, d->reason);
		if (d->swept < now) {
			d->swept = now;
			sweep = true;
			code = d->code;
			snprintf(reason, sizeof(reason), "%s", d->reason);
		}
	}
	pthread_mutex_unlock(&r->mu);
	if (sweep)
		defer_waiting(q, job->dest, now, until, code, reason, NULL);
	return dead;
}

/* No host of job's destination could be reached (why): the destination
 * is marked until its backoff ends, and what is queued for it waits
 * until then. */
static void dest_unreachable(struct queue *q, struct qjob *job, int code,
			     const char *enhanced, const char *why)
{
	const struct queue_settings *set = &q->set;
	struct queue_runner *r = q->runner;
	const char *name = job_dest_key(job);
	char reason[512];
	time_t now = time(NULL), until;
	struct dead_dest *d;
	bool mark = false;

	if (r == NULL)
		return;
	snprintf(reason, sizeof(reason),
		 "delivery temporarily suspended: %.470s", why);
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->dest_count; i++) {
		if (strcmp(r->dests[i].name, name) == 0 &&
		    r->dests[i].open > 0) {
			/* another thread's connection to it works: it is
			 * not dead, this one connection failed (too many at
			 * once?) */
			pthread_mutex_unlock(&r->mu);
			return;
		}
	}
	d = dead_get(r, name, true);
	if (d->until <= now) {
		/* not marked by another thread in this round already */
		d->until = now + backoff(set, d->failures);
		d->failures++;
		d->code = code;
		snprintf(d->enhanced, sizeof(d->enhanced), "%s", enhanced);
		snprintf(d->reason, sizeof(d->reason), "%s", reason);
		mark = true;
	}
	until = d->until;
	d->swept = now;
	pthread_mutex_unlock(&r->mu);
	if (mark)
		defer_waiting(q, job->dest, now, until, code, reason, why);
}

/* Defers in one statement what waits for dest (not leased, not held, not
 * due a warning or a bounce) to until. */
static void defer_waiting(struct queue *q, const char *dest, time_t now,
			  time_t until, int code, const char *reason,
			  const char *why)
{
	const struct queue_settings *set = &q->set;
	struct queue_error err = {0};
	const char *name = dest[0] ? dest : "smarthost";
	unsigned count = 0;

	if (q->be->defer_dest(q, dest, now, until, code, reason,
			      now - (time_t)set->max_age,
			      set->delay_warning > 0
				      ? now - (time_t)set->delay_warning
				      : (time_t)INT64_MIN,
			      &count, &err) < 0) {
		log_error("queue", NULL, "deferring mail for %s: %s", name,
			  err.msg);
		return;
	}
	if (why != NULL || count > 0)
		log_info("queue", NULL, "%s unreachable (%s): %u queued "
			 "recipients wait %llu s without a try of their own",
			 name, why != NULL ? why : "still", count,
			 (unsigned long long)(until - now));
}

static void dest_reachable(struct queue *q, const char *name)
{
	struct queue_runner *r = q->runner;
	struct dead_dest *d;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	d = dead_get(r, name, false);
	if (d != NULL)
		dead_drop(r, d);
	dest_get(r, name)->open++;
	pthread_mutex_unlock(&r->mu);
}

static void dest_closed(struct queue *q, const char *name)
{
	struct queue_runner *r = q->runner;
	struct dest *d;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	d = dest_get(r, name);
	if (d->open > 0)
		d->open--;
	pthread_mutex_unlock(&r->mu);
}

static void deliver_remote(struct queue *q, struct qjob *job, const char *data,
			   size_t len, struct worker_conn *wc)
{
	struct qreply why;
	bool fail;

	if (wc->c == NULL) {
		if (defer_if_dead(q, job))
			return;
		wc->c = connect_dest(q, job, &why, &fail);
		if (wc->c == NULL) {
			char text[600];
			snprintf(text, sizeof(text), "%s", why.text);
			if (fail) {
				fail_all(job, why.code, why.enhanced, text);
			} else if (why.code / 100 == 5) {
				fail_all(job, why.code, why.enhanced, text);
			} else {
				const char *enh = why.enhanced[0] ? why.enhanced
								  : "4.4.1";
				defer_all(job, why.code, enh, text);
				dest_unreachable(q, job, why.code, enh, text);
			}
			return;
		}
		dest_reachable(q, job_dest_key(job));
		wc->dest = xstrdup(job_dest_key(job));
	}
	if (transact(q, wc->c, job, data, len) < 0)
		conn_drop(wc, false);
}

/* ---- outcomes ----------------------------------------------------- */

static time_t backoff(const struct queue_settings *set, unsigned attempts)
{
	uint64_t d = set->retry_min;

	for (unsigned i = 0; i < attempts && d < set->retry_max; i++)
		d *= 2;
	return (time_t)(d < set->retry_max ? d : set->retry_max);
}

static bool wants(unsigned notify, unsigned bit)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	if (notify == QUEUE_NOTIFY_DEFAULT)
		return bit == QUEUE_NOTIFY_FAILURE || bit == QUEUE_NOTIFY_DELAY;
	return (notify & bit) != 0;
}

static void finish_job(struct queue *q, struct qjob *job,
		       bool remote_has_dsn)
{
	const struct queue_settings *set = &q->set;
	time_t now = time(NULL);
	size_t n = job->rcpt_count;
	bool *failed = xcalloc(n, sizeof(bool)), *delayed = xcalloc(n, 1),
	     *done = xcalloc(n, sizeof(bool));
	bool any_failed = false, any_delayed = false, any_done = false,
	     warned = job->warned, removed = false;
	unsigned attempts = 0;
	struct queue_error err = {0};

	for (size_t i = 0; i < n; i++) {
		struct qjob_rcpt *r = &job->rcpts[i];
		if (r->attempts > attempts)
			attempts = r->attempts;
		if (r->result.status == QUEUE_RCPT_QUEUED &&
		    (uint64_t)(now - job->created) >= set->max_age) {
			char last[256];
			snprintf(last, sizeof(last), "%s", r->result.text);
			queue_result_set(&r->result, QUEUE_RCPT_FAILED,
					 r->result.code ? r->result.code : 450,
					 "4.4.7", "Delivery time expired; last "
					 "error: %s", last);
		}
		if (r->result.status == QUEUE_RCPT_FAILED) {
			failed[i] = wants(r->notify, QUEUE_NOTIFY_FAILURE);
			any_failed |= failed[i];
		} else if (r->result.status == QUEUE_RCPT_QUEUED) {
			delayed[i] = wants(r->notify, QUEUE_NOTIFY_DELAY);
		} else if (wants(r->notify, QUEUE_NOTIFY_SUCCESS) &&
			   (job->local || !remote_has_dsn)) {
			done[i] = true;
			any_done = true;
		}
		log_info("queue", NULL, "%s: to=<%s> relay=%s tls=%s status=%s "
			 "(%d %s %s)", job->id, r->address,
			 job->remote[0] ? job->remote : "none",
			 job->tls[0] ? job->tls : "-",
			 r->result.status == QUEUE_RCPT_DELIVERED ? "sent"
			 : r->result.status == QUEUE_RCPT_FAILED  ? "bounced"
								  : "deferred",
			 r->result.code, r->result.enhanced, r->result.text);
	}
	if (!warned && set->delay_warning > 0 &&
	    (uint64_t)(now - job->created) >= set->delay_warning) {
		for (size_t i = 0; i < n; i++)
			any_delayed |= delayed[i];
		warned = any_delayed;
	}
	/* DSNs go out (durably) before the outcome is recorded: a crash
	 * in between sends one twice, never none */
	if (job->sender[0] != '\0') {
		if (any_failed)
			queue_dsn_send(q, job, QDSN_FAILED, failed);
		if (any_delayed)
			queue_dsn_send(q, job, QDSN_DELAYED, delayed);
		if (any_done)
			queue_dsn_send(q, job, QDSN_DELIVERED, done);
	}
	if (q->be->record(q, job, job->untried ? job->defer_until
					       : now + backoff(set, attempts),
			  warned, &removed, &err) < 0) {
		log_error("queue", NULL, "%s: recording the outcome: %s", job->id,
			  err.msg);
	} else if (removed) {
		qbody_remove(q, job->id, job->sha);
		log_info("queue", NULL, "%s: removed (every recipient done)",
			 job->id);
	}
	for (size_t i = 0; i < n; i++)
		queue_notify_observer(q, job->id, job->rcpts[i].address,
				      &job->rcpts[i].result);
	free(failed);
	free(delayed);
	free(done);
}

static void run_job(struct queue *q, struct qjob *job, struct worker_conn *wc)
{
	struct qbody body;
	bool remote_dsn = false;

	/* waiting for a dead destination: not even the file is read */
	if (!job->local && wc->c == NULL && defer_if_dead(q, job)) {
		finish_job(q, job, false);
		return;
	}
	int rc = qbody_open(q, job->id, job->sha, job->body_size, &body);

	if (rc == -1) {
		log_error("queue", NULL, "%s: message file is missing", job->id);
		fail_all(job, 554, "5.3.0", "The queued message was lost");
	} else if (rc < 0) {
		/* an object missing, unreachable or damaged (logged): never
		 * other bytes; tried again with the usual backoff */
		defer_all(job, 451, "4.3.0", "The queued message cannot be "
			  "read now");
	} else if (job->local) {
		deliver_local(q, job, body.data, body.len);
	} else {
		deliver_remote(q, job, body.data, body.len, wc);
		remote_dsn = wc->c != NULL && qclient_ext(wc->c)->dsn;
	}
	finish_job(q, job, remote_dsn);
	qbody_close(&body);
}

/* ---- delivery threads --------------------------------------------- */

static void *worker_main(void *arg)
{
	struct queue_runner *r = arg;
	struct worker_conn wc = {.q = r->q};

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		char *dest = NULL;
		struct qjob *job = NULL;

		/* the same destination first: its connection is open */
		if (wc.dest != NULL) {
			for (size_t i = 0; i < r->dest_count; i++) {
				if (strcmp(r->dests[i].name, wc.dest) == 0 &&
				    r->dests[i].head != NULL) {
					job = dest_pop(r, &r->dests[i]);
					dest = xstrdup(wc.dest);
					break;
				}
			}
		}
		if (job == NULL) {
			if (wc.dest != NULL) {
				/* nothing more for it: QUIT, give the slot back */
				struct dest *d = dest_get(r, wc.dest);
				d->active--;
				pthread_mutex_unlock(&r->mu);
				conn_drop(&wc, true);
				pthread_mutex_lock(&r->mu);
				continue;
			}
			job = take_job(r, &dest);
		}
		if (job == NULL) {
			dests_compact(r);
			pthread_cond_wait(&r->work, &r->mu);
			continue;
		}
		pthread_mutex_unlock(&r->mu);
		if (wc.dest != NULL && strcmp(wc.dest, dest) != 0)
			conn_drop(&wc, true);
		run_job(r->q, job, &wc);
		pthread_mutex_lock(&r->mu);
		if (wc.c == NULL) {
			/* no connection kept: the slot is free again */
			struct dest *d = dest_get(r, dest);
			d->active--;
			free(wc.dest);
			wc.dest = NULL;
		} else if (wc.dest == NULL) {
			wc.dest = xstrdup(dest);
		}
		free(dest);
		qjob_free(job);
		pthread_cond_broadcast(&r->work);
		pthread_cond_signal(&r->wake);
	}
	if (wc.dest != NULL)
		dest_get(r, wc.dest)->active--;
	pthread_mutex_unlock(&r->mu);
	conn_drop(&wc, true);
	return NULL;
}

int queue_runner_start(struct queue *q, struct queue_error *err)
{
	struct queue_runner *r = xcalloc(1, sizeof(*r));

	r->q = q;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->wake, NULL);
	r->thread_count = q->set.workers ? q->set.workers : 1;
	r->max_waiting = r->thread_count * 4;
	r->threads = xcalloc(r->thread_count, sizeof(pthread_t));
	r->kicked = true;
	q->runner = r;
	for (unsigned i = 0; i < r->thread_count; i++) {
		if (pthread_create(&r->threads[i], NULL, worker_main, r) != 0) {
			r->thread_count = i;
			queue_set_error(err, QUEUE_ERR_INTERNAL,
					"cannot start queue threads");
			queue_runner_stop(q);
			return -1;
		}
	}
	if (pthread_create(&r->scheduler, NULL, scheduler_main, r) != 0) {
		queue_set_error(err, QUEUE_ERR_INTERNAL,
				"cannot start the queue scheduler");
		r->scheduler = 0;
		queue_runner_stop(q);
		return -1;
	}
	return 0;
}

void queue_runner_stop(struct queue *q)
{
	struct queue_runner *r = q->runner;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->work);
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->mu);
	if (r->scheduler != 0)
		pthread_join(r->scheduler, NULL);
	for (unsigned i = 0; i < r->thread_count; i++)
		pthread_join(r->threads[i], NULL);
	/* jobs still waiting keep their lease until the next start
	 * releases it: nothing is lost */
	for (size_t i = 0; i < r->dest_count; i++) {
		while (r->dests[i].head != NULL)
			qjob_free(dest_pop(r, &r->dests[i]));
		free(r->dests[i].name);
	}
	free(r->dests);
	dead_forget_all(r);
	free(r->dead);
	free(r->threads);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->work);
	pthread_cond_destroy(&r->wake);
	free(r);
	q->runner = NULL;
}
