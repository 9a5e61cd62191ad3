/*
 * LIST (RFC 9051 6.3.9) with LIST-EXTENDED (RFC 5258: selection options
 * SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE; return options
 * SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS), CHILDREN (RFC 3348),
 * SPECIAL-USE (RFC 6154), LIST-STATUS (RFC 5819), and LSUB (RFC 3501
 * 6.3.9).
 *
 * Patterns are matched against the names as the client sees them (its
 * namespace, its encoding): "*" matches anything, "%" anything but the
 * hierarchy separator; the "INBOX" prefix matches in any case.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-commands.h"
#include "imap-server.h"

enum {
	SEL_SUBSCRIBED = 1 << 0,
	SEL_RECURSIVE = 1 << 1,
	SEL_SPECIAL_USE = 1 << 2,
	RET_SUBSCRIBED = 1 << 3,
	RET_CHILDREN = 1 << 4,
	RET_SPECIAL_USE = 1 << 5,
	RET_STATUS = 1 << 6,
	LSUB = 1 << 7,
};

#define MAX_PATTERN 1024

struct entry {
	char *name;                 /* client's view: namespace + encoding */
	const char *store_name;
	const struct store_mailbox_info *info;   /* NULL: does not exist */
	bool subscribed;
};

struct list_ctx {
	struct imap_client *c;
	unsigned opts;
	unsigned status_items;
	char sep;
	struct entry *entries;
	size_t count, cap;
	struct store_mailbox_info *mbs;
	size_t mb_count;
	char **subs;              /* personal subscriptions: store names */
	size_t sub_count;
	char **other_subs;        /* the other namespaces' (imap-acl.c) */
	size_t other_sub_count;
	const char **patterns;
	size_t pattern_count;
};

/* Wildcard match by dynamic programming over (pattern, name): linear
 * memory, no backtracking blow-up whatever the pattern. */
static bool match(const char *pat, const char *name, char sep)
{
	size_t pl = strlen(pat), nl = strlen(name);
	bool *row = xcalloc(nl + 1, sizeof(bool)), *next = xcalloc(nl + 1, sizeof(bool));
	row[0] = true;
	for (size_t j = 1; j <= nl; j++)
		row[j] = false;
	for (size_t i = 0; i < pl; i++) {
		char p = pat[i];
		if (p == '*' || p == '%') {
			/* next[j] = row[k] for some k <= j with name[k..j) free of
			 * sep when '%' */
			bool run = false;
			for (size_t j = 0; j <= nl; j++) {
				if (p == '%' && j > 0 && name[j - 1] == sep)
					run = false;
				run = run || row[j];
				next[j] = run;
			}
		} else {
			next[0] = false;
			for (size_t j = 1; j <= nl; j++)
				next[j] = row[j - 1] && name[j - 1] == p;
		}
		bool *t = row;
		row = next;
		next = t;
	}
	bool r = row[nl];
	free(row);
	free(next);
	return r;
}

static bool match_any(struct list_ctx *ctx, const char *name)
{
	for (size_t i = 0; i < ctx->pattern_count; i++) {
		if (match(ctx->patterns[i], name, ctx->sep))
			return true;
	}
	return false;
}

static bool match_other(void *vctx, const char *name)
{
	struct list_ctx *ctx = vctx;
	for (size_t i = 0; i < ctx->pattern_count; i++) {
		if (match(ctx->patterns[i], name, '/'))
			return true;
	}
	return false;
}

static struct entry *add_entry(struct list_ctx *ctx, const char *store_name,
			       const struct store_mailbox_info *info)
{
	if (ctx->count == ctx->cap) {
		ctx->cap = ctx->cap ? ctx->cap * 2 : 32;
		ctx->entries = xrealloc(ctx->entries, ctx->cap * sizeof(*ctx->entries));
	}
	struct entry *e = &ctx->entries[ctx->count++];
	e->store_name = store_name;
	e->name = imap_client_mailbox_name(ctx->c, store_name);
	e->info = info;
	e->subscribed = false;
	return e;
}

static struct entry *find_entry(struct list_ctx *ctx, const char *store_name)
{
	for (size_t i = 0; i < ctx->count; i++) {
		if (strcmp(ctx->entries[i].store_name, store_name) == 0)
			return &ctx->entries[i];
	}
	return NULL;
}

/* Whether a subscribed mailbox lies below e (store names, "/"). */
static bool has_subscribed_child(struct list_ctx *ctx, const struct entry *e)
{
	size_t n = strlen(e->store_name);
	for (size_t i = 0; i < ctx->sub_count; i++) {
		if (strncmp(ctx->subs[i], e->store_name, n) == 0 &&
		    ctx->subs[i][n] == '/')
			return true;
	}
	return false;
}

static bool match_any(struct list_ctx *ctx, const char *name);

/* A subscribed mailbox below e that the patterns do not match. */
static bool unmatched_subscribed_child(struct list_ctx *ctx,
				       const struct entry *e)
{
	size_t n = strlen(e->store_name);
	bool found = false;
	for (size_t i = 0; i < ctx->sub_count && !found; i++) {
		if (strncmp(ctx->subs[i], e->store_name, n) != 0 ||
		    ctx->subs[i][n] != '/')
			continue;
		char *name = imap_client_mailbox_name(ctx->c, ctx->subs[i]);
		found = !match_any(ctx, name);
		free(name);
	}
	return found;
}

static bool has_children(struct list_ctx *ctx, const struct entry *e)
{
	if (e->info == NULL)
		return false;
	if (ctx->c->server->set.inbox_namespace && strcmp(e->store_name, "INBOX") == 0)
		return ctx->mb_count > 1;   /* everything is below INBOX. */
	return e->info->has_children;
}

static void write_entry(struct list_ctx *ctx, const struct entry *e,
			bool childinfo)
{
	struct imap_client *c = ctx->c;
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, ctx->opts & LSUB ? "* LSUB (" : "* LIST (");
	bool first = true;
#define ATTR(s) do { buf_append_str(&b, first ? s : " " s); first = false; } while (0)
	if (e->info == NULL) {
		if (ctx->opts & LSUB)
			ATTR("\\Noselect");
		else
			ATTR("\\NonExistent");
	} else {
		if (e->info->noselect)
			ATTR("\\Noselect");
		if (!(ctx->opts & LSUB)) {
			if (has_children(ctx, e))
				ATTR("\\HasChildren");
			else
				ATTR("\\HasNoChildren");
		}
	}
	if (e->subscribed && (ctx->opts & (SEL_SUBSCRIBED | RET_SUBSCRIBED)))
		ATTR("\\Subscribed");
	if (e->info != NULL && !(ctx->opts & LSUB))
		imap_append_special_use(&b, e->info->special_use, &first);
#undef ATTR
	buf_printf(&b, ") \"%c\" ", ctx->sep);
	imap_append_string(&b, e->name, strlen(e->name), imap_client_utf8(c));
	if (childinfo)
		buf_append_str(&b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	buf_append_str(&b, "\r\n");
	imap_client_write(c, b.data, b.len);
	buf_free(&b);
	if ((ctx->opts & RET_STATUS) && e->info != NULL && !e->info->noselect)
		imap_status_write(c, e->info, ctx->status_items, NULL);
}

static bool is_subscribed(struct list_ctx *ctx, const char *store_name)
{
	for (size_t i = 0; i < ctx->sub_count; i++) {
		if (strcmp(ctx->subs[i], store_name) == 0)
			return true;
	}
	return false;
}

/* Adds subscribed names that do not exist, and their parents, so that
 * SUBSCRIBED selection and LSUB see them. */
static void add_subscribed(struct list_ctx *ctx)
{
	for (size_t i = 0; i < ctx->sub_count; i++) {
		char *name = xstrdup(ctx->subs[i]);
		for (;;) {
			if (find_entry(ctx, name) == NULL)
				add_entry(ctx, xstrdup(name), NULL);
			char *slash = strrchr(name, '/');
			if (slash == NULL)
				break;
			*slash = '\0';
		}
		free(name);
	}
}

static void run_list(struct list_ctx *ctx)
{
	for (size_t i = 0; i < ctx->mb_count; i++)
		add_entry(ctx, ctx->mbs[i].name, &ctx->mbs[i]);
	size_t existing = ctx->count;
	if (ctx->opts & (SEL_SUBSCRIBED | LSUB))
		add_subscribed(ctx);
	for (size_t i = 0; i < ctx->count; i++)
		ctx->entries[i].subscribed = is_subscribed(ctx, ctx->entries[i].store_name);

	for (size_t i = 0; i < ctx->count; i++) {
		struct entry *e = &ctx->entries[i];
		if (!match_any(ctx, e->name))
			continue;
		bool childinfo = false;
		if (ctx->opts & (SEL_SUBSCRIBED | LSUB)) {
			/* a subscribed descendant the patterns leave out:
			 * RFC 5258 3.5 (and example 9) gives its parent
			 * CHILDINFO only then, since a child that matches
			 * is listed itself; LSUB's "%" case likewise */
			bool hidden = has_subscribed_child(ctx, e) &&
				      unmatched_subscribed_child(ctx, e);
			if (!e->subscribed) {
				if (!hidden)
					continue;
				if (ctx->opts & LSUB) {
					/* RFC 3501 6.3.9: \Noselect */
					if (e->info != NULL) {
						struct entry t = *e;
						t.info = NULL;
						write_entry(ctx, &t, false);
						continue;
					}
				} else if (!(ctx->opts & SEL_RECURSIVE)) {
					continue;
				}
			}
			childinfo = (ctx->opts & SEL_RECURSIVE) && hidden;
		}
		if ((ctx->opts & SEL_SPECIAL_USE) &&
		    (e->info == NULL || e->info->special_use == 0))
			continue;
		write_entry(ctx, e, childinfo);
	}
	/* the other users' namespace (imap-acl.c): patterns on "/"; no
	 * special-use there */
	if (!(ctx->opts & SEL_SPECIAL_USE)) {
		struct imap_list_others q = {
			.match = match_other,
			.ctx = ctx,
			.status_items = ctx->opts & RET_STATUS ? ctx->status_items : 0,
			.subs = ctx->other_subs,
			.sub_count = ctx->other_sub_count,
			.mark_subscribed = (ctx->opts & (SEL_SUBSCRIBED |
							 RET_SUBSCRIBED)) != 0,
			.only_subscribed = (ctx->opts & (SEL_SUBSCRIBED | LSUB)) != 0,
			.lsub = (ctx->opts & LSUB) != 0,
		};
		imap_acl_list_others(ctx->c, &q);
	}
	/* entries past `existing` own their store_name copies */
	for (size_t i = 0; i < ctx->count; i++) {
		free(ctx->entries[i].name);
		if (i >= existing)
			free((char *)ctx->entries[i].store_name);
	}
}

/* Subscriptions to other accounts' mailboxes are kept under their
 * names in the other users' / shared namespaces: those leave the
 * personal list (no personal rewriting of them, namespace = inbox). */
static void split_subscriptions(struct list_ctx *ctx)
{
	size_t kept = 0;
	for (size_t i = 0; i < ctx->sub_count; i++) {
		char *canon = imap_acl_ns_canonical(ctx->c, ctx->subs[i]);
		if (canon == NULL) {
			ctx->subs[kept++] = ctx->subs[i];
			continue;
		}
		ctx->other_subs = xrealloc(ctx->other_subs,
					   (ctx->other_sub_count + 1) *
						   sizeof(*ctx->other_subs));
		ctx->other_subs[ctx->other_sub_count++] = canon;
		free(ctx->subs[i]);
	}
	ctx->sub_count = kept;
}

static int parse_selection(struct list_ctx *ctx, const struct imap_arg *l)
{
	for (; l->type != IMAP_ARG_EOL; l++) {
		if (imap_arg_atom_eq(l, "SUBSCRIBED"))
			ctx->opts |= SEL_SUBSCRIBED;
		else if (imap_arg_atom_eq(l, "RECURSIVEMATCH"))
			ctx->opts |= SEL_RECURSIVE;
		else if (imap_arg_atom_eq(l, "SPECIAL-USE"))
			ctx->opts |= SEL_SPECIAL_USE;
		else if (!imap_arg_atom_eq(l, "REMOTE"))
			return -1;
	}
	/* RFC 5258 3.1: RECURSIVEMATCH needs another selection option */
	if ((ctx->opts & SEL_RECURSIVE) &&
	    !(ctx->opts & (SEL_SUBSCRIBED | SEL_SPECIAL_USE)))
		return -1;
	if (ctx->opts & SEL_SUBSCRIBED)
		ctx->opts |= RET_SUBSCRIBED;
	return 0;
}

static int parse_return(struct list_ctx *ctx, const struct imap_arg *l)
{
	for (; l->type != IMAP_ARG_EOL; l++) {
		if (imap_arg_atom_eq(l, "SUBSCRIBED")) {
			ctx->opts |= RET_SUBSCRIBED;
		} else if (imap_arg_atom_eq(l, "CHILDREN")) {
			ctx->opts |= RET_CHILDREN;
		} else if (imap_arg_atom_eq(l, "SPECIAL-USE")) {
			ctx->opts |= RET_SPECIAL_USE;
		} else if (imap_arg_atom_eq(l, "STATUS") && l[1].type == IMAP_ARG_LIST) {
			l++;
			if (imap_status_parse_items(l->list, &ctx->status_items) < 0)
				return -1;
			ctx->opts |= RET_STATUS;
		} else {
			return -1;
		}
	}
	return 0;
}

static bool pattern_arg(const struct imap_arg *a)
{
	return imap_arg_is_astring(a) && !imap_arg_has_nul(a);
}

/* Joins reference and pattern; the INBOX prefix is made upper case. */
static char *full_pattern(struct list_ctx *ctx, const struct imap_arg *ref,
			  const struct imap_arg *pat)
{
	char *s = xasprintf("%s%s", ref->str.ptr, pat->str.ptr);
	if (strncasecmp(s, "INBOX", 5) == 0 &&
	    (s[5] == '\0' || s[5] == ctx->sep || s[5] == '*' || s[5] == '%'))
		memcpy(s, "INBOX", 5);
	return s;
}

static void do_list(struct imap_cmd *cmd, bool lsub)
{
	struct imap_client *c = cmd->client;
	struct list_ctx ctx = {.c = c, .sep = imap_client_separator(c)};
	const struct imap_arg *a = cmd->args;
	struct store_error err = {0};
	if (lsub)
		ctx.opts |= LSUB;
	if (!lsub && a->type == IMAP_ARG_LIST) {
		if (parse_selection(&ctx, a->list) < 0) {
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid LIST selection options");
			return;
		}
		a++;
	}
	const struct imap_arg *ref = a;
	if (!pattern_arg(ref) || ref[1].type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s needs a reference and a pattern", cmd->name);
		return;
	}
	const struct imap_arg *pats = ref + 1, *rest = pats + 1;
	bool multi = !lsub && pats->type == IMAP_ARG_LIST;
	if (!multi && !pattern_arg(pats)) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s needs a reference and a pattern", cmd->name);
		return;
	}
	if (!lsub && imap_arg_atom_eq(rest, "RETURN") && rest[1].type == IMAP_ARG_LIST) {
		if (parse_return(&ctx, rest[1].list) < 0) {
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid LIST return options");
			return;
		}
		rest += 2;
	}
	if (rest->type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Unexpected arguments after the pattern");
		return;
	}
	const struct imap_arg *pl = multi ? pats->list : pats;
	size_t pn = multi ? pats->list_count : 1;
	if (pn == 0) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Empty pattern list");
		return;
	}
	if (!multi && pats->str.len == 0) {
		/* RFC 9051 6.3.9: the hierarchy delimiter and root */
		if (!lsub)
			imap_client_untagged(c, "LIST (\\Noselect) \"%c\" \"\"", ctx.sep);
		imap_cmd_ok(cmd, "%s completed", cmd->name);
		return;
	}
	ctx.patterns = xcalloc(pn, sizeof(char *));
	for (size_t i = 0; i < pn; i++) {
		if (!pattern_arg(&pl[i]) || ref->str.len + pl[i].str.len > MAX_PATTERN) {
			for (size_t k = 0; k < i; k++)
				free((char *)ctx.patterns[k]);
			free(ctx.patterns);
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid pattern");
			return;
		}
		ctx.patterns[i] = full_pattern(&ctx, ref, &pl[i]);
	}
	ctx.pattern_count = pn;
	if (store_mailbox_list(c->store_user, &ctx.mbs, &ctx.mb_count, &err) < 0 ||
	    store_subscriptions(c->store_user, &ctx.subs, &ctx.sub_count, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
	} else {
		split_subscriptions(&ctx);
		run_list(&ctx);
		imap_cmd_ok(cmd, "%s completed", cmd->name);
	}
	for (size_t i = 0; i < ctx.pattern_count; i++)
		free((char *)ctx.patterns[i]);
	free(ctx.patterns);
	free(ctx.entries);
	if (ctx.mbs != NULL)
		store_mailbox_list_free(ctx.mbs, ctx.mb_count);
	if (ctx.subs != NULL)
		store_names_free(ctx.subs, ctx.sub_count);
	if (ctx.other_subs != NULL)
		store_names_free(ctx.other_subs, ctx.other_sub_count);
}

void cmd_list(struct imap_cmd *cmd)
{
	do_list(cmd, false);
}

void cmd_lsub(struct imap_cmd *cmd)
{
	do_list(cmd, true);
}
