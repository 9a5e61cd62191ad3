/*
 * Email/query, Email/queryChanges and SearchSnippet/get (RFC 8621 4.4,
 * 4.5, 5). A filter (4.4.1, every condition and operator) is compiled
 * once: text conditions go through the store's search index and become
 * sets of Email ids, inMailbox and inMailboxOtherThan sets of the
 * mailboxes' Emails; then the store walks the Emails (the copies of one
 * mailbox when the filter is "inMailbox X and ...", else every Email),
 * newest first, and each row is tested in memory. Sorting by receivedAt
 * comes from the walk itself, so the common list view (inMailbox,
 * receivedAt descending, a window of 50) stops after the window.
 *
 * queryChanges of an inMailbox view by receivedAt reads the store's
 * membership log: the Emails that entered or left the mailbox since the
 * state, each placed by its rank; time proportional to the changes
 * (threads collapsed: their threads' rows, placed by a walk that stops
 * at the last of them; see collapsed_changes). Any
 * other query removes every Email that changed since the state and adds
 * back those that match now, at their index (RFC 8620 5.6 allows the
 * extra removals).
 */
#include "jmap-mime.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mail.h"

/* ---- filters ---------------------------------------------------------- */

enum qkind {
	Q_AND, Q_OR, Q_NOT, Q_TRUE,
	Q_IDSET,            /* text conditions, mailboxes: ids in a set */
	Q_BEFORE, Q_AFTER, Q_MINSIZE, Q_MAXSIZE,
	Q_HASKW, Q_NOTKW,
	Q_THREAD_ALL, Q_THREAD_SOME, Q_THREAD_NONE,
	Q_ATTACH,
};

struct idset {
	int64_t *v;
	size_t n;
};

struct qnode {
	enum qkind kind;
	struct qnode **kids;
	size_t nkids;
	time_t t;
	uint64_t size;
	char *kw;            /* keyword, lowercased */
	unsigned flag;       /* system keyword as a flag, 0 if custom */
	bool b;
	struct idset set;
	uint32_t mailbox;    /* inMailbox: the mailbox (0 otherwise) */
	bool lazy;           /* inMailbox: set not read yet (load_sets) */
};

static void qnode_free(struct qnode *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->nkids; i++)
		qnode_free(q->kids[i]);
	free(q->kids);
	free(q->kw);
	free(q->set.v);
	free(q);
}

static bool idset_has(const struct idset *s, int64_t id)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid] == id)
			return true;
		if (s->v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void idset_norm(struct idset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(int64_t), cmp_i64);
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++)
		if (w == 0 || s->v[w - 1] != s->v[i])
			s->v[w++] = s->v[i];
	s->n = w;
}

static void idset_union(struct idset *dst, const int64_t *v, size_t n)
{
	if (n == 0)
		return;
	dst->v = xrealloc(dst->v, (dst->n + n + 1) * sizeof(int64_t));
	memcpy(dst->v + dst->n, v, n * sizeof(int64_t));
	dst->n += n;
	idset_norm(dst);
}

/* Appends without sorting (room grows in powers of two: only ever
 * pushed to, or normalised, which never grows it); idset_norm before any
 * lookup. */
static void idset_push(struct idset *dst, int64_t id)
{
	if ((dst->n & (dst->n - 1)) == 0 || dst->n < 8)
		dst->v = xrealloc(dst->v, (dst->n < 8 ? 8 : 2 * dst->n) *
						  sizeof(int64_t));
	dst->v[dst->n++] = id;
}

/* A set of positive ids (open addressing); true if id was new. */
struct hset {
	int64_t *v;
	size_t cap, n;
};

static bool hset_add(struct hset *h, int64_t id)
{
	if (2 * (h->n + 1) > h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		int64_t *v = xcalloc(cap, sizeof(int64_t));
		for (size_t i = 0; i < h->cap; i++) {
			if (h->v[i] == 0)
				continue;
			size_t k = (size_t)((uint64_t)h->v[i] * 0x9E3779B97F4A7C15ULL) & (cap - 1);
			while (v[k] != 0)
				k = (k + 1) & (cap - 1);
			v[k] = h->v[i];
		}
		free(h->v);
		h->v = v;
		h->cap = cap;
	}
	size_t k = (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ULL) & (h->cap - 1);
	while (h->v[k] != 0) {
		if (h->v[k] == id)
			return false;
		k = (k + 1) & (h->cap - 1);
	}
	h->v[k] = id;
	h->n++;
	return true;
}

static unsigned flag_of(const char *kw)
{
	return strcasecmp(kw, "$seen") == 0       ? STORE_FLAG_SEEN
	       : strcasecmp(kw, "$flagged") == 0  ? STORE_FLAG_FLAGGED
	       : strcasecmp(kw, "$answered") == 0 ? STORE_FLAG_ANSWERED
	       : strcasecmp(kw, "$draft") == 0    ? STORE_FLAG_DRAFT
						  : 0;
}

/* Whether a space-separated keyword list has kw (case-insensitive). */
static bool kw_in(const char *list, const char *kw)
{
	size_t n = strlen(kw);
	for (const char *p = list; p != NULL && *p;) {
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && strncasecmp(p, kw, n) == 0)
			return true;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return false;
}

static bool keyword_valid(const char *k)
{
	if (k == NULL || *k == '\0' || strlen(k) > 255)
		return false;
	for (const unsigned char *p = (const unsigned char *)k; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("(){]%*\"\\", *p))
			return false;
	return true;
}

struct qctx {
	struct jmap_req *req;
	struct jmap_mailboxes mbs;
	bool mbs_loaded;
	json_t *err;
	uint32_t scan_mailbox;  /* the walk's mailbox: its rows are in it */
	/* thread keyword aggregates, by thread */
	struct tcache {
		int64_t thread;
		unsigned all, some;     /* flags every / some Email has */
		char **kw_all, **kw_some;
		size_t nall, nsome;
	} *tc;
	size_t ntc;
};

static int collect_cb(void *ctx, const struct store_email_row *row)
{
	struct idset *s = ctx;
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(int64_t));
	s->v[s->n++] = row->id;
	return 0;
}

static bool mailboxes(struct qctx *c)
{
	struct store_error err;
	if (!c->mbs_loaded && jmap_mailboxes_load(c->req, &c->mbs, &err) < 0) {
		c->err = jmap_store_error(c->req, &err);
		return false;
	}
	c->mbs_loaded = true;
	return true;
}

static bool mailbox_emails(struct qctx *c, uint32_t id, struct idset *s)
{
	struct store_error err;
	if (store_email_scan(c->req->user, id, true, 0, collect_cb, s,
			     &err) < 0) {
		c->err = jmap_store_error(c->req, &err);
		return false;
	}
	return true;
}

static bool text_search(struct qctx *c, struct idset *s,
			enum store_text_where where, const char *field,
			const char *needle)
{
	int64_t *ids;
	size_t n;
	struct store_error err;
	if (store_email_search(c->req->user, where, field, needle, &ids, &n,
			       &err) < 0) {
		c->err = jmap_store_error(c->req, &err);
		return false;
	}
	idset_union(s, ids, n);
	free(ids);
	return true;
}

static struct qnode *qnew(enum qkind k)
{
	struct qnode *q = xcalloc(1, sizeof(*q));
	q->kind = k;
	return q;
}

static void qadd(struct qnode *parent, struct qnode *kid)
{
	parent->kids = xrealloc(parent->kids,
				(parent->nkids + 1) * sizeof(*parent->kids));
	parent->kids[parent->nkids++] = kid;
}

static struct qnode *bad(struct qctx *c, struct qnode *q, const char *what)
{
	qnode_free(q);
	if (c->err == NULL)
		c->err = jmap_error("unsupportedFilter", "%s", what);
	return NULL;
}

/* One FilterCondition: an AND of its properties. */
static struct qnode *compile_cond(struct qctx *c, json_t *f)
{
	struct qnode *and = qnew(Q_AND);
	const char *k;
	json_t *v;
	json_object_foreach(f, k, v) {
		struct qnode *q = NULL;
		const char *s = json_string_value(v);
		if (strcmp(k, "inMailbox") == 0) {
			if (s == NULL || !mailboxes(c))
				return bad(c, and, k);
			const struct store_jmap_mailbox *mb = jmap_mailbox_by_oid(
				&c->mbs, jmap_resolve_id(c->req, s));
			q = qnew(Q_IDSET);
			if (mb != NULL) {
				/* read only if a row from elsewhere is
				 * asked about: the list view walks this
				 * mailbox and never is */
				q->mailbox = mb->info.id;
				q->lazy = true;
			}
		} else if (strcmp(k, "inMailboxOtherThan") == 0) {
			if (!json_is_array(v) || !mailboxes(c))
				return bad(c, and, k);
			q = qnew(Q_IDSET);
			for (size_t i = 0; i < c->mbs.n; i++) {
				bool listed = false;
				size_t x;
				json_t *y;
				json_array_foreach(v, x, y) {
					const char *id = jmap_resolve_id(
						c->req, json_string_value(y));
					if (id != NULL &&
					    strcmp(id, c->mbs.v[i].info.objectid) == 0)
						listed = true;
				}
				if (!listed && !mailbox_emails(c, c->mbs.v[i].info.id,
							       &q->set)) {
					qnode_free(q);
					qnode_free(and);
					return NULL;
				}
			}
			idset_norm(&q->set);
		} else if (strcmp(k, "before") == 0 || strcmp(k, "after") == 0) {
			q = qnew(k[0] == 'b' ? Q_BEFORE : Q_AFTER);
			if (!jmap_utcdate_parse(s, &q->t))
				return bad(c, (qnode_free(q), and), k);
		} else if (strcmp(k, "minSize") == 0 || strcmp(k, "maxSize") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0)
				return bad(c, and, k);
			q = qnew(k[1] == 'i' ? Q_MINSIZE : Q_MAXSIZE);
			q->size = (uint64_t)json_integer_value(v);
		} else if (strcmp(k, "hasKeyword") == 0 ||
			   strcmp(k, "notKeyword") == 0 ||
			   strcmp(k, "allInThreadHaveKeyword") == 0 ||
			   strcmp(k, "someInThreadHaveKeyword") == 0 ||
			   strcmp(k, "noneInThreadHaveKeyword") == 0) {
			if (!keyword_valid(s))
				return bad(c, and, k);
			q = qnew(k[0] == 'h' ? Q_HASKW
				 : k[0] == 'n' && k[1] == 'o' && k[2] == 't'
					 ? Q_NOTKW
				 : k[0] == 'a' ? Q_THREAD_ALL
				 : k[0] == 's' ? Q_THREAD_SOME
					       : Q_THREAD_NONE);
			q->flag = flag_of(s);
			q->kw = xstrdup(s);
		} else if (strcmp(k, "hasAttachment") == 0) {
			if (!json_is_boolean(v))
				return bad(c, and, k);
			q = qnew(Q_ATTACH);
			q->b = json_is_true(v);
		} else if (strcmp(k, "text") == 0) {
			if (s == NULL)
				return bad(c, and, k);
			q = qnew(Q_IDSET);
			static const char *const fields[] = {"from", "to", "cc",
							     "bcc", "subject"};
			bool ok = text_search(c, &q->set, STORE_TEXT_BODY, NULL,
					      s);
			for (size_t i = 0; ok && i < 5; i++)
				ok = text_search(c, &q->set, STORE_TEXT_ALL,
						 fields[i], s);
			if (!ok) {
				qnode_free(q);
				qnode_free(and);
				return NULL;
			}
		} else if (strcmp(k, "from") == 0 || strcmp(k, "to") == 0 ||
			   strcmp(k, "cc") == 0 || strcmp(k, "bcc") == 0 ||
			   strcmp(k, "subject") == 0 || strcmp(k, "body") == 0) {
			if (s == NULL)
				return bad(c, and, k);
			q = qnew(Q_IDSET);
			bool body = strcmp(k, "body") == 0;
			if (!text_search(c, &q->set,
					 body ? STORE_TEXT_BODY : STORE_TEXT_ALL,
					 body ? NULL : k, s)) {
				qnode_free(q);
				qnode_free(and);
				return NULL;
			}
		} else if (strcmp(k, "header") == 0) {
			size_t n = json_array_size(v);
			const char *name = json_string_value(json_array_get(v, 0));
			const char *val = n == 2 ? json_string_value(json_array_get(v, 1))
						 : "";
			if (!json_is_array(v) || n < 1 || n > 2 || name == NULL ||
			    val == NULL || name[0] == '\0' ||
			    strpbrk(name, ": \t\r\n") != NULL)
				return bad(c, and, k);
			q = qnew(Q_IDSET);
			if (!text_search(c, &q->set, STORE_TEXT_ALL, name, val)) {
				qnode_free(q);
				qnode_free(and);
				return NULL;
			}
		} else {
			return bad(c, and, k);
		}
		qadd(and, q);
	}
	return and;
}

static struct qnode *compile(struct qctx *c, json_t *f, int depth)
{
	if (f == NULL || json_is_null(f))
		return qnew(Q_TRUE);
	if (!json_is_object(f) || depth > 50) {
		if (c->err == NULL)
			c->err = jmap_error("invalidArguments", "filter");
		return NULL;
	}
	json_t *op = json_object_get(f, "operator");
	if (op == NULL)
		return compile_cond(c, f);
	json_t *conds = json_object_get(f, "conditions");
	const char *o = json_string_value(op);
	if (o == NULL || !json_is_array(conds) || json_object_size(f) != 2 ||
	    (strcmp(o, "AND") && strcmp(o, "OR") && strcmp(o, "NOT"))) {
		if (c->err == NULL)
			c->err = jmap_error("invalidArguments", "filter operator");
		return NULL;
	}
	struct qnode *q = qnew(o[0] == 'A' ? Q_AND : o[0] == 'O' ? Q_OR : Q_NOT);
	size_t i;
	json_t *x;
	json_array_foreach(conds, i, x) {
		struct qnode *k = compile(c, x, depth + 1);
		if (k == NULL) {
			qnode_free(q);
			return NULL;
		}
		qadd(q, k);
	}
	return q;
}

/* Thread aggregates for the *InThreadHaveKeyword conditions and sorts. */
static struct tcache *thread_info(struct qctx *c, int64_t thread)
{
	for (size_t i = 0; i < c->ntc; i++)
		if (c->tc[i].thread == thread)
			return &c->tc[i];
	c->tc = xrealloc(c->tc, (c->ntc + 1) * sizeof(*c->tc));
	struct tcache *t = &c->tc[c->ntc++];
	memset(t, 0, sizeof(*t));
	t->thread = thread;
	int64_t *ids;
	size_t n;
	struct store_email *e;
	struct store_error err;
	if (store_thread_emails(c->req->user, thread, &ids, &n, &err) < 0)
		return t;
	if (store_email_get(c->req->user, ids, n, &e, &err) < 0) {
		free(ids);
		return t;
	}
	t->all = ~0u;
	for (size_t i = 0; i < n; i++) {
		t->all &= e[i].flags;
		t->some |= e[i].flags;
		for (size_t k = 0; k < e[i].keyword_count; k++) {
			bool have = false;
			for (size_t j = 0; j < t->nsome && !have; j++)
				have = strcasecmp(t->kw_some[j], e[i].keywords[k]) == 0;
			if (!have) {
				t->kw_some = xrealloc(t->kw_some, (t->nsome + 1) *
								  sizeof(char *));
				t->kw_some[t->nsome++] = xstrdup(e[i].keywords[k]);
			}
		}
	}
	/* a keyword every Email has */
	for (size_t j = 0; j < t->nsome; j++) {
		bool every = n > 0;
		for (size_t i = 0; i < n && every; i++) {
			bool has = false;
			for (size_t k = 0; k < e[i].keyword_count && !has; k++)
				has = strcasecmp(e[i].keywords[k], t->kw_some[j]) == 0;
			every = has;
		}
		if (every) {
			t->kw_all = xrealloc(t->kw_all, (t->nall + 1) * sizeof(char *));
			t->kw_all[t->nall++] = xstrdup(t->kw_some[j]);
		}
	}
	if (n == 0)
		t->all = 0;
	store_email_free(e, n);
	free(ids);
	return t;
}

static bool thread_has(struct qctx *c, int64_t thread, const struct qnode *q,
		       bool every)
{
	struct tcache *t = thread_info(c, thread);
	if (q->flag != 0)
		return ((every ? t->all : t->some) & q->flag) != 0;
	char **v = every ? t->kw_all : t->kw_some;
	size_t n = every ? t->nall : t->nsome;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i], q->kw) == 0)
			return true;
	return false;
}

static bool row_has_kw(const struct store_email_row *r, const struct qnode *q)
{
	return q->flag != 0 ? (r->flags & q->flag) != 0 : kw_in(r->keywords, q->kw);
}

static bool eval(struct qctx *c, const struct qnode *q,
		 const struct store_email_row *r)
{
	switch (q->kind) {
	case Q_TRUE:
		return true;
	case Q_AND:
		for (size_t i = 0; i < q->nkids; i++)
			if (!eval(c, q->kids[i], r))
				return false;
		return true;
	case Q_OR:
		for (size_t i = 0; i < q->nkids; i++)
			if (eval(c, q->kids[i], r))
				return true;
		return false;
	case Q_NOT:
		for (size_t i = 0; i < q->nkids; i++)
			if (eval(c, q->kids[i], r))
				return false;
		return true;
	case Q_IDSET:
		if (q->mailbox != 0 && q->mailbox == c->scan_mailbox)
			return true;
		return idset_has(&q->set, r->id);
	case Q_BEFORE:
		return r->received < q->t;
	case Q_AFTER:
		return r->received >= q->t;
	case Q_MINSIZE:
		return r->size >= q->size;
	case Q_MAXSIZE:
		return r->size < q->size;
	case Q_HASKW:
		return row_has_kw(r, q);
	case Q_NOTKW:
		return !row_has_kw(r, q);
	case Q_THREAD_ALL:
		return thread_has(c, r->thread, q, true);
	case Q_THREAD_SOME:
		return thread_has(c, r->thread, q, false);
	case Q_THREAD_NONE:
		return !thread_has(c, r->thread, q, false);
	case Q_ATTACH:
		return r->has_attachment == q->b;
	}
	return false;
}

/* The mailbox a filter confines the walk to: "inMailbox X" at the top or
 * in a top-level AND. */
static uint32_t driving_mailbox(const struct qnode *q)
{
	if (q->kind == Q_IDSET && q->mailbox != 0)
		return q->mailbox;
	if (q->kind != Q_AND)
		return 0;
	for (size_t i = 0; i < q->nkids; i++) {
		uint32_t m = driving_mailbox(q->kids[i]);
		if (m != 0)
			return m;
	}
	return 0;
}

/* Whether the filter is nothing but "inMailbox X" (and TRUEs). */
static bool only_mailbox(const struct qnode *q, uint32_t mb)
{
	if (q->kind == Q_TRUE)
		return true;
	if (q->kind == Q_IDSET)
		return q->mailbox == mb && mb != 0;
	if (q->kind != Q_AND)
		return false;
	for (size_t i = 0; i < q->nkids; i++)
		if (!only_mailbox(q->kids[i], mb))
			return false;
	return true;
}

/* ---- sorting ---------------------------------------------------------- */

enum skey { S_RECEIVED, S_SENT, S_SIZE, S_FROM, S_TO, S_SUBJECT,
	    S_HASKW, S_ALLKW, S_SOMEKW };

struct sort_spec {
	enum skey key;
	bool asc;
	struct qnode kw;     /* for the keyword sorts (flag, kw) */
	bool ascii;          /* i;ascii-casemap (else unicode-casemap) */
};

struct hit {
	int64_t id, thread;
	time_t received, sent;
	uint64_t size;
	char *subject, *from, *to;
	unsigned kwbits;     /* per keyword sort: bit i set if it has it */
};

static bool sort_parse(json_t *sort, struct sort_spec *s, size_t *n,
		       json_t **err_r)
{
	*n = 0;
	if (sort == NULL || json_is_null(sort)) {
		s[0].key = S_RECEIVED;
		s[0].asc = false;
		*n = 1;
		return true;
	}
	if (!json_is_array(sort) || json_array_size(sort) > 8) {
		*err_r = jmap_error("invalidArguments", "sort");
		return false;
	}
	static const char *const names[] = {"receivedAt", "sentAt", "size",
					    "from", "to", "subject",
					    "hasKeyword",
					    "allInThreadHaveKeyword",
					    "someInThreadHaveKeyword"};
	size_t i;
	json_t *c;
	json_array_foreach(sort, i, c) {
		const char *p = json_string_value(json_object_get(c, "property"));
		json_t *asc = json_object_get(c, "isAscending");
		json_t *coll = json_object_get(c, "collation");
		if (!json_is_object(c) || p == NULL ||
		    (asc != NULL && !json_is_boolean(asc)) ||
		    (coll != NULL && !json_is_string(coll))) {
			*err_r = jmap_error("invalidArguments", "sort");
			return false;
		}
		int k = -1;
		for (int x = 0; x < 9; x++)
			if (strcmp(names[x], p) == 0)
				k = x;
		if (k < 0) {
			*err_r = jmap_error("unsupportedSort", "%s", p);
			return false;
		}
		const char *cn = json_string_value(coll);
		if (cn != NULL && strcmp(cn, "i;unicode-casemap") != 0 &&
		    strcmp(cn, "i;ascii-casemap") != 0 &&
		    strcmp(cn, "i;ascii-numeric") != 0) {
			*err_r = jmap_error("unsupportedSort",
					    "collation %s", cn);
			return false;
		}
		struct sort_spec *sp = &s[(*n)++];
		memset(sp, 0, sizeof(*sp));
		sp->key = (enum skey)k;
		/* RFC 8620 5.5: isAscending defaults to true */
		sp->asc = asc == NULL || json_is_true(asc);
		sp->ascii = cn != NULL && strcmp(cn, "i;ascii-casemap") == 0;
		if (k >= S_HASKW) {
			const char *kw = json_string_value(json_object_get(c, "keyword"));
			if (!keyword_valid(kw)) {
				*err_r = jmap_error("invalidArguments",
						    "sort keyword");
				return false;
			}
			sp->kw.flag = flag_of(kw);
			sp->kw.kw = (char *)kw;
		}
	}
	return true;
}

static int text_cmp(const char *a, const char *b)
{
	a = a ? a : "";
	b = b ? b : "";
	struct buf x, y;
	buf_init(&x, 0);
	buf_init(&y, 0);
	mail_text_fold(&x, a, strlen(a));
	mail_text_fold(&y, b, strlen(b));
	buf_append(&x, "", 0);
	buf_append(&y, "", 0);
	int r = strcmp(x.data, y.data);
	buf_free(&x);
	buf_free(&y);
	return r;
}

struct sorter {
	const struct sort_spec *s;
	size_t n;
};
static __thread const struct sorter *the_sorter;

static int hit_cmp(const void *pa, const void *pb)
{
	const struct hit *a = pa, *b = pb;
	const struct sorter *st = the_sorter;
	for (size_t i = 0; i < st->n; i++) {
		const struct sort_spec *s = &st->s[i];
		int c = 0;
		switch (s->key) {
		case S_RECEIVED:
			c = (a->received > b->received) - (a->received < b->received);
			break;
		case S_SENT:
			c = (a->sent > b->sent) - (a->sent < b->sent);
			break;
		case S_SIZE:
			c = (a->size > b->size) - (a->size < b->size);
			break;
		case S_FROM:
			c = s->ascii ? strcasecmp(a->from ? a->from : "",
						  b->from ? b->from : "")
				     : text_cmp(a->from, b->from);
			break;
		case S_TO:
			c = s->ascii ? strcasecmp(a->to ? a->to : "",
						  b->to ? b->to : "")
				     : text_cmp(a->to, b->to);
			break;
		case S_SUBJECT:
			c = s->ascii ? strcasecmp(a->subject ? a->subject : "",
						  b->subject ? b->subject : "")
				     : text_cmp(a->subject, b->subject);
			break;
		default: {
			bool x = (a->kwbits >> i) & 1, y = (b->kwbits >> i) & 1;
			c = (x > y) - (x < y);
		}
		}
		if (c != 0)
			return s->asc ? c : -c;
	}
	/* a stable order for equal keys: newest, then highest id */
	if (a->received != b->received)
		return a->received > b->received ? -1 : 1;
	return (a->id < b->id) - (a->id > b->id);
}

/* ---- running a query -------------------------------------------------- */

struct qrun {
	struct qctx *c;
	const struct qnode *filter;
	const struct sort_spec *sort;
	size_t nsort;
	bool collapse;
	bool dedupe_copies;      /* walking a mailbox: an Email once */
	struct hit *hits;
	size_t n, cap;
	struct idset seen;       /* recent Emails (copies in one mailbox) */
	struct hset threads;     /* collapsed: threads so far */
	size_t stop_after;       /* 0: walk everything */
	bool by_walk;            /* the walk's order is the sort */
};

static bool seen_add(struct idset *s, int64_t id)
{
	/* the walk yields each Email once, copies in one mailbox aside: a
	 * small linear check of the recent ones catches those */
	for (size_t i = s->n; i > 0 && s->n - i < 64; i--)
		if (s->v[i - 1] == id)
			return false;
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(int64_t));
	s->v[s->n++] = id;
	return true;
}

static int run_cb(void *ctx, const struct store_email_row *row)
{
	struct qrun *r = ctx;
	if (!eval(r->c, r->filter, row))
		return 0;
	/* two copies in one mailbox are one Email (adjacent in the walk:
	 * same internal date) */
	if (r->dedupe_copies && !seen_add(&r->seen, row->id))
		return 0;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->hits = xrealloc(r->hits, r->cap * sizeof(*r->hits));
	}
	struct hit *h = &r->hits[r->n++];
	memset(h, 0, sizeof(*h));
	h->id = row->id;
	h->thread = row->thread;
	h->received = row->received;
	h->sent = row->sent;
	h->size = row->size;
	if (!r->by_walk) {
		h->subject = row->subject ? xstrdup(row->subject) : NULL;
		h->from = row->from ? xstrdup(row->from) : NULL;
		h->to = row->to ? xstrdup(row->to) : NULL;
		for (size_t i = 0; i < r->nsort && i < 32; i++) {
			const struct sort_spec *s = &r->sort[i];
			bool has = s->key == S_HASKW ? row_has_kw(row, &s->kw)
				   : s->key == S_ALLKW
					   ? thread_has(r->c, row->thread, &s->kw, true)
				   : s->key == S_SOMEKW
					   ? thread_has(r->c, row->thread, &s->kw, false)
					   : false;
			h->kwbits |= (unsigned)has << i;
		}
	}
	if (r->by_walk && r->collapse) {
		if (!hset_add(&r->threads, row->thread)) {
			r->n--;
			return 0;
		}
	}
	return r->stop_after != 0 && r->n >= r->stop_after ? 1 : 0;
}

static void hits_free(struct qrun *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->hits[i].subject);
		free(r->hits[i].from);
		free(r->hits[i].to);
	}
	free(r->hits);
	free(r->seen.v);
	free(r->threads.v);
	r->hits = NULL;
	r->n = 0;
}

/* Collapsing a sorted list: the first Email of each thread. */
static void collapse(struct qrun *r)
{
	struct idset threads = {0};
	size_t w = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct hit *h = &r->hits[i];
		if (idset_has(&threads, h->thread)) {
			free(h->subject);
			free(h->from);
			free(h->to);
			continue;
		}
		idset_union(&threads, &h->thread, 1);
		r->hits[w++] = *h;
	}
	r->n = w;
	free(threads.v);
}

struct qsetup {
	struct qnode *filter;
	struct sort_spec sort[8];
	size_t nsort;
	bool collapse;
	uint32_t mailbox;      /* the walk's mailbox, 0 every Email */
	bool simple;           /* inMailbox (or nothing) by receivedAt */
};

static json_t *setup(struct qctx *c, json_t *args, struct qsetup *q)
{
	memset(q, 0, sizeof(*q));
	json_t *e = NULL;
	if (!jmap_arg_bool(args, "collapseThreads", false, &q->collapse, &e) ||
	    !sort_parse(json_object_get(args, "sort"), q->sort, &q->nsort, &e))
		return e;
	q->filter = compile(c, json_object_get(args, "filter"), 0);
	if (q->filter == NULL)
		return c->err ? c->err : jmap_error("invalidArguments", "filter");
	q->mailbox = driving_mailbox(q->filter);
	q->simple = q->nsort == 1 && q->sort[0].key == S_RECEIVED &&
		    !q->sort[0].asc;
	return NULL;
}

/* Reads the Emails of every inMailbox but the walk's own mailbox, whose
 * rows need no set. */
static bool load_sets(struct qctx *c, struct qnode *q)
{
	for (size_t i = 0; i < q->nkids; i++)
		if (!load_sets(c, q->kids[i]))
			return false;
	if (!q->lazy || q->mailbox == c->scan_mailbox)
		return true;
	q->lazy = false;
	if (!mailbox_emails(c, q->mailbox, &q->set))
		return false;
	idset_norm(&q->set);
	return true;
}

/* Runs the query; window: stop once this many results are had (0: all,
 * for a total, an anchor or another sort). */
static json_t *run(struct qctx *c, struct qsetup *q, size_t window,
		   struct qrun *r)
{
	memset(r, 0, sizeof(*r));
	r->c = c;
	r->filter = q->filter;
	r->sort = q->sort;
	r->nsort = q->nsort;
	r->collapse = q->collapse;
	r->dedupe_copies = q->mailbox != 0;
	r->by_walk = q->nsort == 1 && q->sort[0].key == S_RECEIVED;
	r->stop_after = r->by_walk ? window : 0;
	struct store_error err;
	bool newest = !(r->by_walk && q->sort[0].asc);
	unsigned fields = r->by_walk ? 0 : STORE_EMAIL_ROW_SORT;
	c->scan_mailbox = q->mailbox;
	if (!load_sets(c, q->filter))
		return c->err;
	if (store_email_scan(c->req->user, q->mailbox, newest, fields, run_cb,
			     r, &err) < 0)
		return jmap_store_error(c->req, &err);
	if (c->err != NULL)
		return c->err;
	if (!r->by_walk) {
		struct sorter st = {q->sort, q->nsort};
		the_sorter = &st;
		if (r->n > 1)
			qsort(r->hits, r->n, sizeof(*r->hits), hit_cmp);
		the_sorter = NULL;
		if (q->collapse)
			collapse(r);
	}
	return NULL;
}

static void qctx_free(struct qctx *c)
{
	if (c->mbs_loaded)
		jmap_mailboxes_free(&c->mbs);
	for (size_t i = 0; i < c->ntc; i++) {
		for (size_t k = 0; k < c->tc[i].nall; k++)
			free(c->tc[i].kw_all[k]);
		for (size_t k = 0; k < c->tc[i].nsome; k++)
			free(c->tc[i].kw_some[k]);
		free(c->tc[i].kw_all);
		free(c->tc[i].kw_some);
	}
	free(c->tc);
}

json_t *jmap_email_query(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	int64_t position;
	uint64_t limit;
	bool total;
	if (!jmap_arg_int(args, "position", 0, &position, &e) ||
	    !jmap_arg_uint(args, "limit", 0, &limit, &e) ||
	    !jmap_arg_bool(args, "calculateTotal", false, &total, &e))
		return e;
	json_t *state = jmap_state_json(req, STORE_JMAP_EMAIL);
	struct qctx c;
	memset(&c, 0, sizeof(c));
	c.req = req;
	struct qsetup q;
	if (state == NULL)
		return jmap_error("serverFail", NULL);
	if ((e = setup(&c, args, &q)) != NULL) {
		qnode_free(q.filter);
		qctx_free(&c);
		json_decref(state);
		return e;
	}
	json_t *anchor = json_object_get(args, "anchor");
	bool anchored = anchor != NULL && !json_is_null(anchor);
	const size_t max_limit = 10000;
	size_t lim = json_object_get(args, "limit") != NULL &&
			     !json_is_null(json_object_get(args, "limit"))
		     ? (size_t)(limit > max_limit ? max_limit : limit)
		     : max_limit;
	/* the list view: stop the walk after the window; the total from the
	 * mailbox's counter when the filter is the mailbox alone */
	size_t window = 0;
	if (!anchored && position >= 0 && !(total && !only_mailbox(q.filter,
								       q.mailbox)))
		window = (size_t)position + lim;
	struct qrun r;
	if ((e = run(&c, &q, window, &r)) != NULL) {
		hits_free(&r);
		qnode_free(q.filter);
		qctx_free(&c);
		json_decref(state);
		return e;
	}
	json_t *ids = json_array();
	for (size_t i = 0; i < r.n; i++) {
		char id[32];
		jmap_email_id(req, r.hits[i].id, id);
		json_array_append_new(ids, json_string(id));
	}
	json_t *res = json_pack("{s:O,s:o,s:b,s:b}", "accountId",
				json_object_get(args, "accountId"), "queryState",
				state, "canCalculateChanges", 1,
				"collapseThreads", q.collapse);
	e = jmap_query_window(args, ids, max_limit, res);
	if (e == NULL && total && window != 0) {
		/* stopped early: the counters give the total */
		const struct store_jmap_mailbox *mb = NULL;
		if (mailboxes(&c))
			mb = jmap_mailbox_by_id(&c.mbs, q.mailbox);
		json_object_set_new(res, "total",
				    json_integer(mb == NULL ? 0
						 : q.collapse ? mb->threads
							      : mb->emails));
	}
	json_decref(ids);
	hits_free(&r);
	qnode_free(q.filter);
	qctx_free(&c);
	if (e != NULL) {
		json_decref(res);
		return e;
	}
	jmap_reply(req, "Email/query", res);
	return NULL;
}

/* ---- queryChanges ----------------------------------------------------- */

/* The list view with threads collapsed (inMailbox, receivedAt
 * descending, collapseThreads): one row per thread, its newest copy in
 * the mailbox. Keywords never move a row, so only the Emails that
 * entered or left the mailbox (the membership log) touch it: their
 * threads' Emails are removed, and each of those threads that still has
 * a copy there gets its row back at its index, found by walking the
 * mailbox newest first until the last of them. A flag change costs
 * nothing; new mail stops the walk at once. */
struct cwalk {
	struct jmap_req *req;
	const struct idset *want;    /* threads to place */
	size_t left;
	struct hset seen;            /* threads met so far */
	json_t *added;
};

static int cwalk_cb(void *ctx, const struct store_email_row *row)
{
	struct cwalk *w = ctx;
	size_t index = w->seen.n;
	if (!hset_add(&w->seen, row->thread) ||
	    !idset_has(w->want, row->thread))
		return 0;
	char id[32];
	jmap_email_id(w->req, row->id, id);
	json_array_append_new(w->added, json_pack("{s:s,s:I}", "id", id,
						  "index", (json_int_t)index));
	return --w->left == 0 ? 1 : 0;
}

static json_t *collapsed_changes(struct qctx *c, const struct qsetup *q,
				 const struct store_jmap_cursor *sc,
				 json_t *removed, json_t *added)
{
	struct jmap_req *req = c->req;
	struct store_error err;
	int64_t *moved = NULL;
	size_t n = 0;
	bool too_old = false;
	if (store_email_moved_since(req->user, q->mailbox, sc, &moved, &n,
				    &too_old, &err) < 0)
		return jmap_store_error(req, &err);
	if (too_old || n == 0) {
		free(moved);
		return too_old ? jmap_error("cannotCalculateChanges", NULL)
			       : NULL;
	}
	json_t *e = NULL;
	struct idset cand = {0}, threads = {0}, want = {0}, gone = {0};
	struct store_email *em = NULL;
	for (size_t i = 0; i < n; i++)
		idset_push(&cand, moved[i]);
	/* the threads they belong to now, or (destroyed) belonged to */
	if (store_email_get(req->user, moved, n, &em, &err) < 0) {
		e = jmap_store_error(req, &err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (em[i].id != 0)
			idset_push(&threads, em[i].thread);
		else
			idset_push(&gone, moved[i]);
	}
	store_email_free(em, n);
	idset_norm(&gone);
	if (gone.n > 0) {
		struct store_jmap_changes ch;
		if (store_jmap_changes(req->user, STORE_JMAP_EMAIL, sc, 0, &ch,
				       &err) < 0) {
			e = jmap_store_error(req, &err);
			goto out;
		}
		for (size_t i = 0; !ch.too_old && i < ch.destroyed_count; i++) {
			int64_t t = atoll(ch.destroyed[i].objectid);
			if (t > 0 && idset_has(&gone, ch.destroyed[i].id))
				idset_push(&threads, t);
		}
		too_old = ch.too_old;
		store_jmap_changes_free(&ch);
		if (too_old) {
			e = jmap_error("cannotCalculateChanges", NULL);
			goto out;
		}
	}
	idset_norm(&threads);
	/* every Email of those threads: the old row is among them */
	for (size_t i = 0; i < threads.n; i++) {
		int64_t *tids;
		size_t tn;
		if (store_thread_emails(req->user, threads.v[i], &tids, &tn,
					&err) < 0) {
			e = jmap_store_error(req, &err);
			goto out;
		}
		struct store_email *te = NULL;
		if (tn > 0 && store_email_get(req->user, tids, tn, &te,
					      &err) < 0) {
			free(tids);
			e = jmap_store_error(req, &err);
			goto out;
		}
		bool here = false;
		for (size_t k = 0; k < tn; k++) {
			bool in = false;
			for (size_t m = 0; te[k].id != 0 &&
					   m < te[k].mailbox_count; m++)
				in |= te[k].mailboxes[m] == q->mailbox;
			if (in)
				idset_push(&cand, te[k].id);
			here |= in;
		}
		if (here)
			idset_push(&want, threads.v[i]);
		if (te != NULL)
			store_email_free(te, tn);
		free(tids);
	}
	idset_norm(&cand);
	idset_norm(&want);
	for (size_t i = 0; i < cand.n; i++) {
		char id[32];
		jmap_email_id(req, cand.v[i], id);
		json_array_append_new(removed, json_string(id));
	}
	if (want.n > 0) {
		struct cwalk w = {.req = req, .want = &want, .left = want.n,
				  .added = added};
		int r = store_email_scan(req->user, q->mailbox, true, 0,
					 cwalk_cb, &w, &err);
		free(w.seen.v);
		if (r < 0)
			e = jmap_store_error(req, &err);
	}
out:
	free(moved);
	free(cand.v);
	free(threads.v);
	free(want.v);
	free(gone.v);
	return e;
}


json_t *jmap_email_query_changes(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	const char *since = json_string_value(json_object_get(args,
							      "sinceQueryState"));
	uint64_t max;
	bool total;
	if (since == NULL)
		return jmap_error("invalidArguments", "sinceQueryState");
	if (!jmap_arg_uint(args, "maxChanges", 0, &max, &e) ||
	    !jmap_arg_bool(args, "calculateTotal", false, &total, &e))
		return e;
	struct store_jmap_cursor sc;
	if (!jmap_state_parse(since, &sc))
		return jmap_error("cannotCalculateChanges", NULL);
	json_t *state = jmap_state_json(req, STORE_JMAP_EMAIL);
	struct qctx c;
	memset(&c, 0, sizeof(c));
	c.req = req;
	struct qsetup q;
	if (state == NULL)
		return jmap_error("serverFail", NULL);
	if ((e = setup(&c, args, &q)) != NULL)
		goto out;
	json_t *removed = json_array(), *added = json_array();
	struct store_error err;
	struct idset cand = {0};
	bool fast = q.simple && only_mailbox(q.filter, q.mailbox) &&
		    q.mailbox != 0;
	if (fast && q.collapse) {
		e = collapsed_changes(&c, &q, &sc, removed, added);
	} else if (fast) {
		/* the membership log: who entered or left the mailbox */
		int64_t *ids;
		size_t n;
		bool too_old;
		if (store_email_moved_since(req->user, q.mailbox, &sc, &ids, &n,
					    &too_old, &err) < 0) {
			e = jmap_store_error(req, &err);
		} else if (too_old) {
			e = jmap_error("cannotCalculateChanges", NULL);
		} else {
			for (size_t i = 0; i < n; i++) {
				char id[32];
				uint64_t rank;
				jmap_email_id(req, ids[i], id);
				json_array_append_new(removed, json_string(id));
				if (store_email_rank(req->user, q.mailbox, ids[i],
						     &rank, &err) == 0)
					json_array_append_new(
						added, json_pack("{s:s,s:I}", "id",
								 id, "index",
								 (json_int_t)rank));
			}
		}
		free(ids);
	} else {
		/* every Email that changed; with threads collapsed, every
		 * Email of their threads (the one that stands for a thread
		 * may change) */
		struct store_jmap_changes ch;
		if (store_jmap_changes(req->user, STORE_JMAP_EMAIL, &sc, 0, &ch,
				       &err) < 0) {
			e = jmap_store_error(req, &err);
		} else if (ch.too_old) {
			e = jmap_error("cannotCalculateChanges", NULL);
		} else {
			struct idset threads = {0};
			struct store_jmap_change *lists[3] = {ch.created,
							      ch.updated,
							      ch.destroyed};
			size_t counts[3] = {ch.created_count, ch.updated_count,
					    ch.destroyed_count};
			for (int l = 0; l < 3; l++)
				for (size_t i = 0; i < counts[l]; i++) {
					idset_union(&cand, &lists[l][i].id, 1);
					int64_t t = atoll(lists[l][i].objectid);
					if (l == 2 && t > 0)
						idset_union(&threads, &t, 1);
				}
			if (q.collapse) {
				struct store_email *em;
				size_t nc = cand.n;
				if (store_email_get(req->user, cand.v, nc, &em,
						    &err) == 0) {
					for (size_t i = 0; i < nc; i++)
						if (em[i].id != 0)
							idset_union(&threads,
								    &em[i].thread, 1);
					store_email_free(em, nc);
				}
				for (size_t i = 0; i < threads.n; i++) {
					int64_t *tids;
					size_t tn;
					if (store_thread_emails(req->user,
								threads.v[i], &tids,
								&tn, &err) == 0) {
						idset_union(&cand, tids, tn);
						free(tids);
					}
				}
			}
			free(threads.v);
			struct qrun r;
			e = run(&c, &q, 0, &r);
			for (size_t i = 0; e == NULL && i < cand.n; i++) {
				char id[32];
				jmap_email_id(req, cand.v[i], id);
				json_array_append_new(removed, json_string(id));
			}
			for (size_t i = 0; e == NULL && i < r.n; i++) {
				if (!idset_has(&cand, r.hits[i].id))
					continue;
				char id[32];
				jmap_email_id(req, r.hits[i].id, id);
				json_array_append_new(added,
						      json_pack("{s:s,s:I}", "id",
								id, "index",
								(json_int_t)i));
			}
			if (e == NULL && total)
				json_object_set_new(args, "#total",
						    json_integer((json_int_t)r.n));
			hits_free(&r);
		}
		store_jmap_changes_free(&ch);
	}
	free(cand.v);
	if (e == NULL && max > 0 &&
	    json_array_size(removed) + json_array_size(added) > max)
		e = jmap_error("tooManyChanges", NULL);
	if (e != NULL) {
		json_decref(removed);
		json_decref(added);
		goto out;
	}
	json_t *res = json_pack("{s:O,s:s,s:O,s:o,s:o}", "accountId",
				json_object_get(args, "accountId"),
				"oldQueryState", since, "newQueryState", state,
				"removed", removed, "added", added);
	if (total) {
		json_t *t = json_object_get(args, "#total");
		if (t == NULL && mailboxes(&c)) {
			const struct store_jmap_mailbox *mb =
				jmap_mailbox_by_id(&c.mbs, q.mailbox);
			t = json_integer(mb == NULL ? 0
					 : q.collapse ? mb->threads : mb->emails);
			json_object_set_new(res, "total", t);
		} else if (t != NULL) {
			json_object_set(res, "total", t);
		}
	}
	jmap_reply(req, "Email/queryChanges", res);
out:
	qnode_free(q.filter);
	qctx_free(&c);
	json_decref(state);
	return e;
}

/* ---- SearchSnippet ---------------------------------------------------- */

/* The words a filter looks for in the text (text, subject, body). */
static void terms_of(json_t *f, json_t *terms, bool *subject_only, int depth)
{
	if (!json_is_object(f) || depth > 50)
		return;
	json_t *conds = json_object_get(f, "conditions");
	const char *op = json_string_value(json_object_get(f, "operator"));
	if (op != NULL && strcmp(op, "NOT") == 0)
		return;
	size_t i;
	json_t *x;
	json_array_foreach(conds, i, x) terms_of(x, terms, subject_only, depth + 1);
	static const char *const keys[] = {"text", "subject", "body"};
	for (int k = 0; k < 3; k++) {
		const char *s = json_string_value(json_object_get(f, keys[k]));
		if (s != NULL && s[0] != '\0')
			json_array_append_new(terms, json_string(s));
	}
}

/* Case-insensitive (ASCII letters) position of needle in hay, or NULL. */
static const char *find_ci(const char *hay, size_t hlen, const char *needle)
{
	size_t n = strlen(needle);
	if (n == 0 || n > hlen)
		return NULL;
	for (size_t i = 0; i + n <= hlen; i++)
		if (strncasecmp(hay + i, needle, n) == 0)
			return hay + i;
	return NULL;
}

static void html_escape(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		switch (s[i]) {
		case '<': buf_append_str(out, "&lt;"); break;
		case '>': buf_append_str(out, "&gt;"); break;
		case '&': buf_append_str(out, "&amp;"); break;
		case '"': buf_append_str(out, "&quot;"); break;
		case '\'': buf_append_str(out, "&#39;"); break;
		default: buf_append_char(out, s[i]);
		}
	}
}

/* text with every term marked; NULL when none occurs. */
static json_t *mark(const char *text, size_t len, json_t *terms)
{
	struct buf out;
	buf_init(&out, 0);
	bool any = false;
	size_t i = 0;
	while (i < len) {
		const char *best = NULL;
		size_t blen = 0;
		size_t k;
		json_t *t;
		json_array_foreach(terms, k, t) {
			const char *p = find_ci(text + i, len - i,
						json_string_value(t));
			if (p != NULL && (best == NULL || p < best)) {
				best = p;
				blen = strlen(json_string_value(t));
			}
		}
		if (best == NULL) {
			html_escape(&out, text + i, len - i);
			break;
		}
		html_escape(&out, text + i, (size_t)(best - text - i));
		buf_append_str(&out, "<mark>");
		html_escape(&out, best, blen);
		buf_append_str(&out, "</mark>");
		any = true;
		i = (size_t)(best - text) + blen;
	}
	json_t *r = any ? jmime_string(out.data, out.len) : json_null();
	buf_free(&out);
	return r;
}

/* A short window of the body around the first term. */
static json_t *preview_of(const char *data, size_t len, json_t *terms)
{
	struct jmime m;
	if (jmime_parse(&m, data, len) < 0) {
		jmime_free(&m);
		return json_null();
	}
	int *text, *html, *att;
	size_t nt, nh, na;
	jmime_body_lists(&m, &text, &nt, &html, &nh, &att, &na);
	json_t *r = json_null();
	for (size_t i = 0; i < nt && json_is_null(r); i++) {
		if (strcmp(m.parts[text[i]].type, "text/plain") != 0)
			continue;
		json_t *v = jmime_body_value(&m, text[i], 1024 * 1024);
		const char *s = json_string_value(json_object_get(v, "value"));
		size_t slen = s ? strlen(s) : 0;
		const char *first = NULL;
		size_t k;
		json_t *t;
		json_array_foreach(terms, k, t) {
			const char *p = find_ci(s, slen, json_string_value(t));
			if (p != NULL && (first == NULL || p < first))
				first = p;
		}
		if (first != NULL) {
			size_t start = (size_t)(first - s);
			start = start > 80 ? start - 80 : 0;
			while (start > 0 && ((unsigned char)s[start] & 0xc0) == 0x80)
				start--;
			size_t end = start + 200 < slen ? start + 200 : slen;
			while (end < slen && ((unsigned char)s[end] & 0xc0) == 0x80)
				end++;
			char *win = xstrndup(s + start, end - start);
			for (char *p = win; *p; p++)
				if (*p == '\n' || *p == '\r' || *p == '\t')
					*p = ' ';
			r = mark(win, strlen(win), terms);
			free(win);
		}
		json_decref(v);
	}
	free(text);
	free(html);
	free(att);
	jmime_free(&m);
	return r;
}

json_t *jmap_search_snippet_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *ids = json_object_get(args, "emailIds");
	if (!json_is_array(ids))
		return jmap_error("invalidArguments", "emailIds");
	if (json_array_size(ids) > req->j->set.max_objects_in_get)
		return jmap_error("requestTooLarge", NULL);
	json_t *filter = json_object_get(args, "filter");
	/* the filter must be one Email/query accepts */
	struct qctx c;
	memset(&c, 0, sizeof(c));
	c.req = req;
	struct qnode *q = compile(&c, filter, 0);
	if (q == NULL) {
		qctx_free(&c);
		return c.err ? c.err : jmap_error("invalidArguments", "filter");
	}
	qnode_free(q);
	qctx_free(&c);
	json_t *terms = json_array();
	bool so = false;
	terms_of(filter, terms, &so, 0);
	json_t *list = json_array(), *nf = json_array();
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		const char *id = jmap_resolve_id(req, json_string_value(x));
		int64_t n = 0;
		struct store_blob b;
		struct store_error err;
		if (id == NULL || !jmap_email_id_parse(req, id, &n) ||
		    store_email_open(req->user, n, &b, &err) < 0) {
			json_array_append(nf, x);
			continue;
		}
		size_t hlen = mail_header_size(b.data, b.len);
		json_t *subj = jmime_header(b.data, hlen, "Subject", JMIME_TEXT,
					    false);
		const char *s = json_string_value(subj);
		json_t *o = json_pack("{s:s,s:o,s:o}", "emailId", id, "subject",
				      s ? mark(s, strlen(s), terms) : json_null(),
				      "preview",
				      json_array_size(terms) > 0
					      ? preview_of(b.data, b.len, terms)
					      : json_null());
		json_decref(subj);
		json_array_append_new(list, o);
		store_blob_close(&b);
	}
	json_decref(terms);
	jmap_reply(req, "SearchSnippet/get",
		   json_pack("{s:O,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "list", list,
			     "notFound", json_array_size(nf) ? nf
							      : (json_decref(nf),
								 json_null())));
	return NULL;
}
