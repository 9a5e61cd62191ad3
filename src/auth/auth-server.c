/*
 * The auth process's side of the socketpair: reads requests from the mail
 * process, runs them against the local struct auth (accounts.db, hashes,
 * SASL, throttle) and writes the replies.
 *
 * One reader thread parses each packet strictly (auth_wire_parse_request)
 * and queues it on a lane: lookups (point queries) on a small fast lane,
 * password checks and SASL steps (argon2, throttle waits) on a larger
 * slow one, so a burst of logins never holds up a delivery's lookup.
 * Lanes are bounded: when one is full the reader stops reading, and the
 * mail process's callers wait in send(2).
 *
 * SASL exchanges live here (the SCRAM keys never leave this process),
 * named by ids the mail process only echoes back. An id carries its
 * slot's generation, so a stale id never reaches a newer exchange; a step
 * for an exchange whose previous step still runs, or for an id never
 * handed out, fails; at most AUTH_SERVER_SASL_MAX exchanges are open, and
 * one left idle for AUTH_SERVER_SASL_IDLE_MS is dropped when room is
 * needed. A finished exchange (OK, FAIL, TEMPFAIL) is freed at once.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AUTH_SERVER_SASL_BITS 14
#define AUTH_SERVER_SASL_MAX (1u << AUTH_SERVER_SASL_BITS)
#define AUTH_SERVER_SASL_IDLE_MS (5 * 60 * 1000)
#define AUTH_SERVER_QUEUE_MAX 1024
#define AUTH_SERVER_FAST_THREADS 2

enum lane_kind { LANE_FAST, LANE_SLOW, LANE_COUNT };

struct job {
	struct job *next;
	struct auth_request req;
	size_t pkt_len;
	uint8_t pkt[];
};

struct lane {
	struct auth_server *srv;
	pthread_t *threads;
	unsigned thread_count;
	struct job *head, *tail;
	unsigned queued;
	unsigned running;
	pthread_cond_t work;          /* a job queued on this lane */
};

struct sasl_slot {
	uint32_t id;                  /* 0: free */
	uint32_t gen;
	struct auth_sasl *sasl;
	bool busy;                    /* a step runs */
	bool free_pending;            /* freed while busy */
	uint64_t last_ms;
};

struct auth_server {
	struct auth *auth;
	int fd;
	int stop_pipe[2];
	pthread_mutex_t mu;           /* lanes, slots, reload */
	pthread_cond_t room;          /* a job taken, or a lane idle */
	unsigned room_waiters;        /* readers waiting on room */
	struct lane lanes[LANE_COUNT];
	bool stopping;
	struct sasl_slot *slots;
	unsigned open_exchanges;
	uint32_t next_slot;
	unsigned bad_requests;        /* for the log's rate limit */
	struct auth_settings *reload; /* applied between jobs */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_reply(struct auth_server *srv, struct auth_wire_buf *b)
{
	if (b->overflow) {
		/* Never sent half: the client gets an error instead. */
		uint32_t id = (uint32_t)b->data[4] | (uint32_t)b->data[5] << 8 |
			      (uint32_t)b->data[6] << 16 |
			      (uint32_t)b->data[7] << 24;
		auth_wire_begin(b, AUTH_WIRE_ERROR, AUTH_WIRE_REPLY, id);
	}
	/* SEQPACKET: each send is one whole packet, so replies of several
	 * threads never interleave. A failed send means the mail process is
	 * gone; the reader sees that too. */
	while (send(srv->fd, b->data, b->len, MSG_NOSIGNAL) < 0 &&
	       errno == EINTR)
		;
}

static void send_error(struct auth_server *srv, uint32_t id)
{
	struct auth_wire_buf b;
	auth_wire_begin(&b, AUTH_WIRE_ERROR, AUTH_WIRE_REPLY, id);
	send_reply(srv, &b);
}

/* ---- SASL exchanges ------------------------------------------------- */

/* mu held. A free slot, dropping exchanges idle too long if none. */
static struct sasl_slot *slot_alloc(struct auth_server *srv)
{
	if (srv->open_exchanges >= AUTH_SERVER_SASL_MAX) {
		uint64_t cutoff = now_ms() - AUTH_SERVER_SASL_IDLE_MS;
		for (uint32_t i = 0; i < AUTH_SERVER_SASL_MAX; i++) {
			struct sasl_slot *s = &srv->slots[i];
			if (s->id != 0 && !s->busy && s->last_ms < cutoff) {
				auth_sasl_free(&s->sasl);
				s->id = 0;
				srv->open_exchanges--;
			}
		}
	}
	for (uint32_t n = 0; n < AUTH_SERVER_SASL_MAX; n++) {
		uint32_t i = (srv->next_slot + n) % AUTH_SERVER_SASL_MAX;
		struct sasl_slot *s = &srv->slots[i];
		if (s->id == 0) {
			srv->next_slot = i + 1;
			s->gen = (s->gen + 1) & ((1u << (32 - AUTH_SERVER_SASL_BITS)) - 1);
			if (s->gen == 0)
				s->gen = 1;
			s->id = s->gen << AUTH_SERVER_SASL_BITS | i;
			s->busy = s->free_pending = false;
			s->last_ms = now_ms();
			srv->open_exchanges++;
			return s;
		}
	}
	return NULL;
}

/* mu held. The slot of a live id, or NULL. */
static struct sasl_slot *slot_find(struct auth_server *srv, uint32_t id)
{
	struct sasl_slot *s = &srv->slots[id & (AUTH_SERVER_SASL_MAX - 1)];
	return id != 0 && s->id == id ? s : NULL;
}

/* mu held. */
static void slot_release(struct auth_server *srv, struct sasl_slot *s)
{
	auth_sasl_free(&s->sasl);
	s->id = 0;
	s->busy = s->free_pending = false;
	srv->open_exchanges--;
}

static void do_sasl_begin(struct auth_server *srv, struct auth_request *req,
			  struct auth_wire_buf *b)
{
	struct auth_sasl *sasl = NULL;
	int rc = -1;
	uint32_t id = 0;
	/* PLAIN and LOGIN run in the mail process: only SCRAM, whose keys
	 * never leave, is an exchange here. */
	if (strcasecmp(req->name, "SCRAM-SHA-256") == 0 &&
	    auth_sasl_begin(srv->auth, req->name, req->remote, &sasl) == 0) {
		pthread_mutex_lock(&srv->mu);
		struct sasl_slot *s = slot_alloc(srv);
		if (s != NULL) {
			s->sasl = sasl;
			id = s->id;
			sasl = NULL;
			rc = 0;
		} else {
			rc = -2;     /* out of room: a temporary failure */
		}
		pthread_mutex_unlock(&srv->mu);
		auth_sasl_free(&sasl);
		if (rc == -2)
			log_warn("auth", NULL, "%u SASL exchanges open: refusing "
				 "a new one", AUTH_SERVER_SASL_MAX);
	}
	auth_wire_u8(b, (uint8_t)(int8_t)rc);
	auth_wire_u32(b, id);
}

/* The exchange of id, marked busy; NULL (logged) if it is unknown,
 * finished, or its previous request still runs: the mail process broke
 * the protocol, or an idle exchange was dropped. */
static struct sasl_slot *exchange_take(struct auth_server *srv, uint32_t id,
				       const char *what)
{
	pthread_mutex_lock(&srv->mu);
	struct sasl_slot *s = slot_find(srv, id);
	bool busy = s != NULL && s->busy;
	if (s != NULL && !busy)
		s->busy = true;
	pthread_mutex_unlock(&srv->mu);
	if (s == NULL || busy) {
		log_info("auth", NULL, "SASL %s for exchange %08x refused (%s)",
			 what, id, busy ? "busy" : "unknown");
		return NULL;
	}
	return s;
}

/* An exchange that ended (OK, FAIL, TEMPFAIL) is freed at once. */
static void exchange_put(struct auth_server *srv, struct sasl_slot *s,
			 enum auth_sasl_status st)
{
	pthread_mutex_lock(&srv->mu);
	s->busy = false;
	s->last_ms = now_ms();
	if ((st != AUTH_SASL_CONTINUE && st != AUTH_SASL_CHECK) ||
	    s->free_pending)
		slot_release(srv, s);
	pthread_mutex_unlock(&srv->mu);
}

static void do_sasl_step(struct auth_server *srv, struct auth_request *req,
			 struct auth_wire_buf *b)
{
	struct auth_user user;
	memset(&user, 0, sizeof(user));
	char *out = NULL;
	size_t out_len = 0;
	char login[AUTH_WIRE_NAME_MAX + 1] = "";
	enum auth_sasl_status st = AUTH_SASL_FAIL;
	struct sasl_slot *s = exchange_take(srv, req->sasl_id, "step");
	if (s != NULL) {
		st = auth_sasl_step(s->sasl, req->data, req->data_len, &out,
				    &out_len, &user);
		/* The gate throttles by account: it needs the name parsed. */
		if (st == AUTH_SASL_CHECK)
			snprintf(login, sizeof(login), "%s",
				 auth_sasl_login(s->sasl));
		exchange_put(srv, s, st);
	}
	auth_wire_u8(b, (uint8_t)st);
	auth_wire_bytes(b, out, out != NULL ? out_len : 0);
	auth_wire_user(b, &user);
	auth_wire_str(b, login);
	if (out != NULL) {
		OPENSSL_cleanse(out, out_len);
		free(out);
	}
}

static void do_sasl_check(struct auth_server *srv, struct auth_request *req,
			  struct auth_wire_buf *b)
{
	char *out = NULL;
	size_t out_len = 0;
	bool ok = false;
	enum auth_sasl_status st = AUTH_SASL_FAIL;
	struct sasl_slot *s = exchange_take(srv, req->sasl_id, "check");
	if (s != NULL) {
		st = auth_sasl_check_scram(s->sasl, &out, &out_len, &ok);
		exchange_put(srv, s, st);
	}
	auth_wire_u8(b, (uint8_t)st);
	auth_wire_bytes(b, out, out != NULL ? out_len : 0);
	auth_wire_u8(b, ok);
	if (out != NULL) {
		OPENSSL_cleanse(out, out_len);
		free(out);
	}
}

static void do_sasl_free(struct auth_server *srv, uint32_t id)
{
	pthread_mutex_lock(&srv->mu);
	struct sasl_slot *s = slot_find(srv, id);
	if (s != NULL && s->busy)
		s->free_pending = true;
	else if (s != NULL)
		slot_release(srv, s);
	pthread_mutex_unlock(&srv->mu);
}

/* ---- requests ------------------------------------------------------- */

struct list_ctx {
	struct auth_server *srv;
	struct auth_wire_buf *b;
	uint32_t id;
	struct auth_wire_buf rows;
	uint32_t count;
	uint16_t type;
};

static void list_flush(struct list_ctx *l, bool more)
{
	auth_wire_begin(l->b, l->type,
			AUTH_WIRE_REPLY | (more ? AUTH_WIRE_MORE : 0), l->id);
	auth_wire_u8(l->b, 0);
	auth_wire_u32(l->b, l->count);
	if (l->rows.len > AUTH_WIRE_HEADER) {
		size_t n = l->rows.len - AUTH_WIRE_HEADER;
		memcpy(l->b->data + l->b->len, l->rows.data + AUTH_WIRE_HEADER,
		       n);
		l->b->len += n;
	}
	if (more)
		send_reply(l->srv, l->b);
	auth_wire_begin(&l->rows, 0, 0, 0);
	l->count = 0;
}

/* A list reply to req, written to b as its rows come. */
static struct list_ctx *list_new(struct auth_server *srv,
				 const struct auth_request *req,
				 struct auth_wire_buf *b)
{
	struct list_ctx *l = xcalloc(1, sizeof(*l));
	l->srv = srv;
	l->b = b;
	l->id = req->id;
	l->type = req->type;
	auth_wire_begin(&l->rows, 0, 0, 0);
	return l;
}

/* The list's last rows; failed: a reply of -1 with no rows instead. */
static void list_end(struct list_ctx *l, bool failed)
{
	if (failed) {
		auth_wire_begin(l->b, l->type, AUTH_WIRE_REPLY, l->id);
		auth_wire_u8(l->b, (uint8_t)(int8_t)-1);
		auth_wire_u32(l->b, 0);
	} else {
		list_flush(l, false);
	}
	free(l);
}

/* Room for a row of need bytes in a packet with the 5-byte list header. */
static void list_room(struct list_ctx *l, size_t need)
{
	if (l->rows.len + need + 5 > AUTH_WIRE_MAX)
		list_flush(l, true);
	l->count++;
}

static void list_row(void *ctx, const char *name, const char *extra)
{
	struct list_ctx *l = ctx;
	if (strlen(name) > AUTH_WIRE_NAME_MAX)
		return;
	list_room(l, 2 + strlen(name) + 1);
	auth_wire_str(&l->rows, name);
	auth_wire_u8(&l->rows, extra != NULL);
}

static void token_row(void *ctx, const struct auth_token_info *info)
{
	struct list_ctx *l = ctx;
	size_t n = strnlen(info->name, sizeof(info->name));
	if (n > AUTH_WIRE_TOKEN_NAME_MAX)
		return;
	list_room(l, 2 + n + 3 * 8);
	auth_wire_token_row(&l->rows, info);
}

/* USER_LIST (flag: disabled), SEND_ADDRESSES (flag: an alias) and
 * TOKEN_LIST. */
static void do_list(struct auth_server *srv, struct auth_request *req,
		    struct auth_wire_buf *b)
{
	struct list_ctx *l = list_new(srv, req, b);
	char *error = NULL;
	int rc = req->type == AUTH_WIRE_USER_LIST
		? auth_user_list(srv->auth, list_row, l, &error)
		: req->type == AUTH_WIRE_TOKEN_LIST
		? auth_token_list(srv->auth, req->name, token_row, l, &error)
		: auth_send_addresses(srv->auth, req->user_id, list_row, l,
				      &error);
	if (rc < 0) {
		log_error("auth", NULL, "%s: %s", auth_wire_type_name(req->type),
			  error);
		free(error);
	}
	list_end(l, rc < 0);
}

static void throttle_row(void *ctx, const struct auth_throttle_row *row)
{
	struct list_ctx *l = ctx;
	list_room(l, strlen(row->key) + 43);
	auth_wire_throttle_row(&l->rows, row);
}

/* THROTTLE_SYNC: a node's changes to loft_auth.throttle, and what changed
 * there (auth-throttle-share.c). */
static void do_throttle_sync(struct auth_server *srv, struct auth_request *req,
			     struct auth_wire_buf *b)
{
	struct list_ctx *l = list_new(srv, req, b);
	char *error = NULL;
	bool failed = auth_throttle_db_sync(srv->auth, req->name, req->batch,
					    req->data, req->data_len,
					    req->cursor, throttle_row, l,
					    &error) < 0;
	if (failed) {
		log_warn("auth", NULL, "%s", error);
		free(error);
	}
	list_end(l, failed);
}

static void do_session_create(struct auth_server *srv,
			      struct auth_request *req, struct auth_wire_buf *b)
{
	struct auth_session_params params = {
		.lifetime_secs = req->lifetime_secs,
		.idle_secs = req->idle_secs,
		.bind_address = req->has_name ? req->remote : NULL,
	};
	char id[AUTH_SESSION_ID_SIZE] = "", csrf[AUTH_SESSION_ID_SIZE] = "";
	char *error = NULL;
	int rc = auth_session_create(srv->auth, req->user_id, &params, id, csrf,
				     &error);
	if (rc < 0) {
		log_error("auth", NULL, "web session: %s", error);
		free(error);
		id[0] = csrf[0] = '\0';
	}
	auth_wire_u8(b, (uint8_t)(int8_t)rc);
	auth_wire_str(b, id);
	auth_wire_str(b, csrf);
	OPENSSL_cleanse(id, sizeof(id));
	OPENSSL_cleanse(csrf, sizeof(csrf));
}

/* A message for the mail process's user, cut to what crosses. */
static void put_error(struct auth_wire_buf *b, char *error)
{
	char cut[AUTH_WIRE_ERROR_MAX + 1];
	snprintf(cut, sizeof(cut), "%s", error != NULL ? error : "");
	auth_wire_str(b, cut);
	free(error);
}

static void do_passwd_change(struct auth_server *srv,
			     struct auth_request *req, struct auth_wire_buf *b)
{
	char *error = NULL;
	enum auth_passwd_change r = auth_user_passwd_change(
		srv->auth, req->name, req->password, req->new_password, &error);
	auth_wire_u8(b, (uint8_t)r);
	put_error(b, error);
}

static void do_token_add(struct auth_server *srv, struct auth_request *req,
			 struct auth_wire_buf *b)
{
	char *token = NULL, *name = NULL, *error = NULL;
	int rc = auth_token_add(srv->auth, req->name,
				req->has_name ? req->token_name : NULL,
				(time_t)req->expires, &token, &name, &error);
	if (rc == 0 && (token == NULL || strlen(token) > AUTH_WIRE_TOKEN_MAX ||
			(name != NULL &&
			 strlen(name) > AUTH_WIRE_TOKEN_NAME_MAX))) {
		/* Cannot happen (auth-token.c makes both); never half. */
		rc = -1;
		free(error);
		error = xstrdup("the new token does not fit the reply");
	}
	auth_wire_u8(b, (uint8_t)(int8_t)(rc < 0 ? -1 : 0));
	auth_wire_str(b, rc == 0 ? token : "");
	auth_wire_str(b, rc == 0 && name != NULL ? name : "");
	if (rc == 0) {
		free(error);
		error = NULL;
	}
	put_error(b, error);
	if (token != NULL) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	free(name);
}

static void do_token_del(struct auth_server *srv, struct auth_request *req,
			 struct auth_wire_buf *b)
{
	char *error = NULL;
	int rc = auth_token_del(srv->auth, req->name, req->token_name, &error);
	if (rc == 0) {
		free(error);
		error = NULL;
	}
	auth_wire_u8(b, (uint8_t)(int8_t)(rc < 0 ? -1 : 0));
	put_error(b, error);
}

/* USER_GROUPS and ACL_OWNERS: ids, several packets if need be. */
static void do_ids(struct auth_server *srv, struct auth_request *req,
		   struct auth_wire_buf *b)
{
	int64_t *ids = NULL;
	size_t n = 0;
	int rc = req->type == AUTH_WIRE_USER_GROUPS
		? auth_user_groups(srv->auth, req->user_id, &ids, &n)
		: auth_acl_owners(srv->auth, req->user_id, &ids, &n);
	if (rc < 0) {
		auth_wire_u8(b, (uint8_t)(int8_t)-1);
		auth_wire_u32(b, 0);
		return;
	}
	struct list_ctx *l = list_new(srv, req, b);
	for (size_t i = 0; i < n; i++) {
		list_room(l, 8);
		auth_wire_i64(&l->rows, ids[i]);
	}
	list_end(l, false);
	free(ids);
}

static void do_group_name(struct auth_server *srv, struct auth_request *req,
			  struct auth_wire_buf *b)
{
	char name[AUTH_WIRE_NAME_MAX + 1] = "";
	int rc = auth_group_name(srv->auth, req->user_id, name, sizeof(name));
	auth_wire_u8(b, (uint8_t)(int8_t)rc);
	auth_wire_str(b, rc == 1 ? name : "");
}

static void run_job(struct auth_server *srv, struct job *j)
{
	struct auth_request *req = &j->req;
	struct auth_wire_buf *b = xmalloc(sizeof(*b));
	struct auth_user user;
	struct auth_policy policy;
	int rc;
	memset(&user, 0, sizeof(user));
	auth_wire_begin(b, req->type, AUTH_WIRE_REPLY, req->id);
	switch (req->type) {
	case AUTH_WIRE_LOOKUP:
	case AUTH_WIRE_LOOKUP_ID:
		rc = req->type == AUTH_WIRE_LOOKUP
			     ? auth_lookup(srv->auth, req->name, &user)
			     : auth_lookup_id(srv->auth, req->user_id, &user);
		auth_wire_u8(b, (uint8_t)(int8_t)rc);
		auth_wire_user(b, &user);
		break;
	case AUTH_WIRE_POLICY:
		auth_policy_defaults(&policy);
		rc = auth_user_policy(srv->auth, req->user_id, &policy);
		auth_wire_u8(b, (uint8_t)(int8_t)rc);
		auth_wire_policy(b, &policy);
		break;
	case AUTH_WIRE_DOMAIN:
		auth_wire_u8(b, auth_domain_exists(srv->auth, req->name));
		break;
	case AUTH_WIRE_USER_LIST:
	case AUTH_WIRE_SEND_ADDRESSES:
	case AUTH_WIRE_TOKEN_LIST:
		do_list(srv, req, b);
		break;
	case AUTH_WIRE_PASSWD_CHANGE:
		do_passwd_change(srv, req, b);
		break;
	case AUTH_WIRE_THROTTLE_SYNC:
		do_throttle_sync(srv, req, b);
		break;
	case AUTH_WIRE_TOKEN_ADD:
		do_token_add(srv, req, b);
		break;
	case AUTH_WIRE_TOKEN_DEL:
		do_token_del(srv, req, b);
		break;
	case AUTH_WIRE_USER_GROUPS:
	case AUTH_WIRE_ACL_OWNERS:
		do_ids(srv, req, b);
		break;
	case AUTH_WIRE_ACL_HINT:
		rc = auth_acl_hint(srv->auth, req->user_id, req->kind, req->id2);
		auth_wire_u8(b, (uint8_t)(int8_t)(rc < 0 ? -1 : 0));
		break;
	case AUTH_WIRE_GROUP_LOOKUP: {
		int64_t gid = 0;
		rc = auth_group_lookup(srv->auth, req->name, req->domain, &gid);
		auth_wire_u8(b, (uint8_t)(int8_t)rc);
		auth_wire_i64(b, rc == 1 ? gid : 0);
		break;
	}
	case AUTH_WIRE_GROUP_NAME:
		do_group_name(srv, req, b);
		break;
	case AUTH_WIRE_USER_IS_SHARED:
	case AUTH_WIRE_USER_SHARED_ADMIN:
		rc = req->type == AUTH_WIRE_USER_IS_SHARED
			? auth_user_is_shared(srv->auth, req->user_id)
			: auth_user_shared_admin(srv->auth, req->user_id);
		auth_wire_u8(b, (uint8_t)(int8_t)(rc < 0 ? -1 : rc > 0));
		break;
	case AUTH_WIRE_LOOKUP_POSTMASTER:
		rc = auth_lookup_postmaster(srv->auth, req->name, &user);
		auth_wire_u8(b, (uint8_t)(int8_t)rc);
		auth_wire_user(b, &user);
		break;
	case AUTH_WIRE_CHECK_PASSWORD:
		rc = auth_check_password(srv->auth, req->name, req->password,
					 &user);
		auth_wire_u8(b, (uint8_t)rc);
		auth_wire_user(b, &user);
		break;
	case AUTH_WIRE_CHECK_CACHED: {
		enum auth_result r = AUTH_FAILED;
		rc = auth_check_cached(srv->auth, req->name, req->password, &r,
				       &user);
		auth_wire_u8(b, (uint8_t)(int8_t)rc);
		auth_wire_u8(b, (uint8_t)r);
		auth_wire_user(b, &user);
		break;
	}
	case AUTH_WIRE_SASL_CHECK:
		do_sasl_check(srv, req, b);
		break;
	case AUTH_WIRE_SASL_BEGIN:
		do_sasl_begin(srv, req, b);
		break;
	case AUTH_WIRE_SASL_STEP:
		do_sasl_step(srv, req, b);
		break;
	case AUTH_WIRE_TOKEN_VERIFY:
		rc = auth_token_verify(srv->auth, req->name, req->remote, &user);
		auth_wire_u8(b, (uint8_t)rc);
		auth_wire_user(b, &user);
		break;
	case AUTH_WIRE_SESSION_CREATE:
		do_session_create(srv, req, b);
		break;
	case AUTH_WIRE_SESSION_CHECK: {
		char csrf[AUTH_SESSION_ID_SIZE] = "";
		rc = auth_session_check(srv->auth, req->name, req->remote,
					&user, csrf);
		auth_wire_u8(b, (uint8_t)rc);
		auth_wire_user(b, &user);
		auth_wire_str(b, csrf);
		OPENSSL_cleanse(csrf, sizeof(csrf));
		break;
	}
	case AUTH_WIRE_SESSION_DELETE:
		rc = auth_session_delete(srv->auth, req->name);
		auth_wire_u8(b, (uint8_t)(int8_t)rc);
		break;
	default:
		auth_wire_begin(b, AUTH_WIRE_ERROR, AUTH_WIRE_REPLY, req->id);
		break;
	}
	send_reply(srv, b);
	OPENSSL_cleanse(b, sizeof(*b));
	free(b);
}

static void job_free(struct job *j)
{
	/* The packet and the parsed copy may hold a password. */
	OPENSSL_cleanse(j, sizeof(*j) + j->pkt_len);
	free(j);
}

/* ---- lanes ---------------------------------------------------------- */

/* mu held. Whether no job runs or waits: settings may change. */
static bool lanes_idle(struct auth_server *srv)
{
	for (int i = 0; i < LANE_COUNT; i++)
		if (srv->lanes[i].queued || srv->lanes[i].running)
			return false;
	return true;
}

static void *lane_main(void *ctx)
{
	struct lane *lane = ctx;
	struct auth_server *srv = lane->srv;
	pthread_mutex_lock(&srv->mu);
	for (;;) {
		while (lane->head == NULL && !srv->stopping)
			pthread_cond_wait(&lane->work, &srv->mu);
		struct job *j = lane->head;
		if (j == NULL)
			break;
		lane->head = j->next;
		if (lane->head == NULL)
			lane->tail = NULL;
		lane->queued--;
		lane->running++;
		if (srv->room_waiters > 0)
			pthread_cond_broadcast(&srv->room);
		pthread_mutex_unlock(&srv->mu);
		run_job(srv, j);
		job_free(j);
		pthread_mutex_lock(&srv->mu);
		lane->running--;
		if (srv->reload != NULL && lanes_idle(srv)) {
			auth_reload(srv->auth, srv->reload);
			free(srv->reload);
			srv->reload = NULL;
		}
		if (srv->room_waiters > 0)
			pthread_cond_broadcast(&srv->room);
	}
	pthread_mutex_unlock(&srv->mu);
	return NULL;
}

static enum lane_kind lane_of(uint16_t type)
{
	/* What hashes a password (argon2) goes on the slow lane; the gate in
	 * the mail process bounds how many are sent at once. */
	return type == AUTH_WIRE_CHECK_PASSWORD ||
			       type == AUTH_WIRE_PASSWD_CHANGE
		       ? LANE_SLOW : LANE_FAST;
}

/* Queues a job, waiting for room (the reader then reads no more). A
 * pending reload is applied first, once no job runs. */
static void lane_push(struct auth_server *srv, struct job *j)
{
	struct lane *lane = &srv->lanes[lane_of(j->req.type)];
	pthread_mutex_lock(&srv->mu);
	while (!srv->stopping &&
	       (lane->queued >= AUTH_SERVER_QUEUE_MAX ||
		(srv->reload != NULL && !lanes_idle(srv)))) {
		srv->room_waiters++;
		pthread_cond_wait(&srv->room, &srv->mu);
		srv->room_waiters--;
	}
	if (srv->reload != NULL && lanes_idle(srv)) {
		auth_reload(srv->auth, srv->reload);
		free(srv->reload);
		srv->reload = NULL;
	}
	if (srv->stopping) {
		pthread_mutex_unlock(&srv->mu);
		job_free(j);
		return;
	}
	j->next = NULL;
	if (lane->tail != NULL)
		lane->tail->next = j;
	else
		lane->head = j;
	lane->tail = j;
	lane->queued++;
	/* one thread of this lane: a broadcast to every lane's threads
	 * woke ten per lookup, most of the auth process's CPU under LMTP
	 * load (perf, issue 11) */
	pthread_cond_signal(&lane->work);
	pthread_mutex_unlock(&srv->mu);
}

/* ---- the reader ----------------------------------------------------- */

static void bad_request(struct auth_server *srv, const uint8_t *pkt,
			size_t len, uint32_t id)
{
	unsigned n = ++srv->bad_requests;
	if (n <= 10 || n % 1000 == 0) {
		unsigned type = len >= 2 ? (unsigned)(pkt[0] | pkt[1] << 8) : 0;
		log_warn("auth", NULL, "refused a malformed %s request from the "
			 "mail process (%zu bytes; %u so far)",
			 auth_wire_type_name(type), len, n);
	}
	if (len >= AUTH_WIRE_HEADER)
		send_error(srv, id);
}

static void handle_packet(struct auth_server *srv, const uint8_t *pkt,
			  size_t len)
{
	struct job *j = xmalloc(sizeof(*j) + len);
	j->pkt_len = len;
	memcpy(j->pkt, pkt, len);
	uint32_t id;
	if (auth_wire_parse_request(j->pkt, len, &j->req, &id) < 0) {
		bad_request(srv, pkt, len, id);
		job_free(j);
		return;
	}
	if (j->req.type == AUTH_WIRE_SASL_FREE) {
		do_sasl_free(srv, j->req.sasl_id);
		job_free(j);
		return;
	}
	lane_push(srv, j);
}

struct auth_server *auth_server_create(struct auth *auth, int fd,
				       unsigned threads, char **error_r)
{
	struct auth_server *srv = xcalloc(1, sizeof(*srv));
	srv->auth = auth;
	srv->fd = fd;
	srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->room, NULL);
	srv->slots = xcalloc(AUTH_SERVER_SASL_MAX, sizeof(*srv->slots));
	if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		*error_r = xasprintf("pipe: %s", strerror(errno));
		auth_server_destroy(&srv);
		return NULL;
	}
	unsigned counts[LANE_COUNT] = {AUTH_SERVER_FAST_THREADS,
				       threads ? threads : 8};
	for (int i = 0; i < LANE_COUNT; i++) {
		struct lane *lane = &srv->lanes[i];
		lane->srv = srv;
		pthread_cond_init(&lane->work, NULL);
		lane->threads = xcalloc(counts[i], sizeof(*lane->threads));
		for (unsigned t = 0; t < counts[i]; t++) {
			if (pthread_create(&lane->threads[t], NULL, lane_main,
					   lane) != 0) {
				*error_r = xstrdup("cannot start auth threads");
				auth_server_destroy(&srv);
				return NULL;
			}
			lane->thread_count++;
		}
	}
	return srv;
}

int auth_server_run(struct auth_server *srv)
{
	uint8_t *pkt = xmalloc(AUTH_WIRE_MAX + 1);
	int ret = 0;
	for (;;) {
		struct pollfd pfd[2] = {{srv->fd, POLLIN, 0},
					{srv->stop_pipe[0], POLLIN, 0}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -1;
			break;
		}
		if (pfd[1].revents != 0)
			break;
		struct iovec iov = {pkt, AUTH_WIRE_MAX + 1};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n = recvmsg(srv->fd, &msg, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;     /* the mail process is gone */
		if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
			bad_request(srv, pkt, (size_t)n, 0);
			continue;
		}
		handle_packet(srv, pkt, (size_t)n);
	}
	OPENSSL_cleanse(pkt, AUTH_WIRE_MAX + 1);
	free(pkt);
	return ret;
}

void auth_server_stop(struct auth_server *srv)
{
	/* Async-signal-safe. */
	char c = 's';
	ssize_t w = write(srv->stop_pipe[1], &c, 1);
	(void)w;
}

void auth_server_reload(struct auth_server *srv,
			const struct auth_settings *set)
{
	struct auth_settings *copy = xmalloc(sizeof(*copy));
	*copy = *set;
	pthread_mutex_lock(&srv->mu);
	free(srv->reload);
	srv->reload = copy;
	/* With nothing queued the next packet applies it; apply now if idle. */
	if (lanes_idle(srv)) {
		auth_reload(srv->auth, srv->reload);
		free(srv->reload);
		srv->reload = NULL;
	}
	pthread_mutex_unlock(&srv->mu);
}

void auth_server_destroy(struct auth_server **srvp)
{
	struct auth_server *srv = *srvp;
	if (srv == NULL)
		return;
	*srvp = NULL;
	pthread_mutex_lock(&srv->mu);
	srv->stopping = true;
	for (int i = 0; i < LANE_COUNT; i++)
		pthread_cond_broadcast(&srv->lanes[i].work);
	pthread_cond_broadcast(&srv->room);
	pthread_mutex_unlock(&srv->mu);
	for (int i = 0; i < LANE_COUNT; i++) {
		struct lane *lane = &srv->lanes[i];
		for (unsigned t = 0; t < lane->thread_count; t++)
			pthread_join(lane->threads[t], NULL);
		free(lane->threads);
		while (lane->head != NULL) {
			struct job *j = lane->head;
			lane->head = j->next;
			job_free(j);
		}
	}
	for (uint32_t i = 0; i < AUTH_SERVER_SASL_MAX; i++)
		if (srv->slots[i].id != 0)
			auth_sasl_free(&srv->slots[i].sasl);
	free(srv->slots);
	free(srv->reload);
	for (int i = 0; i < 2; i++)
		if (srv->stop_pipe[i] >= 0)
			close(srv->stop_pipe[i]);
	pthread_mutex_destroy(&srv->mu);
	for (int i = 0; i < LANE_COUNT; i++)
		pthread_cond_destroy(&srv->lanes[i].work);
	pthread_cond_destroy(&srv->room);
	free(srv);
}
