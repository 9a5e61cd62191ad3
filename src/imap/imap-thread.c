/*
 * THREAD algorithms of RFC 5256 section 3, followed step by step.
 *
 * Nodes live in one array: first one node per message, then dummies made
 * for message IDs that are referenced but not present. Links are indices
 * (parent, first child, next sibling). Everything that could recurse as
 * deep as a reply chain (pruning, printing) uses explicit stacks: a chain
 * of 100,000 replies is a legitimate mailbox.
 */
#include "imap-thread.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NONE UINT32_MAX

struct node {
	const struct imap_thread_msg *msg;   /* NULL: dummy */
	uint32_t parent, first_child, next;
};

struct id_entry {
	const char *id;
	size_t len;
	uint32_t node;
};

struct thread_ctx {
	struct node *nodes;
	uint32_t count, cap;
	struct id_entry *ids;     /* open addressing, size is a power of 2 */
	size_t id_cap, id_count;
	uint32_t root_first;      /* first top-level node */
};

int imap_thread_algorithm_parse(const char *name, size_t len,
				enum imap_thread_algorithm *alg_r)
{
	if (len == 10 && strncasecmp(name, "REFERENCES", 10) == 0)
		*alg_r = IMAP_THREAD_REFERENCES;
	else if (len == 14 && strncasecmp(name, "ORDEREDSUBJECT", 14) == 0)
		*alg_r = IMAP_THREAD_ORDEREDSUBJECT;
	else
		return -1;
	return 0;
}

/* A msg-id is "<" ... ">" without white space inside (RFC 5322 3.6.4,
 * leniently: obsolete forms with comments and spaces are rare and Dovecot
 * skips them too). Returns the part between the brackets. */
bool imap_thread_next_msgid(const char **p, const char **id_r, size_t *len_r)
{
	const char *s = *p;
	for (;;) {
		s = strchr(s, '<');
		if (s == NULL) {
			*p = *p + strlen(*p);
			return false;
		}
		const char *start = ++s;
		while (*s != '\0' && *s != '>' && *s != '<' && *s != ' ' &&
		       *s != '\t' && *s != '\r' && *s != '\n')
			s++;
		if (*s == '>' && s > start) {
			*id_r = start;
			*len_r = (size_t)(s - start);
			*p = s + 1;
			return true;
		}
		if (*s == '\0') {
			*p = s;
			return false;
		}
	}
}

static uint64_t hash_id(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void ids_grow(struct thread_ctx *t)
{
	size_t old_cap = t->id_cap;
	struct id_entry *old = t->ids;
	t->id_cap = old_cap ? old_cap * 2 : 256;
	t->ids = xcalloc(t->id_cap, sizeof(*t->ids));
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].id == NULL)
			continue;
		size_t j = hash_id(old[i].id, old[i].len) & (t->id_cap - 1);
		while (t->ids[j].id != NULL)
			j = (j + 1) & (t->id_cap - 1);
		t->ids[j] = old[i];
	}
	free(old);
}

/* Message ID comparisons are case-sensitive (RFC 5256 3, step 1A). */
static struct id_entry *ids_find(struct thread_ctx *t, const char *id,
				 size_t len)
{
	if ((t->id_count + 1) * 2 > t->id_cap)
		ids_grow(t);
	size_t j = hash_id(id, len) & (t->id_cap - 1);
	while (t->ids[j].id != NULL) {
		if (t->ids[j].len == len && memcmp(t->ids[j].id, id, len) == 0)
			return &t->ids[j];
		j = (j + 1) & (t->id_cap - 1);
	}
	return &t->ids[j];   /* empty slot: caller fills it */
}

static uint32_t node_new(struct thread_ctx *t, const struct imap_thread_msg *m)
{
	if (t->count == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->nodes = xrealloc(t->nodes, t->cap * sizeof(*t->nodes));
	}
	struct node *n = &t->nodes[t->count];
	n->msg = m;
	n->parent = n->first_child = n->next = NONE;
	return t->count++;
}

/* The node of a referenced ID, creating a dummy for an unknown one. */
static uint32_t node_for_id(struct thread_ctx *t, const char *id, size_t len)
{
	struct id_entry *e = ids_find(t, id, len);
	if (e->id == NULL) {
		e->id = id;
		e->len = len;
		e->node = node_new(t, NULL);
		t->id_count++;
	}
	return e->node;
}

static bool is_ancestor(const struct thread_ctx *t, uint32_t anc, uint32_t n)
{
	for (; n != NONE; n = t->nodes[n].parent)
		if (n == anc)
			return true;
	return false;
}

static void unlink_node(struct thread_ctx *t, uint32_t n)
{
	uint32_t p = t->nodes[n].parent;
	if (p == NONE)
		return;
	uint32_t *link = &t->nodes[p].first_child;
	while (*link != n)
		link = &t->nodes[*link].next;
	*link = t->nodes[n].next;
	t->nodes[n].parent = NONE;
	t->nodes[n].next = NONE;
}

static void add_child(struct thread_ctx *t, uint32_t parent, uint32_t child)
{
	t->nodes[child].parent = parent;
	t->nodes[child].next = t->nodes[parent].first_child;
	t->nodes[parent].first_child = child;
}

/* Links parent -> child unless that would make a loop (RFC 5256 step 1A). */
static void link_nodes(struct thread_ctx *t, uint32_t parent, uint32_t child)
{
	if (parent == child || is_ancestor(t, child, parent))
		return;
	add_child(t, parent, child);
}

/* Step 1 for one message. */
static void thread_message(struct thread_ctx *t, uint32_t self)
{
	const struct imap_thread_msg *m = t->nodes[self].msg;
	const char *p, *id;
	size_t len;
	uint32_t prev = NONE;

	p = m->references != NULL ? m->references : "";
	while (imap_thread_next_msgid(&p, &id, &len)) {
		uint32_t cur = node_for_id(t, id, len);
		/* 1A: an existing parent is kept: the References line may
		 * have been truncated by a client. */
		if (prev != NONE && t->nodes[cur].parent == NONE)
			link_nodes(t, prev, cur);
		prev = cur;
	}
	/* Without usable References, the first msg-id of In-Reply-To. */
	if (prev == NONE && m->in_reply_to != NULL) {
		p = m->in_reply_to;
		if (imap_thread_next_msgid(&p, &id, &len))
			prev = node_for_id(t, id, len);
	}
	/* 1B: the last reference is the parent, replacing any parent
	 * guessed from a truncated References line of another message. */
	unlink_node(t, self);
	if (prev != NONE)
		link_nodes(t, prev, self);
}

static time_t node_date(const struct thread_ctx *t, uint32_t n, uint32_t *seq_r)
{
	const struct node *nd = &t->nodes[n];
	if (nd->msg == NULL && nd->first_child != NONE)
		nd = &t->nodes[nd->first_child];   /* a dummy: its first child */
	if (nd->msg == NULL) {
		*seq_r = 0;
		return 0;
	}
	*seq_r = nd->msg->seq;
	return nd->msg->sent_date;
}

/* qsort_r (glibc): workers sort concurrently, so no static context. */
static int cmp_nodes_by_date(const void *a, const void *b, void *ctx)
{
	const struct thread_ctx *t = ctx;
	uint32_t sa, sb;
	time_t da = node_date(t, *(const uint32_t *)a, &sa);
	time_t db = node_date(t, *(const uint32_t *)b, &sb);
	if (da != db)
		return da < db ? -1 : 1;
	return sa < sb ? -1 : sa > sb;
}

/* Sorts a sibling list by sent date, then sequence (RFC 5256 2.2).
 * *first is the list head. */
static void sort_siblings(struct thread_ctx *t, uint32_t *first,
			  uint32_t **tmp, size_t *tmp_cap)
{
	size_t n = 0;
	for (uint32_t c = *first; c != NONE; c = t->nodes[c].next) {
		if (n == *tmp_cap) {
			*tmp_cap = *tmp_cap ? *tmp_cap * 2 : 64;
			*tmp = xrealloc(*tmp, *tmp_cap * sizeof(**tmp));
		}
		(*tmp)[n++] = c;
	}
	if (n < 2)
		return;
	qsort_r(*tmp, n, sizeof(**tmp), cmp_nodes_by_date, t);
	*first = (*tmp)[0];
	for (size_t i = 0; i + 1 < n; i++)
		t->nodes[(*tmp)[i]].next = (*tmp)[i + 1];
	t->nodes[(*tmp)[n - 1]].next = NONE;
}

/* Replaces each dummy child of n by its children (step 3), repeatedly, so
 * that afterwards no child of n is a dummy; childless dummies vanish. */
static void splice_dummies(struct thread_ctx *t, uint32_t *first, uint32_t parent)
{
	uint32_t *link = first;
	while (*link != NONE) {
		uint32_t c = *link;
		struct node *cn = &t->nodes[c];
		if (cn->msg != NULL) {
			link = &cn->next;
			continue;
		}
		/* splice c's children in place of c */
		uint32_t kids = cn->first_child, after = cn->next;
		if (kids == NONE) {
			*link = after;
			continue;
		}
		uint32_t last = kids;
		for (uint32_t k = kids; k != NONE; k = t->nodes[k].next) {
			t->nodes[k].parent = parent;
			last = k;
		}
		t->nodes[last].next = after;
		*link = kids;
		cn->first_child = NONE;
	}
}

static size_t count_children(const struct thread_ctx *t, uint32_t n)
{
	size_t k = 0;
	for (uint32_t c = t->nodes[n].first_child; c != NONE; c = t->nodes[c].next)
		k++;
	return k;
}

/* Steps 2 and 3: gather the roots and prune dummies. */
static void gather_and_prune(struct thread_ctx *t)
{
	uint32_t *link = &t->root_first;
	t->root_first = NONE;
	for (uint32_t i = 0; i < t->count; i++) {
		if (t->nodes[i].parent == NONE) {
			*link = i;
			link = &t->nodes[i].next;
			t->nodes[i].next = NONE;
		}
	}
	/* Top level: a dummy with children keeps them unless there is only
	 * one, which is promoted to the root level. */
	link = &t->root_first;
	while (*link != NONE) {
		uint32_t c = *link;
		struct node *cn = &t->nodes[c];
		if (cn->msg != NULL) {
			link = &cn->next;
			continue;
		}
		splice_dummies(t, &cn->first_child, c);
		size_t kids = count_children(t, c);
		if (kids == 0) {
			*link = cn->next;
		} else if (kids == 1) {
			uint32_t k = cn->first_child;
			t->nodes[k].parent = NONE;
			t->nodes[k].next = cn->next;
			cn->first_child = NONE;
			*link = k;   /* looked at again: it is a message */
		} else {
			link = &cn->next;
		}
	}
	/* Below the top, every dummy is replaced by its children. */
	for (uint32_t i = 0; i < t->count; i++)
		if (t->nodes[i].msg != NULL)
			splice_dummies(t, &t->nodes[i].first_child, i);
}

/* The thread subject of a top-level node (step 5B). */
static const struct imap_thread_msg *subject_msg(const struct thread_ctx *t,
						 uint32_t n)
{
	const struct node *nd = &t->nodes[n];
	if (nd->msg == NULL)
		nd = &t->nodes[nd->first_child];
	return nd->msg;
}

struct subj_entry {
	const char *subject;
	uint32_t node;
};

static int cmp_subj(const void *a, const void *b)
{
	return strcasecmp(((const struct subj_entry *)a)->subject,
			  ((const struct subj_entry *)b)->subject);
}

static struct subj_entry *subj_lookup(struct subj_entry *tab, size_t n,
				      const char *subject)
{
	struct subj_entry key = {subject, 0};
	return bsearch(&key, tab, n, sizeof(*tab), cmp_subj);
}

/* Step 5: merge top-level threads with the same base subject. The table
 * is a sorted array of the distinct subjects (built once), each pointing
 * at the node chosen by 5B. */
static void merge_subjects(struct thread_ctx *t)
{
	size_t n = 0;
	for (uint32_t c = t->root_first; c != NONE; c = t->nodes[c].next)
		n++;
	uint32_t *roots = xmalloc((n ? n : 1) * sizeof(*roots));
	struct subj_entry *tab = xmalloc((n ? n : 1) * sizeof(*tab));
	size_t tn = 0, i = 0;
	for (uint32_t c = t->root_first; c != NONE; c = t->nodes[c].next) {
		roots[i++] = c;
		const char *s = subject_msg(t, c)->base_subject;
		if (s != NULL && *s != '\0')
			tab[tn++] = (struct subj_entry){s, NONE};
	}
	qsort(tab, tn, sizeof(*tab), cmp_subj);
	size_t u = 0;   /* dedupe */
	for (size_t k = 0; k < tn; k++)
		if (u == 0 || cmp_subj(&tab[u - 1], &tab[k]) != 0)
			tab[u++] = tab[k];
	tn = u;

	/* 5B: pick the message that represents each subject */
	for (i = 0; i < n; i++) {
		const struct imap_thread_msg *m = subject_msg(t, roots[i]);
		if (m->base_subject == NULL || *m->base_subject == '\0')
			continue;
		struct subj_entry *e = subj_lookup(tab, tn, m->base_subject);
		if (e->node == NONE) {
			e->node = roots[i];
			continue;
		}
		const struct node *old = &t->nodes[e->node];
		bool cur_dummy = t->nodes[roots[i]].msg == NULL;
		if (old->msg != NULL &&
		    (cur_dummy || (old->msg->is_reply && !m->is_reply)))
			e->node = roots[i];
	}

	/* 5C: merge; the root list is rebuilt from what stays on top */
	uint32_t *keep = xmalloc((n ? n : 1) * sizeof(*keep));
	bool *gone = xcalloc(n ? n : 1, sizeof(*gone));
	for (i = 0; i < n; i++) {
		uint32_t cur = roots[i];
		if (t->nodes[cur].parent != NONE)
			continue;   /* already merged under a new dummy */
		const struct imap_thread_msg *m = subject_msg(t, cur);
		if (m->base_subject == NULL || *m->base_subject == '\0')
			continue;
		struct subj_entry *e = subj_lookup(tab, tn, m->base_subject);
		uint32_t tn_node = e->node;
		if (tn_node == cur)
			continue;
		struct node *tnd = &t->nodes[tn_node], *cnd = &t->nodes[cur];
		gone[i] = true;
		if (tnd->msg == NULL && cnd->msg == NULL) {
			uint32_t k = cnd->first_child;
			while (k != NONE) {
				uint32_t next = t->nodes[k].next;
				add_child(t, tn_node, k);
				k = next;
			}
			cnd->first_child = NONE;
		} else if (tnd->msg == NULL ||
			   (cnd->msg->is_reply && !tnd->msg->is_reply)) {
			add_child(t, tn_node, cur);
		} else {
			/* node_new may move the array: indices only from here */
			uint32_t d = node_new(t, NULL);
			add_child(t, d, tn_node);
			add_child(t, d, cur);
			e->node = d;
		}
	}
	/* Top level now: every root not merged away, with the table nodes
	 * that became children of a new dummy replaced by that dummy. */
	size_t kn = 0;
	for (i = 0; i < n; i++) {
		if (gone[i])
			continue;
		uint32_t r = roots[i];
		while (t->nodes[r].parent != NONE)
			r = t->nodes[r].parent;
		keep[kn++] = r;
	}
	t->root_first = NONE;
	for (size_t k = kn; k-- > 0;) {
		t->nodes[keep[k]].next = t->root_first;
		t->root_first = keep[k];
	}
	free(keep);
	free(gone);
	free(roots);
	free(tab);
}

/* Step 6 (and 4): sort every sibling set. Dummies exist only at the top,
 * so sorting all non-root lists before the root list is enough to have
 * a dummy's first child settled when the root list is sorted. */
static void sort_all(struct thread_ctx *t)
{
	uint32_t *tmp = NULL;
	size_t tmp_cap = 0;
	for (uint32_t i = 0; i < t->count; i++)
		if (t->nodes[i].first_child != NONE)
			sort_siblings(t, &t->nodes[i].first_child, &tmp, &tmp_cap);
	sort_siblings(t, &t->root_first, &tmp, &tmp_cap);
	free(tmp);
}

struct print_frame {
	uint32_t node;
	uint32_t cursor;    /* next child to print, NONE when done */
	bool started;
	bool wrap;          /* print ")" when this frame ends */
};

/* thread-list syntax (RFC 5256 4): a single child continues the chain
 * "1 2 3"; several children are nested lists "1 (2)(3)". */
static int print_thread(const struct thread_ctx *t, uint32_t top,
			struct buf *out, struct print_frame **stack,
			size_t *cap)
{
	size_t sp = 0;
	int ret = buf_append_char(out, '(');
	(*stack)[sp++] = (struct print_frame){top, NONE, false, true};
	while (sp > 0 && ret == 0) {
		struct print_frame *f = &(*stack)[sp - 1];
		const struct node *nd = &t->nodes[f->node];
		if (!f->started) {
			f->started = true;
			size_t kids = count_children(t, f->node);
			if (nd->msg != NULL)
				ret |= buf_printf(out, "%u", nd->msg->number);
			if (kids == 0) {
				f->cursor = NONE;
			} else if (kids == 1) {
				if (nd->msg != NULL)
					ret |= buf_append_char(out, ' ');
				f->node = nd->first_child;   /* the chain goes on */
				f->started = false;
				continue;
			} else {
				if (nd->msg != NULL)
					ret |= buf_append_char(out, ' ');
				f->cursor = nd->first_child;
			}
		}
		if (f->cursor != NONE) {
			uint32_t c = f->cursor;
			f->cursor = t->nodes[c].next;
			if (sp == *cap) {
				*cap *= 2;
				*stack = xrealloc(*stack, *cap * sizeof(**stack));
			}
			ret |= buf_append_char(out, '(');
			(*stack)[sp++] = (struct print_frame){c, NONE, false, true};
			continue;
		}
		if (f->wrap)
			ret |= buf_append_char(out, ')');
		sp--;
	}
	return ret;
}

static int print_all(const struct thread_ctx *t, struct buf *out)
{
	size_t cap = 64;
	struct print_frame *stack = xmalloc(cap * sizeof(*stack));
	int ret = 0;
	for (uint32_t r = t->root_first; r != NONE && ret == 0;
	     r = t->nodes[r].next)
		ret = print_thread(t, r, out, &stack, &cap);
	free(stack);
	return ret;
}

static int cmp_msg_seq(const void *a, const void *b)
{
	const struct imap_thread_msg *x = *(const struct imap_thread_msg *const *)a;
	const struct imap_thread_msg *y = *(const struct imap_thread_msg *const *)b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void build_references(struct thread_ctx *t,
			     const struct imap_thread_msg *msgs, uint32_t count)
{
	const struct imap_thread_msg **order = xmalloc((count ? count : 1) *
						       sizeof(*order));
	for (uint32_t i = 0; i < count; i++)
		order[i] = &msgs[i];
	qsort(order, count, sizeof(*order), cmp_msg_seq);

	/* One node per message. A missing or invalid Message-ID, or a
	 * duplicate of an earlier one, gets a unique ID: its own node that
	 * no reference can reach. */
	for (uint32_t i = 0; i < count; i++) {
		uint32_t n = node_new(t, order[i]);
		const char *p = order[i]->message_id, *id;
		size_t len;
		if (p != NULL && imap_thread_next_msgid(&p, &id, &len)) {
			struct id_entry *e = ids_find(t, id, len);
			if (e->id == NULL) {
				*e = (struct id_entry){id, len, n};
				t->id_count++;
			}
		}
	}
	for (uint32_t i = 0; i < count; i++)
		thread_message(t, i);
	free(order);
	gather_and_prune(t);
	/* Step 4 fixes which message of a subject comes first in step 5. */
	uint32_t *tmp = NULL;
	size_t tmp_cap = 0;
	for (uint32_t r = t->root_first; r != NONE; r = t->nodes[r].next)
		if (t->nodes[r].msg == NULL)
			sort_siblings(t, &t->nodes[r].first_child, &tmp, &tmp_cap);
	sort_siblings(t, &t->root_first, &tmp, &tmp_cap);
	free(tmp);
	merge_subjects(t);
	sort_all(t);
}

static int cmp_ordered_subject(const void *a, const void *b)
{
	const struct imap_thread_msg *x = *(const struct imap_thread_msg *const *)a;
	const struct imap_thread_msg *y = *(const struct imap_thread_msg *const *)b;
	int c = strcasecmp(x->base_subject ? x->base_subject : "",
			   y->base_subject ? y->base_subject : "");
	if (c != 0)
		return c;
	if (x->sent_date != y->sent_date)
		return x->sent_date < y->sent_date ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* RFC 5256 3, ORDEREDSUBJECT: group by base subject; in each group the
 * first message (by sent date) is the parent of all the others. */
static void build_ordered_subject(struct thread_ctx *t,
				  const struct imap_thread_msg *msgs,
				  uint32_t count)
{
	const struct imap_thread_msg **order = xmalloc((count ? count : 1) *
						       sizeof(*order));
	for (uint32_t i = 0; i < count; i++)
		order[i] = &msgs[i];
	qsort(order, count, sizeof(*order), cmp_ordered_subject);
	/* link pointers below point into the node array: it must not move */
	t->cap = count ? count : 1;
	t->nodes = xrealloc(t->nodes, t->cap * sizeof(*t->nodes));
	uint32_t parent = NONE, *link = &t->root_first, *clink = NULL;
	t->root_first = NONE;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t n = node_new(t, order[i]);
		if (parent != NONE &&
		    strcasecmp(order[i]->base_subject ? order[i]->base_subject : "",
			       t->nodes[parent].msg->base_subject ?
			       t->nodes[parent].msg->base_subject : "") == 0) {
			t->nodes[n].parent = parent;
			*clink = n;
			clink = &t->nodes[n].next;
			continue;
		}
		parent = n;
		*link = n;
		link = &t->nodes[n].next;
		clink = &t->nodes[n].first_child;
	}
	free(order);
	uint32_t *tmp = NULL;
	size_t tmp_cap = 0;
	sort_siblings(t, &t->root_first, &tmp, &tmp_cap);
	free(tmp);
}

int imap_thread_build(enum imap_thread_algorithm alg,
		      const struct imap_thread_msg *msgs, uint32_t count,
		      struct buf *out)
{
	struct thread_ctx t;
	memset(&t, 0, sizeof(t));
	t.root_first = NONE;
	if (alg == IMAP_THREAD_REFERENCES)
		build_references(&t, msgs, count);
	else
		build_ordered_subject(&t, msgs, count);
	int ret = print_all(&t, out);
	free(t.nodes);
	free(t.ids);
	return ret;
}
