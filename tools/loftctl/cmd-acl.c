/*
 * loftctl acl get|set|del MAILBOX-PATH ... and group add|del|list|members
 * (issue 15). MAILBOX-PATH is ADDRESS/MAILBOX ("alice@example.test/Family/
 * Bills"); a bare ADDRESS means its INBOX. Identifiers and rights are
 * those of IMAP SETACL ("lrs", "+w", "-t"; "anyone", "authenticated",
 * "$group", "-name" for negative rights), checked the same way
 * (auth_acl_identifier); the ACL is written through the store, in the
 * owner's index, with the reverse-index hint before the commit.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "saslprep.h"

/* [sharing] cross_domain, as loftd reads it */
bool loftctl_cross_domain(struct loftctl *ctl)
{
	bool v = false;
	const char *s = config_get(ctl->cfg, "sharing", "cross_domain");
	if (s != NULL && config_parse_bool(s, &v) < 0)
		v = false;
	return v;
}

unsigned loftctl_max_acl_entries(struct loftctl *ctl)
{
	uint64_t n = 1000;
	const char *s = config_get(ctl->cfg, "sharing", "max_acl_entries");
	if (s != NULL && config_parse_uint(s, 1000000, &n) < 0)
		n = 1000;
	return (unsigned)n;
}

/* ADDRESS[/MAILBOX] -> the owner and the store name (caller frees). */
static int split_path(struct loftctl *ctl, const char *path,
		      struct auth_user *owner, char **mailbox_r)
{
	const char *slash = strchr(path, '/');
	char *addr = slash ? xstrndup(path, (size_t)(slash - path))
			   : xstrdup(path);
	int rc = loftctl_lookup_user(ctl, addr, owner);
	free(addr);
	if (rc < 0)
		return -1;
	*mailbox_r = xstrdup(slash && slash[1] ? slash + 1 : "INBOX");
	return 0;
}

static struct store_user *open_owner(struct loftctl *ctl,
				     const struct auth_user *owner)
{
	struct store *store = loftctl_store(ctl);
	struct store_user *u;
	struct store_error err;
	if (store_user_open(store, owner->id, &u, &err) < 0) {
		loftctl_fail("%s: %s", owner->address, err.msg);
		return NULL;
	}
	return u;
}

static int acl_get(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_acl_cmds[0]);
	struct auth_user owner;
	char *mailbox;
	if (split_path(ctl, argv[0], &owner, &mailbox) < 0)
		return 1;
	struct store_user *u = open_owner(ctl, &owner);
	int rc = 1;
	struct store_acl_entry *e;
	size_t n;
	struct store_error err;
	if (u != NULL && store_acl_get(u, mailbox, &e, &n, &err) < 0) {
		rc = loftctl_fail("%s: %s", argv[0], err.msg);
	} else if (u != NULL) {
		char r[16];
		store_rights_format(STORE_RIGHTS_ALL, r);
		printf("%s %s (owner)\n", owner.address, r);
		for (size_t i = 0; i < n; i++) {
			char *id = auth_acl_identifier_text(ctl->auth, e[i].kind,
							    e[i].id,
							    e[i].negative,
							    owner.address);
			if (id == NULL)
				continue;
			store_rights_format(e[i].rights, r);
			printf("%s %s\n", id, r);
			free(id);
		}
		free(e);
		rc = 0;
	}
	store_user_unref(&u);
	free(mailbox);
	return rc;
}

static int set_or_del(struct loftctl *ctl, const char *path,
		      const char *ident, const char *rights, bool del)
{
	struct auth_user owner;
	char *mailbox, *id = NULL;
	const char *why;
	if (split_path(ctl, path, &owner, &mailbox) < 0)
		return 1;
	int mode = 0;
	unsigned bits = 0;
	if (!del) {
		if (rights[0] == '+' || rights[0] == '-')
			mode = *rights++ == '+' ? 1 : -1;
		if (store_rights_parse(rights, strlen(rights), &bits) < 0) {
			free(mailbox);
			return loftctl_fail("invalid rights: %s (letters of"
					    " lrswipkxteacd)", rights);
		}
	}
	if (saslprep(ident, SASLPREP_QUERY, &id, &why) < 0) {
		free(mailbox);
		return loftctl_fail("invalid identifier %s: %s", ident, why);
	}
	struct store_acl_entry e = {0};
	int kind;
	if (auth_acl_identifier(ctl->auth, id, owner.address,
				loftctl_cross_domain(ctl), &kind, &e.id, &e.negative,
				&why) < 0) {
		const char *text = strchr(why, ']');
		int rc = loftctl_fail("%s: %s", ident, text ? text + 2 : why);
		free(id);
		free(mailbox);
		return rc;
	}
	free(id);
	e.kind = (enum store_acl_kind)kind;
	e.rights = bits;
	struct store_user *u = open_owner(ctl, &owner);
	int rc = 1;
	struct store_error err;
	if (u != NULL) {
		int r = del ? store_acl_delete(u, mailbox, e.kind, e.id,
					       e.negative, &err)
			    : store_acl_set(u, mailbox, &e, mode,
					    loftctl_max_acl_entries(ctl), &err);
		rc = r < 0 ? loftctl_fail("%s: %s", path, err.msg) : 0;
		if (r == 0)
			printf("%s %s on %s\n", del ? "deleted" : "set", ident,
			       path);
	}
	store_user_unref(&u);
	free(mailbox);
	return rc;
}

static int acl_set(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 3)
		return loftctl_usage(&loftctl_acl_cmds[1]);
	return set_or_del(ctl, argv[0], argv[1], argv[2], false);
}

static int acl_del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_acl_cmds[2]);
	return set_or_del(ctl, argv[0], argv[1], NULL, true);
}

const struct loftctl_cmd loftctl_acl_cmds[] = {
	{"acl", "get", "ADDRESS[/MAILBOX]", acl_get},
	{"acl", "set", "ADDRESS[/MAILBOX] IDENTIFIER RIGHTS", acl_set},
	{"acl", "del", "ADDRESS[/MAILBOX] IDENTIFIER", acl_del},
	{NULL, NULL, NULL, NULL},
};

/* ---- a mailbox's settings: \Seen per user or shared ------------------- */

static const char *const seen_names[] = {"per-user", "shared"};

static int mailbox_get(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_mailbox_cmds[0]);
	struct auth_user owner;
	char *mailbox;
	if (split_path(ctl, argv[0], &owner, &mailbox) < 0)
		return 1;
	struct store_user *u = open_owner(ctl, &owner);
	int rc = 1;
	enum store_seen_mode mode;
	struct store_error err;
	if (u != NULL && store_mailbox_seen_mode(u, mailbox, &mode, &err) < 0) {
		rc = loftctl_fail("%s: %s", argv[0], err.msg);
	} else if (u != NULL) {
		const char *def = config_get(ctl->cfg, "sharing", "seen");
		if (mode == STORE_SEEN_DEFAULT)
			printf("seen=default (%s, [sharing] seen)\n",
			       def != NULL ? def : "per-user");
		else
			printf("seen=%s\n", seen_names[mode]);
		rc = 0;
	}
	store_user_unref(&u);
	free(mailbox);
	return rc;
}

static int mailbox_set(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_mailbox_cmds[1]);
	enum store_seen_mode mode;
	if (strcmp(argv[1], "seen=per-user") == 0)
		mode = STORE_SEEN_PER_USER;
	else if (strcmp(argv[1], "seen=shared") == 0)
		mode = STORE_SEEN_SHARED;
	else if (strcmp(argv[1], "seen=default") == 0)
		mode = STORE_SEEN_DEFAULT;
	else
		return loftctl_fail("unknown setting %s (seen=per-user,"
				    " seen=shared or seen=default)", argv[1]);
	struct auth_user owner;
	char *mailbox;
	if (split_path(ctl, argv[0], &owner, &mailbox) < 0)
		return 1;
	struct store_user *u = open_owner(ctl, &owner);
	int rc = 1;
	struct store_error err;
	if (u != NULL && store_mailbox_set_seen_mode(u, mailbox, mode,
						     &err) < 0) {
		rc = loftctl_fail("%s: %s", argv[0], err.msg);
	} else if (u != NULL) {
		/* the messages' modseqs were raised: open sessions look now
		 * (their readers' \Seen may have changed) */
		loftctl_tell_changed(ctl, owner.id);
		printf("%s: %s\n", argv[0], argv[1]);
		rc = 0;
	}
	store_user_unref(&u);
	free(mailbox);
	return rc;
}

const struct loftctl_cmd loftctl_mailbox_cmds[] = {
	{"mailbox", "get", "ADDRESS[/MAILBOX]", mailbox_get},
	{"mailbox", "set", "ADDRESS[/MAILBOX] seen=per-user|shared|default",
	 mailbox_set},
	{NULL, NULL, NULL, NULL},
};

/* ---- groups ------------------------------------------------------------ */

/* Ends a verb: the error, or line (a finished message). */
static int done(int r, char *error, char *line)
{
	if (r < 0) {
		int rc = loftctl_fail("%s", error ? error : "failed");
		free(error);
		free(line);
		return rc;
	}
	if (line != NULL)
		printf("%s\n", line);
	free(line);
	return 0;
}

static int group_add(struct loftctl *ctl, int argc, char **argv)
{
	if (argc < 1)
		return loftctl_usage(&loftctl_group_cmds[0]);
	char *error = NULL;
	int r = auth_group_add_members(ctl->auth, argv[0], argv + 1,
				       (size_t)argc - 1, &error);
	return done(r, error, xasprintf("added group %s", argv[0]));
}

static int group_del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_group_cmds[1]);
	char *error = NULL;
	/* called before done(): its error is read after */
	int r = auth_group_del(ctl->auth, argv[0], &error);
	return done(r, error, xasprintf("deleted group %s", argv[0]));
}

static int group_member(struct loftctl *ctl, int argc, char **argv, bool add,
			int usage)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_group_cmds[usage]);
	char *error = NULL;
	int r = auth_group_member(ctl->auth, argv[0], argv[1], add, &error);
	return done(r, error, add ? xasprintf("added %s to %s", argv[1], argv[0])
				  : xasprintf("removed %s from %s", argv[1],
					      argv[0]));
}

static int group_join(struct loftctl *ctl, int argc, char **argv)
{
	return group_member(ctl, argc, argv, true, 2);
}

static int group_leave(struct loftctl *ctl, int argc, char **argv)
{
	return group_member(ctl, argc, argv, false, 3);
}

static void print_line(void *ctx, const char *name, const char *extra)
{
	(void)ctx;
	if (extra != NULL)
		printf("%s %s\n", name, extra);
	else
		printf("%s\n", name);
}

static int group_list(struct loftctl *ctl, int argc, char **argv)
{
	if (argc > 1)
		return loftctl_usage(&loftctl_group_cmds[4]);
	char *error = NULL;
	if (auth_group_list(ctl->auth, argc ? argv[0] : NULL, print_line, NULL,
			    &error) < 0)
		return done(-1, error, NULL);
	return 0;
}

static int group_members(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_group_cmds[5]);
	char *error = NULL;
	if (auth_group_members(ctl->auth, argv[0], print_line, NULL,
			       &error) < 0)
		return done(-1, error, NULL);
	return 0;
}

const struct loftctl_cmd loftctl_group_cmds[] = {
	{"group", "add", "NAME@DOMAIN [ADDRESS...]", group_add},
	{"group", "del", "NAME@DOMAIN", group_del},
	{"group", "join", "NAME@DOMAIN ADDRESS", group_join},
	{"group", "leave", "NAME@DOMAIN ADDRESS", group_leave},
	{"group", "list", "[DOMAIN]", group_list},
	{"group", "members", "NAME@DOMAIN", group_members},
	{NULL, NULL, NULL, NULL},
};

/* ---- shared addresses -------------------------------------------------- */

static int shared_add(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_shared_cmds[0]);
	struct auth_user u;
	char *error = NULL;
	if (auth_shared_add(ctl->auth, argv[0], &u, &error) < 0)
		return done(-1, error, NULL);
	/* its mail (INBOX) at once, so ACLs can be set on it */
	struct store_user *su = open_owner(ctl, &u);
	if (su == NULL)
		return 1;
	store_user_unref(&su);
	printf("added shared address %s (no password; give rights with"
	       " loftctl acl set %s IDENTIFIER RIGHTS)\n", u.address, u.address);
	return 0;
}

unsigned loftctl_acl_print_shared(struct loftctl *ctl,
				  const struct auth_user *u)
{
	struct store *store = loftctl_store(ctl);
	struct store_user *su = NULL;
	struct store_acl_row *rows = NULL;
	size_t n = 0;
	unsigned printed = 0;
	struct store_error err;
	if (store == NULL ||
	    store_user_open_existing(store, u->id, &su, &err) < 0)
		return 0;   /* no mail: nothing shared */
	if (store_acl_all(su, &rows, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			char *id = auth_acl_identifier_text(
				ctl->auth, rows[i].entry.kind, rows[i].entry.id,
				rows[i].entry.negative, u->address);
			char r[16];
			store_rights_format(rows[i].entry.rights, r);
			if (id != NULL) {
				printf("%s/%s: %s %s\n", u->address,
				       rows[i].mailbox, id, r);
				printed++;
			}
			free(id);
		}
		store_acl_all_free(rows, n);
	}
	store_user_unref(&su);
	return printed;
}

unsigned loftctl_acl_forget(struct loftctl *ctl, int64_t user_id,
			    const int64_t *owners, size_t owner_count)
{
	struct store *store = loftctl_store(ctl);
	unsigned removed = 0;
	for (size_t o = 0; o < owner_count && store != NULL; o++) {
		struct store_user *su;
		struct store_error err;
		if (owners[o] == user_id ||
		    store_user_open_existing(store, owners[o], &su, &err) < 0)
			continue;
		struct store_acl_row *rows = NULL;
		size_t n = 0;
		if (store_acl_all(su, &rows, &n, &err) == 0) {
			for (size_t i = 0; i < n; i++) {
				const struct store_acl_entry *e = &rows[i].entry;
				if (e->kind != STORE_ACL_USER || e->id != user_id)
					continue;
				if (store_acl_delete(su, rows[i].mailbox, e->kind,
						     e->id, e->negative,
						     &err) == 0)
					removed++;
				else
					fprintf(stderr, "ACL of %s not"
						" changed: %s\n",
						rows[i].mailbox, err.msg);
			}
			store_acl_all_free(rows, n);
		}
		store_user_unref(&su);
	}
	return removed;
}

static int shared_del(struct loftctl *ctl, int argc, char **argv)
{
	bool yes = loftctl_take_flag(&argc, argv, "--yes");
	if (argc != 1)
		return loftctl_usage(&loftctl_shared_cmds[1]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return 1;
	if (auth_user_is_shared(ctl->auth, u.id) != 1)
		return loftctl_fail("%s is not a shared address (loftctl user"
				    " del)", u.address);
	if (!yes) {
		/* say what others would lose */
		loftctl_acl_print_shared(ctl, &u);
		return loftctl_fail("not deleted: others may use %s; pass"
				    " --yes", u.address);
	}
	char *error = NULL;
	if (auth_user_del(ctl->auth, u.address, &error) < 0)
		return done(-1, error, NULL);
	bool running;
	unsigned sessions;
	(void)loftctl_kick(ctl, &u, &running, &sessions);
	struct store_error err = {0};
	if (store_user_delete(loftctl_store(ctl), u.id, &err) < 0)
		return loftctl_fail("%s removed, but its mail was not: %s",
				    u.address, err.msg);
	printf("deleted shared address %s\n", u.address);
	return 0;
}

static int shared_list(struct loftctl *ctl, int argc, char **argv)
{
	if (argc > 1)
		return loftctl_usage(&loftctl_shared_cmds[2]);
	char *error = NULL;
	if (auth_shared_list(ctl->auth, argc ? argv[0] : NULL, print_line, NULL,
			     &error) < 0)
		return done(-1, error, NULL);
	return 0;
}

const struct loftctl_cmd loftctl_shared_cmds[] = {
	{"shared", "add", "ADDRESS", shared_add},
	{"shared", "del", "ADDRESS [--yes]", shared_del},
	{"shared", "list", "[DOMAIN]", shared_list},
	{NULL, NULL, NULL, NULL},
};
