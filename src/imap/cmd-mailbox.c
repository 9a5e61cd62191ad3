/*
 * Mailbox management: CREATE (with USE, RFC 6154 3), DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE. Names arrive in the client's encoding and
 * namespace and are turned into store names (imap_client_mailbox_in).
 */
#include <stdlib.h>
#include <string.h>

#include "imap-commands.h"
#include "imap-server.h"

static const struct {
	const char *name;
	unsigned bit;
} special_uses[] = {
	{"\\All", STORE_SPECIAL_ALL},
	{"\\Archive", STORE_SPECIAL_ARCHIVE},
	{"\\Drafts", STORE_SPECIAL_DRAFTS},
	{"\\Flagged", STORE_SPECIAL_FLAGGED},
	{"\\Important", STORE_SPECIAL_IMPORTANT},
	{"\\Junk", STORE_SPECIAL_JUNK},
	{"\\Sent", STORE_SPECIAL_SENT},
	{"\\Trash", STORE_SPECIAL_TRASH},
};

void imap_append_special_use(struct buf *out, unsigned bits, bool *first)
{
	for (size_t i = 0; i < sizeof(special_uses) / sizeof(special_uses[0]); i++) {
		if (!(bits & special_uses[i].bit))
			continue;
		if (!*first)
			buf_append_char(out, ' ');
		buf_append_str(out, special_uses[i].name);
		*first = false;
	}
}

/* The mailbox name argument: astring, converted to a store name. Replies
 * and returns NULL when it is not acceptable. strip_sep: CREATE "foo/"
 * means foo (RFC 9051 6.3.4). */
char *imap_cmd_mailbox_arg(struct imap_cmd *cmd, const struct imap_arg *arg,
			   bool strip_sep)
{
	struct imap_client *c = cmd->client;
	const char *error;
	if (!imap_arg_is_astring(arg)) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Expected a mailbox name");
		return NULL;
	}
	size_t len = arg->str.len;
	if (strip_sep && len > 1 && arg->str.ptr[len - 1] == imap_client_separator(c))
		len--;
	char *name = imap_client_mailbox_in(c, arg->str.ptr, len, &error);
	if (name == NULL)
		imap_cmd_no(cmd, "%s", error);
	return name;
}

static bool is_inbox(const char *name)
{
	return strcmp(name, "INBOX") == 0;
}

/* (USE (\Sent ...)) */
static int parse_create_params(struct imap_cmd *cmd, const struct imap_arg *l,
			       unsigned *use_r)
{
	for (const struct imap_arg *p = l; p->type != IMAP_ARG_EOL; p++) {
		if (!imap_arg_atom_eq(p, "USE") || p[1].type != IMAP_ARG_LIST) {
			imap_cmd_bad(cmd, "[CLIENTBUG] Unknown CREATE parameter");
			return -1;
		}
		p++;
		for (size_t i = 0; i < p->list_count; i++) {
			const struct imap_arg *u = &p->list[i];
			size_t k;
			for (k = 0; k < sizeof(special_uses) / sizeof(special_uses[0]); k++) {
				if (imap_arg_atom_eq(u, special_uses[k].name))
					break;
			}
			if (k == sizeof(special_uses) / sizeof(special_uses[0])) {
				imap_cmd_no(cmd, "[USEATTR] Unsupported special-use attribute");
				return -1;
			}
			*use_r |= special_uses[k].bit;
		}
	}
	return 0;
}

void cmd_create(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	unsigned use = 0;
	if (a[0].type == IMAP_ARG_EOL ||
	    (a[1].type != IMAP_ARG_EOL &&
	     (a[1].type != IMAP_ARG_LIST || a[2].type != IMAP_ARG_EOL))) {
		imap_cmd_bad(cmd, "[CLIENTBUG] CREATE needs a mailbox name");
		return;
	}
	if (a[1].type == IMAP_ARG_LIST && parse_create_params(cmd, a[1].list, &use) < 0)
		return;
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], true, &ref) < 0)
		return;
	char *name = ref.name;
	struct store_error err = {0};
	(void)c;
	if (is_inbox(name)) {
		imap_cmd_no(cmd, "[ALREADYEXISTS] INBOX always exists");
	} else if (ref.shared && use != 0) {
		imap_cmd_no(cmd, "[USEATTR] Special use is the owner's");
	} else if (store_mailbox_create(ref.user, name, use, &err) < 0) {
		if (err.kind == STORE_ERR_INVALID && use != 0)
			imap_cmd_no(cmd, "[USEATTR] %s", err.msg);
		else
			imap_cmd_ref_error(cmd, &ref, &err);
	} else {
		imap_cmd_ok(cmd, "CREATE completed");
	}
	imap_mbref_free(&ref);
}

void cmd_delete(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (cmd->args[0].type == IMAP_ARG_EOL || cmd->args[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] DELETE needs one mailbox name");
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &cmd->args[0], false, &ref) < 0)
		return;
	char *name = ref.name;
	struct store_error err = {0};
	if (is_inbox(name)) {
		imap_cmd_no(cmd, "[NOPERM] INBOX cannot be deleted");
	} else if (store_mailbox_delete(ref.user, name, &err) < 0) {
		imap_cmd_ref_error(cmd, &ref, &err);
	} else {
		/* deleting the selected mailbox leaves nothing selected */
		if (c->mailbox != NULL && strcmp(c->mailbox, name) == 0 &&
		    store_user_id(imap_client_sel_user(c)) ==
			    store_user_id(ref.user)) {
			imap_client_unselect(c);
			imap_client_untagged(c, "OK [CLOSED] Mailbox deleted");
		}
		imap_cmd_ok(cmd, "DELETE completed");
	}
	imap_mbref_free(&ref);
}

/* The selected mailbox (or one of its parents) was renamed: the view
 * stays on the same mailbox under its new name. INBOX is special: its
 * messages moved away and INBOX stays (RFC 9051 6.3.6). */
static void follow_rename(struct imap_client *c, const char *from,
			  const char *to)
{
	size_t n = strlen(from);
	if (c->mailbox == NULL || strcmp(from, "INBOX") == 0 ||
	    strncmp(c->mailbox, from, n) != 0 ||
	    (c->mailbox[n] != '\0' && c->mailbox[n] != '/'))
		return;
	char *name = xasprintf("%s%s", to, c->mailbox + n);
	free(c->mailbox);
	c->mailbox = name;
}

void cmd_rename(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a[0].type == IMAP_ARG_EOL || a[1].type == IMAP_ARG_EOL ||
	    a[2].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] RENAME needs two mailbox names");
		return;
	}
	struct imap_mbref rf, rt;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &rf) < 0)
		return;
	if (imap_cmd_mailbox_ref(cmd, &a[1], true, &rt) < 0) {
		imap_mbref_free(&rf);
		return;
	}
	char *from = rf.name, *to = rt.name;
	struct store_error err = {0};
	if (is_inbox(to) && !rt.shared)
		imap_cmd_no(cmd, "[ALREADYEXISTS] INBOX always exists");
	else if (store_user_id(rf.user) != store_user_id(rt.user))
		/* never across owners */
		imap_cmd_no(cmd, "[CANNOT] Cannot move a mailbox to another"
			    " account");
	else if (store_mailbox_rename(rf.user, from, to, &err) < 0)
		imap_cmd_ref_error(cmd, &rf, &err);
	else {
		if (store_user_id(rf.user) ==
		    store_user_id(imap_client_sel_user(c)))
			follow_rename(c, from, to);
		imap_cmd_ok(cmd, "RENAME completed");
	}
	imap_mbref_free(&rf);
	imap_mbref_free(&rt);
}

static void do_subscribe(struct imap_cmd *cmd, bool subscribe)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a[0].type == IMAP_ARG_EOL || a[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s needs one mailbox name", cmd->name);
		return;
	}
	if (!imap_arg_is_astring(&a[0]) || imap_arg_has_nul(&a[0])) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Expected a mailbox name");
		return;
	}
	struct store_error err = {0};
	/* another account's mailbox: kept in the subscriber's own list
	 * under its one namespace name (LIST and LSUB show it there) */
	char *raw = imap_client_mailbox_in_raw(c, a[0].str.ptr, a[0].str.len);
	char *canon = imap_acl_ns_canonical(c, raw);
	if (canon == NULL) {
		free(raw);
		struct imap_mbref ref;
		if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0)
			return;
		if (store_mailbox_subscribe(c->store_user, ref.name, subscribe,
					    &err) < 0)
			imap_cmd_store_error(cmd, &err);
		else
			imap_cmd_ok(cmd, "%s completed", cmd->name);
		imap_mbref_free(&ref);
		return;
	}
	if (subscribe) {
		/* SUBSCRIBE needs l (RFC 4314 4); a hidden mailbox fails as a
		 * missing one */
		struct imap_mbref ref;
		unsigned rights;
		if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0) {
			free(raw);
			free(canon);
			return;
		}
		bool ok = store_myrights(ref.user, ref.name, &rights, &err) == 0 &&
			  (rights & STORE_RIGHT_LOOKUP);
		imap_mbref_free(&ref);
		if (!ok) {
			free(raw);
			free(canon);
			imap_cmd_no(cmd, "[NONEXISTENT] Mailbox doesn't exist");
			return;
		}
	}
	/* UNSUBSCRIBE needs no right and no mailbox: a name whose mailbox
	 * or owner is gone can be dropped (RFC 9051 6.3.8); also its form
	 * as given, kept so before names were made one */
	int r = store_mailbox_subscribe(c->store_user, canon, subscribe, &err);
	if (r == 0 && !subscribe && strcmp(raw, canon) != 0) {
		struct store_error e2 = {0};
		(void)store_mailbox_subscribe(c->store_user, raw, false, &e2);
	}
	if (r < 0)
		imap_cmd_store_error(cmd, &err);
	else
		imap_cmd_ok(cmd, "%s completed", cmd->name);
	free(raw);
	free(canon);
}

void cmd_subscribe(struct imap_cmd *cmd)
{
	do_subscribe(cmd, true);
}

void cmd_unsubscribe(struct imap_cmd *cmd)
{
	do_subscribe(cmd, false);
}
