/*
 * Who is held back after failed logins: the state behind the login gate
 * (auth-login.c), `loftctl ban` and the check at connect.
 *
 * Failures are counted per address (IPv4 /32, IPv6 /64: one host owns a
 * whole /64), per account and per (address, account) pair, loopback
 * included. Each count gives a back-off: the first two failures are free
 * (a typo), then 100 ms, 200 ms, ... doubling up to [auth]
 * throttle_max_delay. A count is forgotten THROTTLE_WINDOW after its last
 * failure. The delay of an attempt is the largest of its three counts,
 * except:
 *
 *   An address that logged into the account in the last 30 days (a
 *   "known pair") is slowed only by the pair's own failures, and those
 *   count for nothing else: a guesser elsewhere, or a child's phone with a
 *   stale password behind the same router, never locks the owner out.
 *
 * An address that reaches [auth] ban_after failures (not counting known
 * pairs) is banned for [auth] ban_time, doubled for each further ban
 * within a day (at most a day). A banned address may not log in, except
 * into accounts it is a known pair of; and it is refused at connect
 * unless it has a known pair at all (then its owner's devices go on).
 *
 * The state lives in memory under one mutex, and in
 * data_dir/throttle/throttle.db
 * (SQLite, WAL) so that a restart does not give a guesser a fresh start
 * and `loftctl ban` works without loftd. In loftd a writer thread stores
 * what changed once a second and applies the `loftctl ban del` requests
 * loftctl left in the clears table; loftctl (no writer) reads the table
 * and changes it directly.
 *
 * Time is the wall clock, except under LOFT_TEST_CLOCK=FILE: then FILE
 * holds a number of seconds added to it, so tests move time forward
 * without sleeping (bans expiring, counts forgotten, 30 days passing).
 */
#include "auth-private.h"
#include "auth-wire.h"

#include <sqlite3.h>

#include "buf.h"
#include "log.h"

#include <openssl/rand.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define THROTTLE_FREE_FAILURES 2
#define THROTTLE_BASE_MS 100
#define THROTTLE_WINDOW_MS (10 * 60 * 1000LL)
#define KNOWN_PAIR_MS (30 * 24 * 3600 * 1000LL)
#define BAN_MAX_MS (24 * 3600 * 1000LL)
#define BANS_FORGOTTEN_MS (24 * 3600 * 1000LL)
#define THROTTLE_BUCKETS 65536
#define THROTTLE_MAX_ENTRIES 200000
#define WRITER_PERIOD_MS 1000
/* shared: what one THROTTLE_SYNC request carries at most (a packet's
 * room past its header and fixed fields), and how many unsent rows are
 * kept while the database is away */
#define SYNC_CHUNK_BYTES (AUTH_WIRE_MAX - 128)
#define SYNC_OUTBOX_MAX 50000
/* shared: a node not synced this long says so (each minute) */
#define SYNC_STALE_WARN_MS 10000

_Static_assert(AUTH_WIRE_THROTTLE_KEY_MAX == AUTH_THROTTLE_KEY_MAX - 1,
	       "a throttle key crosses whole");

/* One address, account or pair. */
struct th_entry {
	struct th_entry *next;      /* bucket chain */
	uint32_t failures;
	uint32_t bans;              /* address: bans so far (escalation) */
	int64_t last_fail_ms;
	int64_t ban_until_ms;       /* address */
	int64_t good_ms;            /* pair: last login; address: last login
				       of any account from it */
	bool dirty;                 /* differs from throttle.db (shared:
				       has changes to send) */
	/* shared: what this node has not sent yet */
	bool ban_dirty;             /* it banned (ban_until_ms, bans) */
	uint8_t flags;              /* AUTH_THROTTLE_ROW_RESET / _CLEAR */
	uint32_t pending;           /* failures */
	size_t key_len;
	char key[];                 /* "a:ADDR", "u:ACCOUNT", "p:ADDR ACCOUNT" */
};

/* A removed entry whose row the writer still has to delete. */
struct th_gone {
	struct th_gone *next;
	char key[];
};

/* shared: one batch not yet acknowledged (sent again, same number). */
struct th_chunk {
	struct th_chunk *next;
	int64_t batch;
	size_t n;
	struct auth_throttle_row *rows;
};

struct auth_throttle {
	struct auth *owner;
	struct auth_settings set;
	char *dir;                  /* data_dir/throttle */
	char *db_path;
	pthread_mutex_t mu;
	struct th_entry **buckets;
	size_t count;
	struct th_gone *gone;
	bool loaded;                /* tool mode: the table was read */
	/* daemon mode: the writer */
	bool daemon;
	pthread_t writer;
	bool writer_started, stop;
	pthread_cond_t cond;
	sqlite3 *db;                /* the writer's (daemon) or the tool's */
	/* shared between nodes (set.postgres) */
	bool shared;
	auth_throttle_sync_fn *sync;        /* daemon: through auth */
	void *sync_ctx;
	bool sync_ready;            /* the writer syncs (after the first) */
	char node[17];              /* this process's name in batches */
	int64_t next_batch;
	int64_t cursor;             /* the last seq read */
	struct th_chunk *outbox, **outbox_tail;
	size_t outbox_rows;
	atomic_llong skew_ms;       /* the database's clock - ours */
	int64_t call_t0;            /* wall ms at the request's start */
	bool more;                  /* the answer left rows */
	int64_t last_ok_ms, warned_ms;      /* monotonic */
};

/* ---- clock ------------------------------------------------------------ */

int64_t auth_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	const char *path = getenv("LOFT_TEST_CLOCK");
	if (path != NULL && *path != '\0') {
		FILE *f = fopen(path, "r");
		double offset = 0;
		if (f != NULL) {
			if (fscanf(f, "%lf", &offset) != 1)
				offset = 0;
			fclose(f);
		}
		now += (int64_t)(offset * 1000);
	}
	return now;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The throttle's time: shared between nodes, the database's clock (the
 * offset learnt at each sync), as the queue's leases use it. */
static int64_t now_ms(struct auth_throttle *t)
{
	return auth_clock_ms() + atomic_load(&t->skew_ms);
}

/* ---- keys ------------------------------------------------------------- */

int auth_throttle_addr_key(const char *remote, char *out, size_t size)
{
	struct in6_addr a6;
	struct in_addr a4;
	if (remote == NULL || *remote == '\0')
		remote = "unknown";
	const char *slash = strchr(remote, '/');
	char ip[INET6_ADDRSTRLEN];
	size_t n = slash != NULL ? (size_t)(slash - remote) : strlen(remote);
	if (n >= sizeof(ip))
		return -1;
	memcpy(ip, remote, n);
	ip[n] = '\0';
	if (slash != NULL && strcmp(slash, "/64") != 0 &&
	    strcmp(slash, "/32") != 0)
		return -1;
	if (inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			inet_ntop(AF_INET, &a6.s6_addr[12], ip, sizeof(ip));
			snprintf(out, size, "%s", ip);
			return 0;
		}
		memset(a6.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a6, ip, sizeof(ip));
		snprintf(out, size, "%s/64", ip);
		return 0;
	}
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		inet_ntop(AF_INET, &a4, ip, sizeof(ip));
		snprintf(out, size, "%s", ip);
		return 0;
	}
	/* "unix", "loftctl", ...: counted under its own name. */
	for (const char *p = remote; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return -1;
	snprintf(out, size, "%s", remote);
	return 0;
}

static size_t make_key(char kind, const char *addr, const char *account,
		       char *out, size_t size)
{
	int n;
	if (kind == 'a')
		n = snprintf(out, size, "a:%s", addr);
	else if (kind == 'u')
		n = snprintf(out, size, "u:%s", account);
	else
		n = snprintf(out, size, "p:%s %s", addr, account);
	return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

/* ---- the table (mu held) ---------------------------------------------- */

static size_t key_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ULL;
	return (size_t)(h % THROTTLE_BUCKETS);
}

static struct th_entry **slot(struct auth_throttle *t, const char *key,
			      size_t len)
{
	struct th_entry **pp = &t->buckets[key_hash(key, len)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->key_len == len && memcmp((*pp)->key, key, len) == 0)
			break;
	return pp;
}

static struct th_entry *find(struct auth_throttle *t, const char *key,
			     size_t len)
{
	return *slot(t, key, len);
}

static void remember_gone(struct auth_throttle *t, const struct th_entry *e)
{
	if (!t->daemon || t->shared)
		return;
	struct th_gone *g = xmalloc(sizeof(*g) + e->key_len + 1);
	memcpy(g->key, e->key, e->key_len + 1);
	g->next = t->gone;
	t->gone = g;
}

static uint32_t live_failures(const struct th_entry *e, int64_t now)
{
	if (e == NULL || e->failures == 0)
		return 0;
	int64_t from = e->last_fail_ms > e->ban_until_ms ? e->last_fail_ms
							 : e->ban_until_ms;
	return now - from > THROTTLE_WINDOW_MS ? 0 : e->failures;
}

static bool banned(const struct th_entry *e, int64_t now)
{
	return e != NULL && e->ban_until_ms > now;
}

static bool good(const struct th_entry *e, int64_t now)
{
	return e != NULL && e->good_ms > 0 && now - e->good_ms <= KNOWN_PAIR_MS;
}

static bool entry_empty(const struct th_entry *e, int64_t now)
{
	return live_failures(e, now) == 0 && !banned(e, now) &&
	       !good(e, now) &&
	       (e->bans == 0 || now - e->ban_until_ms > BANS_FORGOTTEN_MS);
}

/* Drops entries with nothing left; if the table is still full, also
 * every entry that only holds back-off counts (bans and known pairs
 * stay): a flood of made-up names must not grow memory without bound. */
static void sweep(struct auth_throttle *t, int64_t now, bool full)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < THROTTLE_BUCKETS; i++) {
			struct th_entry **pp = &t->buckets[i];
			while (*pp != NULL) {
				struct th_entry *e = *pp;
				/* shared: what is not sent yet (a clear
				 * above all) stays until it is */
				bool drop = (entry_empty(e, now) &&
					     !(t->shared && e->dirty)) ||
					    (pass == 1 && !banned(e, now) &&
					     !good(e, now));
				if (drop) {
					*pp = e->next;
					remember_gone(t, e);
					free(e);
					t->count--;
				} else {
					pp = &e->next;
				}
			}
		}
		if (!full || t->count < THROTTLE_MAX_ENTRIES * 9 / 10)
			return;
		if (pass == 0)
			log_warn("auth", NULL, "throttle: %zu addresses and "
				 "accounts held back, the most it keeps: their "
				 "back-off counts are forgotten (bans and known "
				 "logins stay)", t->count);
	}
}

static struct th_entry *get(struct auth_throttle *t, const char *key,
			    size_t len, int64_t now)
{
	struct th_entry **pp = slot(t, key, len);
	if (*pp != NULL)
		return *pp;
	if (t->count >= THROTTLE_MAX_ENTRIES) {
		sweep(t, now, true);
		pp = slot(t, key, len);
	}
	struct th_entry *e = xcalloc(1, sizeof(*e) + len + 1);
	e->key_len = len;
	memcpy(e->key, key, len);
	*pp = e;
	t->count++;
	return e;
}

/* ---- decisions -------------------------------------------------------- */

static uint32_t max_delay(const struct auth_throttle *t)
{
	return t->set.throttle_max_delay_ms ? t->set.throttle_max_delay_ms
					    : AUTH_THROTTLE_DEFAULT_MAX_MS;
}

static uint32_t backoff(const struct auth_throttle *t, uint32_t failures)
{
	if (failures <= THROTTLE_FREE_FAILURES)
		return 0;
	uint32_t shift = failures - THROTTLE_FREE_FAILURES - 1;
	uint64_t d = shift >= 24 ? UINT32_MAX
				 : (uint64_t)THROTTLE_BASE_MS << shift;
	return d > max_delay(t) ? max_delay(t) : (uint32_t)d;
}

static void ticket_keys(const struct auth_throttle_ticket *tk, char *ak,
			size_t *al, char *uk, size_t *ul, char *pk, size_t *pl)
{
	*al = make_key('a', tk->addr, NULL, ak, AUTH_THROTTLE_KEY_MAX);
	*ul = make_key('u', NULL, tk->account, uk, AUTH_THROTTLE_KEY_MAX);
	*pl = make_key('p', tk->addr, tk->account, pk, AUTH_THROTTLE_KEY_MAX);
}

void auth_throttle_admit(struct auth_throttle *t, const char *remote,
			 const char *account, struct auth_throttle_ticket *tk)
{
	memset(tk, 0, sizeof(*tk));
	if (auth_throttle_addr_key(remote, tk->addr, sizeof(tk->addr)) < 0)
		snprintf(tk->addr, sizeof(tk->addr), "unknown");
	size_t n = 0;
	for (; account[n] != '\0' && n + 1 < sizeof(tk->account); n++)
		tk->account[n] = (char)tolower((unsigned char)account[n]);
	tk->account[n] = '\0';
	if (t == NULL || t->set.throttle_disabled)
		return;
	char ak[AUTH_THROTTLE_KEY_MAX], uk[AUTH_THROTTLE_KEY_MAX],
		pk[AUTH_THROTTLE_KEY_MAX];
	size_t al, ul, pl;
	ticket_keys(tk, ak, &al, uk, &ul, pk, &pl);
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	const struct th_entry *a = find(t, ak, al), *u = find(t, uk, ul),
			      *p = find(t, pk, pl);
	tk->known = good(p, now);
	uint32_t pf = live_failures(p, now);
	tk->addr_failures = live_failures(a, now);
	if (tk->known) {
		tk->delay_ms = backoff(t, pf);
	} else {
		tk->banned = banned(a, now);
		uint32_t f = tk->addr_failures;
		uint32_t uf = live_failures(u, now);
		if (uf > f)
			f = uf;
		if (pf > f)
			f = pf;
		tk->delay_ms = backoff(t, f);
	}
	pthread_mutex_unlock(&t->mu);
}

/* An address reached ban_after failures (mu held). */
static void ban(struct auth_throttle *t, struct th_entry *a, int64_t now)
{
	if (now - a->ban_until_ms > BANS_FORGOTTEN_MS)
		a->bans = 0;
	int64_t ms = (int64_t)(t->set.ban_time_secs ? t->set.ban_time_secs
						    : AUTH_BAN_DEFAULT_SECS) *
		     1000;
	for (uint32_t i = 0; i < a->bans && ms < BAN_MAX_MS; i++)
		ms *= 2;
	if (ms > BAN_MAX_MS)
		ms = BAN_MAX_MS;
	a->ban_until_ms = now + ms;
	a->bans++;
	a->ban_dirty = true;
	log_warn("auth", NULL, "address %s banned for %" PRId64 " s after %u "
		 "failed logins (ban %u in a row)", a->key + 2, ms / 1000,
		 a->failures, a->bans);
}

static void fail(struct th_entry *e, int64_t now)
{
	if (live_failures(e, now) == 0)
		e->failures = 0;
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_fail_ms = now;
	e->dirty = true;
	if (e->pending < UINT32_MAX)
		e->pending++;
}

void auth_throttle_record(struct auth_throttle *t,
			  const struct auth_throttle_ticket *tk, bool ok)
{
	if (t == NULL || t->set.throttle_disabled)
		return;
	char ak[AUTH_THROTTLE_KEY_MAX], uk[AUTH_THROTTLE_KEY_MAX],
		pk[AUTH_THROTTLE_KEY_MAX];
	size_t al, ul, pl;
	ticket_keys(tk, ak, &al, uk, &ul, pk, &pl);
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	struct th_entry *p = get(t, pk, pl, now);
	if (ok) {
		/* A known pair is stored at most once an hour. */
		if (now - p->good_ms > 3600 * 1000LL || p->failures > 0) {
			p->good_ms = now;
			p->dirty = true;
		}
		if (p->failures > 0 || p->pending > 0) {
			p->flags |= AUTH_THROTTLE_ROW_RESET;
			p->dirty = true;
		}
		p->failures = 0;
		p->pending = 0;
		struct th_entry *a = get(t, ak, al, now);
		if (now - a->good_ms > 3600 * 1000LL) {
			a->good_ms = now;
			a->dirty = true;
		}
	} else if (good(p, now)) {
		fail(p, now);
	} else {
		fail(p, now);
		fail(get(t, uk, ul, now), now);
		struct th_entry *a = get(t, ak, al, now);
		fail(a, now);
		uint32_t after = t->set.ban_after;
		if (after > 0 && a->failures >= after && !banned(a, now))
			ban(t, a, now);
	}
	pthread_mutex_unlock(&t->mu);
}

bool auth_throttle_may_connect(struct auth_throttle *t, const char *remote)
{
	if (t == NULL || t->set.throttle_disabled)
		return true;
	char addr[AUTH_THROTTLE_ADDR_MAX], ak[AUTH_THROTTLE_KEY_MAX];
	if (auth_throttle_addr_key(remote, addr, sizeof(addr)) < 0)
		return true;
	size_t al = make_key('a', addr, NULL, ak, sizeof(ak));
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	const struct th_entry *a = find(t, ak, al);
	bool ok = !banned(a, now) || good(a, now);
	pthread_mutex_unlock(&t->mu);
	return ok;
}

/* ---- listing and clearing --------------------------------------------- */

/* Splits a key into kind, address and account (pointers into buf). */
static void split_key(const char *key, char *buf, size_t size,
		      struct auth_held *h)
{
	snprintf(buf, size, "%s", key + 2);
	h->address = h->account = NULL;
	if (key[0] == 'a') {
		h->kind = "address";
		h->address = buf;
	} else if (key[0] == 'u') {
		h->kind = "account";
		h->account = buf;
	} else {
		h->kind = "pair";
		char *sp = strchr(buf, ' ');
		h->address = buf;
		h->account = sp != NULL ? sp + 1 : "";
		if (sp != NULL)
			*sp = '\0';
	}
}

/* What a held line says about e (false: nothing is held back). */
static bool describe(const struct auth_throttle *t, const struct th_entry *e,
		     int64_t now, struct auth_held *h)
{
	memset(h, 0, sizeof(*h));
	h->failures = live_failures(e, now);
	if (banned(e, now))
		h->banned_secs = (e->ban_until_ms - now + 999) / 1000;
	h->delay_ms = backoff(t, h->failures);
	if (h->failures > 0) {
		int64_t from = e->last_fail_ms > e->ban_until_ms
				       ? e->last_fail_ms : e->ban_until_ms;
		h->forget_secs = (from + THROTTLE_WINDOW_MS - now + 999) / 1000;
	}
	h->known = good(e, now);
	return h->failures > 0 || h->banned_secs > 0;
}

struct held_row {
	char *key;
	struct auth_held h;
};

static int cmp_rows(const void *a, const void *b)
{
	const struct held_row *x = a, *y = b;
	/* addresses, accounts, pairs; then by name */
	static const char order[] = "aup";
	int dx = (int)(strchr(order, x->key[0]) - order);
	int dy = (int)(strchr(order, y->key[0]) - order);
	return dx != dy ? dx - dy : strcmp(x->key, y->key);
}

static int tool_load(struct auth_throttle *t, char **error_r);

int auth_throttle_list(struct auth_throttle *t, auth_held_fn *fn, void *ctx,
		       char **error_r)
{
	if (tool_load(t, error_r) < 0)
		return -1;
	int64_t now = now_ms(t);
	struct held_row *rows = NULL;
	size_t n = 0, cap = 0;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < THROTTLE_BUCKETS; i++) {
		for (struct th_entry *e = t->buckets[i]; e != NULL; e = e->next) {
			struct auth_held h;
			if (!describe(t, e, now, &h))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			rows[n].key = xstrdup(e->key);
			rows[n].h = h;
			n++;
		}
	}
	pthread_mutex_unlock(&t->mu);
	if (n > 1)
		qsort(rows, n, sizeof(*rows), cmp_rows);
	for (size_t i = 0; i < n; i++) {
		char buf[AUTH_THROTTLE_KEY_MAX];
		split_key(rows[i].key, buf, sizeof(buf), &rows[i].h);
		fn(ctx, &rows[i].h);
		free(rows[i].key);
	}
	free(rows);
	return 0;
}

/* Normalises ADDRESS|ACCOUNT: 'a' with the address key, or 'u' with the
 * lowercased account; 0 if it is neither. */
static char who_kind(const char *who, char *out, size_t size)
{
	if (strchr(who, '@') != NULL) {
		size_t n = 0;
		for (; who[n] != '\0' && n + 1 < size; n++)
			out[n] = (char)tolower((unsigned char)who[n]);
		out[n] = '\0';
		for (const char *p = out; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ')
				return 0;
		return 'u';
	}
	struct in6_addr a6;
	struct in_addr a4;
	char ip[INET6_ADDRSTRLEN + 4];
	snprintf(ip, sizeof(ip), "%s", who);
	char *slash = strchr(ip, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET6, ip, &a6) != 1 && inet_pton(AF_INET, ip, &a4) != 1)
		return 0;
	return auth_throttle_addr_key(who, out, size) == 0 ? 'a' : 0;
}

/* Whether key belongs to who (kind 'a' or 'u', normalised name). */
static bool key_of(const char *key, char kind, const char *name)
{
	size_t n = strlen(name);
	if (key[0] == kind)
		return strcmp(key + 2, name) == 0;
	if (key[0] != 'p')
		return false;
	const char *sp = strchr(key + 2, ' ');
	if (sp == NULL)
		return false;
	if (kind == 'a')
		return (size_t)(sp - key - 2) == n &&
		       memcmp(key + 2, name, n) == 0;
	return strcmp(sp + 1, name) == 0;
}

/* Clears the back-off and bans of who in memory (mu held). */
static unsigned clear_mem(struct auth_throttle *t, char kind, const char *name,
			  int64_t now)
{
	unsigned cleared = 0;
	for (size_t i = 0; i < THROTTLE_BUCKETS; i++) {
		for (struct th_entry *e = t->buckets[i]; e != NULL; e = e->next) {
			if (!key_of(e->key, kind, name))
				continue;
			if (live_failures(e, now) > 0 || banned(e, now))
				cleared++;
			e->failures = 0;
			e->ban_until_ms = 0;
			e->bans = 0;
			e->dirty = true;
			e->pending = 0;
			e->ban_dirty = false;
			e->flags = (uint8_t)(e->flags | AUTH_THROTTLE_ROW_CLEAR);
		}
	}
	return cleared;
}

static int db_clear(struct auth_throttle *t, char kind, const char *name,
		    const char *who, char **error_r);

int auth_throttle_clear(struct auth_throttle *t, const char *who,
			char **error_r)
{
	char name[AUTH_THROTTLE_KEY_MAX];
	char kind = who_kind(who, name, sizeof(name));
	if (kind == 0) {
		*error_r = xasprintf("'%s' is neither an IP address nor an "
				     "account", who);
		return -1;
	}
	if (tool_load(t, error_r) < 0)
		return -1;
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	unsigned n = clear_mem(t, kind, name, now);
	pthread_mutex_unlock(&t->mu);
	if (n > 0)
		log_info("auth", NULL, "throttle: %s cleared by the admin",
			 name);
	if (!t->daemon && t->shared &&
	    auth_throttle_db_clear(t->owner, kind, name, error_r) < 0)
		return -1;
	if (!t->daemon && !t->shared &&
	    db_clear(t, kind, name, who, error_r) < 0)
		return -1;
	return n > 0 ? 1 : 0;
}

/* ---- throttle.db ------------------------------------------------------ */

static const char schema[] =
	"PRAGMA journal_mode = WAL;"
	"PRAGMA synchronous = NORMAL;"
	"CREATE TABLE IF NOT EXISTS entries("
	"  key TEXT PRIMARY KEY,"
	"  failures INTEGER NOT NULL,"
	"  last_fail_ms INTEGER NOT NULL,"
	"  ban_until_ms INTEGER NOT NULL,"
	"  bans INTEGER NOT NULL,"
	"  good_ms INTEGER NOT NULL) WITHOUT ROWID;"
	/* `loftctl ban del` for a running loftd: ADDRESS|ACCOUNT */
	"CREATE TABLE IF NOT EXISTS clears(who TEXT PRIMARY KEY,"
	"  at_ms INTEGER NOT NULL) WITHOUT ROWID;";

static int db_open(struct auth_throttle *t, char **error_r)
{
	if (t->db != NULL)
		return 0;
	if (mkdir(t->dir, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", t->dir, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(t->db_path, &t->db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", t->db_path,
				     t->db ? sqlite3_errmsg(t->db)
					   : "cannot open");
		sqlite3_close(t->db);
		t->db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(t->db, 5000);
	/* Who logs in from where: for the owner only (its -wal and -shm
	 * files get the same mode). */
	if (chmod(t->db_path, 0600) < 0)
		log_warn("auth", NULL, "chmod %s: %s", t->db_path,
			 strerror(errno));
	char *msg = NULL;
	if (sqlite3_exec(t->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", t->db_path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(t->db);
		t->db = NULL;
		return -1;
	}
	return 0;
}

static int db_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Reads every row into memory (mu not held; nobody else runs yet, or the
 * tool is alone). */
static int db_load(struct auth_throttle *t, char **error_r)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(t->db, "SELECT key, failures, last_fail_ms, "
			       "ban_until_ms, bans, good_ms FROM entries", -1,
			       &st, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", t->db_path, sqlite3_errmsg(t->db));
		return -1;
	}
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		size_t len = key ? strlen(key) : 0;
		if (len < 3 || len >= AUTH_THROTTLE_KEY_MAX ||
		    strchr("aup", key[0]) == NULL || key[1] != ':')
			continue;
		struct th_entry *e = get(t, key, len, now);
		e->failures = (uint32_t)sqlite3_column_int64(st, 1);
		e->last_fail_ms = sqlite3_column_int64(st, 2);
		e->ban_until_ms = sqlite3_column_int64(st, 3);
		e->bans = (uint32_t)sqlite3_column_int64(st, 4);
		e->good_ms = sqlite3_column_int64(st, 5);
	}
	pthread_mutex_unlock(&t->mu);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("%s: %s", t->db_path, sqlite3_errmsg(t->db));
		return -1;
	}
	return 0;
}

static int share_load(struct auth_throttle *t, char **error_r);

/* loftctl: the table is read at the first ban verb. */
static int tool_load(struct auth_throttle *t, char **error_r)
{
	if (t->daemon || t->loaded)
		return 0;
	if (t->shared ? share_load(t, error_r) < 0
		      : db_open(t, error_r) < 0 || db_load(t, error_r) < 0)
		return -1;
	t->loaded = true;
	return 0;
}

/* loftctl ban del: the rows, and a note for a running loftd (one
 * transaction). */
static int db_clear_rows(struct auth_throttle *t, char kind, const char *name,
			 const char *who)
{
	sqlite3_stmt *sel = NULL, *upd = NULL, *ins = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(t->db, "SELECT key FROM entries", -1, &sel,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(t->db, "UPDATE entries SET failures = 0, "
			       "ban_until_ms = 0, bans = 0 WHERE key = ?", -1,
			       &upd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(t->db, "INSERT OR REPLACE INTO clears(who, "
			       "at_ms) VALUES (?, ?)", -1, &ins,
			       NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(sel) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(sel, 0);
		if (key == NULL || !key_of(key, kind, name))
			continue;
		sqlite3_bind_text(upd, 1, key, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(upd) != SQLITE_DONE)
			goto out;
		sqlite3_reset(upd);
	}
	sqlite3_bind_text(ins, 1, who, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, auth_clock_ms());
	if (sqlite3_step(ins) == SQLITE_DONE)
		rc = 0;
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(ins);
	return rc;
}

static int db_clear(struct auth_throttle *t, char kind, const char *name,
		    const char *who, char **error_r)
{
	if (db_exec(t->db, "BEGIN IMMEDIATE") == 0) {
		if (db_clear_rows(t, kind, name, who) == 0 &&
		    db_exec(t->db, "COMMIT") == 0)
			return 0;
		*error_r = xasprintf("%s: %s", t->db_path,
				     sqlite3_errmsg(t->db));
		db_exec(t->db, "ROLLBACK");
		return -1;
	}
	*error_r = xasprintf("%s: %s", t->db_path, sqlite3_errmsg(t->db));
	return -1;
}


/* ---- shared between nodes (auth-throttle-share.c) ---------------------- */

/* One row of an answer: the clock, or the database's row merged with
 * what this node counted and has not sent (or sent after the row was
 * read). */
static void merge_row(void *ctx, const struct auth_throttle_row *row)
{
	struct auth_throttle *t = ctx;
	if (row->key[0] == '\0') {
		/* against the middle of the round trip */
		int64_t mid = (t->call_t0 + wall_ms()) / 2;
		atomic_store(&t->skew_ms, (long long)(row->last_fail_ms - mid));
		t->more = row->seq != 0;
		return;
	}
	size_t len = strlen(row->key);
	if (len >= AUTH_THROTTLE_KEY_MAX)
		return;
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	struct th_entry *e = get(t, row->key, len, now);
	if ((e->flags & AUTH_THROTTLE_ROW_CLEAR) == 0) {
		/* a count restarted here (a login) and not yet sent: only
		 * what came after it */
		uint64_t f = (e->flags & AUTH_THROTTLE_ROW_RESET)
			? e->pending : (uint64_t)row->failures + e->pending;
		e->failures = f > UINT32_MAX ? UINT32_MAX : (uint32_t)f;
		if (e->pending == 0 || row->last_fail_ms > e->last_fail_ms)
			e->last_fail_ms = row->last_fail_ms;
		if (!e->ban_dirty) {
			e->ban_until_ms = row->ban_until_ms;
			e->bans = row->bans;
		} else {
			if (row->ban_until_ms > e->ban_until_ms)
				e->ban_until_ms = row->ban_until_ms;
			if (row->bans > e->bans)
				e->bans = row->bans;
		}
	}
	if (row->good_ms > e->good_ms)
		e->good_ms = row->good_ms;
	pthread_mutex_unlock(&t->mu);
	if (row->seq > t->cursor)
		t->cursor = row->seq;
}

/* Takes what changed out of the table into batches of the outbox (mu
 * held). */
static void collect_rows(struct auth_throttle *t, int64_t now)
{
	sweep(t, now, false);
	struct th_chunk *c = NULL;
	size_t cap = 0, bytes = 0;
	for (size_t i = 0; i < THROTTLE_BUCKETS; i++) {
		for (struct th_entry *e = t->buckets[i]; e != NULL;
		     e = e->next) {
			if (!e->dirty)
				continue;
			size_t need = e->key_len + 43;   /* its wire size */
			if (c == NULL || bytes + need > SYNC_CHUNK_BYTES) {
				c = xcalloc(1, sizeof(*c));
				c->batch = t->next_batch++;
				*t->outbox_tail = c;
				t->outbox_tail = &c->next;
				cap = 0;
				bytes = 0;
			}
			if (c->n == cap) {
				cap = cap ? cap * 2 : 64;
				c->rows = xrealloc(c->rows,
						   cap * sizeof(*c->rows));
			}
			struct auth_throttle_row *r = &c->rows[c->n++];
			memset(r, 0, sizeof(*r));
			memcpy(r->key, e->key, e->key_len + 1);
			r->flags = e->flags;
			r->failures = e->pending;
			r->last_fail_ms = e->pending > 0 ? e->last_fail_ms : 0;
			if (e->ban_dirty) {
				r->ban_until_ms = e->ban_until_ms;
				r->bans = e->bans;
			}
			r->good_ms = e->good_ms > 0 ? e->good_ms : 0;
			bytes += need;
			t->outbox_rows++;
			e->pending = 0;
			e->flags = 0;
			e->ban_dirty = false;
			e->dirty = false;
		}
	}
	/* the database away for long: the oldest changes go */
	while (t->outbox_rows > SYNC_OUTBOX_MAX && t->outbox != NULL) {
		struct th_chunk *old = t->outbox;
		t->outbox = old->next;
		if (t->outbox == NULL)
			t->outbox_tail = &t->outbox;
		t->outbox_rows -= old->n;
		log_warn("auth", NULL, "throttle: %zu changes not shared with "
			 "the other nodes are dropped (the database is away)",
			 old->n);
		free(old->rows);
		free(old);
	}
}

/* One request (mu not held). */
static int sync_call(struct auth_throttle *t, int64_t batch,
		     const struct auth_throttle_row *rows, size_t n)
{
	t->call_t0 = wall_ms();
	t->more = false;
	return t->sync(t->sync_ctx, t->node, batch, t->cursor, rows, n,
		       merge_row, t);
}

/* Sends what changed, then reads what the others changed. */
static void share_tick(struct auth_throttle *t)
{
	int64_t now = now_ms(t);
	pthread_mutex_lock(&t->mu);
	collect_rows(t, now);
	pthread_mutex_unlock(&t->mu);
	bool ok = true, asked = false;
	while (ok && t->outbox != NULL) {
		struct th_chunk *c = t->outbox;
		ok = sync_call(t, c->batch, c->rows, c->n) == 0;
		if (!ok)
			break;
		asked = true;
		t->outbox = c->next;
		if (t->outbox == NULL)
			t->outbox_tail = &t->outbox;
		t->outbox_rows -= c->n;
		free(c->rows);
		free(c);
	}
	/* rows left past an answer's limit (a node's first read) */
	for (int i = 0; ok && (!asked || t->more) && i < 1000; i++) {
		ok = sync_call(t, 0, NULL, 0) == 0;
		asked = true;
	}
	int64_t m = mono_ms();
	if (ok) {
		if (t->warned_ms != 0)
			log_info("auth", NULL, "throttle: shared with the other "
				 "nodes again");
		t->last_ok_ms = m;
		t->warned_ms = 0;
	} else if (m - t->last_ok_ms > SYNC_STALE_WARN_MS &&
		   m - t->warned_ms > 60000) {
		log_warn("auth", NULL, "throttle: not shared with the other "
			 "nodes for %" PRId64 " s (the auth process or the "
			 "database is away): counting on this node alone, "
			 "%zu changes to send", (m - t->last_ok_ms) / 1000,
			 t->outbox_rows);
		t->warned_ms = m;
	}
}

void auth_throttle_share(struct auth_throttle *t, auth_throttle_sync_fn *fn,
			 void *ctx)
{
	if (t == NULL || !t->shared || !t->daemon)
		return;
	t->sync = fn;
	t->sync_ctx = ctx;
	/* the first before the node serves: it knows the bans and counts
	 * of the others (and its own from before a restart); the writer
	 * only syncs from now on */
	share_tick(t);
	pthread_mutex_lock(&t->mu);
	t->sync_ready = true;
	pthread_mutex_unlock(&t->mu);
}

static void tool_row(void *ctx, const struct auth_throttle_row *row)
{
	merge_row(ctx, row);
}

/* loftctl: every row, from loft_auth.throttle. */
static int share_load(struct auth_throttle *t, char **error_r)
{
	for (int i = 0; i < 100000; i++) {
		t->call_t0 = wall_ms();
		t->more = false;
		if (auth_throttle_db_sync(t->owner, "", 0, NULL, 0, t->cursor,
					  tool_row, t, error_r) < 0)
			return -1;
		if (!t->more)
			break;
	}
	return 0;
}

/* ---- the writer (loftd) ----------------------------------------------- */

struct snap {
	char *key;
	uint32_t failures, bans;
	int64_t last_fail_ms, ban_until_ms, good_ms;
};

/* Applies the clears loftctl left (inside the writer's transaction). */
static void apply_clears(struct auth_throttle *t, int64_t now)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(t->db, "SELECT who FROM clears", -1, &st,
			       NULL) != SQLITE_OK)
		return;
	bool any = false;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *who = (const char *)sqlite3_column_text(st, 0);
		char name[AUTH_THROTTLE_KEY_MAX];
		char kind = who ? who_kind(who, name, sizeof(name)) : 0;
		any = true;
		if (kind == 0)
			continue;
		pthread_mutex_lock(&t->mu);
		unsigned n = clear_mem(t, kind, name, now);
		pthread_mutex_unlock(&t->mu);
		log_info("auth", NULL, "throttle: %s cleared by loftctl "
			 "(%u entries held back)", name, n);
	}
	sqlite3_finalize(st);
	if (any)
		db_exec(t->db, "DELETE FROM clears");
}

/* Takes what changed out of the table (mu held). */
static struct snap *collect(struct auth_throttle *t, int64_t now, size_t *n_r)
{
	struct snap *v = NULL;
	size_t n = 0, cap = 0;
	sweep(t, now, false);
	for (size_t i = 0; i < THROTTLE_BUCKETS; i++) {
		for (struct th_entry *e = t->buckets[i]; e != NULL; e = e->next) {
			if (!e->dirty)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = (struct snap){xstrdup(e->key), e->failures,
					       e->bans, e->last_fail_ms,
					       e->ban_until_ms, e->good_ms};
			e->dirty = false;
		}
	}
	*n_r = n;
	return v;
}

static void flush(struct auth_throttle *t)
{
	int64_t now = auth_clock_ms();
	if (db_exec(t->db, "BEGIN IMMEDIATE") < 0) {
		log_warn("auth", NULL, "throttle.db: %s", sqlite3_errmsg(t->db));
		return;
	}
	apply_clears(t, now);
	size_t n;
	pthread_mutex_lock(&t->mu);
	struct snap *v = collect(t, now, &n);
	struct th_gone *gone = t->gone;
	t->gone = NULL;
	pthread_mutex_unlock(&t->mu);
	sqlite3_stmt *up = NULL, *del = NULL;
	sqlite3_prepare_v2(t->db, "INSERT OR REPLACE INTO entries(key, "
			   "failures, last_fail_ms, ban_until_ms, bans, "
			   "good_ms) VALUES (?, ?, ?, ?, ?, ?)", -1, &up, NULL);
	sqlite3_prepare_v2(t->db, "DELETE FROM entries WHERE key = ?", -1, &del,
			   NULL);
	for (size_t i = 0; i < n && up != NULL; i++) {
		sqlite3_bind_text(up, 1, v[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(up, 2, v[i].failures);
		sqlite3_bind_int64(up, 3, v[i].last_fail_ms);
		sqlite3_bind_int64(up, 4, v[i].ban_until_ms);
		sqlite3_bind_int64(up, 5, v[i].bans);
		sqlite3_bind_int64(up, 6, v[i].good_ms);
		sqlite3_step(up);
		sqlite3_reset(up);
	}
	while (gone != NULL) {
		struct th_gone *g = gone;
		gone = g->next;
		if (del != NULL) {
			sqlite3_bind_text(del, 1, g->key, -1, SQLITE_STATIC);
			sqlite3_step(del);
			sqlite3_reset(del);
		}
		free(g);
	}
	sqlite3_finalize(up);
	sqlite3_finalize(del);
	for (size_t i = 0; i < n; i++)
		free(v[i].key);
	free(v);
	if (db_exec(t->db, "COMMIT") < 0) {
		log_warn("auth", NULL, "throttle.db: %s", sqlite3_errmsg(t->db));
		db_exec(t->db, "ROLLBACK");
	}
}

static void *writer_main(void *arg)
{
	struct auth_throttle *t = arg;
	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += WRITER_PERIOD_MS / 1000;
		pthread_cond_timedwait(&t->cond, &t->mu, &ts);
		if (t->stop)
			break;
		if (t->shared) {
			if (!t->sync_ready)
				continue;
			pthread_mutex_unlock(&t->mu);
			share_tick(t);
			pthread_mutex_lock(&t->mu);
			continue;
		}
		pthread_mutex_unlock(&t->mu);
		flush(t);
		pthread_mutex_lock(&t->mu);
	}
	bool ready = t->sync_ready;
	pthread_mutex_unlock(&t->mu);
	/* the last word: what changed since the previous one (shared: when
	 * the auth process is gone already, this node's last changes are
	 * not shared, as when it dies: at most a period's) */
	if (!t->shared)
		flush(t);
	else if (ready)
		share_tick(t);
	return NULL;
}

/* ---- open / close ----------------------------------------------------- */

int auth_throttle_open(struct auth *owner, const struct auth_settings *set,
		       const char *data_dir, bool daemon,
		       struct auth_throttle **t_r, char **error_r)
{
	struct auth_throttle *t = xcalloc(1, sizeof(*t));
	t->owner = owner;
	t->set = *set;
	t->daemon = daemon;
	t->shared = set->postgres != NULL;
	t->outbox_tail = &t->outbox;
	t->next_batch = 1;
	t->last_ok_ms = mono_ms();
	atomic_init(&t->skew_ms, 0);
	/* Its own directory: a confined mail process may write there and
	 * not beside accounts.db (privsep). */
	t->dir = xasprintf("%s/throttle", data_dir);
	t->db_path = xasprintf("%s/throttle.db", t->dir);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->buckets = xcalloc(THROTTLE_BUCKETS, sizeof(*t->buckets));
	*t_r = t;
	if (!daemon)
		return 0;
	if (t->shared) {
		/* this process's name in the batches it sends */
		uint8_t r[8];
		if (RAND_bytes(r, sizeof(r)) != 1) {
			*error_r = xstrdup("no randomness for the throttle");
			goto fail;
		}
		for (int i = 0; i < 8; i++)
			snprintf(t->node + 2 * i, 3, "%02x", r[i]);
		goto start;
	}
	if (db_open(t, error_r) < 0 || db_load(t, error_r) < 0)
		goto fail;
	/* Clears left while loftd was down. */
	if (db_exec(t->db, "BEGIN IMMEDIATE") == 0) {
		apply_clears(t, auth_clock_ms());
		db_exec(t->db, "COMMIT");
	}
start:
	if (pthread_create(&t->writer, NULL, writer_main, t) != 0) {
		*error_r = xstrdup("cannot start the throttle writer");
		goto fail;
	}
	t->writer_started = true;
	return 0;
fail:
	auth_throttle_close(t_r);
	return -1;
}

void auth_throttle_reload(struct auth_throttle *t,
			  const struct auth_settings *set)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	t->set = *set;
	pthread_mutex_unlock(&t->mu);
}

void auth_throttle_close(struct auth_throttle **tp)
{
	struct auth_throttle *t = *tp;
	if (t == NULL)
		return;
	*tp = NULL;
	if (t->writer_started) {
		pthread_mutex_lock(&t->mu);
		t->stop = true;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->writer, NULL);   /* its last flush */
	}
	for (size_t i = 0; i < THROTTLE_BUCKETS; i++) {
		struct th_entry *e = t->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	while (t->gone != NULL) {
		struct th_gone *g = t->gone;
		t->gone = g->next;
		free(g);
	}
	while (t->outbox != NULL) {
		struct th_chunk *c = t->outbox;
		t->outbox = c->next;
		free(c->rows);
		free(c);
	}
	free(t->buckets);
	if (t->db != NULL)
		sqlite3_close(t->db);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cond);
	free(t->db_path);
	free(t->dir);
	free(t);
}

/* ---- auth.h ----------------------------------------------------------- */

int auth_ban_list(struct auth *auth, auth_held_fn *fn, void *ctx,
		  char **error_r)
{
	return auth_throttle_list(auth->throttle, fn, ctx, error_r);
}

int auth_ban_del(struct auth *auth, const char *who, char **error_r)
{
	return auth_throttle_clear(auth->throttle, who, error_r);
}

void auth_held_format(const struct auth_held *h, char *out, size_t size)
{
	int n = snprintf(out, size, "%s", h->kind);
	if (h->address != NULL)
		n += snprintf(out + n, size - (size_t)n, " %s", h->address);
	if (h->account != NULL && (size_t)n < size)
		n += snprintf(out + n, size - (size_t)n, " %s", h->account);
	if (h->banned_secs > 0 && (size_t)n < size)
		n += snprintf(out + n, size - (size_t)n, " banned %" PRId64 "s",
			      h->banned_secs);
	else if ((size_t)n < size)
		n += snprintf(out + n, size - (size_t)n, " delay %ums",
			      h->delay_ms);
	if ((size_t)n < size)
		n += snprintf(out + n, size - (size_t)n, " failures %u",
			      h->failures);
	if (h->forget_secs > 0 && (size_t)n < size)
		n += snprintf(out + n, size - (size_t)n, " forgotten-in %" PRId64
			      "s", h->forget_secs);
	if (h->known && (size_t)n < size)
		snprintf(out + n, size - (size_t)n, " known");
}
