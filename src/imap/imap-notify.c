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
#include "imap-ns.h"
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
/* an owner's mailboxes or rights changed, or it was deleted: list again */
#define RELIST (KIND(STORE_CHANGE_MAILBOXES) | KIND(STORE_CHANGE_ACL))

enum filter {
	F_PERSONAL,     /* also "inboxes" (see imap-notify.h) */
	F_SUBSCRIBED,
	F_SUBTREE,
	F_MAILBOXES,
};

struct group {
	enum filter filter;
	char **names;             /* personal store names (subtree, mailboxes) */
	size_t name_count;
	char **ns_names;          /* names in the other users' / shared
				     namespaces, as imap_ns_format gives */
	size_t ns_name_count;
	unsigned events;          /* 0: NONE */
};

struct dirty {
	int64_t owner;
	uint32_t id;              /* mailbox id; 0: the server's metadata
				     (own), the owner's list (another's) */
	unsigned kinds;
};

/* A metadata entry as last told: its name and a hash of its value. */
struct meta_seen {
	char *name;
	uint64_t hash;
};

struct box {
	uint32_t id;
	char *name;               /* own: store name; another's: the name
				     in its namespace */
	char *store_name;         /* another's: the owner's store name */
	bool subscribed, noselect, has_children;
	/* the entries the client knows of (MailboxMetadataChange) */
	struct meta_seen *meta;
	size_t meta_count;
	bool meta_known;
};

/* An account whose mailboxes are watched: [0] is the session's own;
 * the others' mailboxes are those the user holds l on, reached through
 * a viewer's handle opened for each look (a handle kept open would keep
 * `loftctl user del` from removing the account). */
struct owner {
	int64_t id;
	char *address;            /* others' */
	enum imap_ns_kind kind;   /* IMAP_NS_PERSONAL for [0] */
	struct store_subscription *sub;   /* others': store_watch */
	struct box *boxes;        /* sorted by id */
	size_t box_count;
	bool keep;                /* owners_sync's mark */
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
	int64_t *watch_ids;       /* the other owners watched */
	size_t watch_count;

	/* ---- the session's worker only ---- */
	struct group *groups;
	size_t group_count;
	bool selected_set, selected_immediate;
	unsigned selected_events;
	struct imap_fetch_plan *new_plan;   /* MessageNew (fetch-atts) */
	struct owner **owners;    /* [0]: the user's own mail */
	size_t owner_count;
	/* owners named by subtree / mailboxes; every one granting
	 * something under a namespace's root */
	int64_t *named_owners;
	size_t named_count;
	bool all_other, all_shared;
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

static void free_box_array(struct box *boxes, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(boxes[i].name);
		free(boxes[i].store_name);
		free_meta(boxes[i].meta, boxes[i].meta_count);
	}
	free(boxes);
}

static void free_owner(struct owner *o)
{
	/* never under n->lock: unsubscribing waits for a running callback,
	 * which may be waiting for that lock */
	if (o->sub != NULL)
		store_unsubscribe(&o->sub);
	free_box_array(o->boxes, o->box_count);
	free(o->address);
	free(o);
}

static void free_strings(char **v, size_t count)
{
	for (size_t k = 0; k < count; k++)
		free(v[k]);
	free(v);
}

static void free_groups(struct group *g, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free_strings(g[i].names, g[i].name_count);
		free_strings(g[i].ns_names, g[i].ns_name_count);
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
	for (size_t i = 0; i < n->owner_count; i++)
		free_owner(n->owners[i]);
	free(n->owners);
	n->owners = NULL;
	n->owner_count = 0;
	free(n->named_owners);
	n->named_owners = NULL;
	n->named_count = 0;
	n->all_other = n->all_shared = false;
	free_meta(n->server_meta, n->server_meta_count);
	n->server_meta = NULL;
	n->server_meta_count = 0;
	n->server_meta_known = false;
	pthread_mutex_lock(&n->lock);
	n->dirty_count = 0;
	n->dirty_all = n->mailboxes_changed = false;
	free(n->watch_ids);
	n->watch_ids = NULL;
	n->watch_count = 0;
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

static bool watched(const struct imap_notify *n, int64_t owner)
{
	for (size_t i = 0; i < n->watch_count; i++)
		if (n->watch_ids[i] == owner)
			return true;
	return false;
}

bool imap_notify_record(struct imap_client *c,
			const struct store_change *ch, uint32_t selected)
{
	struct imap_notify *n = c->notify;
	if (n == NULL || !atomic_load(&n->active))
		return false;
	unsigned kind = KIND(ch->kind);
	bool own = ch->user_id == c->user.id;
	if (ch->kind == STORE_CHANGE_APPEND || ch->kind == STORE_CHANGE_FLAGS ||
	    ch->kind == STORE_CHANGE_EXPUNGE) {
		if (selected != 0 && ch->mailbox_id == selected &&
		    ch->user_id == atomic_load(&c->selected_owner)) {
			atomic_fetch_or(&n->sel_kinds, kind);
			return false;
		}
	} else if (ch->kind != STORE_CHANGE_MAILBOXES &&
		   ch->kind != STORE_CHANGE_METADATA &&
		   (ch->kind != STORE_CHANGE_ACL || own)) {
		return false;
	}
	uint32_t id = ch->mailbox_id;
	if (!own && (kind & RELIST))
		id = 0;   /* the owner's list, looked at again */
	pthread_mutex_lock(&n->lock);
	if (!own && !watched(n, ch->user_id)) {
		pthread_mutex_unlock(&n->lock);
		return false;
	}
	if (own && ch->kind == STORE_CHANGE_MAILBOXES) {
		n->mailboxes_changed = true;
	} else if (!n->dirty_all) {
		size_t i;
		for (i = 0; i < n->dirty_count; i++)
			if (n->dirty[i].id == id &&
			    n->dirty[i].owner == ch->user_id)
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
				(struct dirty){ch->user_id, id, kind};
		}
	}
	pthread_mutex_unlock(&n->lock);
	return true;
}

/* A watched owner's channel: its logout (loftctl kick, user del) is
 * not this session's, but the owner may be gone: its list is looked at
 * again. */
static void watch_changed(void *ctx, const struct store_change *ch)
{
	struct store_change x = *ch;
	if (x.kind == STORE_CHANGE_LOGOUT) {
		x.kind = STORE_CHANGE_ACL;
		x.mailbox_id = 0;
	}
	imap_client_store_changed(ctx, &x);
}

/* ---- matching ------------------------------------------------------------ */

static bool name_in_subtree(const char *root, const char *name)
{
	size_t len = strlen(root);
	return strncmp(root, name, len) == 0 &&
	       (name[len] == '\0' || name[len] == '/');
}

static bool names_match(char **names, size_t count, bool subtree,
			const char *name)
{
	for (size_t k = 0; k < count; k++)
		if (subtree ? name_in_subtree(names[k], name)
			    : strcmp(names[k], name) == 0)
			return true;
	return false;
}

/* The events of mailbox b of owner o: those of the first group that
 * matches it. personal (and inboxes) are the user's own mail only
 * (RFC 5465 6). */
static unsigned box_events(const struct imap_notify *n, const struct owner *o,
			   const struct box *b)
{
	bool own = o->kind == IMAP_NS_PERSONAL;
	for (size_t i = 0; i < n->group_count; i++) {
		const struct group *g = &n->groups[i];
		bool match = false;
		switch (g->filter) {
		case F_PERSONAL:
			match = own;
			break;
		case F_SUBSCRIBED:
			match = b->subscribed;
			break;
		case F_SUBTREE:
		case F_MAILBOXES:
			match = own ? names_match(g->names, g->name_count,
						  g->filter == F_SUBTREE, b->name)
				    : names_match(g->ns_names, g->ns_name_count,
						  g->filter == F_SUBTREE, b->name);
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

static struct box *find_box(struct owner *o, uint32_t id)
{
	if (o->box_count == 0)
		return NULL;
	struct box key = {.id = id};
	return bsearch(&key, o->boxes, o->box_count, sizeof(*o->boxes),
		       box_cmp);
}

static struct owner *find_owner(struct imap_notify *n, int64_t id)
{
	for (size_t i = 0; i < n->owner_count; i++)
		if (n->owners[i]->id == id)
			return n->owners[i];
	return NULL;
}

static struct imap_ns_settings ns_settings(const struct imap_client *c)
{
	struct imap_ns_settings ns = {c->server->set.other_namespace,
				      c->server->set.shared_namespace};
	return ns;
}

static const char *user_domain(const struct imap_client *c)
{
	const char *at = strrchr(c->user.address, '@');
	return at != NULL ? at + 1 : "";
}

/* The handle an owner's mail is reached through: the session's own, or
 * a viewer's whose every call the store checks. NULL: cannot be opened
 * now (*gone_r: the owner no longer exists). */
static struct store_user *owner_open(struct imap_client *c,
				     const struct owner *o, bool *gone_r)
{
	*gone_r = false;
	struct store_user *u;
	if (o->kind == IMAP_NS_PERSONAL) {
		store_user_ref(c->store_user);
		return c->store_user;
	}
	if (imap_acl_open_owner(c, o->id, o->address, &u) == 0)
		return u;
	struct auth_user a;
	*gone_r = c->server->auth != NULL &&
		  auth_lookup_id(c->server->auth, o->id, &a) == 0;
	return NULL;
}

static bool is_subscription(char **subs, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(subs[i], name) == 0)
			return true;
	return false;
}

/* The mailboxes of o as they are now (those the user may see), sorted
 * by id; subs: the user's subscriptions (others' mailboxes are
 * subscribed under their namespace names). */
static int load_boxes(struct imap_client *c, const struct owner *o,
		      struct store_user *u, char **subs, size_t sub_count,
		      struct box **boxes_r, size_t *count_r)
{
	struct store_mailbox_info *list;
	size_t count;
	struct store_error err = {0};
	if (store_mailbox_list(u, &list, &count, &err) < 0) {
		if (o->kind == IMAP_NS_PERSONAL)
			log_warn("imap", c->sid, "NOTIFY: mailbox list: %s",
				 err.msg);
		return -1;
	}
	struct imap_ns_settings ns = ns_settings(c);
	struct box *boxes = xcalloc(count ? count : 1, sizeof(*boxes));
	for (size_t i = 0; i < count; i++) {
		struct box *b = &boxes[i];
		b->id = list[i].id;
		b->noselect = list[i].noselect;
		b->has_children = list[i].has_children;
		if (o->kind == IMAP_NS_PERSONAL) {
			b->name = xstrdup(list[i].name);
			b->subscribed = list[i].subscribed;
			continue;
		}
		b->store_name = xstrdup(list[i].name);
		b->name = imap_ns_format(&ns, user_domain(c), o->kind,
					 o->address, list[i].name);
		b->subscribed = is_subscription(subs, sub_count, b->name);
		/* a shared address's INBOX holds its folders (as LIST) */
		if (o->kind == IMAP_NS_SHARED && count > 1 &&
		    strcmp(list[i].name, "INBOX") == 0)
			b->has_children = true;
	}
	store_mailbox_list_free(list, count);
	qsort(boxes, count, sizeof(*boxes), box_cmp);
	*boxes_r = boxes;
	*count_r = count;
	return 0;
}

/* ---- responses ----------------------------------------------------------- */

/* A mailbox name as the client sees it. */
static void box_name_out(struct imap_client *c, const struct owner *o,
			 const char *name, struct buf *out)
{
	if (o->kind == IMAP_NS_PERSONAL)
		imap_client_mailbox_out(c, name, out);
	else
		imap_client_ns_out(c, name, out);
}

static void status_line(struct imap_client *c, const struct owner *o,
			struct store_user *u, const struct box *b,
			struct outq *q)
{
	struct buf *out = &q->b;
	struct store_mailbox_info info;
	struct store_error err = {0};
	/* another's: needs r (the store checks), or nothing is told */
	if (store_mailbox_status(u, b->store_name ? b->store_name : b->name,
				 &info, &err) < 0)
		return;   /* gone meanwhile (its LIST tells), or no r */
	buf_append_str(out, "* STATUS ");
	box_name_out(c, o, b->name, out);
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

static void list_line(struct imap_client *c, const struct owner *o,
		      const struct box *b, const char *attrs,
		      const char *oldname, struct outq *q)
{
	struct buf *out = &q->b;
	buf_printf(out, "* LIST (%s) \"%c\" ", attrs,
		   o->kind == IMAP_NS_PERSONAL ? imap_client_separator(c) : '/');
	box_name_out(c, o, b->name, out);
	if (oldname != NULL) {
		buf_append_str(out, " (\"OLDNAME\" (");
		box_name_out(c, o, oldname, out);
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

/* The entries of a mailbox (NULL: the server) as hashes, sorted. A
 * viewer sees the /shared entries and its own /private ones, and needs
 * l and one of r s w i p (the store checks: RFC 5464 3.3). */
static int load_meta(struct store_user *u, const char *mailbox,
		     struct meta_seen **meta_r, size_t *count_r)
{
	static const char *const roots[] = {"/private", "/shared"};
	struct store_metadata *found;
	size_t count;
	struct store_error err = {0};
	if (store_metadata_get(u, mailbox, roots, 2, -1, &found, &count,
			       &err) < 0)
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
 * since *known; *known becomes the current state. o and b NULL: the
 * server's entries. */
static void meta_changes(struct imap_client *c, const struct owner *o,
			 struct store_user *u, const struct box *b,
			 struct meta_seen **known, size_t *known_count,
			 struct outq *q)
{
	struct buf *out = &q->b;
	struct meta_seen *now;
	size_t now_count;
	if (load_meta(u, b == NULL ? NULL : b->store_name ? b->store_name
							   : b->name,
		      &now, &now_count) < 0)
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
		if (b == NULL)
			buf_append_str(out, "\"\"");
		else
			box_name_out(c, o, b->name, out);
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
static void meta_learn(struct store_user *u, struct box *b)
{
	if (b->meta_known || b->noselect)
		return;
	if (load_meta(u, b->store_name ? b->store_name : b->name, &b->meta,
		      &b->meta_count) == 0)
		b->meta_known = true;
}

static bool is_selected(const struct imap_client *c, const struct owner *o,
			const struct box *b)
{
	return c->view != NULL &&
	       store_user_id(imap_client_sel_user((struct imap_client *)c)) ==
		       o->id &&
	       atomic_load(&((struct imap_client *)c)->selected_id) == b->id;
}

/* LIST responses for o's created, deleted, renamed mailboxes and
 * changed subscriptions (MailboxName, SubscriptionChange); the new list
 * is kept. For another's, a mailbox whose l was granted counts as
 * created, one whose l was revoked (or whose owner went) as deleted
 * (RFC 5465 5.4). now NULL: o has no mailboxes the user may see. */
static void boxes_diff(struct imap_client *c, struct owner *o,
		       struct store_user *u, struct box *now, size_t now_count,
		       struct outq *out)
{
	struct imap_notify *n = c->notify;
	char tmp[96];
	size_t i = 0, k = 0;
	while (i < o->box_count || k < now_count) {
		struct box *old = i < o->box_count ? &o->boxes[i] : NULL;
		struct box *cur = k < now_count ? &now[k] : NULL;
		if (cur == NULL || (old != NULL && old->id < cur->id)) {
			/* deleted */
			if (box_events(n, o, old) & EV_NAME)
				list_line(c, o, old, "\\NonExistent", NULL, out);
			i++;
			continue;
		}
		if (old == NULL || cur->id < old->id) {
			/* created */
			unsigned ev = box_events(n, o, cur);
			if (ev & EV_NAME)
				list_line(c, o, cur, box_attrs(cur, false, tmp,
							       sizeof(tmp)),
					  NULL, out);
			if ((ev & EV_MAILBOX_META) && u != NULL)
				meta_learn(u, cur);
			k++;
			continue;
		}
		/* the same mailbox */
		unsigned ev_old = box_events(n, o, old), ev = box_events(n, o, cur);
		if (strcmp(old->name, cur->name) != 0) {
			if ((ev | ev_old) & EV_NAME)
				list_line(c, o, cur, box_attrs(cur, false, tmp,
							       sizeof(tmp)),
					  old->name, out);
		} else if (old->noselect != cur->noselect && (ev & EV_NAME)) {
			list_line(c, o, cur, box_attrs(cur, false, tmp,
						       sizeof(tmp)), NULL, out);
		}
		if (old->subscribed != cur->subscribed &&
		    ((ev | ev_old) & EV_SUBSCRIPTION))
			list_line(c, o, cur, cur->subscribed ? "\\Subscribed" : "",
				  NULL, out);
		/* keep what is known of its entries */
		cur->meta = old->meta;
		cur->meta_count = old->meta_count;
		cur->meta_known = old->meta_known;
		old->meta = NULL;
		old->meta_count = 0;
		if ((ev & EV_MAILBOX_META) && u != NULL)
			meta_learn(u, cur);
		i++;
		k++;
	}
	free_box_array(o->boxes, o->box_count);
	o->boxes = now;
	o->box_count = now_count;
}

/* Looks at o's list again; -1 if it cannot be read now. */
static int relist(struct imap_client *c, struct owner *o,
		  struct store_user *u, char **subs, size_t sub_count,
		  struct outq *out)
{
	struct box *now = NULL;
	size_t now_count = 0;
	if (u != NULL && load_boxes(c, o, u, subs, sub_count, &now,
				    &now_count) < 0)
		return -1;
	boxes_diff(c, o, u, now, now_count, out);
	return 0;
}

/* For the subscribed filter: the owners of the other namespaces' names
 * the user subscribed to. */
static bool wants_subscribed(const struct imap_notify *n)
{
	for (size_t i = 0; i < n->group_count; i++)
		if (n->groups[i].filter == F_SUBSCRIBED)
			return true;
	return false;
}

static void add_id(int64_t **ids, size_t *count, int64_t id)
{
	for (size_t i = 0; i < *count; i++)
		if ((*ids)[i] == id)
			return;
	*ids = xrealloc(*ids, (*count + 1) * sizeof(**ids));
	(*ids)[(*count)++] = id;
}

/* The owner of an other users' or shared namespace name: its id and
 * kind; 0: none (personal, unknown, or the namespace's root). */
static int64_t ns_owner(struct imap_client *c, const char *name,
			enum imap_ns_kind *kind_r, bool *root_r)
{
	struct imap_ns_settings ns = ns_settings(c);
	struct imap_ns_name nn;
	const char *error;
	*root_r = false;
	if (imap_ns_parse(&ns, user_domain(c), name, strlen(name), &nn,
			  &error) != 1)
		return 0;
	*kind_r = nn.kind;
	int64_t id = 0;
	struct auth_user a;
	if (nn.owner == NULL)
		*root_r = true;
	else if (c->server->auth != NULL &&
		 auth_lookup(c->server->auth, nn.owner, &a) == 1 &&
		 a.id != c->user.id &&
		 (auth_user_is_shared(c->server->auth, a.id) == 1) ==
			 (nn.kind == IMAP_NS_SHARED))
		id = a.id;
	imap_ns_name_free(&nn);
	return id;
}

/* Makes the watched owners those the groups name now: a new one is
 * listed (quietly: it is not a change), one no longer named is
 * dropped. Not under n->lock. */
static void owners_sync(struct imap_client *c, char **subs, size_t sub_count)
{
	struct imap_notify *n = c->notify;
	if (c->server->auth == NULL)
		return;
	int64_t *want = NULL;
	size_t want_count = 0;
	for (size_t i = 0; i < n->named_count; i++)
		add_id(&want, &want_count, n->named_owners[i]);
	if (n->all_other || n->all_shared) {
		int64_t *ids = NULL;
		size_t count = 0;
		if (auth_acl_owners(c->server->auth, c->user.id, &ids,
				    &count) == 0) {
			for (size_t i = 0; i < count; i++) {
				if (ids[i] == c->user.id)
					continue;
				bool shared = auth_user_is_shared(c->server->auth,
								  ids[i]) == 1;
				if (shared ? n->all_shared : n->all_other)
					add_id(&want, &want_count, ids[i]);
			}
		}
		free(ids);
	}
	if (wants_subscribed(n)) {
		for (size_t i = 0; i < sub_count; i++) {
			enum imap_ns_kind kind;
			bool root;
			int64_t id = ns_owner(c, subs[i], &kind, &root);
			if (id != 0)
				add_id(&want, &want_count, id);
		}
	}
	for (size_t i = 1; i < n->owner_count; i++)
		n->owners[i]->keep = false;
	for (size_t i = 0; i < want_count; i++) {
		struct owner *o = find_owner(n, want[i]);
		if (o != NULL) {
			o->keep = true;
			continue;
		}
		struct auth_user a;
		if (auth_lookup_id(c->server->auth, want[i], &a) != 1)
			continue;
		o = xcalloc(1, sizeof(*o));
		o->id = a.id;
		o->address = xstrdup(a.address);
		o->kind = auth_user_is_shared(c->server->auth, a.id) == 1
				  ? IMAP_NS_SHARED : IMAP_NS_OTHER;
		o->keep = true;
		if (store_watch(c->server->store, o->id, watch_changed, c,
				&o->sub) < 0) {
			free_owner(o);
			continue;
		}
		bool gone;
		struct store_user *u = owner_open(c, o, &gone);
		if (u != NULL) {
			load_boxes(c, o, u, subs, sub_count, &o->boxes,
				   &o->box_count);
			for (size_t k = 0; k < o->box_count; k++)
				if (box_events(n, o, &o->boxes[k]) & EV_MAILBOX_META)
					meta_learn(u, &o->boxes[k]);
			store_user_unref(&u);
		}
		n->owners = xrealloc(n->owners, (n->owner_count + 1) *
						  sizeof(*n->owners));
		n->owners[n->owner_count++] = o;
	}
	free(want);
	/* the hub's callback follows the new set, then the old go */
	int64_t *ids = xcalloc(n->owner_count, sizeof(*ids));
	size_t id_count = 0;
	struct owner **dropped = xcalloc(n->owner_count, sizeof(*dropped));
	size_t drop_count = 0, kept = 1;
	for (size_t i = 1; i < n->owner_count; i++) {
		if (n->owners[i]->keep) {
			ids[id_count++] = n->owners[i]->id;
			n->owners[kept++] = n->owners[i];
		} else {
			dropped[drop_count++] = n->owners[i];
		}
	}
	n->owner_count = kept;
	pthread_mutex_lock(&n->lock);
	free(n->watch_ids);
	n->watch_ids = ids;
	n->watch_count = id_count;
	pthread_mutex_unlock(&n->lock);
	for (size_t i = 0; i < drop_count; i++)
		free_owner(dropped[i]);
	free(dropped);
}

/* The user's subscriptions (NULL, 0 if they cannot be read). */
static void load_subs(struct imap_client *c, char ***subs_r, size_t *count_r)
{
	struct store_error err = {0};
	*subs_r = NULL;
	*count_r = 0;
	if (store_subscriptions(c->store_user, subs_r, count_r, &err) < 0) {
		*subs_r = NULL;
		*count_r = 0;
	}
}

/* The user's own list changed (a mailbox, or a subscription): its LIST
 * responses, and the others' subscriptions as SubscriptionChange. */
static void own_list_changed(struct imap_client *c, struct outq *out)
{
	struct imap_notify *n = c->notify;
	struct owner *self = n->owners[0];
	char **subs;
	size_t sub_count;
	load_subs(c, &subs, &sub_count);
	struct box *now;
	size_t now_count;
	if (load_boxes(c, self, c->store_user, subs, sub_count, &now,
		       &now_count) == 0)
		boxes_diff(c, self, c->store_user, now, now_count, out);
	if (wants_subscribed(n))
		owners_sync(c, subs, sub_count);
	for (size_t i = 1; i < n->owner_count; i++) {
		struct owner *o = n->owners[i];
		for (size_t k = 0; k < o->box_count; k++) {
			struct box *b = &o->boxes[k];
			bool sub = is_subscription(subs, sub_count, b->name);
			if (sub == b->subscribed)
				continue;
			unsigned ev_old = box_events(n, o, b);
			b->subscribed = sub;
			if ((ev_old | box_events(n, o, b)) & EV_SUBSCRIPTION)
				list_line(c, o, b, sub ? "\\Subscribed" : "",
					  NULL, out);
		}
	}
	if (subs != NULL)
		store_names_free(subs, sub_count);
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

static int dirty_cmp(const void *a, const void *b)
{
	const struct dirty *x = a, *y = b;
	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* One owner's recorded changes (ids 0 first: a look at its list). */
static void owner_changes(struct imap_client *c, struct owner *o,
			  const struct dirty *d, size_t count, bool all,
			  struct outq *out)
{
	struct imap_notify *n = c->notify;
	bool gone = false;
	struct store_user *u = owner_open(c, o, &gone);
	if (u == NULL && !gone)
		return;   /* not now (the auth process busy?): next change */
	bool own = o->kind == IMAP_NS_PERSONAL;
	if (!own && (all || (count > 0 && d[0].id == 0))) {
		char **subs;
		size_t sub_count;
		load_subs(c, &subs, &sub_count);
		relist(c, o, u, subs, sub_count, out);
		if (subs != NULL)
			store_names_free(subs, sub_count);
		/* a deleted owner: its mailboxes were told gone; its
		 * channel is of no more use */
		if (gone && o->sub != NULL)
			store_unsubscribe(&o->sub);
	}
	size_t boxes = all ? o->box_count + (own ? 1 : 0) : count;
	for (size_t i = 0; u != NULL && i < boxes; i++) {
		uint32_t id = all ? (i < o->box_count ? o->boxes[i].id : 0)
				  : d[i].id;
		unsigned kinds = all ? ~0u : d[i].kinds;
		if (id == 0) {
			/* own: the server's entries */
			if (own && (kinds & KIND(STORE_CHANGE_METADATA)) &&
			    n->server_meta_known)
				meta_changes(c, NULL, u, NULL, &n->server_meta,
					     &n->server_meta_count, out);
			continue;
		}
		struct box *b = find_box(o, id);
		if (b == NULL || b->noselect || is_selected(c, o, b))
			continue;
		unsigned ev = box_events(n, o, b);
		if (((kinds & KIND(STORE_CHANGE_APPEND)) && (ev & EV_NEW)) ||
		    ((kinds & KIND(STORE_CHANGE_EXPUNGE)) && (ev & EV_EXPUNGE)) ||
		    ((kinds & KIND(STORE_CHANGE_FLAGS)) && (ev & EV_FLAGS)))
			status_line(c, o, u, b, out);
		if ((kinds & KIND(STORE_CHANGE_METADATA)) &&
		    (ev & EV_MAILBOX_META) && b->meta_known)
			meta_changes(c, o, u, b, &b->meta, &b->meta_count, out);
	}
	if (u != NULL)
		store_user_unref(&u);
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
	if (boxes || all)
		own_list_changed(c, &out);
	if (dirty_count > 1)
		qsort(dirty, dirty_count, sizeof(*dirty), dirty_cmp);
	if (all) {
		for (size_t i = 0; i < n->owner_count; i++)
			owner_changes(c, n->owners[i], NULL, 0, true, &out);
	}
	for (size_t i = 0; !all && i < dirty_count;) {
		size_t k = i;
		while (k < dirty_count && dirty[k].owner == dirty[i].owner)
			k++;
		struct owner *o = find_owner(n, dirty[i].owner);
		if (o != NULL)
			owner_changes(c, o, &dirty[i], k - i, false, &out);
		i = k;
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

/* A watched name: a personal-namespace one as a store name (*ns_r
 * false), another namespace's in the form imap_ns_format gives (the
 * owner's id and kind noted for owners_sync, every owner of the
 * namespace for its root). NULL for an invalid name (watched for
 * nothing, as one that does not exist). */
static char *watch_name(struct imap_client *c, const struct imap_arg *a,
			bool *ns_r)
{
	struct imap_notify *n = c->notify;
	*ns_r = false;
	struct imap_mbref ref;
	const char *error;
	char *raw = imap_client_mailbox_in_raw(c, a->str.ptr, a->str.len);
	struct imap_ns_settings ns = ns_settings(c);
	struct imap_ns_name nn;
	int r = imap_ns_parse(&ns, user_domain(c), raw, strlen(raw), &nn,
			      &error);
	free(raw);
	if (r < 0)
		return NULL;
	if (r == 1) {
		*ns_r = true;
		char *name = imap_ns_format(&ns, user_domain(c), nn.kind,
					    nn.owner, nn.mailbox);
		enum imap_ns_kind kind;
		bool root;
		int64_t id = ns_owner(c, name, &kind, &root);
		if (root && kind == IMAP_NS_OTHER)
			n->all_other = true;
		else if (root)
			n->all_shared = true;
		else if (id != 0)
			add_id(&n->named_owners, &n->named_count, id);
		imap_ns_name_free(&nn);
		return name;
	}
	if (imap_mbref_resolve(c, a->str.ptr, a->str.len, &ref, &error) < 0)
		return NULL;
	char *name = ref.name;
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
	g->ns_names = xcalloc(count, sizeof(*g->ns_names));
	for (size_t i = 0; i < count; i++) {
		if (!imap_arg_is_astring(&list[i]) || imap_arg_has_nul(&list[i])) {
			*error_r = "[CLIENTBUG] Mailbox name expected";
			return -1;
		}
		bool ns;
		char *name = watch_name(c, &list[i], &ns);
		if (name == NULL)
			continue;
		if (ns)
			g->ns_names[g->ns_name_count++] = name;
		else
			g->names[g->name_count++] = name;
	}
	return 0;
}

static void initial_status(struct imap_client *c)
{
	struct imap_notify *n = c->notify;
	struct outq out;
	outq_init(&out);
	for (size_t k = 0; k < n->owner_count; k++) {
		struct owner *o = n->owners[k];
		bool gone;
		struct store_user *u = owner_open(c, o, &gone);
		if (u == NULL)
			continue;
		for (size_t i = 0; i < o->box_count; i++) {
			const struct box *b = &o->boxes[i];
			if (b->noselect || is_selected(c, o, b) ||
			    !(box_events(n, o, b) & (EV_NEW | EV_EXPUNGE |
						     EV_FLAGS)))
				continue;
			status_line(c, o, u, b, &out);
			if (out.b.len > 16384) {
				imap_client_write(c, out.b.data, out.b.len);
				buf_reset(&out.b);
				out.count = 0;
			}
		}
		store_user_unref(&u);
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
	struct owner *self = xcalloc(1, sizeof(*self));
	self->id = c->user.id;
	self->kind = IMAP_NS_PERSONAL;
	n->owners = xcalloc(1, sizeof(*n->owners));
	n->owners[n->owner_count++] = self;
	char **subs;
	size_t sub_count;
	load_subs(c, &subs, &sub_count);
	if (load_boxes(c, self, c->store_user, subs, sub_count, &self->boxes,
		       &self->box_count) < 0) {
		if (subs != NULL)
			store_names_free(subs, sub_count);
		clear_config(n);
		imap_cmd_no(cmd, "[SERVERBUG] Cannot list the mailboxes "
			    "(session %s)", c->sid);
		return;
	}
	for (size_t i = 0; i < self->box_count; i++)
		if (box_events(n, self, &self->boxes[i]) & EV_MAILBOX_META)
			meta_learn(c->store_user, &self->boxes[i]);
	/* other accounts' mailboxes: watched on their owners' channels
	 * before the client is answered */
	owners_sync(c, subs, sub_count);
	if (subs != NULL)
		store_names_free(subs, sub_count);
	bool server_meta = false;
	for (size_t i = 0; i < group_count; i++)
		server_meta |= (groups[i].events & EV_SERVER_META) != 0;
	if (server_meta && load_meta(c->store_user, NULL, &n->server_meta,
				     &n->server_meta_count) == 0)
		n->server_meta_known = true;
	atomic_store(&n->active, true);
	if (status)
		initial_status(c);
	imap_cmd_ok(cmd, "NOTIFY completed");
}
