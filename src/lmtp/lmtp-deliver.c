/*
 * LMTP delivery, on worker threads: resolving a RCPT (auth lookup, alias,
 * +folder detail, quota check), streaming DATA chunks into one blob
 * writer per recipient (each copy starts with its own Return-Path,
 * Delivered-To and Received header), and committing them. A recipient's
 * 250 is written only after store_blob_writer_commit returned, i.e. once
 * its copy is durable; a failure leaves nothing of that copy behind (the
 * writer is aborted or the commit undoes itself).
 */
#include "lmtp-private.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- errors to replies -------------------------------------------- */

static void reply_from_store_error(struct lmtp_session *s, struct lmtp_rcpt *r,
				   const struct store_error *err)
{
	switch (err->kind) {
	case STORE_ERR_QUOTA:
		if (r->over_quota_tempfail)
			lmtp_reply_set(&r->reply, 452, "4.2.2",
				       "<%s> Quota exceeded (mailbox for user is full)",
				       r->address);
		else
			lmtp_reply_set(&r->reply, 552, "5.2.2",
				       "<%s> Quota exceeded (mailbox for user is full)",
				       r->address);
		break;
	case STORE_ERR_LIMIT:
		lmtp_reply_set(&r->reply, 552, "5.3.4",
			       "<%s> Message too big for system", r->address);
		break;
	case STORE_ERR_TEMP:
		/* Disk full, lock timeout: the MTA keeps it and retries. */
		lmtp_reply_set(&r->reply, 452, "4.3.1",
			       "<%s> Insufficient system storage, try again later",
			       r->address);
		break;
	case STORE_ERR_NOTFOUND:
		/* The +folder vanished between RCPT and now: a retry
		 * resolves it again (to INBOX). */
		lmtp_reply_set(&r->reply, 450, "4.2.0",
			       "<%s> Mailbox changed during delivery, try again",
			       r->address);
		break;
	default:
		lmtp_reply_set(&r->reply, 451, "4.3.0",
			       "<%s> Temporary internal error (session %s)",
			       r->address, s->sid);
		break;
	}
	log_warn("lmtp", s->sid, "delivery to %s failed: %s", r->address,
		 err->msg);
}

static void write_reply(struct lmtp_session *s, const struct lmtp_reply *r)
{
	net_conn_printf(s->conn, "%d %s %s\r\n", r->code, r->status, r->text);
}

/* ---- RCPT --------------------------------------------------------- */

/* The +detail folder if the user has it (exact name first, then
 * case-insensitively, as users type addresses), else INBOX. */
static char *resolve_folder(struct store_user *user, const char *detail)
{
	struct store_mailbox_info info, *list = NULL;
	size_t count = 0;
	char *found = NULL;

	if (detail[0] == '\0' || strcasecmp(detail, "INBOX") == 0)
		return xstrdup("INBOX");
	/* A \Noselect parent (deleted, kept for its children) holds no
	 * messages: such a detail goes to INBOX. */
	if (store_mailbox_status(user, detail, &info, NULL) == 0) {
		bool ok = !info.noselect;
		store_mailbox_info_free(&info);
		return xstrdup(ok ? detail : "INBOX");
	}
	if (store_mailbox_list(user, &list, &count, NULL) == 0) {
		for (size_t i = 0; i < count && found == NULL; i++) {
			if (strcasecmp(list[i].name, detail) == 0 &&
			    !list[i].noselect)
				found = xstrdup(list[i].name);
		}
		store_mailbox_list_free(list, count);
	}
	return found != NULL ? found : xstrdup("INBOX");
}

/* Finds the account: the address (or alias) as given, else without its
 * +detail. Returns 1/0/-1 like auth_lookup; *detail_r gets the detail. */
static int lookup_rcpt(struct auth *auth, const struct lmtp_path *path,
		       struct auth_user *user_r, char *detail_r,
		       size_t detail_size)
{
	const char *addr = path->address;
	const char *plus = memchr(addr, '+', path->local_len);
	char base[LMTP_PATH_MAX + 1];
	int ret;

	detail_r[0] = '\0';
	ret = auth_lookup(auth, addr, user_r);
	if (ret != 0 || plus == NULL)
		return ret;
	snprintf(base, sizeof(base), "%.*s%s", (int)(plus - addr), addr,
		 addr + path->local_len);
	snprintf(detail_r, detail_size, "%.*s",
		 (int)(path->local_len - (size_t)(plus + 1 - addr)), plus + 1);
	return auth_lookup(auth, base, user_r);
}

/* RFC 1870-style early refusal: an account already at its quota (or that
 * the declared SIZE would overflow) is refused at RCPT, before the client
 * sends the data. The commit checks again, exactly. */
static bool over_quota(struct lmtp_session *s, struct store_user *user,
		       const struct auth_policy *pol)
{
	struct store_usage usage;
	uint64_t need = s->declared_size > 0 ? s->declared_size : 1;

	if (pol->quota_bytes == 0 && pol->quota_messages == 0)
		return false;
	if (store_user_usage(user, &usage, NULL) < 0)
		return false; /* the commit will tell */
	if (pol->quota_messages != 0 && usage.messages >= pol->quota_messages)
		return true;
	return pol->quota_bytes != 0 && usage.bytes + need > pol->quota_bytes;
}

static void rcpt_add(struct lmtp_session *s, const struct lmtp_path *path,
		     const struct auth_user *au, struct store_user *user,
		     char *mailbox, bool tempfail)
{
	struct lmtp_rcpt *r;

	if (s->rcpt_count == s->rcpt_cap) {
		s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*s->rcpts));
	}
	r = &s->rcpts[s->rcpt_count];
	memset(r, 0, sizeof(*r));
	lmtp_path_text(path, r->address, sizeof(r->address));
	r->user_id = au->id;
	r->user = user;
	r->mailbox = mailbox;
	r->over_quota_tempfail = tempfail;
	r->dup_of = -1;
	for (unsigned i = 0; i < s->rcpt_count; i++) {
		if (s->rcpts[i].user_id == au->id &&
		    strcmp(s->rcpts[i].mailbox, mailbox) == 0 &&
		    s->rcpts[i].dup_of < 0) {
			r->dup_of = (int)i;
			break;
		}
	}
	s->rcpt_count++;
}

/* A handle on the user's mail: from the session's cache, or opened and
 * put there (the cache holds its own reference). */
static int user_get(struct lmtp_session *s, int64_t user_id,
		    struct store_user **user_r, struct store_error *err)
{
	struct store_user **slot;

	for (unsigned i = 0; i < LMTP_USER_CACHE; i++) {
		struct store_user *u = s->user_cache[i];
		if (u != NULL && store_user_id(u) == user_id) {
			store_user_ref(u);
			*user_r = u;
			return 0;
		}
	}
	if (store_user_open(s->server->store, user_id, user_r, err) < 0)
		return -1;
	slot = &s->user_cache[s->user_cache_next];
	s->user_cache_next = (s->user_cache_next + 1) % LMTP_USER_CACHE;
	if (*slot != NULL)
		store_user_unref(slot);
	store_user_ref(*user_r);
	*slot = *user_r;
	return 0;
}

void lmtp_user_cache_clear(struct lmtp_session *s)
{
	for (unsigned i = 0; i < LMTP_USER_CACHE; i++) {
		if (s->user_cache[i] != NULL)
			store_user_unref(&s->user_cache[i]);
	}
}

void lmtp_task_rcpt(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;
	struct lmtp_rcpt_request *req = arg;
	const char *addr = req->path.address;
	char text[LMTP_PATH_TEXT];
	struct lmtp_server *srv = s->server;
	struct auth_policy pol = {0};
	struct store_user *user = NULL;
	struct store_error err = {0};
	struct auth_user au;
	char detail[LMTP_PATH_MAX + 1];
	char *mailbox;
	int ret;

	lmtp_path_text(&req->path, text, sizeof(text));
	ret = lookup_rcpt(srv->auth, &req->path, &au, detail, sizeof(detail));
	if (ret < 0) {
		net_conn_printf(conn, "451 4.3.0 <%s> Temporary user lookup failure\r\n",
				text);
	} else if (ret == 0) {
		const char *domain = addr + req->path.local_len + 1;
		if (!auth_domain_exists(srv->auth, domain))
			net_conn_printf(conn, "550 5.1.2 <%s> Domain is not served here\r\n",
					text);
		else
			net_conn_printf(conn, "550 5.1.1 <%s> User doesn't exist\r\n",
					text);
	} else if (au.disabled) {
		net_conn_printf(conn, "550 5.2.1 <%s> Mailbox disabled\r\n", text);
	} else if (user_get(s, au.id, &user, &err) < 0) {
		log_error("lmtp", s->sid, "opening mail of %s: %s", text, err.msg);
		net_conn_printf(conn, "451 4.3.0 <%s> Temporary internal error (session %s)\r\n",
				text, s->sid);
	} else {
		if (auth_user_policy(srv->auth, au.id, &pol) < 0)
			memset(&pol, 0, sizeof(pol));
		if (over_quota(s, user, &pol)) {
			net_conn_printf(conn, "%s <%s> Quota exceeded (mailbox for user is full)\r\n",
					pol.over_quota_tempfail ? "452 4.2.2" : "552 5.2.2",
					text);
			store_user_unref(&user);
		} else {
			mailbox = resolve_folder(user, detail);
			rcpt_add(s, &req->path, &au, user, mailbox,
				 pol.over_quota_tempfail);
			s->errors = 0;
			net_conn_printf(conn, "250 2.1.5 <%s> OK\r\n", text);
		}
	}
	free(req);
}

/* ---- DATA --------------------------------------------------------- */

/* The trace fields of one copy (RFC 5321 4.4): Return-Path from the
 * envelope sender, Delivered-To, and a Received: line naming the client
 * (its LHLO name and address), us, "with LMTP" (RFC 3848), the
 * transaction id, the recipient and the date. */
static void trace_headers(struct lmtp_session *s, const struct lmtp_rcpt *r,
			  struct buf *out)
{
	const char *peer = net_conn_peer(s->conn);
	char date[64], from[300];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (strcmp(peer, "unix") == 0)
		snprintf(from, sizeof(from), "%s (unix socket)", s->lhlo);
	else if (strchr(peer, ':') != NULL)
		snprintf(from, sizeof(from), "%s ([IPv6:%s])", s->lhlo, peer);
	else
		snprintf(from, sizeof(from), "%s ([%s])", s->lhlo, peer);
	buf_printf(out, "Return-Path: <%s>\r\n", s->sender);
	buf_printf(out, "Delivered-To: %s\r\n", r->address);
	buf_printf(out,
		   "Received: from %s\r\n\tby %s (Loft) with LMTP id %s\r\n"
		   "\tfor <%s>; %s\r\n",
		   from, s->server->hostname, s->txn_id, r->address, date);
}

static bool rcpt_pending(const struct lmtp_rcpt *r)
{
	return r->dup_of < 0 && r->reply.code == 0;
}

/* Creates every recipient's writer and writes its trace fields. */
static void start_writers(struct lmtp_session *s)
{
	struct buf hdr;

	buf_init(&hdr, 0);
	s->data_started = true;
	for (unsigned i = 0; i < s->rcpt_count; i++) {
		struct lmtp_rcpt *r = &s->rcpts[i];
		struct store_error err = {0};

		if (!rcpt_pending(r))
			continue;
		buf_reset(&hdr);
		trace_headers(s, r, &hdr);
		if (store_blob_writer_create(r->user, &r->writer, &err) < 0 ||
		    store_blob_writer_write(r->writer, hdr.data, hdr.len, &err) < 0) {
			if (r->writer != NULL)
				store_blob_writer_abort(&r->writer);
			reply_from_store_error(s, r, &err);
		}
	}
	buf_free(&hdr);
}

static void write_chunk(struct lmtp_session *s)
{
	for (unsigned i = 0; i < s->rcpt_count && s->chunk.len > 0; i++) {
		struct lmtp_rcpt *r = &s->rcpts[i];
		struct store_error err = {0};

		if (!rcpt_pending(r) || r->writer == NULL)
			continue;
		if (store_blob_writer_write(r->writer, s->chunk.data,
					    s->chunk.len, &err) < 0) {
			store_blob_writer_abort(&r->writer);
			reply_from_store_error(s, r, &err);
		}
	}
	buf_reset(&s->chunk);
}

void lmtp_task_data_chunk(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;

	if (!s->data_started)
		start_writers(s);
	write_chunk(s);
}

static void commit_rcpt(struct lmtp_session *s, struct lmtp_rcpt *r)
{
	struct store_append_params params = {0};
	struct store_error err = {0};
	uint64_t size = store_blob_writer_size(r->writer);
	uint32_t uid = 0;

	if (store_blob_writer_commit(&r->writer, r->mailbox, &params, &uid,
				     NULL, &err) < 0) {
		reply_from_store_error(s, r, &err);
		return;
	}
	lmtp_reply_set(&r->reply, 250, "2.0.0", "<%s> %s Saved", r->address,
		       s->txn_id);
	log_info("lmtp", s->sid, "saved: to=<%s> from=<%s> mailbox=%s uid=%u size=%llu id=%s",
		 r->address, s->sender, r->mailbox, uid,
		 (unsigned long long)size, s->txn_id);
}

struct commit_job {
	struct lmtp_session *s;
	struct lmtp_rcpt *r;
	pthread_t thread;
	bool started;
};

static void *commit_thread(void *arg)
{
	struct commit_job *j = arg;

	commit_rcpt(j->s, j->r);
	return NULL;
}

/* Commits every pending copy. Copies for different users go to different
 * indexes, so their fsyncs overlap: up to LMTP_PARALLEL_COMMITS run at
 * once on short-lived threads beside this worker (the worker pool has no
 * fan-out, and a commit is mostly waiting on the disk). */
#define LMTP_PARALLEL_COMMITS 8
static void commit_all(struct lmtp_session *s)
{
	struct commit_job jobs[LMTP_PARALLEL_COMMITS];
	unsigned i = 0;

	while (i < s->rcpt_count) {
		unsigned n = 0;
		for (; i < s->rcpt_count && n < LMTP_PARALLEL_COMMITS; i++) {
			struct lmtp_rcpt *r = &s->rcpts[i];
			if (rcpt_pending(r) && r->writer != NULL)
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
}

void lmtp_task_data_end(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;

	if (!s->data_started)
		start_writers(s);
	if (s->data_too_big) {
		for (unsigned i = 0; i < s->rcpt_count; i++) {
			struct lmtp_rcpt *r = &s->rcpts[i];
			if (r->writer != NULL)
				store_blob_writer_abort(&r->writer);
			lmtp_reply_set(&r->reply, 552, "5.3.4",
				       "<%s> Message size exceeds fixed maximum message size",
				       r->address);
		}
	} else {
		write_chunk(s);
		commit_all(s);
	}
	/* RFC 2033 4.2: one reply per accepted RCPT, in RCPT order; every
	 * 250 follows the commit that made its copy durable. */
	for (unsigned i = 0; i < s->rcpt_count; i++) {
		struct lmtp_rcpt *r = &s->rcpts[i];
		if (r->dup_of >= 0) {
			const struct lmtp_reply *d = &s->rcpts[r->dup_of].reply;
			lmtp_reply_set(&r->reply, d->code, d->status, "<%s> %s",
				       r->address,
				       d->code == 250 ? "Saved (same copy)"
						      : "Not saved");
		} else if (r->reply.code == 0) {
			lmtp_reply_set(&r->reply, 451, "4.3.0",
				       "<%s> Temporary internal error (session %s)",
				       r->address, s->sid);
		}
		write_reply(s, &r->reply);
	}
	lmtp_transaction_reset(s);
}

void lmtp_task_reset(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;
	char *text = arg;

	lmtp_transaction_reset(s);
	net_conn_printf(conn, "%s\r\n", text);
	free(text);
}

void lmtp_task_quit(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;

	lmtp_transaction_reset(s);
	lmtp_user_cache_clear(s);
	net_conn_printf(conn, "221 2.0.0 %s Bye\r\n", s->server->hostname);
	net_conn_close(conn);
}

/* Waits (on a worker: the I/O thread never waits) until the client has
 * read its replies down below LMTP_OUTPUT_MAX; net drops a client that
 * reads nothing for its write timeout. */
void lmtp_task_drain(void *session, struct net_conn *conn, void *arg)
{
	/* 60 s at most, whatever net's settings are */
	for (int i = 0; i < 6000; i++) {
		if (net_conn_output_pending(conn) <= LMTP_OUTPUT_MAX)
			return;
		/* blocks while above net's high-water mark */
		if (net_conn_write(conn, "", 0) < 0)
			return;
		if (net_conn_output_pending(conn) > LMTP_OUTPUT_MAX)
			usleep(10000);
	}
	log_info("lmtp", ((struct lmtp_session *)session)->sid,
		 "client reads no replies, closing");
	net_conn_close(conn);
}
