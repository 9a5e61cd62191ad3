/*
 * Shared mailboxes over IMAP: mailbox arguments in every namespace
 * (imap-ns.h) resolved to a store handle (the session's own, or a
 * viewer's from store_user_open_as, which checks every call), the ACL
 * commands of RFC 4314 (SETACL, DELETEACL, GETACL, LISTRIGHTS,
 * MYRIGHTS) and the other users' part of LIST. The rights themselves are
 * checked in the store, never here.
 *
 * Existence never leaks (RFC 4314 6): a name whose owner does not exist,
 * or that the viewer cannot see, fails with the same code and text as a
 * missing mailbox.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-commands.h"
#include "imap-ns.h"
#include "imap-server.h"
#include "log.h"
#include "saslprep.h"
#include "utf7.h"

#define NOT_FOUND "[NONEXISTENT] Mailbox doesn't exist"

static struct imap_ns_settings ns_of(const struct imap_client *c)
{
	struct imap_ns_settings ns = {c->server->set.other_namespace,
				      c->server->set.shared_namespace};
	return ns;
}

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

void imap_mbref_free(struct imap_mbref *ref)
{
	if (ref->user != NULL)
		store_user_unref(&ref->user);
	free(ref->name);
	free(ref->owner);
	ref->name = ref->owner = NULL;
}

/* A viewer's handle on owner's mail (the session's own handle when the
 * owner is the user). -1: no such owner, or no mail (as missing). */
int imap_acl_open_as(struct store *store, struct auth *auth,
		     bool cross_domain, const struct auth_user *viewer,
		     int64_t owner_id, const char *owner_address,
		     struct store_user **user_r)
{
	struct store_error err;
	return auth_viewer_open(auth, store, viewer->id, viewer->address,
				owner_id, owner_address, cross_domain, user_r,
				&err);
}

int imap_acl_open_owner(struct imap_client *c, int64_t owner_id,
			const char *owner_address, struct store_user **user_r)
{
	if (owner_id == c->user.id) {
		store_user_ref(c->store_user);
		*user_r = c->store_user;
		return 0;
	}
	return imap_acl_open_as(c->server->store, c->server->auth,
				c->server->set.cross_domain, &c->user, owner_id,
				owner_address, user_r);
}

int imap_mbref_resolve(struct imap_client *c, const char *raw, size_t len,
		       struct imap_mbref *ref, const char **error_r)
{
	memset(ref, 0, sizeof(*ref));
	struct buf b;
	buf_init(&b, 4096);
	int ret = -1;
	if (len == 0 || memchr(raw, 0, len) != NULL) {
		*error_r = "[CANNOT] Invalid mailbox name";
		goto out;
	}
	if (imap_client_utf8(c) ? !utf8_valid(raw, len) ||
				  buf_append(&b, raw, len) < 0
				: utf7_decode(raw, len, &b) < 0) {
		*error_r = "[CANNOT] Invalid mailbox name";
		goto out;
	}
	struct imap_ns_settings ns = ns_of(c);
	struct imap_ns_name n;
	int r = imap_ns_parse(&ns, domain_of(c->user.address), b.data, b.len,
			      &n, error_r);
	if (r < 0) {
		*error_r = NOT_FOUND;
		goto out;
	}
	if (r == 0) {
		ref->name = imap_client_mailbox_in(c, raw, len, error_r);
		if (ref->name != NULL) {
			store_user_ref(c->store_user);
			ref->user = c->store_user;
			ret = 0;
		}
		goto out;
	}
	ref->shared = true;
	struct auth_user owner;
	/* a shared address only under the shared namespace, an account
	 * only under the other users' */
	if (n.owner == NULL || n.mailbox == NULL ||
	    auth_lookup(c->server->auth, n.owner, &owner) != 1 ||
	    (auth_user_is_shared(c->server->auth, owner.id) == 1) !=
		    (n.kind == IMAP_NS_SHARED) ||
	    imap_acl_open_owner(c, owner.id, owner.address, &ref->user) < 0) {
		imap_ns_name_free(&n);
		*error_r = NOT_FOUND;
		goto out;
	}
	ref->owner = xstrdup(owner.address);
	ref->owner_id = owner.id;
	ref->name = n.mailbox;
	n.mailbox = NULL;
	imap_ns_name_free(&n);
	ret = 0;
out:
	buf_free(&b);
	return ret;
}

struct store_user *imap_client_sel_user(struct imap_client *c)
{
	return c->sel_user != NULL ? c->sel_user : c->store_user;
}

int imap_cmd_mailbox_ref(struct imap_cmd *cmd, const struct imap_arg *arg,
			 bool strip_sep, struct imap_mbref *ref)
{
	struct imap_client *c = cmd->client;
	const char *error;
	if (!imap_arg_is_astring(arg)) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Expected a mailbox name");
		return -1;
	}
	size_t len = arg->str.len;
	if (strip_sep && len > 1 && (arg->str.ptr[len - 1] == '/' ||
				     arg->str.ptr[len - 1] == imap_client_separator(c)))
		len--;
	if (imap_mbref_resolve(c, arg->str.ptr, len, ref, &error) < 0) {
		imap_cmd_no(cmd, "%s", error);
		return -1;
	}
	return 0;
}

void imap_cmd_ref_error(struct imap_cmd *cmd, const struct imap_mbref *ref,
			const struct store_error *err)
{
	/* the same text for a hidden mailbox and a missing one */
	if (ref->shared && err->kind == STORE_ERR_NOTFOUND)
		imap_cmd_no(cmd, NOT_FOUND);
	else
		imap_cmd_store_error(cmd, err);
}

/* ---- identifiers ----------------------------------------------------- */

/* Parses a SETACL/DELETEACL identifier for a mailbox of ref's owner
 * (RFC 4314 3): SASLprep'd (BAD if it fails), then auth_acl_identifier.
 * 0 with *e filled; -1 having replied. */
static int parse_identifier(struct imap_cmd *cmd, const struct imap_arg *arg,
			    const struct imap_mbref *ref,
			    struct store_acl_entry *e)
{
	struct imap_client *c = cmd->client;
	if (!imap_arg_is_astring(arg) || imap_arg_has_nul(arg)) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Expected an identifier");
		return -1;
	}
	char *raw = xstrndup(arg->str.ptr, arg->str.len), *id = NULL;
	const char *why;
	if (saslprep(raw, SASLPREP_QUERY, &id, &why) < 0) {
		free(raw);
		imap_cmd_bad(cmd, "[CLIENTBUG] Invalid identifier: %s", why);
		return -1;
	}
	free(raw);
	memset(e, 0, sizeof(*e));
	int kind;
	int ret = auth_acl_identifier(c->server->auth, id,
				      ref->shared ? ref->owner : c->user.address,
				      c->server->set.cross_domain, &kind,
				      &e->id, &e->negative, &why);
	free(id);
	if (ret < 0) {
		imap_cmd_no(cmd, "%s", why);
		return -1;
	}
	e->kind = (enum store_acl_kind)kind;
	return 0;
}

/* ---- the commands (RFC 4314 3) ---------------------------------------- */

static void write_line(struct imap_client *c, struct buf *b)
{
	buf_append_str(b, "\r\n");
	imap_client_write(c, b->data, b->len);
}

void cmd_getacl(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a[0].type == IMAP_ARG_EOL || a[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] GETACL needs a mailbox name");
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0)
		return;
	struct store_acl_entry *e;
	size_t n;
	struct store_error err = {0};
	if (store_acl_get(ref.user, ref.name, &e, &n, &err) < 0) {
		imap_cmd_ref_error(cmd, &ref, &err);
		imap_mbref_free(&ref);
		return;
	}
	const char *owner = ref.shared ? ref.owner : c->user.address;
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* ACL ");
	char *mb = xstrndup(a[0].str.ptr, a[0].str.len);
	imap_append_astring(&b, mb, imap_client_utf8(c));
	free(mb);
	char rights[16];
	store_rights_format(STORE_RIGHTS_ALL, rights);
	buf_append_char(&b, ' ');
	imap_append_astring(&b, owner, imap_client_utf8(c));
	buf_printf(&b, " %s", rights);
	for (size_t i = 0; i < n; i++) {
		char *id = auth_acl_identifier_text(c->server->auth, e[i].kind,
						    e[i].id, e[i].negative,
						    owner);
		if (id == NULL)
			continue;
		store_rights_format(e[i].rights, rights);
		buf_append_char(&b, ' ');
		imap_append_astring(&b, id, imap_client_utf8(c));
		buf_append_char(&b, ' ');
		imap_append_astring(&b, rights, false);
		free(id);
	}
	write_line(c, &b);
	buf_free(&b);
	free(e);
	imap_mbref_free(&ref);
	imap_cmd_ok(cmd, "GETACL completed");
}

static void set_or_delete(struct imap_cmd *cmd, bool del)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	bool shape = del ? a[0].type != IMAP_ARG_EOL &&
			   a[1].type != IMAP_ARG_EOL && a[2].type == IMAP_ARG_EOL
			 : a[0].type != IMAP_ARG_EOL &&
			   a[1].type != IMAP_ARG_EOL &&
			   a[2].type != IMAP_ARG_EOL && a[3].type == IMAP_ARG_EOL;
	if (!shape) {
		imap_cmd_bad(cmd, del ? "[CLIENTBUG] DELETEACL needs a mailbox"
				      " and an identifier"
				      : "[CLIENTBUG] SETACL needs a mailbox,"
				      " an identifier and rights");
		return;
	}
	int mode = 0;
	unsigned rights = 0;
	if (!del) {
		if (!imap_arg_is_astring(&a[2]) || imap_arg_has_nul(&a[2])) {
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid rights");
			return;
		}
		const char *r = a[2].str.ptr;
		size_t rl = a[2].str.len;
		if (rl > 0 && (r[0] == '+' || r[0] == '-')) {
			mode = r[0] == '+' ? 1 : -1;
			r++;
			rl--;
		}
		if (store_rights_parse(r, rl, &rights) < 0) {
			/* RFC 4314 3.1: unknown rights are BAD */
			imap_cmd_bad(cmd, "[CLIENTBUG] Unknown right in \"%.*s\"",
				     (int)(a[2].str.len > 64 ? 64 : a[2].str.len),
				     a[2].str.ptr);
			return;
		}
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0)
		return;
	/* no right to administer, or no such mailbox: before the identifier,
	 * so a hidden mailbox says nothing about who exists */
	unsigned my;
	struct store_error err = {0};
	if (store_myrights(ref.user, ref.name, &my, &err) < 0) {
		imap_cmd_ref_error(cmd, &ref, &err);
		imap_mbref_free(&ref);
		return;
	}
	if (!(my & STORE_RIGHT_ADMIN)) {
		if (my & STORE_RIGHT_LOOKUP)
			imap_cmd_no(cmd, "[NOPERM] You lack the right a on this"
				    " mailbox");
		else
			imap_cmd_no(cmd, NOT_FOUND);
		imap_mbref_free(&ref);
		return;
	}
	struct store_acl_entry e;
	if (parse_identifier(cmd, &a[1], &ref, &e) < 0) {
		imap_mbref_free(&ref);
		return;
	}
	e.rights = rights;
	int r = del ? store_acl_delete(ref.user, ref.name, e.kind, e.id,
				       e.negative, &err)
		    : store_acl_set(ref.user, ref.name, &e, mode,
				    c->server->set.max_acl_entries, &err);
	if (r < 0)
		imap_cmd_ref_error(cmd, &ref, &err);
	else
		imap_cmd_ok(cmd, "%s completed", cmd->name);
	imap_mbref_free(&ref);
}

void cmd_setacl(struct imap_cmd *cmd)
{
	set_or_delete(cmd, false);
}

void cmd_deleteacl(struct imap_cmd *cmd)
{
	set_or_delete(cmd, true);
}

void cmd_listrights(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a[0].type == IMAP_ARG_EOL || !imap_arg_is_astring(&a[1]) ||
	    a[2].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] LISTRIGHTS needs a mailbox and an"
			     " identifier");
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0)
		return;
	struct store_acl_entry *e;
	size_t n;
	struct store_error err = {0};
	/* needs a, as GETACL (RFC 4314 4) */
	if (store_acl_get(ref.user, ref.name, &e, &n, &err) < 0) {
		imap_cmd_ref_error(cmd, &ref, &err);
		imap_mbref_free(&ref);
		return;
	}
	free(e);
	const char *owner = ref.shared ? ref.owner : c->user.address;
	char *id = xstrndup(a[1].str.ptr, a[1].str.len);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* LISTRIGHTS ");
	char *mb = xstrndup(a[0].str.ptr, a[0].str.len);
	imap_append_astring(&b, mb, imap_client_utf8(c));
	free(mb);
	buf_append_char(&b, ' ');
	imap_append_astring(&b, id, imap_client_utf8(c));
	/* the owner holds everything; anyone else may be given any right,
	 * each on its own ("c" and "d" as their groups) */
	if (strcasecmp(id, owner) == 0)
		buf_append_str(&b, " lrswipkxteacd");
	else
		buf_append_str(&b, " \"\" l r s w i p k x t e a c d");
	free(id);
	write_line(c, &b);
	buf_free(&b);
	imap_mbref_free(&ref);
	imap_cmd_ok(cmd, "LISTRIGHTS completed");
}

void cmd_myrights(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a[0].type == IMAP_ARG_EOL || a[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] MYRIGHTS needs a mailbox name");
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0)
		return;
	unsigned rights;
	struct store_error err = {0};
	if (store_myrights(ref.user, ref.name, &rights, &err) < 0) {
		imap_cmd_ref_error(cmd, &ref, &err);
		imap_mbref_free(&ref);
		return;
	}
	char r[16];
	store_rights_format(rights, r);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* MYRIGHTS ");
	char *mb = xstrndup(a[0].str.ptr, a[0].str.len);
	imap_append_astring(&b, mb, imap_client_utf8(c));
	free(mb);
	buf_append_char(&b, ' ');
	imap_append_astring(&b, r, false);
	write_line(c, &b);
	buf_free(&b);
	imap_mbref_free(&ref);
	imap_cmd_ok(cmd, "MYRIGHTS completed");
}

/* ---- LIST: the other users' namespace --------------------------------- */

char *imap_acl_ns_canonical(struct imap_client *c, const char *name)
{
	struct imap_ns_settings ns = ns_of(c);
	struct imap_ns_name n;
	const char *error;
	if (imap_ns_parse(&ns, domain_of(c->user.address), name, strlen(name),
			  &n, &error) != 1)
		return NULL;
	char *r = imap_ns_format(&ns, domain_of(c->user.address), n.kind,
				 n.owner, n.mailbox);
	imap_ns_name_free(&n);
	return r;
}

static bool in_names(char **names, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* One LIST or LSUB line of the other namespaces (separator "/"). */
static void list_other_line(struct imap_client *c,
			    const struct imap_list_others *q, const char *attrs,
			    bool subscribed, const char *enc)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* %s (%s", q->lsub ? "LSUB" : "LIST", attrs);
	if (subscribed && q->mark_subscribed && !q->lsub)
		buf_append_str(&b, attrs[0] != '\0' ? " \\Subscribed"
						    : "\\Subscribed");
	buf_append_str(&b, ") \"/\" ");
	imap_append_string(&b, enc, strlen(enc), imap_client_utf8(c));
	write_line(c, &b);
	buf_free(&b);
}

/* An owner's address and whether it is a shared address, by id, for
 * LIST: both are fixed for an account's life (no rename; "shared add"
 * makes a shared one) and ids are never reused, so the mail process keeps
 * them instead of two auth round trips per owner at every LIST (100
 * owners: 200). auth_acl_owners returns existing accounts only. */
struct owner_info {
	int64_t id;
	char *address;
	bool shared;
};
#define OWNER_CACHE_MAX 4096
static pthread_mutex_t owner_mu = PTHREAD_MUTEX_INITIALIZER;
static struct owner_info *owner_cache;
static size_t owner_count;

static int owner_cmp(const void *a, const void *b)
{
	const struct owner_info *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* 1 with *address_r (caller frees) and *shared_r, 0 no such account, -1
 * a failed lookup. */
static int owner_lookup(struct imap_client *c, int64_t id, char **address_r,
			bool *shared_r)
{
	struct owner_info key = {.id = id};
	pthread_mutex_lock(&owner_mu);
	struct owner_info *hit = owner_count == 0
		? NULL
		: bsearch(&key, owner_cache, owner_count, sizeof(key), owner_cmp);
	if (hit != NULL) {
		*address_r = xstrdup(hit->address);
		*shared_r = hit->shared;
	}
	pthread_mutex_unlock(&owner_mu);
	if (hit != NULL)
		return 1;
	struct auth_user o;
	int r = auth_lookup_id(c->server->auth, id, &o);
	if (r != 1)
		return r;
	int sh = auth_user_is_shared(c->server->auth, id);
	if (sh < 0)
		return -1;
	*address_r = xstrdup(o.address);
	*shared_r = sh == 1;
	pthread_mutex_lock(&owner_mu);
	if (owner_count >= OWNER_CACHE_MAX) {
		for (size_t i = 0; i < owner_count; i++)
			free(owner_cache[i].address);
		owner_count = 0;
	}
	if (owner_count == 0 ||
	    bsearch(&key, owner_cache, owner_count, sizeof(key),
		    owner_cmp) == NULL) {
		owner_cache = xrealloc(owner_cache, (owner_count + 1) *
							sizeof(*owner_cache));
		owner_cache[owner_count++] = (struct owner_info){
			id, xstrdup(o.address), sh == 1};
		qsort(owner_cache, owner_count, sizeof(*owner_cache),
		      owner_cmp);
	}
	pthread_mutex_unlock(&owner_mu);
	return 1;
}

void imap_acl_list_others(struct imap_client *c,
			  const struct imap_list_others *q)
{
	if (c->server->auth == NULL)
		return;
	int64_t *owners = NULL;
	size_t no = 0;
	if (auth_acl_owners(c->server->auth, c->user.id, &owners, &no) < 0) {
		log_warn("imap", c->sid, "LIST: cannot read the ACL hints");
		return;
	}
	/* the viewer's groups and shared_admin, read once for every owner */
	struct auth_viewer av;
	struct store_error err;
	if (auth_viewer_load(c->server->auth, c->user.id, c->user.address,
			     c->server->set.cross_domain, &av, &err) < 0) {
		log_warn("imap", c->sid, "LIST: cannot read the account: %s",
			 err.msg);
		free(owners);
		return;
	}
	struct imap_ns_settings ns = ns_of(c);
	const char *vdom = domain_of(c->user.address);
	bool root_written[2] = {false, false};
	/* the subscribed names listed as existing mailboxes */
	bool *listed = xcalloc(q->sub_count + 1, sizeof(*listed));
	for (size_t i = 0; i < no; i++) {
		struct {
			int64_t id;
			char *address;
		} o = {owners[i], NULL};
		bool is_shared;
		struct store_user *u;
		if (owners[i] == c->user.id ||
		    owner_lookup(c, owners[i], &o.address, &is_shared) != 1)
			continue;   /* a stale hint: skipped */
		enum imap_ns_kind kind = is_shared ? IMAP_NS_SHARED
						   : IMAP_NS_OTHER;
		const char *prefix = kind == IMAP_NS_SHARED ? ns.shared : ns.other;
		if (prefix == NULL || prefix[0] == '\0' ||
		    auth_viewer_open_loaded(c->server->auth, c->server->store,
					    &av, o.id, o.address, &u,
					    &err) < 0) {
			free(o.address);
			continue;
		}
		struct store_mailbox_info *mbs;
		size_t n;
		if (store_mailbox_list(u, &mbs, &n, &err) < 0 || n == 0) {
			store_user_unref(&u);
			free(o.address);
			continue;
		}
		/* the levels above: \Noselect, revealing nothing else (not
		 * subscribable: left out of SUBSCRIBED and LSUB) */
		char *levels[2] = {imap_ns_format(&ns, vdom, kind, NULL, NULL),
				   imap_ns_format(&ns, vdom, kind, o.address,
						  NULL)};
		bool *rooted = &root_written[kind == IMAP_NS_SHARED];
		/* a shared address's level is its INBOX: listed below */
		int last = kind == IMAP_NS_SHARED ? 1 : 2;
		for (int k = *rooted ? 1 : 0; k < last && !q->only_subscribed;
		     k++) {
			char *enc = imap_client_ns_name(c, levels[k]);
			if (q->match(q->ctx, enc))
				list_other_line(c, q, "\\Noselect \\HasChildren",
						false, enc);
			free(enc);
		}
		*rooted = true;
		free(levels[0]);
		free(levels[1]);
		for (size_t k = 0; k < n; k++) {
			char *full = imap_ns_format(&ns, vdom, kind, o.address,
						    mbs[k].name);
			bool sub = false;
			for (size_t j = 0; j < q->sub_count; j++) {
				if (strcmp(q->subs[j], full) == 0) {
					sub = true;
					listed[j] = true;
				}
			}
			char *enc = imap_client_ns_name(c, full);
			if ((!q->only_subscribed || sub) && q->match(q->ctx, enc)) {
				/* a shared address's INBOX holds its folders */
				bool hc = mbs[k].has_children ||
					  (kind == IMAP_NS_SHARED && n > 1 &&
					   strcmp(mbs[k].name, "INBOX") == 0);
				char attrs[64];
				if (q->lsub)
					snprintf(attrs, sizeof(attrs), "%s",
						 mbs[k].noselect ? "\\Noselect" : "");
				else
					snprintf(attrs, sizeof(attrs), "%s%s",
						 mbs[k].noselect ? "\\Noselect " : "",
						 hc ? "\\HasChildren"
						    : "\\HasNoChildren");
				list_other_line(c, q, attrs, sub, enc);
				/* RFC 5819: STATUS as the STATUS command
				 * would answer it (r needed), from the
				 * list's own snapshot */
				if (q->status_items != 0 && !mbs[k].noselect &&
				    (mbs[k].rights & STORE_RIGHT_READ))
					imap_status_write(c, &mbs[k],
							  q->status_items, full);
			}
			free(enc);
			free(full);
		}
		store_mailbox_list_free(mbs, n);
		store_user_unref(&u);
		free(o.address);
	}
	auth_viewer_free(&av);
	free(owners);
	/* subscribed names that are no mailbox the user may see (missing,
	 * hidden, or their owner gone: the same, RFC 4314 6): RFC 5258
	 * 3.1 \NonExistent, LSUB \Noselect (RFC 3501 6.3.9) */
	for (size_t j = 0; j < q->sub_count && q->only_subscribed; j++) {
		if (listed[j] || in_names(q->subs, j, q->subs[j]))
			continue;
		char *enc = imap_client_ns_name(c, q->subs[j]);
		if (q->match(q->ctx, enc))
			list_other_line(c, q, q->lsub ? "\\Noselect"
						      : "\\NonExistent",
					true, enc);
		free(enc);
	}
	free(listed);
}

/* ---- the selected mailbox of another account -------------------------- */

char *imap_client_mailbox_in_raw(struct imap_client *c, const char *name,
				 size_t len)
{
	struct buf b;
	buf_init(&b, 0);
	if (imap_client_utf8(c) || utf7_decode(name, len, &b) < 0) {
		buf_reset(&b);
		buf_append(&b, name, len);
	}
	size_t n;
	return buf_steal(&b, &n);
}

/* The owner's sessions were ended (loftctl kick, user del): a kick of
 * the owner is not the viewer's, but an owner deleted takes the
 * selected mailbox with it: the viewer's session says BYE. */
static void owner_gone_task(void *session, struct net_conn *conn, void *arg)
{
	(void)arg;
	struct imap_client *c = session;
	struct auth_user u;
	if (c->sel_user == NULL || c->server->auth == NULL ||
	    auth_lookup_id(c->server->auth, store_user_id(c->sel_user),
			   &u) != 0)
		return;
	static const char bye[] =
		"* BYE The owner of the selected mailbox was deleted\r\n";
	log_info("imap", c->sid, "user=%s: the selected mailbox's owner was"
		 " deleted", c->user.address);
	c->idling = false;
	net_conn_write(conn, bye, sizeof(bye) - 1);
	net_conn_close(conn);
}

static void owner_gone_post(void *session, struct net_conn *conn, void *arg)
{
	net_conn_run(conn, owner_gone_task, arg);
}

/* The owner's changes, and its logout as above. */
static void owner_changed(void *ctx, const struct store_change *change)
{
	struct imap_client *c = ctx;
	if (change->kind == STORE_CHANGE_LOGOUT) {
		net_conn_post(c->conn, owner_gone_post, NULL);
		return;
	}
	imap_client_store_changed(ctx, change);
}

void imap_acl_select(struct imap_client *c, struct imap_mbref *ref)
{
	c->sel_user = ref->user;
	ref->user = NULL;
	if (store_subscribe(c->server->store, store_user_id(c->sel_user),
			    owner_changed, c, &c->sel_sub) < 0)
		log_warn("imap", c->sid, "cannot follow the owner's changes");
}

void imap_acl_unselect(struct imap_client *c)
{
	if (c->sel_sub != NULL)
		store_unsubscribe(&c->sel_sub);
	if (c->sel_user != NULL)
		store_user_unref(&c->sel_user);
}

bool imap_acl_writable(struct imap_client *c, const struct imap_mbref *ref)
{
	(void)c;
	unsigned rights;
	struct store_error err;
	if (store_myrights(ref->user, ref->name, &rights, &err) < 0)
		return false;
	return (rights & (STORE_RIGHT_INSERT | STORE_RIGHT_EXPUNGE |
			  STORE_RIGHT_SEEN | STORE_RIGHT_WRITE |
			  STORE_RIGHT_DELETED)) != 0;
}

bool imap_acl_lost_read(struct imap_client *c)
{
	unsigned rights = 0;
	struct store_error err;
	if (store_myrights(c->sel_user, c->mailbox, &rights, &err) == 0 &&
	    (rights & STORE_RIGHT_READ))
		return false;
	if (err.kind == STORE_ERR_TEMP || err.kind == STORE_ERR_UNAVAILABLE ||
	    err.kind == STORE_ERR_INTERNAL)
		return false;   /* not a verdict on the rights */
	static const char bye[] = "* BYE Access to the selected mailbox was"
				  " withdrawn\r\n";
	log_info("imap", c->sid, "user=%s: lost r on a shared mailbox",
		 c->user.address);
	c->idling = false;
	net_conn_write(c->conn, bye, sizeof(bye) - 1);
	net_conn_close(c->conn);
	return true;
}
