/*
 * The mail process's struct auth: each call is a request to the auth
 * process over one SOCK_SEQPACKET socket (auth-wire.h), so accounts.db,
 * the password hashes and the SCRAM keys are never open here.
 *
 * Any thread may call. A caller sends its packet with the next request id
 * and waits on its own condition variable; one reader thread receives the
 * replies and hands each to the waiting caller by id. Sends take no lock
 * the reader needs, so a full socket never stops replies from being read.
 *
 * The socket is held by a reference-counted struct conn with a generation
 * number. When the auth process dies the reader sees EOF, drops the conn
 * and fails every request of that generation at once (temporary failure);
 * the parent restarts the process and hands the new socket to
 * auth_client_set_fd. Calls made meanwhile wait for it (a bounded time).
 */
#include "auth-private.h"
#include "auth-ipc.h"
#include "auth-wire.h"

#include "buf.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	atomic_int refs;
	uint64_t gen;
};

/* One request waiting for its reply (on the caller's stack). */
struct pending {
	struct pending *next;
	uint32_t id;
	uint64_t gen;
	bool done;
	bool failed;                /* the conn went away, or no reply fits */
	pthread_cond_t cond;
	/* The reply packets (more than one for USER_LIST), in order. */
	struct packet *first, *last;
};

struct packet {
	struct packet *next;
	size_t len;
	uint8_t data[];
};

struct auth_client {
	pthread_mutex_t mu;
	pthread_cond_t conn_cond;   /* a conn arrived, or stopping */
	struct conn *conn;
	uint64_t gen;
	uint32_t next_id;
	struct pending *pending;
	pthread_t reader;
	bool reader_started;
	int wake[2];                /* wakes the reader: new conn, stop */
	bool stopping;
	unsigned connect_wait_ms;
};

static struct timespec deadline_in(unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void conn_unref(struct conn *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
		close(c->fd);
		free(c);
	}
}

static void packets_free(struct pending *p)
{
	while (p->first != NULL) {
		struct packet *k = p->first;
		p->first = k->next;
		OPENSSL_cleanse(k->data, k->len);
		free(k);
	}
	p->last = NULL;
}

/* mu held. Fails every request sent on generations before keep_gen (all
 * of them with keep_gen 0 ... i.e. UINT64_MAX). */
static void fail_pending(struct auth_client *c, uint64_t below_gen)
{
	for (struct pending *p = c->pending; p != NULL; p = p->next) {
		if (!p->done && p->gen < below_gen) {
			p->done = p->failed = true;
			pthread_cond_signal(&p->cond);
		}
	}
}

static void wake_reader(struct auth_client *c)
{
	char x = 'w';
	ssize_t w = write(c->wake[1], &x, 1);
	(void)w;
}

/* mu held. Drops conn as the current connection (EOF or replaced). */
static void conn_drop(struct auth_client *c, struct conn *conn)
{
	if (c->conn != conn)
		return;
	c->conn = NULL;
	fail_pending(c, conn->gen + 1);
	conn_unref(conn);
}

/* ---- the reader ----------------------------------------------------- */

static void deliver(struct auth_client *c, const uint8_t *pkt, size_t len,
		    uint64_t gen)
{
	if (len < AUTH_WIRE_HEADER)
		return;
	uint16_t flags = (uint16_t)(pkt[2] | pkt[3] << 8);
	uint32_t id = (uint32_t)pkt[4] | (uint32_t)pkt[5] << 8 |
		      (uint32_t)pkt[6] << 16 | (uint32_t)pkt[7] << 24;
	pthread_mutex_lock(&c->mu);
	struct pending *p = c->pending;
	while (p != NULL && (p->id != id || p->gen != gen))
		p = p->next;
	if (p != NULL && !p->done) {
		struct packet *k = xmalloc(sizeof(*k) + len);
		k->next = NULL;
		k->len = len;
		memcpy(k->data, pkt, len);
		if (p->last != NULL)
			p->last->next = k;
		else
			p->first = k;
		p->last = k;
		if ((flags & AUTH_WIRE_MORE) == 0) {
			p->done = true;
			pthread_cond_signal(&p->cond);
		}
	}
	/* else: a reply to a request that gave up waiting. */
	pthread_mutex_unlock(&c->mu);
}

static void *reader_main(void *ctx)
{
	struct auth_client *c = ctx;
	uint8_t *pkt = xmalloc(AUTH_WIRE_MAX + 1);
	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (c->conn == NULL && !c->stopping)
			pthread_cond_wait(&c->conn_cond, &c->mu);
		if (c->stopping) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		struct conn *conn = c->conn;
		atomic_fetch_add(&conn->refs, 1);
		pthread_mutex_unlock(&c->mu);

		struct pollfd pfd[2] = {{conn->fd, POLLIN, 0},
					{c->wake[0], POLLIN, 0}};
		int pr = poll(pfd, 2, -1);
		if (pr > 0 && pfd[1].revents != 0) {
			char tmp[64];
			while (read(c->wake[0], tmp, sizeof(tmp)) > 0)
				;
		}
		if (pr > 0 && pfd[0].revents != 0) {
			struct iovec iov = {pkt, AUTH_WIRE_MAX + 1};
			struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
			ssize_t n = recvmsg(conn->fd, &msg, MSG_DONTWAIT);
			if (n > 0 && !(msg.msg_flags & MSG_TRUNC)) {
				deliver(c, pkt, (size_t)n, conn->gen);
			} else if (n == 0 || (n < 0 && errno != EINTR &&
					      errno != EAGAIN)) {
				log_warn("auth", NULL, "lost the connection to "
					 "the auth process: logins fail until "
					 "it is back");
				pthread_mutex_lock(&c->mu);
				conn_drop(c, conn);
				pthread_mutex_unlock(&c->mu);
			}
		}
		conn_unref(conn);
	}
	free(pkt);
	return NULL;
}

/* ---- calls ---------------------------------------------------------- */

/* Sends b (its id is set here) and waits for the whole reply, left in
 * p's packets. 0, or -1 (no connection in time, send failed, connection
 * lost, no reply in time). */
static int call(struct auth_client *c, struct auth_wire_buf *b,
		struct pending *p)
{
	if (b->overflow)
		return -1;
	memset(p, 0, sizeof(*p));
	pthread_cond_init(&p->cond, NULL);
	pthread_mutex_lock(&c->mu);
	struct timespec until = deadline_in(c->connect_wait_ms);
	while (c->conn == NULL && !c->stopping) {
		if (pthread_cond_timedwait(&c->conn_cond, &c->mu, &until) ==
		    ETIMEDOUT)
			break;
	}
	struct conn *conn = c->conn;
	if (conn == NULL || c->stopping) {
		pthread_mutex_unlock(&c->mu);
		pthread_cond_destroy(&p->cond);
		return -1;
	}
	atomic_fetch_add(&conn->refs, 1);
	if (++c->next_id == 0)
		c->next_id = 1;
	p->id = c->next_id;
	p->gen = conn->gen;
	p->next = c->pending;
	c->pending = p;
	pthread_mutex_unlock(&c->mu);

	for (int i = 0; i < 4; i++)
		b->data[4 + i] = (uint8_t)(p->id >> (8 * i));
	ssize_t n;
	while ((n = send(conn->fd, b->data, b->len, MSG_NOSIGNAL)) < 0 &&
	       errno == EINTR)
		;
	if (n < 0) {
		/* The auth process is gone (the reader may not have seen the
		 * EOF yet): later calls wait for the next one. */
		pthread_mutex_lock(&c->mu);
		conn_drop(c, conn);
		pthread_mutex_unlock(&c->mu);
	}
	conn_unref(conn);
	pthread_mutex_lock(&c->mu);
	if (n < 0)
		p->done = p->failed = true;
	until = deadline_in(AUTH_CLIENT_CALL_TIMEOUT_MS);
	while (!p->done) {
		if (pthread_cond_timedwait(&p->cond, &c->mu, &until) ==
		    ETIMEDOUT) {
			log_error("auth", NULL, "the auth process did not answer "
				  "a %s request in %d s",
				  auth_wire_type_name(b->data[0]),
				  AUTH_CLIENT_CALL_TIMEOUT_MS / 1000);
			p->failed = true;
			break;
		}
	}
	struct pending **pp = &c->pending;
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&p->cond);
	if (p->failed) {
		packets_free(p);
		return -1;
	}
	return 0;
}

/* The single reply of p, parsed; -1 if missing, malformed, an ERROR or
 * not of type. */
static int one_reply(struct pending *p, uint16_t type, struct auth_reply *rep)
{
	if (p->first == NULL ||
	    auth_wire_parse_reply(p->first->data, p->first->len, rep) < 0)
		return -1;
	if (rep->type != type) {
		if (rep->type != AUTH_WIRE_ERROR)
			log_error("auth", NULL, "the auth process answered a %s "
				  "request with %s", auth_wire_type_name(type),
				  auth_wire_type_name(rep->type));
		return -1;
	}
	return 0;
}

static struct auth_wire_buf *request(uint16_t type)
{
	struct auth_wire_buf *b = xmalloc(sizeof(*b));
	auth_wire_begin(b, type, 0, 0);
	return b;
}

static void request_free(struct auth_wire_buf *b)
{
	OPENSSL_cleanse(b->data, b->len);
	free(b);
}

/* Sends b, frees it, parses the single reply into rep. 0 or -1. */
static int roundtrip(struct auth *auth, struct auth_wire_buf *b,
		     struct auth_reply *rep, struct pending *p)
{
	uint16_t type = b->data[0] | b->data[1] << 8;
	int rc = call(auth->client, b, p);
	request_free(b);
	if (rc == 0 && one_reply(p, type, rep) < 0)
		rc = -1;
	return rc;
}

static const char *remote_or_empty(const char *remote)
{
	return remote != NULL && strlen(remote) <= AUTH_WIRE_REMOTE_MAX
		       ? remote : "";
}

/* Sends b (freed) and reads its one reply into rep, which holds no
 * pointer into the packets (not for SASL data). Returns the reply's rc;
 * -1 with an empty rep->error when the auth process did not answer. */
static int ask(struct auth *auth, struct auth_wire_buf *b,
	       struct auth_reply *rep)
{
	struct pending p;
	if (roundtrip(auth, b, rep, &p) < 0) {
		rep->rc = -1;
		rep->error[0] = '\0';
	}
	packets_free(&p);
	return rep->rc;
}

/* A lookup answered with a user: 1 found (*user_r set), 0 not, -1. */
static int ask_user(struct auth *auth, struct auth_wire_buf *b,
		    struct auth_user *user_r)
{
	struct auth_reply rep;
	int rc = ask(auth, b, &rep);
	if (rc == 1)
		*user_r = rep.user;
	return rc < 0 ? -1 : rc;
}

/* A check answered with an auth_result: AUTH_OK sets *user_r. */
static enum auth_result ask_result(struct auth *auth, struct auth_wire_buf *b,
				   struct auth_user *user_r,
				   char csrf_r[AUTH_SESSION_ID_SIZE])
{
	struct pending p;
	struct auth_reply rep;
	enum auth_result res = AUTH_TEMPFAIL;
	if (roundtrip(auth, b, &rep, &p) == 0) {
		res = (enum auth_result)rep.rc;
		if (res == AUTH_OK)
			*user_r = rep.user;
		if (csrf_r != NULL)
			memcpy(csrf_r, rep.csrf, AUTH_SESSION_ID_SIZE);
	}
	OPENSSL_cleanse(&rep, sizeof(rep));
	packets_free(&p);
	return res;
}

int auth_client_lookup(struct auth *auth, const char *address,
		       struct auth_user *user_r)
{
	if (strlen(address) > AUTH_WIRE_NAME_MAX)
		return 0;
	struct auth_wire_buf *b = request(AUTH_WIRE_LOOKUP);
	auth_wire_str(b, address);
	return ask_user(auth, b, user_r);
}

int auth_client_lookup_id(struct auth *auth, int64_t id,
			  struct auth_user *user_r)
{
	struct auth_wire_buf *b = request(AUTH_WIRE_LOOKUP_ID);
	auth_wire_i64(b, id);
	return ask_user(auth, b, user_r);
}

int auth_client_lookup_postmaster(struct auth *auth, const char *domain,
				  struct auth_user *user_r)
{
	if (strlen(domain) > AUTH_WIRE_NAME_MAX)
		return 0;
	struct auth_wire_buf *b = request(AUTH_WIRE_LOOKUP_POSTMASTER);
	auth_wire_str(b, domain);
	return ask_user(auth, b, user_r);
}

int auth_client_policy(struct auth *auth, int64_t user_id,
		       struct auth_policy *policy_r)
{
	struct auth_wire_buf *b = request(AUTH_WIRE_POLICY);
	auth_wire_i64(b, user_id);
	struct auth_reply rep;
	if (ask(auth, b, &rep) != 0)
		return -1;
	*policy_r = rep.policy;
	return 0;
}

bool auth_client_domain_exists(struct auth *auth, const char *domain)
{
	if (strlen(domain) > AUTH_WIRE_NAME_MAX)
		return false;
	struct auth_wire_buf *b = request(AUTH_WIRE_DOMAIN);
	auth_wire_str(b, domain);
	struct auth_reply rep;
	return ask(auth, b, &rep) == 1;
}

/* Reads the rows of one packet of a list reply; -1 if one is malformed. */
typedef int rows_fn(void *ctx, const struct auth_reply *rep);

/* Sends b (freed) and hands each packet of its reply, a list in as many
 * packets as it takes, to rows. 0, or -1 when the auth process did not
 * answer or a packet is not a good reply to b. */
static int ask_list(struct auth *auth, struct auth_wire_buf *b, rows_fn *rows,
		    void *ctx)
{
	uint16_t type = b->data[0] | b->data[1] << 8;
	struct pending p;
	int rc = call(auth->client, b, &p);
	request_free(b);
	for (struct packet *k = rc == 0 ? p.first : NULL; k != NULL;
	     k = k->next) {
		struct auth_reply rep;
		if (auth_wire_parse_reply(k->data, k->len, &rep) < 0 ||
		    rep.type != type || rep.rc != 0 || rows(ctx, &rep) < 0) {
			rc = -1;
			break;
		}
	}
	packets_free(&p);
	return rc;
}

struct name_rows {
	const char *extra;
	auth_list_fn *fn;
	void *ctx;
};

static int name_rows(void *ctx, const struct auth_reply *rep)
{
	struct name_rows *r = ctx;
	size_t pos = 0;
	char name[AUTH_WIRE_NAME_MAX + 1];
	bool flag;
	int more;
	while ((more = auth_wire_list_next(rep, &pos, name, &flag)) == 1)
		r->fn(r->ctx, name, flag ? r->extra : NULL);
	return more;
}

/* A list of names: each to fn, flagged ones with extra (NULL otherwise). */
static int list_call(struct auth *auth, struct auth_wire_buf *b,
		     const char *extra, auth_list_fn *fn, void *ctx,
		     char **error_r)
{
	struct name_rows r = {extra, fn, ctx};
	int rc = ask_list(auth, b, name_rows, &r);
	if (rc < 0)
		*error_r = xstrdup("the auth process is not available");
	return rc;
}

int auth_client_user_list(struct auth *auth, auth_list_fn *fn, void *ctx,
			  char **error_r)
{
	return list_call(auth, request(AUTH_WIRE_USER_LIST), "disabled", fn,
			 ctx, error_r);
}

int auth_client_send_addresses(struct auth *auth, int64_t user_id,
			       auth_list_fn *fn, void *ctx, char **error_r)
{
	struct auth_wire_buf *b = request(AUTH_WIRE_SEND_ADDRESSES);
	auth_wire_i64(b, user_id);
	return list_call(auth, b, "alias", fn, ctx, error_r);
}

enum auth_result auth_client_check_password(struct auth *auth,
					    const char *login,
					    const char *password,
					    struct auth_user *user_r)
{
	/* Longer than any account or password can be: wrong, as the auth
	 * process would say, without asking it. */
	if (strlen(login) > AUTH_WIRE_NAME_MAX ||
	    strlen(password) > AUTH_WIRE_PASSWORD_MAX)
		return AUTH_FAILED;
	struct auth_wire_buf *b = request(AUTH_WIRE_CHECK_PASSWORD);
	auth_wire_str(b, login);
	auth_wire_str(b, password);
	return ask_result(auth, b, user_r, NULL);
}

int auth_client_check_cached(struct auth *auth, const char *login,
			     const char *password, enum auth_result *result_r,
			     struct auth_user *user_r)
{
	if (strlen(login) > AUTH_WIRE_NAME_MAX ||
	    strlen(password) > AUTH_WIRE_PASSWORD_MAX)
		return 0;     /* the slow half says no */
	struct auth_wire_buf *b = request(AUTH_WIRE_CHECK_CACHED);
	auth_wire_str(b, login);
	auth_wire_str(b, password);
	struct auth_reply rep;
	*result_r = AUTH_TEMPFAIL;
	int rc = ask(auth, b, &rep);
	if (rc == 1) {
		*result_r = (enum auth_result)rep.result;
		*user_r = rep.user;
	}
	return rc;
}

int auth_client_sasl_begin(struct auth *auth, const char *mech,
			   const char *remote, uint32_t *id_r,
			   uint64_t *gen_r)
{
	*id_r = 0;
	*gen_r = 0;
	struct auth_wire_buf *b = request(AUTH_WIRE_SASL_BEGIN);
	auth_wire_str(b, mech);
	auth_wire_str(b, remote_or_empty(remote));
	struct pending p;
	struct auth_reply rep;
	int rc = roundtrip(auth, b, &rep, &p);
	if (rc == 0 && rep.rc == 0) {
		*id_r = rep.sasl_id;
		*gen_r = p.gen;
	}
	packets_free(&p);
	return rc < 0 ? -1 : rep.rc == 0 ? 0 : -1;
}

/* Whether an exchange begun on generation gen can still go on. */
static bool exchange_current(struct auth_client *c, uint32_t id, uint64_t gen)
{
	if (id == 0)
		return false;   /* begun while auth was away */
	pthread_mutex_lock(&c->mu);
	bool current = c->conn != NULL && c->conn->gen == gen;
	pthread_mutex_unlock(&c->mu);
	return current;    /* else begun with an auth that died */
}

static void copy_out(const struct auth_reply *rep, char **out_r,
		     size_t *out_len_r)
{
	*out_r = xmalloc(rep->data_len + 1);
	if (rep->data_len > 0)
		memcpy(*out_r, rep->data, rep->data_len);
	(*out_r)[rep->data_len] = '\0';
	*out_len_r = rep->data_len;
}

enum auth_sasl_status auth_client_sasl_step(struct auth *auth, uint32_t id,
					    uint64_t gen, const void *in,
					    size_t in_len, char **out_r,
					    size_t *out_len_r,
					    struct auth_user *user_r,
					    char *login_r, size_t login_size)
{
	if (!exchange_current(auth->client, id, gen))
		return AUTH_SASL_TEMPFAIL;
	struct auth_wire_buf *b = request(AUTH_WIRE_SASL_STEP);
	auth_wire_u32(b, id);
	auth_wire_bytes(b, in, in_len);
	struct pending p;
	struct auth_reply rep;
	enum auth_sasl_status st = AUTH_SASL_TEMPFAIL;
	if (roundtrip(auth, b, &rep, &p) == 0 && p.gen == gen) {
		st = (enum auth_sasl_status)rep.rc;
		if (st == AUTH_SASL_CONTINUE || st == AUTH_SASL_OK)
			copy_out(&rep, out_r, out_len_r);
		if (st == AUTH_SASL_OK)
			*user_r = rep.user;
		if (st == AUTH_SASL_CHECK)
			snprintf(login_r, login_size, "%s", rep.login);
	}
	packets_free(&p);
	return st;
}

enum auth_sasl_status auth_client_sasl_check(struct auth *auth, uint32_t id,
					     uint64_t gen, char **out_r,
					     size_t *out_len_r,
					     bool *proof_ok_r)
{
	*proof_ok_r = false;
	if (!exchange_current(auth->client, id, gen))
		return AUTH_SASL_TEMPFAIL;
	struct auth_wire_buf *b = request(AUTH_WIRE_SASL_CHECK);
	auth_wire_u32(b, id);
	struct pending p;
	struct auth_reply rep;
	enum auth_sasl_status st = AUTH_SASL_TEMPFAIL;
	if (roundtrip(auth, b, &rep, &p) == 0 && p.gen == gen) {
		st = (enum auth_sasl_status)rep.rc;
		*proof_ok_r = rep.proof_ok;
		if (st == AUTH_SASL_CONTINUE)
			copy_out(&rep, out_r, out_len_r);
	}
	packets_free(&p);
	return st;
}

enum auth_result auth_client_token_verify(struct auth *auth,
					  const char *token,
					  const char *remote,
					  struct auth_user *user_r)
{
	if (strlen(token) > AUTH_WIRE_NAME_MAX)
		return AUTH_FAILED;
	struct auth_wire_buf *b = request(AUTH_WIRE_TOKEN_VERIFY);
	auth_wire_str(b, token);
	auth_wire_str(b, remote_or_empty(remote));
	return ask_result(auth, b, user_r, NULL);
}

int auth_client_session_create(struct auth *auth, int64_t user_id,
			       const struct auth_session_params *params,
			       char id_r[AUTH_SESSION_ID_SIZE],
			       char csrf_r[AUTH_SESSION_ID_SIZE],
			       char **error_r)
{
	const char *bind = params->bind_address;
	if (bind != NULL && strlen(bind) > AUTH_WIRE_REMOTE_MAX) {
		*error_r = xstrdup("session: address too long");
		return -1;
	}
	struct auth_wire_buf *b = request(AUTH_WIRE_SESSION_CREATE);
	auth_wire_i64(b, user_id);
	auth_wire_u32(b, params->lifetime_secs);
	auth_wire_u32(b, params->idle_secs);
	auth_wire_u8(b, bind != NULL);
	auth_wire_str(b, bind);
	struct auth_reply rep;
	int rc = 0;
	if (ask(auth, b, &rep) == 0 && rep.session_id[0] != '\0') {
		memcpy(id_r, rep.session_id, AUTH_SESSION_ID_SIZE);
		memcpy(csrf_r, rep.csrf, AUTH_SESSION_ID_SIZE);
	} else {
		rc = -1;
		*error_r = xstrdup("the auth process could not create the "
				   "session");
	}
	OPENSSL_cleanse(&rep, sizeof(rep));
	return rc;
}

enum auth_result auth_client_session_check(struct auth *auth, const char *id,
					   const char *remote,
					   struct auth_user *user_r,
					   char csrf_r[AUTH_SESSION_ID_SIZE])
{
	if (strlen(id) > AUTH_WIRE_SESSION_MAX)
		return AUTH_FAILED;
	struct auth_wire_buf *b = request(AUTH_WIRE_SESSION_CHECK);
	auth_wire_str(b, id);
	auth_wire_str(b, remote_or_empty(remote));
	return ask_result(auth, b, user_r, csrf_r);
}

int auth_client_session_delete(struct auth *auth, const char *id)
{
	if (strlen(id) > AUTH_WIRE_SESSION_MAX)
		return 0;    /* no session has such an id */
	struct auth_wire_buf *b = request(AUTH_WIRE_SESSION_DELETE);
	auth_wire_str(b, id);
	struct auth_reply rep;
	return ask(auth, b, &rep) == 0 ? 0 : -1;
}

/* The auth process's message, or what to say when it did not answer
 * (ask() leaves rep->error empty then). */
static char *reply_error(const struct auth_reply *rep)
{
	return xstrdup(rep->error[0] != '\0'
			       ? rep->error
			       : "the auth process is not available");
}

enum auth_passwd_change auth_client_passwd_change(struct auth *auth,
						  const char *address,
						  const char *old_password,
						  const char *new_password,
						  char **error_r)
{
	if (strlen(address) > AUTH_WIRE_NAME_MAX ||
	    strlen(old_password) > AUTH_WIRE_PASSWORD_MAX)
		return AUTH_PASSWD_WRONG;
	if (strlen(new_password) > AUTH_WIRE_PASSWORD_MAX) {
		*error_r = xasprintf("password too long: at most %d bytes",
				     AUTH_WIRE_PASSWORD_MAX);
		return AUTH_PASSWD_REFUSED;
	}
	struct auth_wire_buf *b = request(AUTH_WIRE_PASSWD_CHANGE);
	auth_wire_str(b, address);
	auth_wire_str(b, old_password);
	auth_wire_str(b, new_password);
	struct auth_reply rep;
	enum auth_passwd_change r = AUTH_PASSWD_TEMPFAIL;
	int rc = ask(auth, b, &rep);
	if (rc >= 0)
		r = (enum auth_passwd_change)rc;
	if (r == AUTH_PASSWD_REFUSED || r == AUTH_PASSWD_TEMPFAIL)
		*error_r = reply_error(&rep);
	return r;
}

int auth_client_token_add(struct auth *auth, const char *address,
			  const char *name, time_t expires, char **token_r,
			  char **name_r, char **error_r)
{
	*token_r = NULL;
	if (name_r != NULL)
		*name_r = NULL;
	if (strlen(address) > AUTH_WIRE_NAME_MAX ||
	    (name != NULL && strlen(name) > AUTH_WIRE_TOKEN_NAME_MAX) ||
	    expires < 0) {
		*error_r = xstrdup("token name or address too long");
		return -1;
	}
	struct auth_wire_buf *b = request(AUTH_WIRE_TOKEN_ADD);
	auth_wire_str(b, address);
	auth_wire_u8(b, name != NULL);
	auth_wire_str(b, name);
	auth_wire_i64(b, (int64_t)expires);
	struct auth_reply rep;
	int rc = 0;
	if (ask(auth, b, &rep) == 0 && rep.token[0] != '\0') {
		*token_r = xstrdup(rep.token);
		if (name_r != NULL)
			*name_r = xstrdup(rep.login);
	} else {
		*error_r = reply_error(&rep);
		rc = -1;
	}
	OPENSSL_cleanse(&rep, sizeof(rep));
	return rc;
}

struct token_rows {
	auth_token_list_fn *fn;
	void *ctx;
};

static int token_rows(void *ctx, const struct auth_reply *rep)
{
	struct token_rows *r = ctx;
	size_t pos = 0;
	struct auth_token_info info;
	int more;
	while ((more = auth_wire_token_next(rep, &pos, &info)) == 1)
		r->fn(r->ctx, &info);
	return more;
}

int auth_client_token_list(struct auth *auth, const char *address,
			   auth_token_list_fn *fn, void *ctx, char **error_r)
{
	if (strlen(address) > AUTH_WIRE_NAME_MAX) {
		*error_r = xasprintf("no user %s", address);
		return -1;
	}
	struct auth_wire_buf *b = request(AUTH_WIRE_TOKEN_LIST);
	auth_wire_str(b, address);
	struct token_rows r = {fn, ctx};
	int rc = ask_list(auth, b, token_rows, &r);
	if (rc < 0)
		*error_r = xstrdup("the tokens cannot be listed now");
	return rc;
}

int auth_client_token_del(struct auth *auth, const char *address,
			  const char *name, char **error_r)
{
	if (strlen(address) > AUTH_WIRE_NAME_MAX ||
	    strlen(name) > AUTH_WIRE_TOKEN_NAME_MAX) {
		*error_r = xasprintf("%s has no token named '%s'", address,
				     name);
		return -1;
	}
	struct auth_wire_buf *b = request(AUTH_WIRE_TOKEN_DEL);
	auth_wire_str(b, address);
	auth_wire_str(b, name);
	struct auth_reply rep;
	if (ask(auth, b, &rep) != 0) {
		*error_r = reply_error(&rep);
		return -1;
	}
	return 0;
}

/* ---- shared mailboxes (auth-acl.c) ----------------------------------- */

struct id_rows {
	int64_t *ids;
	size_t count, cap;
};

static int id_rows(void *ctx, const struct auth_reply *rep)
{
	struct id_rows *r = ctx;
	size_t pos = 0;
	int64_t id;
	int more;
	while ((more = auth_wire_id_next(rep, &pos, &id)) == 1) {
		if (r->count == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 8;
			r->ids = xrealloc(r->ids, r->cap * sizeof(int64_t));
		}
		r->ids[r->count++] = id;
	}
	return more;
}

static int ids_call(struct auth *auth, uint16_t type, int64_t user_id,
		    int64_t **ids_r, size_t *count_r)
{
	struct auth_wire_buf *b = request(type);
	auth_wire_i64(b, user_id);
	struct id_rows r = {NULL, 0, 0};
	int rc = ask_list(auth, b, id_rows, &r);
	if (rc < 0) {
		free(r.ids);
		r.ids = NULL;
		r.count = 0;
	}
	*ids_r = r.ids;
	*count_r = r.count;
	return rc;
}

int auth_client_user_groups(struct auth *auth, int64_t user_id,
			    int64_t **ids_r, size_t *count_r)
{
	return ids_call(auth, AUTH_WIRE_USER_GROUPS, user_id, ids_r, count_r);
}

int auth_client_acl_owners(struct auth *auth, int64_t user_id,
			   int64_t **ids_r, size_t *count_r)
{
	return ids_call(auth, AUTH_WIRE_ACL_OWNERS, user_id, ids_r, count_r);
}

int auth_client_acl_hint(struct auth *auth, int64_t owner_id, int kind,
			 int64_t id)
{
	if (kind < 0 || kind > UINT8_MAX)
		return -1;
	struct auth_wire_buf *b = request(AUTH_WIRE_ACL_HINT);
	auth_wire_i64(b, owner_id);
	auth_wire_u8(b, (uint8_t)kind);
	auth_wire_i64(b, id);
	struct auth_reply rep;
	return ask(auth, b, &rep) == 0 ? 0 : -1;
}

int auth_client_group_lookup(struct auth *auth, const char *name,
			     const char *domain, int64_t *id_r)
{
	if (strlen(name) > AUTH_WIRE_NAME_MAX ||
	    strlen(domain) > AUTH_WIRE_NAME_MAX)
		return 0;
	struct auth_wire_buf *b = request(AUTH_WIRE_GROUP_LOOKUP);
	auth_wire_str(b, name);
	auth_wire_str(b, domain);
	struct auth_reply rep;
	int rc = ask(auth, b, &rep);
	if (rc == 1)
		*id_r = rep.group_id;
	return rc < 0 ? -1 : rc;
}

int auth_client_user_flag(struct auth *auth, uint16_t type, int64_t user_id)
{
	struct auth_wire_buf *b = request(type);
	auth_wire_i64(b, user_id);
	struct auth_reply rep;
	int rc = ask(auth, b, &rep);
	return rc < 0 ? -1 : rc;
}

int auth_client_group_name(struct auth *auth, int64_t id, char *out,
			   size_t size)
{
	struct auth_wire_buf *b = request(AUTH_WIRE_GROUP_NAME);
	auth_wire_i64(b, id);
	struct auth_reply rep;
	int rc = ask(auth, b, &rep);
	if (rc == 1)
		snprintf(out, size, "%s", rep.login);
	return rc < 0 ? -1 : rc;
}

/* Called where a session ends, often on an I/O thread: never waits. If
 * the packet cannot go at once, the auth process drops the exchange when
 * it has been idle long enough (AUTH_SERVER_SASL_IDLE_MS). */
void auth_client_sasl_free(struct auth *auth, uint32_t id, uint64_t gen)
{
	struct auth_client *c = auth->client;
	if (id == 0)
		return;
	pthread_mutex_lock(&c->mu);
	struct conn *conn = c->conn;
	if (conn != NULL && conn->gen == gen)
		atomic_fetch_add(&conn->refs, 1);
	else
		conn = NULL;
	pthread_mutex_unlock(&c->mu);
	if (conn == NULL)
		return;
	struct auth_wire_buf b;
	auth_wire_begin(&b, AUTH_WIRE_SASL_FREE, 0, 0);
	auth_wire_u32(&b, id);
	(void)send(conn->fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	conn_unref(conn);
}

/* ---- the throttle shared between nodes ------------------------------ */

struct throttle_rows {
	auth_throttle_row_fn *fn;
	void *ctx;
};

static int throttle_rows(void *ctx, const struct auth_reply *rep)
{
	struct throttle_rows *r = ctx;
	size_t pos = 0;
	struct auth_throttle_row row;
	int more;
	while ((more = auth_wire_throttle_next(rep->data, rep->data_len, &pos,
					       &row)) == 1)
		r->fn(r->ctx, &row);
	return more;
}

/* auth_throttle_sync_fn: one THROTTLE_SYNC request. */
static int throttle_sync(void *ctx, const char *node, int64_t batch,
			 int64_t cursor, const struct auth_throttle_row *rows,
			 size_t n, auth_throttle_row_fn *fn, void *fn_ctx)
{
	struct auth *auth = ctx;
	/* no auth process this instant (restarting, or gone at shutdown):
	 * the next period tries again, nobody waits for it */
	struct auth_client *c = auth->client;
	pthread_mutex_lock(&c->mu);
	bool up = c->conn != NULL && !c->stopping;
	pthread_mutex_unlock(&c->mu);
	if (!up)
		return -1;
	struct auth_wire_buf *b = request(AUTH_WIRE_THROTTLE_SYNC);
	auth_wire_str(b, node);
	auth_wire_i64(b, batch);
	auth_wire_i64(b, cursor);
	auth_wire_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		auth_wire_throttle_row(b, &rows[i]);
	if (b->overflow) {
		log_error("auth", NULL, "throttle: a batch of %zu rows does not "
			  "fit a request", n);
		request_free(b);
		return -1;
	}
	struct throttle_rows r = {fn, fn_ctx};
	return ask_list(auth, b, throttle_rows, &r);
}

/* ---- life ----------------------------------------------------------- */

int auth_client_open(const struct auth_settings *set, int fd,
		     struct auth **auth_r, char **error_r)
{
	struct auth *auth = xcalloc(1, sizeof(*auth));
	auth->set = *set;
	auth->data_dir = set->data_dir != NULL ? xstrdup(set->data_dir) : NULL;
	auth->set.data_dir = auth->data_dir;
	atomic_store(&auth->cleartext_remote, set->allow_cleartext_remote);
	auth->defaults = set->defaults;
	pthread_mutex_init(&auth->pool_lock, NULL);
	/* The gate and the throttle (auth-login.c, auth-throttle.c) run here,
	 * beside the connections; only the credentials are elsewhere. */
	auth->gate = auth_gate_create(auth);
	if (auth->data_dir != NULL &&
	    auth_throttle_open(auth, &auth->set, auth->data_dir,
			       set->throttle_daemon, &auth->throttle,
			       error_r) < 0) {
		auth_close(&auth);
		return -1;
	}
	struct auth_client *c = xcalloc(1, sizeof(*c));
	auth->client = c;
	c->connect_wait_ms = AUTH_CLIENT_CONNECT_WAIT_MS;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->conn_cond, NULL);
	c->wake[0] = c->wake[1] = -1;
	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = xasprintf("pipe: %s", strerror(errno));
		auth_close(&auth);
		return -1;
	}
	if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
		*error_r = xstrdup("cannot start the auth client thread");
		auth_close(&auth);
		return -1;
	}
	c->reader_started = true;
	if (fd >= 0)
		auth_client_set_fd(auth, fd);
	/* accounts shared between nodes: so are the throttle's counts,
	 * through the auth process */
	auth_throttle_share(auth->throttle, throttle_sync, auth);
	*auth_r = auth;
	return 0;
}

void auth_client_set_fd(struct auth *auth, int fd)
{
	struct auth_client *c = auth->client;
	struct conn *conn = xcalloc(1, sizeof(*conn));
	conn->fd = fd;
	atomic_init(&conn->refs, 1);
	pthread_mutex_lock(&c->mu);
	if (c->conn != NULL)
		conn_drop(c, c->conn);
	conn->gen = ++c->gen;
	c->conn = conn;
	pthread_cond_broadcast(&c->conn_cond);
	pthread_mutex_unlock(&c->mu);
	wake_reader(c);
}

void auth_client_set_connect_wait(struct auth *auth, unsigned ms)
{
	auth->client->connect_wait_ms = ms;
}

bool auth_is_client(const struct auth *auth)
{
	return auth->client != NULL;
}

void auth_client_close(struct auth *auth)
{
	struct auth_client *c = auth->client;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	if (c->conn != NULL)
		conn_drop(c, c->conn);
	fail_pending(c, UINT64_MAX);
	pthread_cond_broadcast(&c->conn_cond);
	pthread_mutex_unlock(&c->mu);
	if (c->reader_started) {
		wake_reader(c);
		pthread_join(c->reader, NULL);
	}
	for (int i = 0; i < 2; i++)
		if (c->wake[i] >= 0)
			close(c->wake[i]);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->conn_cond);
	free(c);
	auth->client = NULL;
}
