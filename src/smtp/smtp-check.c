/*
 * What the MX checks of a message (src/mailauth): while it arrives, its
 * header is held (at most SMTP_HEADER_MAX) until it ends, so that
 * Authentication-Results fields claiming our hostname (RFC 8601 5) are
 * taken out before anything is stored, and the DKIM verifier sees the
 * message exactly as it came. At the end SPF, DKIM and DMARC run under
 * one deadline ([dns] message_timeout), then the optional spam scanner
 * (rspamd), and the outcome is one Authentication-Results field, Junk or
 * a refusal:
 *   DMARC fail, policy reject     550 5.7.1 (or Junk: dmarc_reject = junk)
 *   DMARC fail, policy quarantine Junk
 *   rspamd reject / soft reject   550 5.7.1 / 451 4.7.1
 *   rspamd add header             Junk
 * none, neutral, temperror and permerror results, a sender domain that
 * does not resolve and a client without reverse DNS never refuse, divert
 * or delay mail by themselves.
 *
 * The checks wait on DNS and on rspamd, so they run on threads of their
 * own ([smtp] check_threads): the connection parks meanwhile (net.h,
 * "waiting without a thread") and the workers stay free for IMAP and the
 * rest. A check job owns copies of everything it reads, so a connection
 * that goes away meanwhile frees nothing the job still uses.
 */
#include "smtp-private.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mailauth.h"

void smtp_check_reset(struct smtp_session *s)
{
	dkim_verifier_free(&s->dkim);
	buf_free(&s->hdr);
	buf_init(&s->hdr, SMTP_HEADER_MAX);
	buf_free(&s->scan);
	buf_init(&s->scan, 0);
	s->hdr_done = s->hdr_too_big = s->scan_skip = false;
}

static bool checking(const struct smtp_session *s)
{
	return !smtp_is_submission(s);
}

/* Where the header ends in b (after its empty line), or 0. */
static size_t header_end(const struct buf *b, size_t from)
{
	for (size_t i = from; i < b->len; i++) {
		if (b->data[i] != '\n')
			continue;
		if (i + 1 < b->len && b->data[i + 1] == '\n')
			return i + 2;
		if (i + 2 < b->len && b->data[i + 1] == '\r' &&
		    b->data[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void keep_for_scan(struct smtp_session *s, const char *p, size_t n)
{
	if (s->live->rspamd_url == NULL || s->scan_skip || n == 0)
		return;
	if (s->scan.len + n > s->live->rspamd_max_size) {
		/* rspamd's own habit: big messages are not scanned */
		s->scan_skip = true;
		buf_free(&s->scan);
		buf_init(&s->scan, 0);
		return;
	}
	buf_append(&s->scan, p, n);
}

/* The held header is complete (or the message ended): what is stored
 * is it without our authserv-id's fields, then the rest. */
static void release_header(struct smtp_session *s, size_t hlen,
			   struct buf *out)
{
	size_t before = out->len;
	size_t removed = mailauth_strip_results(s->hdr.data ? s->hdr.data : "",
						hlen, s->srv->hostname, out);

	if (removed > 0)
		log_info("smtp", s->sid, "removed %zu Authentication-Results "
			 "field(s) claiming %s", removed, s->srv->hostname);
	if (s->hdr.len > hlen)
		buf_append(out, s->hdr.data + hlen, s->hdr.len - hlen);
	keep_for_scan(s, out->data + before, out->len - before);
	buf_free(&s->hdr);
	buf_init(&s->hdr, SMTP_HEADER_MAX);
	s->hdr_done = true;
}

bool smtp_check_data(struct smtp_session *s, const char *data, size_t len,
		     struct buf *out)
{
	if (!checking(s))
		return false;
	if (s->dkim == NULL && s->live->sender_checks)
		s->dkim = dkim_verifier_create();
	if (s->dkim != NULL)
		dkim_verifier_feed(s->dkim, data, len);
	if (s->hdr_done) {
		buf_append(out, data, len);
		keep_for_scan(s, data, len);
		return true;
	}
	if (s->hdr_too_big)
		return true;
	size_t from = s->hdr.len > 2 ? s->hdr.len - 2 : 0;
	if (buf_append(&s->hdr, data, len) < 0) {
		/* refused at the end: nothing of it is stored */
		s->hdr_too_big = true;
		buf_free(&s->hdr);
		buf_init(&s->hdr, SMTP_HEADER_MAX);
		return true;
	}
	size_t end = header_end(&s->hdr, from);
	if (end > 0)
		release_header(s, end, out);
	return true;
}

void smtp_check_flush(struct smtp_session *s, struct buf *out)
{
	if (checking(s) && !s->hdr_done && !s->hdr_too_big)
		release_header(s, s->hdr.len, out);
}

static void spam_fields(const struct rspamd_result *r, struct buf *out)
{
	bool spam = strcmp(r->action, "add header") == 0 ||
		    strcmp(r->action, "rewrite subject") == 0 ||
		    strcmp(r->action, "reject") == 0;

	buf_printf(out, "X-Spam-Status: %s, score=%.2f required=%.2f action=\"%s\"",
		   spam ? "Yes" : "No", r->score, r->required, r->action);
	if (r->symbols[0] != '\0') {
		buf_append_str(out, "\r\n\ttests=");
		for (const char *p = r->symbols; *p != '\0'; p++)
			buf_append_char(out, (unsigned char)*p < 0x20 ? ' ' : *p);
	}
	buf_append_str(out, "\r\n");
	if (spam)
		buf_append_str(out, "X-Spam: Yes\r\n");
}

/* ---- a check job ---------------------------------------------------- */

struct smtp_check_job {
	atomic_uint refs;             /* the pool's, the wait's (fn/cancel) */
	struct smtp_check_job *next;
	struct smtp_server *srv;
	const struct smtp_live *live; /* the session's settings */
	struct net_wait *wait;
	char sid[24], ip[64], helo[256], sender[LMTP_PATH_MAX + 1];
	char txn_id[32];
	char **rcpts;
	size_t rcpt_count;
	struct dkim_verifier *dkim;
	struct buf scan;
	bool scan_skip;
	/* the outcome */
	int rc;
	char reply[400];
	struct buf fields;
	struct delivery_verdict verdict;
	char spam_action[32];
};

static void job_unref(struct smtp_check_job **jp)
{
	struct smtp_check_job *j = *jp;

	*jp = NULL;
	if (j == NULL || atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	for (size_t i = 0; i < j->rcpt_count; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	dkim_verifier_free(&j->dkim);
	buf_free(&j->scan);
	buf_free(&j->fields);
	net_wait_unref(&j->wait);
	free(j);
}

static int scan(struct smtp_check_job *j)
{
	struct smtp_server *srv = j->srv;
	struct rspamd_result res;
	struct rspamd_request req = {
		.ip = j->ip, .helo = j->helo, .sender = j->sender,
		.hostname = srv->hostname, .queue_id = j->txn_id,
		.rcpts = (const char *const *)j->rcpts,
		.rcpt_count = j->rcpt_count,
		.virus_symbols =
			(const char *const *)j->live->rspamd_virus_symbols,
		.virus_symbol_count = j->live->rspamd_virus_symbol_count,
	};

	if (!rspamd_check(j->live->rspamd_url, j->live->rspamd_timeout_ms, &req,
			  j->scan.data ? j->scan.data : "", j->scan.len, &res))
		return 0;
	j->verdict.spam_scanned = true;
	j->verdict.spam_score = res.score;
	j->verdict.spam_threshold = res.required;
	j->verdict.virus_status = res.virus_status;
	if (res.virus_status == 5)
		log_info("smtp", j->sid, "rspamd: virus %s", res.virus);
	snprintf(j->spam_action, sizeof(j->spam_action), "%s", res.action);
	j->verdict.spam_action = j->spam_action;
	spam_fields(&res, &j->fields);
	if (strcmp(res.action, "reject") == 0) {
		snprintf(j->reply, sizeof(j->reply), "550 5.7.1 Message refused "
			 "as spam (session %s)", j->sid);
		return -1;
	}
	if (strcmp(res.action, "soft reject") == 0 ||
	    strcmp(res.action, "greylist") == 0) {
		snprintf(j->reply, sizeof(j->reply), "451 4.7.1 Message "
			 "deferred, try again later");
		return -1;
	}
	if (strcmp(res.action, "add header") == 0 ||
	    strcmp(res.action, "rewrite subject") == 0)
		j->verdict.junk = true;
	return 0;
}

/* The checks themselves (a check thread). */
static void run_checks(struct smtp_check_job *j)
{
	struct smtp_server *srv = j->srv;
	struct mailauth_result *res = xcalloc(1, sizeof(*res));

	if (j->live->sender_checks && srv->dns != NULL && j->dkim != NULL) {
		dkim_verifier_end(j->dkim);
		struct ma_deadline dl =
			ma_deadline_in(dns_message_timeout_ms(srv->dns));
		struct mailauth_input in = {
			.ip = j->ip, .helo = j->helo, .sender = j->sender,
			.receiver = srv->hostname, .dkim = j->dkim,
		};
		mailauth_check(srv->dns, &dl, &in, res);
		mailauth_results(srv->hostname, res, &j->fields);
		const struct dmarc_result *d = &res->dmarc;
		if (d->status == MA_FAIL && d->applied == DMARC_P_REJECT &&
		    !j->live->dmarc_junk) {
			/* RFC 7489 6.6.3, 10.3 */
			snprintf(j->reply, sizeof(j->reply), "550 5.7.1 "
				 "Unauthenticated mail from %s is refused by its "
				 "DMARC policy", d->from_domain);
			j->rc = -1;
		} else if (d->status == MA_FAIL && d->applied != DMARC_P_NONE) {
			j->verdict.junk = true;
		}
	}
	if (j->rc == 0 && j->live->rspamd_url != NULL && !j->scan_skip)
		j->rc = scan(j);
	log_info("smtp", j->sid, "checks: from=<%s> client=%s spf=%s dkim=%s "
		 "dmarc=%s%s%s%s spam=%s%s", j->sender, j->ip,
		 ma_status_name(res->spf.status),
		 res->dkim_count ? ma_status_name(res->dkim[0].status) : "none",
		 ma_status_name(res->dmarc.status),
		 res->dmarc.from_domain[0] ? " (" : "", res->dmarc.from_domain,
		 res->dmarc.from_domain[0] ? ")" : "",
		 j->verdict.spam_scanned ? j->spam_action : "unscanned",
		 j->rc < 0 ? " -> refused" : j->verdict.junk ? " -> Junk" : "");
	free(res);
}

/* ---- the check threads ---------------------------------------------- */

struct smtp_check_pool {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
	struct smtp_check_job *head, *tail;
	pthread_t *threads;
	unsigned count;
};

static void *check_thread(void *arg)
{
	struct smtp_check_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->head == NULL)
			pthread_cond_wait(&p->cond, &p->mu);
		if (p->stop)
			break;
		struct smtp_check_job *j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		run_checks(j);
		/* the connection's next task commits (or refuses) */
		net_wait_finish(j->wait, 0);
		job_unref(&j);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct smtp_check_pool *smtp_check_pool_create(unsigned threads)
{
	struct smtp_check_pool *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->threads = xcalloc(threads, sizeof(pthread_t));
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, check_thread, p) != 0)
			break;
		p->count++;
	}
	return p;
}

void smtp_check_pool_destroy(struct smtp_check_pool **pp)
{
	struct smtp_check_pool *p = *pp;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->count; i++)
		pthread_join(p->threads[i], NULL);
	/* connections are gone by now: what waits is dropped */
	while (p->head != NULL) {
		struct smtp_check_job *j = p->head;
		p->head = j->next;
		job_unref(&j);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p);
	*pp = NULL;
}

/* ---- from the session ------------------------------------------------ */

static void job_cancelled(void *arg)
{
	struct smtp_check_job *j = arg;
	job_unref(&j);
}

static void job_done(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_check_job *j = arg;

	j->verdict.fields = j->fields.len > 0 ? j->fields.data : NULL;
	smtp_end_mx_checked(session, conn, j->rc, j->reply, &j->verdict);
	job_unref(&j);
}

bool smtp_check_start(struct smtp_session *s, struct net_conn *conn)
{
	struct smtp_server *srv = s->srv;
	struct smtp_check_job *j;

	if (srv->checks == NULL ||
	    (!(s->live->sender_checks && srv->dns != NULL) &&
	     s->live->rspamd_url == NULL))
		return false;
	j = xcalloc(1, sizeof(*j));
	atomic_init(&j->refs, 2);
	j->srv = srv;
	j->live = s->live;
	snprintf(j->sid, sizeof(j->sid), "%s", s->sid);
	snprintf(j->ip, sizeof(j->ip), "%s", net_conn_peer(conn));
	snprintf(j->helo, sizeof(j->helo), "%s", s->helo);
	snprintf(j->sender, sizeof(j->sender), "%s", s->sender_addr);
	snprintf(j->txn_id, sizeof(j->txn_id), "%s", s->txn_id);
	j->rcpts = xcalloc(s->rcpt_count ? s->rcpt_count : 1, sizeof(char *));
	for (unsigned i = 0; i < s->rcpt_count; i++)
		j->rcpts[j->rcpt_count++] = xstrdup(s->rcpts[i].address);
	/* the job takes what it reads from the session */
	j->dkim = s->dkim;
	s->dkim = NULL;
	j->scan = s->scan;
	buf_init(&s->scan, 0);
	j->scan_skip = s->scan_skip;
	buf_init(&j->fields, 0);
	j->wait = net_conn_wait(conn, 0, job_done, j, job_cancelled);
	if (j->wait == NULL) {
		/* closing: nothing will run */
		atomic_store(&j->refs, 1);
		job_unref(&j);
		return true;
	}
	pthread_mutex_lock(&srv->checks->mu);
	if (srv->checks->tail != NULL)
		srv->checks->tail->next = j;
	else
		srv->checks->head = j;
	srv->checks->tail = j;
	pthread_cond_signal(&srv->checks->cond);
	pthread_mutex_unlock(&srv->checks->mu);
	return true;
}
