/*
 * Push (RFC 8620 7): StateChange to EventSource connections (7.3) and to
 * PushSubscription URLs (7.2), for every change through any protocol.
 *
 * The store's change hub calls us on the committing thread: we only mark
 * the account dirty and wake the push thread. That thread reads the
 * account's states once (store_jmap_states), compares them with what it
 * last pushed, and writes one "state" event to each of the account's
 * streams that asked for a type that moved (http_stream_write hands it
 * to the I/O thread). An idle EventSource costs its connection and one
 * small struct: no thread, no store handle. PushSubscription POSTs go
 * out on a thread of their own through lib/outhttp.h (in loftd the
 * outbound process makes them; libcurl parses URLs here), never to loopback or
 * private addresses unless [jmap] push_private says so (tests), with the
 * address that was checked pinned for the connection (no DNS rebinding).
 */
#include "jmap-private.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "auth.h"
#include "buf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "outhttp.h"

void jmap_object_id(enum store_jmap_kind kind, int64_t n, char out[32]);
bool jmap_object_id_parse(enum store_jmap_kind kind, const char *s,
			  int64_t *n_r);
json_t *jmap_objects_load(struct jmap_req *req, enum store_jmap_kind kind,
			  struct store_error *err);
int jmap_object_save(struct jmap_req *req, enum store_jmap_kind kind,
		     int64_t n, json_t *obj, int64_t *id_r,
		     struct store_error *err);

/* The pushable types and the kinds behind them. */
enum ptype { P_MAILBOX, P_EMAIL, P_THREAD, P_DELIVERY, P_IDENTITY,
	     P_SUBMISSION, P_VACATION, P_SETTINGS, P_SIEVE, P_TYPES };
static const char *const ptype_names[P_TYPES] = {
	"Mailbox", "Email", "Thread", "EmailDelivery", "Identity",
	"EmailSubmission", "VacationResponse", "LoftSettings", "SieveScript",
};
static const int ptype_kind[P_TYPES] = {
	STORE_JMAP_MAILBOX, STORE_JMAP_EMAIL, STORE_JMAP_THREAD, -1,
	STORE_JMAP_IDENTITY, STORE_JMAP_SUBMISSION, STORE_JMAP_VACATION,
	STORE_JMAP_SETTINGS, STORE_JMAP_SIEVE,
};

struct pstream {
	struct http_stream *stream;
	unsigned types;             /* bits of enum ptype */
	bool close_after, dead;
	unsigned ping;
	struct puser *pu;
	struct pstream *next;
};

struct psub {                     /* a verified PushSubscription */
	char *id, *url;
	unsigned types;
	time_t expires;
	struct psub *next;
};

/* Another account whose mail the user reads (shared mailboxes): its
 * changes are pushed under its accountId, as the user's viewer handle
 * sees its states (the viewer's rights and own \Seen in them). */
struct pwatch {
	struct puser *u;
	int64_t owner;
	struct store_subscription *sub;
	bool dirty, known, gone;
	uint64_t delivery;          /* the owner's last APPEND */
	char last[P_TYPES][48];     /* the states last pushed */
	struct pwatch *next;
};

struct puser {
	struct jmap_push *p;
	int64_t user_id;
	char address[320];          /* for the viewer's handles */
	struct pwatch *watches;
	bool watches_loaded, rescan;
	struct store_subscription *sub;
	struct pstream *streams;
	struct psub *subs;
	bool dirty;
	bool logout;                /* loftctl kick / user del: streams end */
	uint64_t change_ns;         /* the first change not pushed yet */
	uint64_t delivery;          /* the modseq of the last APPEND */
	bool known;                 /* last[] is filled */
	unsigned pending;           /* streams being set up: keep the entry */
	uint64_t last[P_TYPES];
	struct puser *next;
};

struct pwork {                    /* a POST to make */
	char *url, *body;
	struct pwork *next;
};

struct jmap_push {
	struct jmap *j;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread, sender;
	bool started, stop;
	struct puser *users;
	struct pwork *work, **work_tail;
	pthread_cond_t work_cond;
	int64_t *checked;           /* users whose subscriptions were read */
	size_t nchecked;            /* (sorted ids) */
	/* every account's ACL changes: a grant may show someone a new
	 * account (store.h STORE_HUB_ACL) */
	struct store_subscription *acl_sub;
};

/* Under p->mu: where id is or would go in p->checked. */
static size_t checked_pos(const struct jmap_push *p, int64_t id, bool *found)
{
	size_t lo = 0, hi = p->nchecked;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->checked[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < p->nchecked && p->checked[lo] == id;
	return lo;
}

static struct puser *puser_find(struct jmap_push *p, int64_t user_id)
{
	for (struct puser *u = p->users; u != NULL; u = u->next)
		if (u->user_id == user_id)
			return u;
	return NULL;
}

static void hub_cb(void *ctx, const struct store_change *ch)
{
	struct puser *u = ctx;
	struct jmap_push *p = u->p;
	pthread_mutex_lock(&p->mu);
	if (!u->dirty)
		u->change_ns = metrics_now_ns();
	u->dirty = true;
	if (ch->kind == STORE_CHANGE_APPEND && ch->modseq > u->delivery)
		u->delivery = ch->modseq;
	if (ch->kind == STORE_CHANGE_LOGOUT)
		u->logout = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

/* An ACL changed somewhere: users with streams look again at the
 * accounts they may read (a grant shows a new one at once). */
static void acl_cb(void *ctx, const struct store_change *ch)
{
	struct jmap_push *p = ctx;
	if (ch->kind != STORE_CHANGE_ACL)
		return;
	pthread_mutex_lock(&p->mu);
	for (struct puser *u = p->users; u != NULL; u = u->next) {
		if (u->streams == NULL || u->user_id == ch->user_id)
			continue;
		u->rescan = true;
		if (!u->dirty)
			u->change_ns = metrics_now_ns();
		u->dirty = true;
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

static void watch_cb(void *ctx, const struct store_change *ch)
{
	struct pwatch *w = ctx;
	struct jmap_push *p = w->u->p;
	pthread_mutex_lock(&p->mu);
	if (!w->u->dirty)
		w->u->change_ns = metrics_now_ns();
	w->dirty = true;
	w->u->dirty = true;
	if (ch->kind == STORE_CHANGE_APPEND && ch->modseq > w->delivery)
		w->delivery = ch->modseq;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

/* Under p->mu: the entry of a user, subscribed to the hub. */
static struct puser *puser_get(struct jmap_push *p, int64_t user_id)
{
	struct puser *u = puser_find(p, user_id);
	if (u != NULL)
		return u;
	u = xcalloc(1, sizeof(*u));
	u->p = p;
	u->user_id = user_id;
	u->next = p->users;
	p->users = u;
	/* a watch, not one of the account's sessions: a user with only
	 * PushSubscriptions keeps this entry, and `loftctl kick` must not
	 * wait for it; the streams end on STORE_CHANGE_LOGOUT (push_main) */
	store_watch(p->j->store, user_id, hub_cb, u, &u->sub);
	return u;
}

/* ---- states ----------------------------------------------------------- */

static void type_states(struct puser *u, const struct store_jmap_cursor *s,
			uint64_t out[P_TYPES])
{
	for (int t = 0; t < P_TYPES; t++)
		out[t] = ptype_kind[t] >= 0 ? s[ptype_kind[t]].modseq
					    : u->delivery;
}

json_t *jmap_type_states(struct jmap *j, struct store_user *user,
			 struct store_error *err)
{
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	if (store_jmap_states(user, s, err) < 0)
		return NULL;
	json_t *o = json_object();
	for (int t = 0; t < P_TYPES; t++) {
		if ((t == P_VACATION && !jmap_vacation_available(j)) ||
		    (t == P_SIEVE && !jmap_sieve_available(j)))
			continue;
		char v[48];
		snprintf(v, sizeof(v), "%llu",
			 (unsigned long long)(ptype_kind[t] >= 0
						      ? s[ptype_kind[t]].modseq
						      : s[STORE_JMAP_EMAIL].modseq));
		json_object_set_new(o, ptype_names[t], json_string(v));
	}
	return o;
}

/* The StateChange of the types in mask that moved. */
static char *state_change(struct jmap_push *p, struct puser *u,
			  const uint64_t now[P_TYPES], unsigned mask,
			  unsigned *moved_r)
{
	json_t *types = json_object();
	unsigned moved = 0;
	for (int t = 0; t < P_TYPES; t++) {
		if (!(mask & (1u << t)) || (u->known && now[t] == u->last[t]))
			continue;
		if ((t == P_VACATION && !jmap_vacation_available(p->j)) ||
		    (t == P_SIEVE && !jmap_sieve_available(p->j)))
			continue;
		char v[32];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)now[t]);
		json_object_set_new(types, ptype_names[t], json_string(v));
		moved |= 1u << t;
	}
	*moved_r = moved;
	if (moved == 0) {
		json_decref(types);
		return NULL;
	}
	char acc[32];
	jmap_account_id(u->user_id, acc);
	json_t *sc = json_pack("{s:s,s:{s:o}}", "@type", "StateChange",
			       "changed", acc, types);
	char *text = json_dumps(sc, JSON_COMPACT);
	json_decref(sc);
	return text;
}

static void enqueue_post(struct jmap_push *p, const char *url,
			 const char *body)
{
	struct pwork *w = xcalloc(1, sizeof(*w));
	w->url = xstrdup(url);
	w->body = xstrdup(body);
	*p->work_tail = w;
	p->work_tail = &w->next;
	pthread_cond_signal(&p->work_cond);
}

/* Pushes what moved for one user (push thread, p->mu not held). */
static void push_user(struct jmap_push *p, int64_t user_id,
		      uint64_t change_ns)
{
	bool wrote = false;
	struct store_user *user;
	struct store_error err;
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	if (store_user_open(p->j->store, user_id, &user, &err) < 0)
		return;
	int r = store_jmap_states(user, s, &err);
	store_user_unref(&user);
	if (r < 0)
		return;
	pthread_mutex_lock(&p->mu);
	struct puser *u = puser_find(p, user_id);
	if (u == NULL) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	uint64_t now[P_TYPES];
	type_states(u, s, now);
	uint64_t id = 0;
	for (int t = 0; t < P_TYPES; t++)
		if (now[t] > id)
			id = now[t];
	for (struct pstream *ps = u->streams; ps != NULL; ps = ps->next) {
		if (ps->dead)
			continue;
		unsigned moved;
		char *text = state_change(p, u, now, ps->types, &moved);
		if (text == NULL)
			continue;
		char *ev = xasprintf("event: state\nid: %llu\ndata: %s\n\n",
				     (unsigned long long)id, text);
		http_stream_write(ps->stream, ev, strlen(ev));
		free(ev);
		free(text);
		wrote = true;
		if (ps->close_after) {
			ps->dead = true;
			http_stream_end(ps->stream);
		}
	}
	time_t t = time(NULL);
	for (struct psub *ps = u->subs; ps != NULL; ps = ps->next) {
		if (ps->expires != 0 && ps->expires < t)
			continue;
		unsigned moved;
		char *text = state_change(p, u, now, ps->types, &moved);
		if (text != NULL)
			enqueue_post(p, ps->url, text);
		free(text);
	}
	memcpy(u->last, now, sizeof(now));
	u->known = true;
	pthread_mutex_unlock(&p->mu);
	/* from the commit to the StateChange handed to the I/O threads */
	if (wrote && change_ns != 0)
		metrics_observe_since(metrics_histogram(
			"loft_push_latency_seconds", "From a committed change "
			"to the push written to a waiting client.",
			"proto=\"jmap\"", NULL, 0), change_ns);
}

/* ---- other accounts' changes (shared mailboxes) ----------------------- */

/* The accounts user_id may read now (each opened: one mailbox at least
 * shows), ascending. */
static void watched_owners(struct jmap_push *p, int64_t user_id,
			   const char *address, int64_t **ids_r, size_t *n_r)
{
	struct jmap_caller who = {user_id, address};
	int64_t *ids;
	size_t n, k = 0;
	*ids_r = NULL;
	*n_r = 0;
	if (jmap_shared_accounts(p->j, &who, &ids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct store_user *su;
		if (jmap_account_open(p->j, &who, ids[i], &su, NULL, NULL, 0) < 0)
			continue;
		store_user_unref(&su);
		ids[k++] = ids[i];
	}
	*ids_r = ids;
	*n_r = k;
}

/* Under p->mu: a new watch (not yet subscribed). */
static struct pwatch *watch_add(struct puser *u, int64_t owner)
{
	struct pwatch *w = xcalloc(1, sizeof(*w));
	w->u = u;
	w->owner = owner;
	w->next = u->watches;
	u->watches = w;
	return w;
}

/* The states of owner's account as user sees them, as strings: 0, or
 * -1 when the owner's mail cannot be opened at all. */
static int watch_states(struct jmap_push *p, int64_t user_id,
			const char *address, int64_t owner, uint64_t delivery,
			char out[P_TYPES][48])
{
	struct auth_user o;
	struct store_user *su;
	struct store_error err;
	struct store_jmap_cursor s[STORE_JMAP_KINDS];
	if (p->j->auth == NULL || auth_lookup_id(p->j->auth, owner, &o) != 1 ||
	    auth_viewer_open(p->j->auth, p->j->store, user_id, address,
			     owner, o.address, p->j->set.cross_domain, &su,
			     &err) < 0)
		return -1;
	int r = store_jmap_states(su, s, &err);
	store_user_unref(&su);
	if (r < 0)
		return -1;
	for (int t = 0; t < P_TYPES; t++) {
		out[t][0] = '\0';
		if (t == P_DELIVERY) {
			struct store_jmap_cursor d = {delivery, 0,
						      s[STORE_JMAP_EMAIL].scope};
			jmap_state_format(&d, out[t]);
		} else if (ptype_kind[t] >= 0 &&
			   ptype_kind[t] <= STORE_JMAP_THREAD) {
			jmap_state_format(&s[ptype_kind[t]], out[t]);
		}
	}
	return 0;
}

/* Pushes what moved in the accounts user_id reads (push thread, p->mu
 * not held): after a grant or revoke (rescan) the list of them first. */
static void push_watches(struct jmap_push *p, int64_t user_id)
{
	pthread_mutex_lock(&p->mu);
	struct puser *u = puser_find(p, user_id);
	if (u == NULL || u->streams == NULL) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	bool rescan = u->rescan || !u->watches_loaded;
	bool first = !u->watches_loaded;
	u->rescan = false;
	u->watches_loaded = true;
	char address[320];
	snprintf(address, sizeof(address), "%s", u->address);
	pthread_mutex_unlock(&p->mu);
	if (rescan) {
		int64_t *ids;
		size_t n;
		watched_owners(p, user_id, address, &ids, &n);
		/* at the first stream what exists is not news: its states */
		char (*st)[P_TYPES][48] = xcalloc(n + 1, sizeof(*st));
		bool *have_st = xcalloc(n + 1, sizeof(bool));
		for (size_t i = 0; i < n && first; i++)
			have_st[i] = watch_states(p, user_id, address, ids[i],
						  0, st[i]) == 0;
		pthread_mutex_lock(&p->mu);
		u = puser_find(p, user_id);
		for (struct pwatch *w = u ? u->watches : NULL; w; w = w->next) {
			bool keep = false;
			for (size_t i = 0; i < n && !keep; i++)
				keep = ids[i] == w->owner;
			if (!keep) {
				/* a last push (its states moved), then gone */
				w->gone = true;
				w->dirty = true;
			}
		}
		for (size_t i = 0; i < n && u != NULL; i++) {
			bool have = false;
			for (struct pwatch *w = u->watches; w && !have; w = w->next)
				have = w->owner == ids[i] && !w->gone;
			if (have)
				continue;
			struct pwatch *w = watch_add(u, ids[i]);
			/* a grant after the first stream is news: its states
			 * are pushed */
			w->known = have_st[i];
			if (have_st[i])
				memcpy(w->last, st[i], sizeof(st[i]));
			w->dirty = !first;
			pthread_mutex_unlock(&p->mu);
			struct store_subscription *sub;
			store_subscribe(p->j->store, ids[i], watch_cb, w, &sub);
			pthread_mutex_lock(&p->mu);
			w->sub = sub;
		}
		pthread_mutex_unlock(&p->mu);
		free(st);
		free(have_st);
		free(ids);
	}
	for (;;) {
		pthread_mutex_lock(&p->mu);
		u = puser_find(p, user_id);
		struct pwatch *w = u ? u->watches : NULL;
		while (w != NULL && !w->dirty)
			w = w->next;
		if (w == NULL) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		w->dirty = false;
		int64_t owner = w->owner;
		uint64_t delivery = w->delivery;
		pthread_mutex_unlock(&p->mu);
		char now[P_TYPES][48];
		int r = watch_states(p, user_id, address, owner, delivery, now);
		pthread_mutex_lock(&p->mu);
		/* u and w stay: only this thread frees them (reap) */
		char acc[32];
		jmap_account_id(owner, acc);
		for (struct pstream *ps = u->streams; ps && r == 0; ps = ps->next) {
			if (ps->dead)
				continue;
			json_t *types = json_object();
			for (int t = 0; t < P_TYPES; t++) {
				if (!(ps->types & (1u << t)) || now[t][0] == '\0' ||
				    (w->known && strcmp(now[t], w->last[t]) == 0))
					continue;
				json_object_set_new(types, ptype_names[t],
						    json_string(now[t]));
			}
			if (json_object_size(types) == 0) {
				json_decref(types);
				continue;
			}
			json_t *sc = json_pack("{s:s,s:{s:o}}", "@type",
					       "StateChange", "changed", acc,
					       types);
			char *text = json_dumps(sc, JSON_COMPACT);
			json_decref(sc);
			char *ev = xasprintf("event: state\ndata: %s\n\n", text);
			http_stream_write(ps->stream, ev, strlen(ev));
			free(ev);
			free(text);
			if (ps->close_after) {
				ps->dead = true;
				http_stream_end(ps->stream);
			}
		}
		if (r == 0) {
			memcpy(w->last, now, sizeof(now));
			w->known = true;
		}
		/* a watch that is gone: out of the list, unsubscribed */
		struct store_subscription *sub = NULL;
		if (w->gone) {
			for (struct pwatch **pp = &u->watches; *pp; pp = &(*pp)->next)
				if (*pp == w) {
					*pp = w->next;
					break;
				}
			sub = w->sub;
			w->sub = NULL;
		}
		pthread_mutex_unlock(&p->mu);
		if (w->gone) {
			/* returns once no callback of it runs */
			store_unsubscribe(&sub);
			free(w);
		}
	}
}

/* Drops dead streams and users nobody follows any more (push thread). */
static void reap(struct jmap_push *p)
{
	pthread_mutex_lock(&p->mu);
	for (struct puser **pp = &p->users; *pp != NULL;) {
		struct puser *u = *pp;
		for (struct pstream **sp = &u->streams; *sp != NULL;) {
			struct pstream *ps = *sp;
			if (ps->dead && ps->stream == NULL) {
				*sp = ps->next;
				free(ps);
			} else {
				sp = &ps->next;
			}
		}
		if (u->streams != NULL || u->subs != NULL || u->pending > 0) {
			pp = &u->next;
			continue;
		}
		*pp = u->next;
		struct store_subscription *sub = u->sub;
		struct pwatch *ws = u->watches;
		pthread_mutex_unlock(&p->mu);
		/* returns once no callback of it runs: then u may go */
		store_unsubscribe(&sub);
		for (struct pwatch *w = ws, *n; w != NULL; w = n) {
			n = w->next;
			store_unsubscribe(&w->sub);
			free(w);
		}
		free(u);
		pthread_mutex_lock(&p->mu);
		pp = &p->users;
	}
	pthread_mutex_unlock(&p->mu);
}

static void *push_main(void *arg)
{
	struct jmap_push *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct puser *dirty = NULL;
		for (struct puser *u = p->users; u != NULL; u = u->next)
			if (u->dirty) {
				dirty = u;
				break;
			}
		if (dirty == NULL) {
			pthread_mutex_unlock(&p->mu);
			reap(p);
			pthread_mutex_lock(&p->mu);
			bool any = false;
			for (struct puser *u = p->users; u != NULL; u = u->next)
				any |= u->dirty;
			if (!any && !p->stop)
				pthread_cond_wait(&p->cond, &p->mu);
			continue;
		}
		dirty->dirty = false;
		if (dirty->logout) {
			/* loftctl kick or user del: every stream of the
			 * account ends (its PushSubscriptions stay: they are
			 * the account's data, not sessions) */
			dirty->logout = false;
			for (struct pstream *ps = dirty->streams; ps != NULL;
			     ps = ps->next) {
				if (ps->dead || ps->stream == NULL)
					continue;
				ps->dead = true;
				http_stream_end(ps->stream);
			}
			continue;
		}
		int64_t id = dirty->user_id;
		uint64_t since = dirty->change_ns;
		pthread_mutex_unlock(&p->mu);
		push_user(p, id, since);
		push_watches(p, id);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- outgoing POSTs (PushSubscription) ---------------------------------- */

static bool private_addr(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return (a >> 24) == 10 || (a >> 24) == 127 || (a >> 24) == 0 ||
		       (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 ||
		       (a >> 16) == 0xa9fe || (a >> 22) == 0x191 /* 100.64/10 */ ||
		       a >= 0xe0000000;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
		    IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a) ||
		    IN6_IS_ADDR_MULTICAST(a) || (a->s6_addr[0] & 0xfe) == 0xfc)
			return true;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			struct sockaddr_in v4;
			memset(&v4, 0, sizeof(v4));
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
			return private_addr((struct sockaddr *)&v4);
		}
		return false;
	}
	return true;
}

/* Checks a push URL: https (http only with push_private), a host that
 * resolves only to addresses we may reach; fills the CURLOPT_RESOLVE
 * entry that pins the checked address. */
static bool url_allowed(struct jmap *j, const char *url, char *pin,
			size_t pin_size)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	bool ok = h != NULL && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		  curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		  curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		  curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
			  CURLUE_OK;
	ok = ok && (strcmp(scheme, "https") == 0 ||
		    (j->set.push_private && strcmp(scheme, "http") == 0));
	if (ok) {
		char bare[256];
		snprintf(bare, sizeof(bare), "%s", host);
		size_t bl = strlen(bare);
		if (bl > 1 && bare[0] == '[' && bare[bl - 1] == ']') {
			memmove(bare, bare + 1, bl - 2);
			bare[bl - 2] = '\0';
		}
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		ok = getaddrinfo(bare, port, &hints, &res) == 0 && res != NULL;
		for (struct addrinfo *a = res; ok && a != NULL; a = a->ai_next)
			if (!j->set.push_private && private_addr(a->ai_addr))
				ok = false;
		if (ok) {
			char ip[INET6_ADDRSTRLEN];
			const void *src = res->ai_family == AF_INET
				? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
				: (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
			inet_ntop(res->ai_family, src, ip, sizeof(ip));
			snprintf(pin, pin_size, res->ai_family == AF_INET6
				 ? "%s:%s:[%s]" : "%s:%s:%s", bare, port, ip);
		}
		if (res != NULL)
			freeaddrinfo(res);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(h);
	return ok;
}

static void post(struct jmap *j, const char *url, const char *body)
{
	char pin[600];
	if (!url_allowed(j, url, pin, sizeof(pin))) {
		log_warn("jmap", NULL, "push: not posting to %s (not allowed)",
			 url);
		return;
	}
	static const char *const hdr[] = {
		"Content-Type: application/json; charset=utf-8", "TTL: 86400",
	};
	struct outhttp_request rq = {
		.method = "POST", .url = url, .https_only = !j->set.push_private,
		.resolve = pin, .headers = hdr, .header_count = 2,
		.body = body, .body_len = strlen(body),
		.timeout_ms = 10000, .connect_timeout_ms = 5000,
	};
	struct outhttp_answer a;
	char *err = NULL;
	if (outhttp_perform(&rq, &a, &err) < 0)
		log_warn("jmap", NULL, "push to %s: %s", url, err);
	else if (a.status >= 300)
		log_warn("jmap", NULL, "push to %s: refused (HTTP %u)", url,
			 a.status);
	outhttp_answer_free(&a);
	free(err);
}

static void *sender_main(void *arg)
{
	struct jmap_push *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->work == NULL && !p->stop)
			pthread_cond_wait(&p->work_cond, &p->mu);
		if (p->work == NULL)
			break;
		struct pwork *w = p->work;
		p->work = w->next;
		if (p->work == NULL)
			p->work_tail = &p->work;
		pthread_mutex_unlock(&p->mu);
		post(p->j, w->url, w->body);
		free(w->url);
		free(w->body);
		free(w);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- lifetime --------------------------------------------------------- */

struct jmap_push *jmap_push_create(struct jmap *j)
{
	struct jmap_push *p = xcalloc(1, sizeof(*p));
	p->j = j;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_cond_init(&p->work_cond, NULL);
	p->work_tail = &p->work;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (j->store != NULL)
		store_subscribe(j->store, STORE_HUB_ACL, acl_cb, p, &p->acl_sub);
	if (pthread_create(&p->thread, NULL, push_main, p) == 0 &&
	    pthread_create(&p->sender, NULL, sender_main, p) == 0)
		p->started = true;
	return p;
}

void jmap_push_destroy(struct jmap_push **pp)
{
	struct jmap_push *p = *pp;
	if (p == NULL)
		return;
	*pp = NULL;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_cond_broadcast(&p->work_cond);
	pthread_mutex_unlock(&p->mu);
	if (p->started) {
		pthread_join(p->thread, NULL);
		pthread_join(p->sender, NULL);
	}
	store_unsubscribe(&p->acl_sub);
	for (struct puser *u = p->users, *next; u != NULL; u = next) {
		next = u->next;
		store_unsubscribe(&u->sub);
		for (struct pwatch *w = u->watches, *n2; w != NULL; w = n2) {
			n2 = w->next;
			store_unsubscribe(&w->sub);
			free(w);
		}
		for (struct pstream *s = u->streams, *n2; s != NULL; s = n2) {
			n2 = s->next;
			http_stream_unref(&s->stream);
			free(s);
		}
		for (struct psub *s = u->subs, *n2; s != NULL; s = n2) {
			n2 = s->next;
			free(s->id);
			free(s->url);
			free(s);
		}
		free(u);
	}
	for (struct pwork *w = p->work, *n; w != NULL; w = n) {
		n = w->next;
		free(w->url);
		free(w->body);
		free(w);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->work_cond);
	curl_global_cleanup();
	free(p->checked);
	free(p);
}

/* ---- EventSource (RFC 8620 7.3) --------------------------------------- */

static void es_tick(struct http_stream *stream, void *ctx)
{
	struct pstream *ps = ctx;
	char ev[80];
	snprintf(ev, sizeof(ev), "event: ping\ndata: {\"interval\":%u}\n\n",
		 ps->ping);
	http_stream_write(stream, ev, strlen(ev));
}

static void es_closed(struct http_stream *stream, void *ctx)
{
	struct pstream *ps = ctx;
	struct jmap_push *p = ps->pu->p;
	(void)stream;
	pthread_mutex_lock(&p->mu);
	struct http_stream *s = ps->stream;
	ps->stream = NULL;
	ps->dead = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	/* the hook runs on the I/O thread: unref only drops a count */
	http_stream_unref(&s);
}

/* Parses "Email,Mailbox" or "*"; false on an unknown type. */
static bool types_parse(const char *s, unsigned *mask)
{
	*mask = 0;
	if (s == NULL || strcmp(s, "*") == 0) {
		*mask = (1u << P_TYPES) - 1;
		return true;
	}
	char *copy = xstrdup(s), *save = NULL;
	bool ok = true;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		bool found = false;
		for (int k = 0; k < P_TYPES; k++)
			if (strcmp(ptype_names[k], t) == 0) {
				*mask |= 1u << k;
				found = true;
			}
		/* types this server does not push are ignored, as unknown
		 * future types must be */
		(void)found;
	}
	free(copy);
	return ok;
}

void jmap_eventsource(struct jmap *j, struct http_request *req,
		      struct http_response *resp)
{
	const struct auth_user *who = http_request_account(req);
	char *types = http_query_param(req, "types");
	char *closeafter = http_query_param(req, "closeafter");
	char *ping = http_query_param(req, "ping");
	unsigned mask;
	unsigned long interval = 0;
	bool bad = !types_parse(types, &mask);
	if (closeafter != NULL && strcmp(closeafter, "state") != 0 &&
	    strcmp(closeafter, "no") != 0)
		bad = true;
	if (ping != NULL) {
		char *end;
		interval = strtoul(ping, &end, 10);
		if (*end != '\0' || ping[0] == '\0')
			bad = true;
	}
	bool close_after = closeafter != NULL && strcmp(closeafter, "state") == 0;
	free(types);
	free(closeafter);
	free(ping);
	if (bad || who == NULL || j->push == NULL) {
		http_response_problem(resp, 400,
				      "urn:ietf:params:jmap:error:invalidArguments",
				      "types, closeafter or ping is not valid");
		return;
	}
	/* RFC 8620 7.3: the server may raise a short interval */
	if (interval != 0 && interval < 5)
		interval = 5;
	if (interval > 3600)
		interval = 3600;
	struct jmap_push *p = j->push;
	struct pstream *ps = xcalloc(1, sizeof(*ps));
	ps->types = mask;
	ps->close_after = close_after;
	ps->ping = (unsigned)interval;
	/* a reconnecting client that missed a change gets it at once */
	const char *last = http_request_header(req, "Last-Event-ID");
	struct store_user *user;
	struct store_error err;
	uint64_t now_id = 0;
	struct store_jmap_cursor s0[STORE_JMAP_KINDS];
	bool have_states = false;
	if (store_user_open(j->store, who->id, &user, &err) == 0) {
		if (store_jmap_states(user, s0, &err) == 0) {
			have_states = true;
			for (int k = 0; k < STORE_JMAP_KINDS; k++)
				if (s0[k].modseq > now_id)
					now_id = s0[k].modseq;
		}
		store_user_unref(&user);
	}
	http_response_content_type(resp, "text/event-stream; charset=utf-8");
	struct http_stream_hooks hooks = {
		.tick = interval ? es_tick : NULL,
		.tick_secs = (unsigned)interval,
		.closed = es_closed,
		.max_unread = 0,
	};
	pthread_mutex_lock(&p->mu);
	struct puser *u = puser_get(p, who->id);
	snprintf(u->address, sizeof(u->address), "%s", who->address);
	ps->pu = u;
	u->pending++;
	pthread_mutex_unlock(&p->mu);
	struct http_stream *s = http_response_stream(resp, &hooks, ps);
	if (s == NULL) {
		pthread_mutex_lock(&p->mu);
		u->pending--;
		ps->dead = true;
		ps->next = u->streams;
		u->streams = ps;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	pthread_mutex_lock(&p->mu);
	u->pending--;
	ps->stream = ps->dead ? NULL : s;
	if (ps->dead)
		http_stream_unref(&s);
	ps->next = u->streams;
	u->streams = ps;
	/* the first stream of a user: what changes from now on is news */
	if (!u->known && have_states) {
		type_states(u, s0, u->last);
		u->known = true;
	}
	if (last != NULL && strtoull(last, NULL, 10) < now_id) {
		/* push the current states to this stream at the next round */
		u->known = false;
		u->dirty = true;
	}
	/* the accounts shared with the user: watched from the first stream
	 * on (the push thread opens them) */
	if (!u->watches_loaded)
		u->dirty = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

/* ---- PushSubscription (RFC 8620 7.2) ---------------------------------- */

/* Verified subscriptions of a user into the push registry. */
static void subs_reload(struct jmap_req *req)
{
	struct jmap_push *p = req->j->push;
	struct store_error err;
	json_t *all = jmap_objects_load(req, STORE_JMAP_PUSH, &err);
	if (p == NULL || all == NULL) {
		json_decref(all);
		return;
	}
	pthread_mutex_lock(&p->mu);
	struct puser *u = puser_get(p, req->who->user_id);
	for (struct psub *s = u->subs, *n; s != NULL; s = n) {
		n = s->next;
		free(s->id);
		free(s->url);
		free(s);
	}
	u->subs = NULL;
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		if (!json_is_true(json_object_get(v, "verified")))
			continue;
		struct psub *s = xcalloc(1, sizeof(*s));
		s->id = xstrdup(k);
		s->url = xstrdup(json_string_value(json_object_get(v, "url")));
		json_t *t = json_object_get(v, "types");
		if (json_is_array(t)) {
			size_t i;
			json_t *x;
			json_array_foreach(t, i, x) {
				for (int q = 0; q < P_TYPES; q++)
					if (strcmp(ptype_names[q], json_string_value(x)) == 0)
						s->types |= 1u << q;
			}
		} else {
			s->types = (1u << P_TYPES) - 1;
		}
		time_t exp = 0;
		jmap_utcdate_parse(json_string_value(json_object_get(v, "expires")), &exp);
		s->expires = exp;
		s->next = u->subs;
		u->subs = s;
	}
	pthread_mutex_unlock(&p->mu);
	json_decref(all);
}

static const char *const push_props[] = {"id", "deviceClientId", "url",
					 "keys", "verificationCode",
					 "expires", "types", NULL};

static json_t *push_get(struct jmap_req *req, json_t *args)
{
	json_t *e = NULL, *ids, *props;
	if (!jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", push_props, NULL, &props, &e))
		return e;
	json_t *oe = jmap_account_own(req);
	if (oe != NULL)
		return oe;
	struct store_error err;
	json_t *all = jmap_objects_load(req, STORE_JMAP_PUSH, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	json_t *list = json_array(), *nf = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		bool want = ids == NULL;
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) want |= strcmp(json_string_value(x), k) == 0;
		if (!want)
			continue;
		json_t *o = json_pack("{s:s}", "id", k);
		/* RFC 8620 7.2.1: url and keys are never returned */
		static const char *const out[] = {"deviceClientId",
						  "verificationCode", "expires",
						  "types"};
		for (int q = 0; q < 4; q++)
			if (jmap_want(props, out[q]))
				json_object_set(o, out[q],
						json_object_get(v, out[q])
							? json_object_get(v, out[q])
							: json_null());
		json_array_append_new(list, o);
	}
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x)
		if (json_object_get(all, json_string_value(x)) == NULL)
			json_array_append(nf, x);
	json_decref(all);
	jmap_reply(req, "PushSubscription/get",
		   json_pack("{s:o,s:o}", "list", list, "notFound", nf));
	return NULL;
}

static json_t *check_expires(json_t *v, char out[32])
{
	time_t t, now = time(NULL), max = now + 7 * 86400;
	if (v == NULL || json_is_null(v)) {
		t = max;
	} else if (!jmap_utcdate_parse(json_string_value(v), &t)) {
		return jmap_set_error_props("invalidProperties", NULL, "expires");
	}
	if (t > max)
		t = max;
	if (t < now)
		t = now;
	jmap_utcdate(t, out);
	return NULL;
}

static json_t *push_set(struct jmap_req *req, json_t *args)
{
	json_t *oe = jmap_account_own(req);
	if (oe != NULL)
		return oe;
	struct store_error err;
	json_t *all = jmap_objects_load(req, STORE_JMAP_PUSH, &err);
	if (all == NULL)
		return jmap_store_error(req, &err);
	json_t *created = json_object(), *updated = json_object(),
	       *destroyed = json_array(), *nc = json_object(),
	       *nu = json_object(), *nd = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(args, "create"), k, v) {
		const char *url = json_string_value(json_object_get(v, "url"));
		const char *dev = json_string_value(json_object_get(v, "deviceClientId"));
		json_t *keys = json_object_get(v, "keys");
		json_t *types = json_object_get(v, "types");
		char exp[32], pin[600];
		json_t *se = NULL;
		if (!json_is_object(v) || dev == NULL)
			se = jmap_set_error_props("invalidProperties", NULL,
						  "deviceClientId");
		else if (url == NULL || strlen(url) > 2000 ||
			 !url_allowed(req->j, url, pin, sizeof(pin)))
			se = jmap_set_error_props("invalidProperties",
						  "an https URL of a public host",
						  "url");
		else if (keys != NULL && !json_is_null(keys) &&
			 (!json_is_string(json_object_get(keys, "p256dh")) ||
			  !json_is_string(json_object_get(keys, "auth"))))
			se = jmap_set_error_props("invalidProperties", NULL, "keys");
		else if (types != NULL && !json_is_null(types) && !json_is_array(types))
			se = jmap_set_error_props("invalidProperties", NULL, "types");
		else if (json_object_get(v, "verificationCode") != NULL)
			se = jmap_set_error_props("invalidProperties",
						  "server-set", "verificationCode");
		if (se == NULL)
			se = check_expires(json_object_get(v, "expires"), exp);
		int64_t id = 0;
		unsigned char rnd[16];
		char code[40];
		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			memset(rnd, 3, sizeof(rnd));
		for (int i = 0; i < 16; i++)
			snprintf(code + 2 * i, 3, "%02x", rnd[i]);
		if (se == NULL) {
			json_t *o = json_pack("{s:s,s:s,s:O,s:s,s:O,s:s,s:b}",
					      "deviceClientId", dev, "url", url,
					      "keys", keys ? keys : json_null(),
					      "expires", exp, "types",
					      types ? types : json_null(),
					      "code", code, "verified", 0);
			if (jmap_object_save(req, STORE_JMAP_PUSH, 0, o, &id,
					     &err) < 0)
				se = jmap_set_error_store(&err);
			json_decref(o);
		}
		if (se != NULL) {
			json_object_set_new(nc, k, se);
			continue;
		}
		char sid[32];
		jmap_object_id(STORE_JMAP_PUSH, id, sid);
		json_t *ver = json_pack("{s:s,s:s,s:s}", "@type", "PushVerification",
					"pushSubscriptionId", sid,
					"verificationCode", code);
		char *text = json_dumps(ver, JSON_COMPACT);
		json_decref(ver);
		pthread_mutex_lock(&req->j->push->mu);
		enqueue_post(req->j->push, url, text);
		pthread_mutex_unlock(&req->j->push->mu);
		free(text);
		json_object_set_new(created, k, json_pack("{s:s,s:s}", "id", sid,
							  "expires", exp));
		jmap_add_created(req, k, sid);
	}
	json_object_foreach(json_object_get(args, "update"), k, v) {
		json_t *cur = json_object_get(all, k);
		int64_t n = 0;
		json_t *se = NULL;
		if (cur == NULL || !jmap_object_id_parse(STORE_JMAP_PUSH, k, &n)) {
			json_object_set_new(nu, k, jmap_set_error("notFound", NULL));
			continue;
		}
		json_t *o = json_copy(cur);
		const char *p;
		json_t *x;
		json_object_foreach(v, p, x) {
			if (strcmp(p, "verificationCode") == 0) {
				if (!json_is_string(x) ||
				    !json_equal(x, json_object_get(cur, "code")))
					se = jmap_set_error_props("invalidProperties",
								  "wrong code", p);
				else
					json_object_set_new(o, "verified", json_true());
			} else if (strcmp(p, "expires") == 0) {
				char exp[32];
				se = check_expires(x, exp);
				if (se == NULL)
					json_object_set_new(o, "expires",
							    json_string(exp));
			} else if (strcmp(p, "types") == 0) {
				if (!json_is_null(x) && !json_is_array(x))
					se = jmap_set_error_props("invalidProperties",
								  NULL, p);
				else
					json_object_set(o, "types", x);
			} else {
				se = jmap_set_error_props("invalidProperties",
							  "cannot change", p);
			}
			if (se != NULL)
				break;
		}
		if (se == NULL && jmap_object_save(req, STORE_JMAP_PUSH, n, o,
						   NULL, &err) < 0)
			se = jmap_set_error_store(&err);
		json_decref(o);
		if (se != NULL)
			json_object_set_new(nu, k, se);
		else
			json_object_set_new(updated, k, json_null());
	}
	size_t i;
	json_array_foreach(json_object_get(args, "destroy"), i, v) {
		const char *id = json_string_value(v);
		int64_t n = 0;
		if (id == NULL)
			continue;
		if (!jmap_object_id_parse(STORE_JMAP_PUSH, id, &n) ||
		    store_jobject_delete(req->user, STORE_JMAP_PUSH, n, &err) < 0)
			json_object_set_new(nd, id, jmap_set_error("notFound", NULL));
		else
			json_array_append_new(destroyed, json_string(id));
	}
	json_decref(all);
	subs_reload(req);
	jmap_reply(req, "PushSubscription/set",
		   json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "created", created,
			     "updated", updated, "destroyed", destroyed,
			     "notCreated", nc, "notUpdated", nu,
			     "notDestroyed", nd));
	return NULL;
}

/* After a restart the registry is empty: a user's verified
 * PushSubscriptions are read back at the user's first request (once:
 * PushSubscription/set reloads them itself). */
void jmap_push_user_seen(struct jmap_req *req)
{
	struct jmap_push *p = req->j->push;
	if (p == NULL || req->user == NULL)
		return;
	int64_t id = req->who->user_id;
	bool found;
	pthread_mutex_lock(&p->mu);
	checked_pos(p, id, &found);
	pthread_mutex_unlock(&p->mu);
	if (found)
		return;
	struct store_jobject *list;
	size_t n;
	struct store_error err;
	if (store_jobject_list(req->user, STORE_JMAP_PUSH, &list, &n, &err) < 0)
		return;
	store_jobject_list_free(list, n);
	if (n > 0)
		subs_reload(req);
	pthread_mutex_lock(&p->mu);
	size_t at = checked_pos(p, id, &found);
	if (!found) {
		p->checked = xrealloc(p->checked,
				      (p->nchecked + 1) * sizeof(int64_t));
		memmove(&p->checked[at + 1], &p->checked[at],
			(p->nchecked - at) * sizeof(int64_t));
		p->checked[at] = id;
		p->nchecked++;
	}
	pthread_mutex_unlock(&p->mu);
}

/* PushSubscription has no accountId (RFC 8620 7.2): it is the caller's. */
const struct jmap_method jmap_push_methods[] = {
	{"PushSubscription/get", JMAP_C_CORE, push_get},
	{"PushSubscription/set", JMAP_C_CORE, push_set},
	{NULL, 0, NULL},
};
