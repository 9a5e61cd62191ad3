/*
 * The login gate: every credential a front-end checks comes through here
 * (auth.h, "logins"), so throttling cannot be forgotten or done wrong.
 *
 * An attempt goes through these stages, none of which holds a thread
 * while it waits:
 *
 *   QUEUED   another attempt from its address is in progress: it waits
 *            in the address's slot (one address, one check at a time);
 *   DELAY    its turn: the throttle (auth-throttle.c) gave a delay, a
 *            timer on the connection's I/O thread (net_wait);
 *   CHECK    a task of the connection: a banned address is refused, a
 *            SCRAM proof or a token is checked at once, a password is
 *            looked up in the cache of recent logins;
 *   HASHQ    a password not in the cache waits for the hash pool, in
 *            one of three queues: known pairs (the owner's devices),
 *            then addresses without failures, then the rest;
 *   HASHING  a pool thread runs argon2id ([auth] hash_threads of them,
 *            so memory and CPU for hashing stay bounded);
 *   FINISH   back to a task of the connection: the outcome is recorded,
 *            the address's next attempt starts, done() runs.
 *
 * A connection that closes cancels its attempt at any stage but HASHING
 * (the hash finishes and is recorded, nothing else): nothing is checked
 * for a client that has gone. A hang-up (EOF) does the same for a client
 * that is held back (queued, delayed, or hashing with failures behind
 * it); an owner's login from a client that half-closed after sending it
 * is still answered. Everything about slots, queues and stages is guarded
 * by gate->mu.
 */
#include "auth-private.h"

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT_BUCKETS 1024
/* Checks from addresses with failures beyond this many queued for the
 * hash pool answer "try later" instead of queueing. */
#define HASH_QUEUE_MAX 4096

enum stage { ST_QUEUED, ST_DELAY, ST_CHECK, ST_HASHQ, ST_HASHING, ST_FINISH };
enum kind { K_PASSWORD, K_SCRAM, K_TOKEN };

struct attempt;

/* The attempts of one address. */
struct slot {
	struct slot *next;          /* bucket chain */
	bool busy;                  /* an attempt is in progress */
	struct attempt *head, *tail;
	char addr[AUTH_THROTTLE_ADDR_MAX];
};

struct attempt {
	struct auth *auth;
	struct net_conn *conn;      /* a reference */
	auth_login_fn *done;
	struct net_wait *wait;      /* the handle of a pending wait */
	enum stage stage;
	enum kind kind;
	bool sasl_exchange;         /* done gets a SASL status */
	bool cancelled;             /* its connection closed while hashing */
	bool refused;               /* banned: the connection is refused */
	struct auth_sasl *sasl;     /* the session's: used in its tasks only */
	char *login, *password;     /* password: also a token */
	char account[AUTH_ADDRESS_MAX + 1];
	char remote[64];
	struct auth_throttle_ticket tk;
	int prio;
	struct slot *slot;          /* the slot it holds */
	struct slot *queue;         /* QUEUED: the slot it waits in */
	struct attempt *next;       /* in a slot's queue or the hash queue */
	struct auth_login_result res;
	char *out;                  /* SCRAM's server-final */
};

struct auth_gate {
	struct auth *auth;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct slot *slots[SLOT_BUCKETS];
	struct attempt *hq_head[3], *hq_tail[3];
	size_t hq_len;
	pthread_t *threads;
	unsigned nthreads;
	bool started, stop;
};

static void check_task(void *session, struct net_conn *conn, void *arg);
static void finish_task(void *session, struct net_conn *conn, void *arg);
static void cancelled(void *arg);

/* ---- attempts --------------------------------------------------------- */

static struct attempt *attempt_new(struct auth *auth, struct net_conn *conn,
				   const char *remote, auth_login_fn *done,
				   enum kind kind)
{
	struct attempt *a = xcalloc(1, sizeof(*a));
	a->auth = auth;
	net_conn_ref(conn);
	a->conn = conn;
	a->done = done;
	a->kind = kind;
	snprintf(a->remote, sizeof(a->remote), "%s",
		 remote != NULL ? remote : net_conn_peer(conn));
	return a;
}

static void attempt_free(struct attempt *a)
{
	if (a->wait != NULL)
		net_wait_unref(&a->wait);
	net_conn_unref(&a->conn);
	free(a->login);
	if (a->password != NULL) {
		explicit_bzero(a->password, strlen(a->password));
		free(a->password);
	}
	free(a->out);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

/* The account an attempt counts against: the canonical address when the
 * login names one (aliases and case folded), else the login lowercased. */
static void set_account(struct attempt *a, const char *login)
{
	struct auth_user u;
	if (auth_lookup(a->auth, login, &u) == 1)
		snprintf(a->account, sizeof(a->account), "%s", u.address);
	else
		snprintf(a->account, sizeof(a->account), "%s", login);
}

/* ---- slots (mu held) -------------------------------------------------- */

static size_t slot_hash(const char *addr)
{
	size_t h = 5381;
	for (; *addr != '\0'; addr++)
		h = h * 33 + (unsigned char)*addr;
	return h % SLOT_BUCKETS;
}

static struct slot *slot_get(struct auth_gate *g, const char *addr)
{
	struct slot **pp = &g->slots[slot_hash(addr)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0)
			return *pp;
	struct slot *s = xcalloc(1, sizeof(*s));
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	*pp = s;
	return s;
}

static void slot_drop_if_idle(struct auth_gate *g, struct slot *s)
{
	if (s->busy || s->head != NULL)
		return;
	struct slot **pp = &g->slots[slot_hash(s->addr)];
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	free(s);
}

static void queue_remove(struct attempt **head, struct attempt **tail,
			 struct attempt *a)
{
	struct attempt *prev = NULL;
	for (struct attempt *x = *head; x != NULL; prev = x, x = x->next) {
		if (x != a)
			continue;
		if (prev != NULL)
			prev->next = x->next;
		else
			*head = x->next;
		if (*tail == x)
			*tail = prev;
		x->next = NULL;
		return;
	}
}

static void start(struct auth_gate *g, struct attempt *a, bool own_task);

/* The attempt holding s is over: the next one of the address starts. */
static void slot_release(struct auth_gate *g, struct slot *s)
{
	s->busy = false;
	struct attempt *next = s->head;
	if (next == NULL) {
		slot_drop_if_idle(g, s);
		return;
	}
	s->head = next->next;
	if (s->head == NULL)
		s->tail = NULL;
	next->next = NULL;
	next->queue = NULL;
	s->busy = true;
	next->slot = s;
	start(g, next, false);
}

/* Ends an attempt that held its slot (mu held). */
static void attempt_end(struct auth_gate *g, struct attempt *a)
{
	if (a->slot != NULL)
		slot_release(g, a->slot);
	a->slot = NULL;
	attempt_free(a);
}

/* ---- stages ----------------------------------------------------------- */

/* Its turn (mu held): the throttle decides the delay or a refusal.
 * own_task: called from a task of the attempt's connection, with no wait
 * made yet; else from anywhere, with the wait made when it queued. */
static void start(struct auth_gate *g, struct attempt *a, bool own_task)
{
	auth_throttle_admit(g->auth->throttle, a->remote,
			    a->kind == K_TOKEN ? "" : a->account, &a->tk);
	a->refused = a->tk.banned;
	a->prio = a->tk.known ? 0 : a->tk.addr_failures == 0 ? 1 : 2;
	if (own_task && a->tk.delay_ms == 0 && !a->refused) {
		/* Runs right after the task that asked, on its worker. */
		a->stage = ST_CHECK;
		if (net_conn_run(a->conn, check_task, a) < 0)
			attempt_end(g, a);
		return;
	}
	/* A held-back client that hangs up is forgotten at once. */
	if (a->wait == NULL)
		a->wait = net_conn_wait(a->conn, NET_WAIT_HANGUP_CANCELS,
					check_task, a, cancelled);
	if (a->wait == NULL) {
		attempt_end(g, a);      /* the connection is closing */
		return;
	}
	a->stage = ST_DELAY;
	net_wait_finish(a->wait, a->refused ? 0 : a->tk.delay_ms);
	net_wait_unref(&a->wait);
}

static void admit(struct attempt *a)
{
	struct auth_gate *g = a->auth->gate;
	char addr[AUTH_THROTTLE_ADDR_MAX];
	if (auth_throttle_addr_key(a->remote, addr, sizeof(addr)) < 0)
		snprintf(addr, sizeof(addr), "unknown");
	pthread_mutex_lock(&g->mu);
	struct slot *s = slot_get(g, addr);
	if (!s->busy) {
		s->busy = true;
		a->slot = s;
		start(g, a, true);
	} else {
		a->wait = net_conn_wait(a->conn, NET_WAIT_HANGUP_CANCELS,
					check_task, a, cancelled);
		if (a->wait == NULL) {
			attempt_free(a);
		} else {
			a->stage = ST_QUEUED;
			a->queue = s;
			if (s->tail != NULL)
				s->tail->next = a;
			else
				s->head = a;
			s->tail = a;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

/* The connection closed before the attempt's wait ended (its I/O
 * thread). */
static void cancelled(void *arg)
{
	struct attempt *a = arg;
	struct auth_gate *g = a->auth->gate;
	pthread_mutex_lock(&g->mu);
	if (a->stage == ST_QUEUED) {
		queue_remove(&a->queue->head, &a->queue->tail, a);
		attempt_free(a);
		pthread_mutex_unlock(&g->mu);
		return;
	}
	if (a->stage == ST_HASHING) {
		a->cancelled = true;    /* the pool thread ends it */
		pthread_mutex_unlock(&g->mu);
		return;
	}
	if (a->stage == ST_HASHQ) {
		queue_remove(&g->hq_head[a->prio], &g->hq_tail[a->prio], a);
		g->hq_len--;
	}
	log_debug("auth", NULL, "login check of %s dropped: the client left",
		  a->remote);
	attempt_end(g, a);
	pthread_mutex_unlock(&g->mu);
}

/* Records the outcome with the throttle and logs a failure. */
static void record(struct attempt *a, enum auth_result r)
{
	if (r == AUTH_TEMPFAIL)
		return;
	/* A disabled account with the right password is no guess. */
	auth_throttle_record(a->auth->throttle, &a->tk, r != AUTH_FAILED);
	if (r == AUTH_FAILED) {
		metrics_count("loft_auth_failures_total", "Failed logins "
			      "(wrong user, password or token).", NULL);
		char safe[128];
		auth_log_safe(a->kind == K_TOKEN ? "(token)" : a->login, safe,
			      sizeof(safe));
		log_info("auth", NULL, "failed login user=%s remote=%s%s", safe,
			 a->remote, a->tk.delay_ms ? " (after a delay)" : "");
	}
}

/* In a task of the connection: the address's next attempt may start,
 * then done() runs. */
static void complete(struct attempt *a, void *session, struct net_conn *conn)
{
	struct auth_gate *g = a->auth->gate;
	pthread_mutex_lock(&g->mu);
	if (a->slot != NULL)
		slot_release(g, a->slot);
	a->slot = NULL;
	pthread_mutex_unlock(&g->mu);
	if (a->sasl_exchange && a->kind != K_SCRAM) {
		a->res.sasl = auth_sasl_status_of(a->res.result);
		a->res.out = a->res.result == AUTH_OK ? "" : NULL;
	}
	a->done(session, conn, &a->res);
	attempt_free(a);
}

static void start_threads(struct auth_gate *g);

/* A password not in the cache goes to the pool (mu held). false: the
 * pool is stopping or full. */
static bool hash_enqueue(struct auth_gate *g, struct attempt *a)
{
	if (g->stop || (g->hq_len >= HASH_QUEUE_MAX && a->prio == 2))
		return false;
	/* An owner's login (prio 0, 1) is answered even to a client that
	 * half-closed; a guesser's is dropped when it hangs up. */
	a->wait = net_conn_wait(a->conn,
				a->prio == 2 ? NET_WAIT_HANGUP_CANCELS : 0,
				finish_task, a, cancelled);
	if (a->wait == NULL)
		return false;
	a->stage = ST_HASHQ;
	if (g->hq_tail[a->prio] != NULL)
		g->hq_tail[a->prio]->next = a;
	else
		g->hq_head[a->prio] = a;
	g->hq_tail[a->prio] = a;
	g->hq_len++;
	if (!g->started)
		start_threads(g);
	pthread_cond_signal(&g->cond);
	return true;
}

static void check_task(void *session, struct net_conn *conn, void *arg)
{
	struct attempt *a = arg;
	struct auth_gate *g = a->auth->gate;
	a->stage = ST_CHECK;
	if (a->refused) {
		log_info("auth", NULL, "login from %s refused: the address is "
			 "banned for failed logins", a->remote);
		net_conn_refuse(conn);
		pthread_mutex_lock(&g->mu);
		attempt_end(g, a);
		pthread_mutex_unlock(&g->mu);
		return;
	}
	enum auth_result r = AUTH_TEMPFAIL;
	switch (a->kind) {
	case K_SCRAM: {
		bool ok;
		a->res.sasl = auth_sasl_check_scram(a->sasl, &a->out,
						    &a->res.out_len, &ok);
		a->res.out = a->out;
		r = ok ? AUTH_OK : AUTH_FAILED;
		a->res.result = a->res.sasl == AUTH_SASL_CONTINUE ? AUTH_OK
			       : ok ? AUTH_DISABLED : AUTH_FAILED;
		record(a, r);
		complete(a, session, conn);
		return;
	}
	case K_TOKEN:
		r = auth_token_verify(a->auth, a->password, a->remote,
				      &a->res.user);
		break;
	case K_PASSWORD:
		if (auth_check_cached(a->auth, a->login, a->password, &r,
				      &a->res.user) == 0) {
			pthread_mutex_lock(&g->mu);
			bool queued = hash_enqueue(g, a);
			pthread_mutex_unlock(&g->mu);
			if (queued)
				return;
			r = AUTH_TEMPFAIL;
			log_warn("auth", NULL, "login from %s: the password "
				 "hash queue is %s", a->remote,
				 g->stop ? "stopping" : "full");
		}
		break;
	}
	a->res.result = r;
	record(a, r);
	complete(a, session, conn);
}

static void finish_task(void *session, struct net_conn *conn, void *arg)
{
	struct attempt *a = arg;
	record(a, a->res.result);
	complete(a, session, conn);
}

/* ---- the hash pool ---------------------------------------------------- */

static struct attempt *hash_pop(struct auth_gate *g)
{
	for (int p = 0; p < 3; p++) {
		struct attempt *a = g->hq_head[p];
		if (a == NULL)
			continue;
		g->hq_head[p] = a->next;
		if (g->hq_head[p] == NULL)
			g->hq_tail[p] = NULL;
		a->next = NULL;
		g->hq_len--;
		return a;
	}
	return NULL;
}

static void *hash_main(void *arg)
{
	struct auth_gate *g = arg;
	pthread_mutex_lock(&g->mu);
	for (;;) {
		struct attempt *a = NULL;
		while (!g->stop && (a = hash_pop(g)) == NULL)
			pthread_cond_wait(&g->cond, &g->mu);
		if (a == NULL)
			break;          /* stopping: queued checks are dropped */
		a->stage = ST_HASHING;
		pthread_mutex_unlock(&g->mu);
		enum auth_result r = auth_check_password(a->auth, a->login,
							 a->password,
							 &a->res.user);
		pthread_mutex_lock(&g->mu);
		a->res.result = r;
		if (a->cancelled) {
			/* The client left while its hash ran: the outcome
			 * counts, nobody is told. */
			pthread_mutex_unlock(&g->mu);
			record(a, r);
			pthread_mutex_lock(&g->mu);
			attempt_end(g, a);
			continue;
		}
		a->stage = ST_FINISH;
		net_wait_finish(a->wait, 0);
		net_wait_unref(&a->wait);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static void start_threads(struct auth_gate *g)
{
	unsigned n = g->auth->set.hash_threads;
	if (n == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		n = cores > 1 ? (unsigned)(cores / 2) : 1;
	}
	g->threads = xcalloc(n, sizeof(*g->threads));
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&g->threads[i], NULL, hash_main, g) != 0)
			break;
		g->nthreads++;
	}
	g->started = true;
	if (g->nthreads == 0)
		log_error("auth", NULL, "cannot start the password hash pool");
}

struct auth_gate *auth_gate_create(struct auth *auth)
{
	struct auth_gate *g = xcalloc(1, sizeof(*g));
	g->auth = auth;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	return g;
}

void auth_gate_stop(struct auth_gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	for (unsigned i = 0; i < g->nthreads; i++)
		pthread_join(g->threads[i], NULL);
	g->nthreads = 0;
}

void auth_gate_destroy(struct auth_gate **gp)
{
	struct auth_gate *g = *gp;
	if (g == NULL)
		return;
	*gp = NULL;
	auth_gate_stop(g);
	free(g->threads);
	/* The connections are gone by now (net_destroy cancelled every
	 * wait), so no attempt and no busy slot is left. */
	for (size_t i = 0; i < SLOT_BUCKETS; i++) {
		while (g->slots[i] != NULL) {
			struct slot *s = g->slots[i];
			g->slots[i] = s->next;
			free(s);
		}
	}
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cond);
	free(g);
}

/* ---- the front-ends' calls -------------------------------------------- */

void auth_login_password(struct auth *auth, struct net_conn *conn,
			 const char *remote, const char *login,
			 const char *password, auth_login_fn *done)
{
	struct attempt *a = attempt_new(auth, conn, remote, done, K_PASSWORD);
	a->login = xstrdup(login);
	a->password = xstrdup(password);
	set_account(a, login);
	admit(a);
}

void auth_login_token(struct auth *auth, struct net_conn *conn,
		      const char *remote, const char *token,
		      auth_login_fn *done)
{
	struct attempt *a = attempt_new(auth, conn, remote, done, K_TOKEN);
	a->password = xstrdup(token);
	admit(a);
}

struct step {
	auth_login_fn *done;
	struct auth_login_result res;
	char *out;
};

static void step_task(void *session, struct net_conn *conn, void *arg)
{
	struct step *st = arg;
	st->done(session, conn, &st->res);
	free(st->out);
	free(st);
}

void auth_login_sasl(struct auth_sasl *sasl, struct net_conn *conn,
		     const void *in, size_t in_len, auth_login_fn *done)
{
	struct step *st = xcalloc(1, sizeof(*st));
	st->done = done;
	enum auth_sasl_status s = auth_sasl_step(sasl, in, in_len, &st->out,
						 &st->res.out_len,
						 &st->res.user);
	if (s != AUTH_SASL_CHECK) {
		st->res.sasl = s;
		st->res.out = st->out;
		st->res.result = s == AUTH_SASL_OK ? AUTH_OK
				 : s == AUTH_SASL_TEMPFAIL ? AUTH_TEMPFAIL
				 : s == AUTH_SASL_FAIL ? AUTH_FAILED : AUTH_OK;
		if (net_conn_run(conn, step_task, st) < 0) {
			free(st->out);
			free(st);
		}
		return;
	}
	free(st->out);
	free(st);
	struct auth *auth = auth_sasl_auth(sasl);
	bool scram = auth_sasl_checks_proof(sasl);
	struct attempt *a = attempt_new(auth, conn, NULL, done,
					scram ? K_SCRAM : K_PASSWORD);
	a->sasl_exchange = true;
	a->login = xstrdup(auth_sasl_login(sasl));
	if (scram) {
		a->sasl = sasl;
	} else {
		a->password = xstrdup(auth_sasl_password(sasl));
		auth_sasl_checked(sasl);
	}
	set_account(a, a->login);
	admit(a);
}

bool auth_may_connect(void *auth, const char *ip)
{
	return auth_throttle_may_connect(((struct auth *)auth)->throttle, ip);
}

void auth_shutdown(struct auth *auth)
{
	if (auth != NULL && auth->gate != NULL)
		auth_gate_stop(auth->gate);
}
