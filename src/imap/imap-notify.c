/*
 * NOTIFY (RFC 5465): the command, what the hub's callback records, and
 * the responses a session's worker makes of it. See imap-notify.h.
 */
#include "imap-notify.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap-client.h"
#include "imap-commands.h"
#include "imap-fetch.h"
#include "imap-server.h"
#include "log.h"

/* Queued output beyond which a push is an overflow (the connection's
 * default high-water mark is 256 KiB: a push stays under it and never
 * waits for the client). */
#define NOTIFY_OUTPUT_MAX (128 * 1024)
/* Recorded changed mailboxes beyond which every watched one is looked at */
#define NOTIFY_DIRTY_MAX 4096
/* Mailbox names of one NOTIFY command */
#define NOTIFY_NAMES_MAX 20000

enum {
	EV_NEW = 1 << 0,
	EV_EXPUNGE = 1 << 1,
	EV_FLAGS = 1 << 2,
	EV_ANNOTATION = 1 << 3,
	EV_NAME = 1 << 4,
	EV_SUBSCRIPTION = 1 << 5,
	EV_MAILBOX_META = 1 << 6,
	EV_SERVER_META = 1 << 7,
};
#define EV_MESSAGE (EV_NEW | EV_EXPUNGE | EV_FLAGS | EV_ANNOTATION)

static const struct {
	const char *name;
	unsigned bit;
} event_names[] = {
	{"MessageNew", EV_NEW},
	{"MessageExpunge", EV_EXPUNGE},
	{"FlagChange", EV_FLAGS},
	{"AnnotationChange", EV_ANNOTATION},
	{"MailboxName", EV_NAME},
	{"SubscriptionChange", EV_SUBSCRIPTION},
	{"MailboxMetadataChange", EV_MAILBOX_META},
	{"ServerMetadataChange", EV_SERVER_META},
};
#define EV_SUPPORTED (EV_NEW | EV_EXPUNGE | EV_FLAGS | EV_NAME | \
		      EV_SUBSCRIPTION | EV_MAILBOX_META | EV_SERVER_META)

/* what the hub recorded of a mailbox (bits of enum store_change_kind) */
#define KIND(k) (1u << (k))

enum filter {
	F_PERSONAL,     /* also "inboxes" (see imap-notify.h) */
	F_SUBSCRIBED,
	F_SUBTREE,
	F_MAILBOXES,
};

struct group {
	enum filter filter;
	char **names;             /* store names (subtree, mailboxes) */
	size_t name_count;
	unsigned events;          /* 0: NONE */
};

struct dirty {
	uint32_t id;              /* mailbox id; 0: the server's metadata */
	unsigned kinds;
};

/* A metadata entry as last told: its name and a hash of its value. */
struct meta_seen {
	char *name;
	uint64_t hash;
};

struct box {
	uint32_t id;
	char *name;
	bool subscribed, noselect, has_children;
	/* the entries the client knows of (MailboxMetadataChange) */
	struct meta_seen *meta;
	size_t meta_count;
	bool meta_known;
};

struct imap_notify {
	/* ---- shared with the hub's thread (lock) ---- */
	pthread_mutex_t lock;
	atomic_bool active;
	struct dirty *dirty;
	size_t dirty_count, dirty_cap;
	bool dirty_all;
	bool mailboxes_changed;
	atomic_uint sel_kinds;    /* the selected mailbox's changes */

	/* ---- the session's worker only ---- */
	struct group *groups;
	size_t group_count;
	bool selected_set, selected_immediate;
	unsigned selected_events;
	struct imap_fetch_plan *new_plan;   /* MessageNew (fetch-atts) */
	struct box *boxes;        /* sorted by id */
	size_t box_count;
	struct meta_seen *server_meta;
	size_t server_meta_count;
	bool server_meta_known;
};

/* Responses to push, with where each ends: a push that meets a client
 * reading too slowly stops between two responses. */
struct outq {
	struct buf b;
	size_t *ends;
	size_t count, cap;
};

static void outq_init(struct outq *q)
{
	memset(q, 0, sizeof(*q));
	buf_init(&q->b, 0);
}

static void outq_end(struct outq *q)
{
	if (q->count == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 64;
		q->ends = xrealloc(q->ends, q->cap * sizeof(*q->ends));
	}
	q->ends[q->count++] = q->b.len;
}

static void outq_free(struct outq *q)
{
	buf_free(&q->b);
	free(q->ends);
}

/* ---- life -------------------------------------------------------------- */

struct imap_notify *imap_notify_new(void)
{
	struct imap_notify *n = xcalloc(1, sizeof(*n));
	pthread_mutex_init(&n->lock, NULL);
	atomic_init(&n->active, false);
	atomic_init(&n->sel_kinds, 0);
	return n;
}

static void free_meta(struct meta_seen *m, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(m[i].name);
	free(m);
}

static void free_boxes(struct imap_notify *n)
{
	for (size_t i = 0; i < n->box_count; i++) {
		free(n->boxes[i].name);
		free_meta(n->boxes[i].meta, n->boxes[i].meta_count);
	}
	free(n->boxes);
	n->boxes = NULL;
	n->box_count = 0;
}

static void free_groups(struct group *g, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		for (size_t k = 0; k < g[i].name_count; k++)
			free(g[i].names[k]);
		free(g[i].names);
	}
	free(g);
}

static void clear_config(struct imap_notify *n)
{
	atomic_store(&n->active, false);
	free_groups(n->groups, n->group_count);
	n->groups = NULL;
	n->group_count = 0;
	n->selected_set = n->selected_immediate = false;
	n->selected_events = 0;
	imap_fetch_plan_free(&n->new_plan);
	free_boxes(n);
	free_meta(n->server_meta, n->server_meta_count);
	n->server_meta = NULL;
	n->server_meta_count = 0;
	n->server_meta_known = false;
	pthread_mutex_lock(&n->lock);
	n->dirty_count = 0;
	n->dirty_all = n->mailboxes_changed = false;
	pthread_mutex_unlock(&n->lock);
	atomic_store(&n->sel_kinds, 0);
}

void imap_notify_free(struct imap_notify **np)
{
	struct imap_notify *n = *np;
	if (n == NULL)
		return;
	clear_config(n);
	free(n->dirty);
	pthread_mutex_destroy(&n->lock);
	free(n);
	*np = NULL;
}

void imap_notify_off(struct imap_client *c)
{
	if (c->notify != NULL)
		clear_config(c->notify);
}

static bool active(const struct imap_client *c)
{
	return c->notify != NULL && atomic_load(&c->notify->active);
}

/* ---- the hub's callback ------------------------------------------------ */

bool imap_notify_record(struct imap_client *c,
			const struct store_change *ch, uint32_t selected)
{
	struct imap_notify *n = c->notify;
	if (n == NULL || !atomic_load(&n->active))
		return false;
	unsigned kind = KIND(ch->kind);
	if (ch->kind == STORE_CHANGE_APPEND || ch->kind == STORE_CHANGE_FLAGS ||
	    ch->kind == STORE_CHANGE_EXPUNGE) {
		if (selected != 0 && ch->mailbox_id == selected) {
			atomic_fetch_or(&n->sel_kinds, kind);
			return false;
		}
	} else if (ch->kind != STORE_CHANGE_MAILBOXES &&
		   ch->kind != STORE_CHANGE_METADATA) {
		return false;
	}
	if (ch->user_id != c->user.id)
		return false;   /* another account's: only its selected mailbox */
	pthread_mutex_lock(&n->lock);
	if (ch->kind == STORE_CHANGE_MAILBOXES) {
		n->mailboxes_changed = true;
	} else if (!n->dirty_all) {
		size_t i;
		for (i = 0; i < n->dirty_count; i++)
			if (n->dirty[i].id == ch->mailbox_id)
				break;
		if (i < n->dirty_count) {
			n->dirty[i].kinds |= kind;
		} else if (n->dirty_count == NOTIFY_DIRTY_MAX) {
			n->dirty_all = true;
		} else {
			if (n->dirty_count == n->dirty_cap) {
				n->dirty_cap = n->dirty_cap ? 2 * n->dirty_cap : 16;
				n->dirty = xrealloc(n->dirty, n->dirty_cap *
							      sizeof(*n->dirty));
			}
			n->dirty[n->dirty_count++] =
				(struct dirty){ch->mailbox_id, kind};
		}
	}
	pthread_mutex_unlock(&n->lock);
	return true;
}

/* ---- matching ------------------------------------------------------------ */

static bool name_in_subtree(const char *root, const char *name)
{
	size_t len = strlen(root);
	return strncmp(root, name, len) == 0 &&
	       (name[len] == '\0' || name[len] == '/');
}

/* The events of mailbox b: those of the first group that matches it. */
static unsigned box_events(const struct imap_notify *n, const struct box *b)
{
	for (size_t i = 0; i < n->group_count; i++) {
		const struct group *g = &n->groups[i];
		bool match = false;
		switch (g->filter) {
		case F_PERSONAL:
			match = true;
			break;
		case F_SUBSCRIBED:
			match = b->subscribed;
			break;
		case F_SUBTREE:
			for (size_t k = 0; k < g->name_count && !match; k++)
				match = name_in_subtree(g->names[k], b->name);
			break;
		case F_MAILBOXES:
			for (size_t k = 0; k < g->name_count && !match; k++)
				match = strcmp(g->names[k], b->name) == 0;
			break;
		}
		if (match)
			return g->events;
	}
	return 0;
}

static int box_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct box *)a)->id, y = ((const struct box *)b)->id;
	return x < y ? -1 : x > y;
}

static struct box *find_box(struct imap_notify *n, uint32_t id)
{
	struct box key = {.id = id};
	return bsearch(&key, n->boxes, n->box_count, sizeof(*n->boxes),
		       box_cmp);
}

/* The mailboxes as they are now, sorted by id. */
static int load_boxes(struct imap_client *c, struct box **boxes_r,
		      size_t *count_r)
{
	struct store_mailbox_info *list;
	size_t count;
	struct store_error err = {0};
	if (store_mailbox_list(c->store_user, &list, &count, &err) < 0) {
		log_warn("imap", c->sid, "NOTIFY: mailbox list: %s", err.msg);
		return -1;
	}
	struct box *boxes = xcalloc(count ? count : 1, sizeof(*boxes));
	for (size_t i = 0; i < count; i++) {
		boxes[i].id = list[i].id;
		boxes[i].name = xstrdup(list[i].name);
		boxes[i].subscribed = list[i].subscribed;
		boxes[i].noselect = list[i].noselect;
		boxes[i].has_children = list[i].has_children;
	}
	store_mailbox_list_free(list, count);
	qsort(boxes, count, sizeof(*boxes), box_cmp);
	*boxes_r = boxes;
	*count_r = count;
	return 0;
}

/* ---- responses ----------------------------------------------------------- */

static void status_line(struct imap_client *c, const char *name,
			struct outq *q)
{
	struct buf *out = &q->b;
	struct store_mailbox_info info;
	struct store_error err = {0};
	if (store_mailbox_status(c->store_user, name, &info, &err) < 0)
		return;   /* gone meanwhile: its LIST tells */
	buf_append_str(out, "* STATUS ");
	imap_client_mailbox_out(c, name, out);
	buf_printf(out, " (MESSAGES %u UIDNEXT %u UIDVALIDITY %u UNSEEN %u",
		   info.messages, info.uidnext, info.uidvalidity, info.unseen);
	/* RFC 5465 5.2-5.4 / RFC 7162 3.1.8: with CONDSTORE on, the
	 * client follows modseqs of every mailbox it watches */
	if (c->enabled & IMAP_ENABLED_CONDSTORE)
		buf_printf(out, " HIGHESTMODSEQ %llu",
			   (unsigned long long)info.highestmodseq);
	buf_append_str(out, ")\r\n");
	outq_end(q);
	store_mailbox_info_free(&info);
}

static void list_line(struct imap_client *c, const struct box *b,
		      const char *attrs, const char *oldname, struct outq *q)
{
	struct buf *out = &q->b;
	buf_printf(out, "* LIST (%s) \"%c\" ", attrs, imap_client_separator(c));
	imap_client_mailbox_out(c, b->name, out);
	if (oldname != NULL) {
		buf_append_str(out, " (\"OLDNAME\" (");
		imap_client_mailbox_out(c, oldname, out);
		buf_append_str(out, "))");
	}
	buf_append_str(out, "\r\n");
	outq_end(q);
}

static const char *box_attrs(const struct box *b, bool subscribed_too,
			     char *tmp, size_t size)
{
	snprintf(tmp, size, "%s%s%s", b->noselect ? "\\Noselect " : "",
		 b->has_children ? "\\HasChildren" : "\\HasNoChildren",
		 subscribed_too && b->subscribed ? " \\Subscribed" : "");
	return tmp;
}

static uint64_t value_hash(const char *v, size_t len)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)v[i]) * 1099511628211ull;
	return h ^ len;
}

/* The entries of a mailbox (NULL: the server) as hashes, sorted. */
static int load_meta(struct imap_client *c, const char *mailbox,
		     struct meta_seen **meta_r, size_t *count_r)
{
	static const char *const roots[] = {"/private", "/shared"};
	struct store_metadata *found;
	size_t count;
	struct store_error err = {0};
	if (store_metadata_get(c->store_user, mailbox, roots, 2, -1, &found,
			       &count, &err) < 0)
		return -1;
	struct meta_seen *m = xcalloc(count ? count : 1, sizeof(*m));
	for (size_t i = 0; i < count; i++) {
		m[i].name = xstrdup(found[i].name);
		m[i].hash = value_hash(found[i].value, found[i].value_len);
	}
	store_metadata_free(found, count);
	*meta_r = m;
	*count_r = count;
	return 0;
}

/* "* METADATA mailbox entry ..." (RFC 5464 4.4.2) for what changed
 * since *known; *known becomes the current state. */
static void meta_changes(struct imap_client *c, const char *mailbox,
			 struct meta_seen **known, size_t *known_count,
			 struct outq *q)
{
	struct buf *out = &q->b;
	struct meta_seen *now;
	size_t now_count;
	if (load_meta(c, mailbox, &now, &now_count) < 0)
		return;
	struct buf names;
	buf_init(&names, 0);
	size_t i = 0, k = 0;
	while (i < *known_count || k < now_count) {
		int cmp = i == *known_count ? 1 : k == now_count ? -1
			  : strcmp((*known)[i].name, now[k].name);
		const char *changed = NULL;
		if (cmp < 0) {
			changed = (*known)[i++].name;            /* removed */
		} else if (cmp > 0) {
			changed = now[k++].name;                 /* added */
		} else {
			if ((*known)[i].hash != now[k].hash)
				changed = now[k].name;
			i++;
			k++;
		}
		if (changed != NULL) {
			buf_append_char(&names, ' ');
			imap_append_astring(&names, changed, false);
		}
	}
	if (names.len > 0) {
		buf_append_str(out, "* METADATA ");
		if (mailbox == NULL)
			buf_append_str(out, "\"\"");
		else
			imap_client_mailbox_out(c, mailbox, out);
		buf_append(out, names.data, names.len);
		buf_append_str(out, "\r\n");
		outq_end(q);
	}
	buf_free(&names);
	free_meta(*known, *known_count);
	*known = now;
	*known_count = now_count;
}

/* The state the client is told of from now on, for a mailbox whose
 * METADATA changes it watches. */
static void meta_learn(struct imap_client *c, struct box *b)
{
	if (b->meta_known || b->noselect)
		return;
	if (load_meta(c, b->name, &b->meta, &b->meta_count) == 0)
		b->meta_known = true;
}

static bool is_selected(const struct imap_client *c, const struct box *b)
{
	return c->view != NULL && c->sel_user == NULL &&
	       atomic_load(&((struct imap_client *)c)->selected_id) == b->id;
}

/* LIST responses for created, deleted, renamed mailboxes and changed
 * subscriptions (MailboxName, SubscriptionChange); the new list is kept. */
static void mailboxes_diff(struct imap_client *c, struct outq *out)
{
	struct imap_notify *n = c->notify;
	struct box *now;
	size_t now_count;
	if (load_boxes(c, &now, &now_count) < 0)
		return;
	char tmp[96];
	size_t i = 0, k = 0;
	while (i < n->box_count || k < now_count) {
		struct box *old = i < n->box_count ? &n->boxes[i] : NULL;
		struct box *cur = k < now_count ? &now[k] : NULL;
		if (cur == NULL || (old != NULL && old->id < cur->id)) {
			/* deleted */
			if (box_events(n, old) & EV_NAME)
				list_line(c, old, "\\NonExistent", NULL, out);
			i++;
			continue;
		}
		if (old == NULL || cur->id < old->id) {
			/* created */
			unsigned ev = box_events(n, cur);
			if (ev & EV_NAME)
				list_line(c, cur, box_attrs(cur, false, tmp,
							    sizeof(tmp)), NULL, out);
			if (ev & (EV_MAILBOX_META))
				meta_learn(c, cur);
			k++;
			continue;
		}
		/* the same mailbox */
		unsigned ev_old = box_events(n, old), ev = box_events(n, cur);
		if (strcmp(old->name, cur->name) != 0) {
			if ((ev | ev_old) & EV_NAME)
				list_line(c, cur, box_attrs(cur, false, tmp,
							    sizeof(tmp)),
					  old->name, out);
		} else if (old->noselect != cur->noselect && (ev & EV_NAME)) {
			list_line(c, cur, box_attrs(cur, false, tmp, sizeof(tmp)),
				  NULL, out);
		}
		if (old->subscribed != cur->subscribed &&
		    ((ev | ev_old) & EV_SUBSCRIPTION))
			list_line(c, cur, cur->subscribed ? "\\Subscribed" : "",
				  NULL, out);
		/* keep what is known of its entries */
		cur->meta = old->meta;
		cur->meta_count = old->meta_count;
		cur->meta_known = old->meta_known;
		old->meta = NULL;
		old->meta_count = 0;
		if (ev & EV_MAILBOX_META)
			meta_learn(c, cur);
		i++;
		k++;
	}
	free_boxes(n);
	n->boxes = now;
	n->box_count = now_count;
}

/* Whether extra bytes more would let the output pile up past the limit:
 * then the session says NOTIFICATIONOVERFLOW and NOTIFY is off (RFC 5465
 * 5.8: as after NOTIFY NONE). */
static bool overflow(struct imap_client *c, size_t extra)
{
	size_t pending = net_conn_output_pending(c->conn);
	if (pending + extra <= NOTIFY_OUTPUT_MAX)
		return false;
	static const char line[] = "* OK [NOTIFICATIONOVERFLOW] The "
		"client reads too slowly: NOTIFY is off\r\n";
	log_info("imap", c->sid, "NOTIFY overflow (%zu bytes queued)", pending);
	imap_notify_off(c);
	imap_client_write(c, line, sizeof(line) - 1);
	return true;
}

/* Writes the responses in pieces of about 16 KiB while the client takes
 * them. */
static void emit(struct imap_client *c, struct outq *q)
{
	size_t off = 0, i = 0;
	while (i < q->count) {
		size_t end = q->ends[i++];
		while (i < q->count && q->ends[i] - off <= 16384)
			end = q->ends[i++];
		if (overflow(c, end - off))
			return;
		if (imap_client_write(c, q->b.data + off, end - off) < 0)
			return;
		off = end;
	}
}

void imap_notify_flush(struct imap_client *c)
{
	if (!active(c) || c->store_user == NULL)
		return;
	struct imap_notify *n = c->notify;
	pthread_mutex_lock(&n->lock);
	struct dirty *dirty = n->dirty;
	size_t dirty_count = n->dirty_count;
	bool all = n->dirty_all, boxes = n->mailboxes_changed;
	n->dirty = NULL;
	n->dirty_count = n->dirty_cap = 0;
	n->dirty_all = n->mailboxes_changed = false;
	pthread_mutex_unlock(&n->lock);

	struct outq out;
	outq_init(&out);
	if (boxes)
		mailboxes_diff(c, &out);
	for (size_t i = 0; i < (all ? n->box_count + 1 : dirty_count); i++) {
		uint32_t id = all ? (i < n->box_count ? n->boxes[i].id : 0)
				  : dirty[i].id;
		unsigned kinds = all ? ~0u : dirty[i].kinds;
		if (id == 0) {
			/* the server's entries */
			if ((kinds & KIND(STORE_CHANGE_METADATA)) &&
			    n->server_meta_known)
				meta_changes(c, NULL, &n->server_meta,
					     &n->server_meta_count, &out);
			continue;
		}
		struct box *b = find_box(n, id);
		if (b == NULL || b->noselect || is_selected(c, b))
			continue;
		unsigned ev = box_events(n, b);
		if (((kinds & KIND(STORE_CHANGE_APPEND)) && (ev & EV_NEW)) ||
		    ((kinds & KIND(STORE_CHANGE_EXPUNGE)) && (ev & EV_EXPUNGE)) ||
		    ((kinds & KIND(STORE_CHANGE_FLAGS)) && (ev & EV_FLAGS)))
			status_line(c, b->name, &out);
		if ((kinds & KIND(STORE_CHANGE_METADATA)) &&
		    (ev & EV_MAILBOX_META) && b->meta_known)
			meta_changes(c, b->name, &b->meta, &b->meta_count, &out);
	}
	free(dirty);
	emit(c, &out);
	outq_free(&out);
}

bool imap_notify_wants_new(const struct imap_client *c)
{
	return active(c) && c->notify->selected_set &&
	       c->notify->new_plan != NULL;
}

void imap_notify_new_messages(struct imap_client *c, uint32_t last_uid)
{
	if (!imap_notify_wants_new(c) || c->view == NULL)
		return;
	uint32_t count = store_view_count(c->view);
	if (count == 0 || store_view_uid(c->view, count) <= last_uid)
		return;
	if (overflow(c, 0))
		return;
	struct store_uid_range r = {last_uid + 1, UINT32_MAX};
	uint32_t *seen = NULL;
	size_t seen_count = 0;
	struct store_error err = {0};
	enum imap_fetch_status st = imap_fetch_run(c->notify->new_plan, c, &r, 1,
						   NULL, 0, &seen, &seen_count,
						   &err);
	if (st == IMAP_FETCH_STORE_ERROR)
		log_warn("imap", c->sid, "NOTIFY MessageNew FETCH: %s", err.msg);
	free(seen);
}

bool imap_notify_push(struct imap_client *c, bool idling)
{
	if (!active(c))
		return false;
	struct imap_notify *n = c->notify;
	if (!idling && c->view != NULL && n->selected_set &&
	    n->selected_events != 0) {
		unsigned k = atomic_exchange(&n->sel_kinds, 0);
		bool want = (k & (KIND(STORE_CHANGE_APPEND) |
				  KIND(STORE_CHANGE_EXPUNGE))) ||
			    ((k & KIND(STORE_CHANGE_FLAGS)) &&
			     (n->selected_events & EV_FLAGS));
		if (want && overflow(c, 0))
			return true;
		/* a flag change without FlagChange is told at the next
		 * command's end, as without NOTIFY */
		if (want)
			imap_client_sync(c, n->selected_immediate);
	}
	imap_notify_flush(c);
	return true;
}

/* ---- the command --------------------------------------------------------- */

static int parse_events(const struct imap_arg *a, bool selected,
			struct imap_notify *n, unsigned *events_r,
			unsigned *unsupported, const char **error_r)
{
	*events_r = 0;
	if (imap_arg_atom_eq(a, "NONE"))
		return 0;
	if (a->type != IMAP_ARG_LIST || a->list_count == 0) {
		*error_r = "[CLIENTBUG] Events must be NONE or a list";
		return -1;
	}
	for (const struct imap_arg *e = a->list; e->type != IMAP_ARG_EOL; e++) {
		size_t k;
		for (k = 0; k < sizeof(event_names) / sizeof(event_names[0]); k++)
			if (imap_arg_atom_eq(e, event_names[k].name))
				break;
		if (k == sizeof(event_names) / sizeof(event_names[0])) {
			*error_r = "[CLIENTBUG] Unknown NOTIFY event";
			return -1;
		}
		unsigned bit = event_names[k].bit;
		*events_r |= bit;
		if (!(bit & EV_SUPPORTED))
			*unsupported |= bit;
		if (bit == EV_NEW && e[1].type == IMAP_ARG_LIST) {
			e++;
			if (!selected) {
				*error_r = "[CLIENTBUG] MessageNew fetch "
					   "attributes only for the selected mailbox";
				return -1;
			}
			static const struct imap_arg eol = {.type = IMAP_ARG_EOL};
			struct imap_fetch_params params = {.uid = true};
			const char *err;
			imap_fetch_plan_free(&n->new_plan);
			if (imap_fetch_parse(e, &eol, &params, &n->new_plan,
					     &err) < 0) {
				*error_r = err;
				return -1;
			}
			if (imap_fetch_plan_sets_seen(n->new_plan)) {
				*error_r = "[CLIENTBUG] MessageNew fetch "
					   "attributes may not set \\Seen (use BODY.PEEK)";
				return -1;
			}
		}
	}
	unsigned ne = *events_r & (EV_NEW | EV_EXPUNGE);
	if (ne != 0 && ne != (EV_NEW | EV_EXPUNGE)) {
		*error_r = "[CLIENTBUG] MessageNew and MessageExpunge go together";
		return -1;
	}
	if ((*events_r & (EV_FLAGS | EV_ANNOTATION)) && ne == 0) {
		*error_r = "[CLIENTBUG] FlagChange and AnnotationChange need "
			   "MessageNew and MessageExpunge";
		return -1;
	}
	return 0;
}

/* A personal-namespace name as a store name; NULL for a name in another
 * namespace or an invalid one (watched for nothing). */
static char *watch_name(struct imap_client *c, const struct imap_arg *a)
{
	struct imap_mbref ref;
	const char *error;
	if (imap_mbref_resolve(c, a->str.ptr, a->str.len, &ref, &error) < 0)
		return NULL;
	char *name = ref.shared ? NULL : ref.name;
	if (!ref.shared)
		ref.name = NULL;
	imap_mbref_free(&ref);
	return name;
}

static int parse_names(struct imap_client *c, const struct imap_arg *a,
		       struct group *g, size_t *total, const char **error_r)
{
	const struct imap_arg *list = a;
	size_t count = 1;
	if (a->type == IMAP_ARG_LIST) {
		list = a->list;
		count = a->list_count;
	}
	if (count == 0) {
		*error_r = "[CLIENTBUG] Mailbox list is empty";
		return -1;
	}
	*total += count;
	if (*total > NOTIFY_NAMES_MAX) {
		*error_r = "[NOTIFICATIONOVERFLOW] Too many mailbox names";
		return 1;
	}
	g->names = xcalloc(count, sizeof(*g->names));
	for (size_t i = 0; i < count; i++) {
		if (!imap_arg_is_astring(&list[i])) {
			*error_r = "[CLIENTBUG] Mailbox name expected";
			return -1;
		}
		char *name = watch_name(c, &list[i]);
		if (name != NULL)
			g->names[g->name_count++] = name;
	}
	return 0;
}

static void initial_status(struct imap_client *c)
{
	struct imap_notify *n = c->notify;
	struct outq out;
	outq_init(&out);
	for (size_t i = 0; i < n->box_count; i++) {
		const struct box *b = &n->boxes[i];
		if (b->noselect || is_selected(c, b) ||
		    !(box_events(n, b) & (EV_NEW | EV_EXPUNGE | EV_FLAGS)))
			continue;
		status_line(c, b->name, &out);
		if (out.b.len > 16384) {
			imap_client_write(c, out.b.data, out.b.len);
			buf_reset(&out.b);
			out.count = 0;
		}
	}
	imap_client_write(c, out.b.data, out.b.len);
	outq_free(&out);
}

void cmd_notify(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	struct imap_notify *n = c->notify;
	const struct imap_arg *a = cmd->args;
	if (n == NULL) {
		imap_cmd_no(cmd, "[UNAVAILABLE] NOTIFY is not available");
		return;
	}
	if (imap_arg_atom_eq(a, "NONE") && a[1].type == IMAP_ARG_EOL) {
		clear_config(n);
		imap_cmd_ok(cmd, "NOTIFY completed");
		return;
	}
	if (!imap_arg_atom_eq(a, "SET")) {
		imap_cmd_bad(cmd, "[CLIENTBUG] NOTIFY SET or NOTIFY NONE");
		return;
	}
	a++;
	bool status = false;
	if (imap_arg_atom_eq(a, "STATUS")) {
		status = true;
		a++;
	}
	if (a->type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] NOTIFY SET needs event groups");
		return;
	}
	clear_config(n);
	const char *error = NULL;
	unsigned unsupported = 0;
	size_t total = 0;
	int r = 0;
	struct group *groups = xcalloc(imap_args_count(a) + 1, sizeof(*groups));
	size_t group_count = 0;
	for (; a->type != IMAP_ARG_EOL && r == 0; a++) {
		const struct imap_arg *g = a->list;
		if (a->type != IMAP_ARG_LIST || a->list_count < 2 ||
		    g[0].type != IMAP_ARG_ATOM) {
			error = "[CLIENTBUG] An event group is (filter events)";
			r = -1;
			break;
		}
		bool sel = imap_arg_atom_eq(&g[0], "selected"),
		     sel_delayed = imap_arg_atom_eq(&g[0], "selected-delayed");
		if (sel || sel_delayed) {
			if (n->selected_set) {
				error = "[CLIENTBUG] The selected mailbox in two groups";
				r = -1;
				break;
			}
			if (g[2].type != IMAP_ARG_EOL) {
				error = "[CLIENTBUG] An event group is (filter events)";
				r = -1;
				break;
			}
			n->selected_set = true;
			n->selected_immediate = sel;
			r = parse_events(&g[1], true, n, &n->selected_events,
					 &unsupported, &error);
			continue;
		}
		struct group *grp = &groups[group_count++];
		const struct imap_arg *ev = &g[1];
		if (imap_arg_atom_eq(&g[0], "personal") ||
		    imap_arg_atom_eq(&g[0], "inboxes")) {
			grp->filter = F_PERSONAL;
		} else if (imap_arg_atom_eq(&g[0], "subscribed")) {
			grp->filter = F_SUBSCRIBED;
		} else if (imap_arg_atom_eq(&g[0], "subtree") ||
			   imap_arg_atom_eq(&g[0], "mailboxes")) {
			grp->filter = imap_arg_atom_eq(&g[0], "subtree")
					      ? F_SUBTREE : F_MAILBOXES;
			ev = &g[2];
			if (a->list_count != 3) {
				error = "[CLIENTBUG] subtree and mailboxes need "
					"names and events";
				r = -1;
				break;
			}
			r = parse_names(c, &g[1], grp, &total, &error);
			if (r != 0)
				break;
		} else {
			error = "[CLIENTBUG] Unknown mailbox filter";
			r = -1;
			break;
		}
		if (ev[1].type != IMAP_ARG_EOL) {
			error = "[CLIENTBUG] An event group is (filter events)";
			r = -1;
			break;
		}
		r = parse_events(ev, false, n, &grp->events, &unsupported,
				 &error);
	}
	if (r == 0 && unsupported != 0) {
		free_groups(groups, group_count);
		clear_config(n);
		/* RFC 5465 5.9: the events this server does support */
		imap_cmd_no(cmd, "[BADEVENT (MessageNew MessageExpunge "
			    "FlagChange MailboxName SubscriptionChange "
			    "MailboxMetadataChange ServerMetadataChange)] "
			    "AnnotationChange is not supported");
		return;
	}
	if (r != 0) {
		free_groups(groups, group_count);
		clear_config(n);
		if (r > 0)
			imap_cmd_no(cmd, "%s", error);
		else
			imap_cmd_bad(cmd, "%s", error);
		return;
	}
	n->groups = groups;
	n->group_count = group_count;
	if (load_boxes(c, &n->boxes, &n->box_count) < 0) {
		clear_config(n);
		imap_cmd_no(cmd, "[SERVERBUG] Cannot list the mailboxes "
			    "(session %s)", c->sid);
		return;
	}
	for (size_t i = 0; i < n->box_count; i++)
		if (box_events(n, &n->boxes[i]) & EV_MAILBOX_META)
			meta_learn(c, &n->boxes[i]);
	bool server_meta = false;
	for (size_t i = 0; i < group_count; i++)
		server_meta |= (groups[i].events & EV_SERVER_META) != 0;
	if (server_meta &&
	    load_meta(c, NULL, &n->server_meta, &n->server_meta_count) == 0)
		n->server_meta_known = true;
	atomic_store(&n->active, true);
	if (status)
		initial_status(c);
	imap_cmd_ok(cmd, "NOTIFY completed");
}
