/*
 * loftctl user ...: accounts. Passwords (or {SCHEME}hash lines with
 * --hash) are read from stdin, one line, and never echoed or printed.
 * Deleting an account removes its mail too (store_user_delete).
 */
#include "loftctl.h"

#include "buf.h"
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SECRET_MAX 1100   /* a password is at most 1024 bytes */

static int read_secret(bool is_hash, bool confirm, char *buf)
{
	return loftctl_read_secret(is_hash ? "{SCHEME}hash: " : "password: ",
				   confirm && !is_hash, buf, SECRET_MAX);
}

static int user_add(struct loftctl *ctl, int argc, char **argv)
{
	bool is_hash = loftctl_take_flag(&argc, argv, "--hash");
	if (argc != 1)
		return loftctl_usage(&loftctl_user_cmds[0]);
	char secret[SECRET_MAX];
	if (read_secret(is_hash, true, secret) < 0)
		return LOFTCTL_EXIT_FAIL;
	struct auth_user u;
	char *error = NULL;
	int rc = auth_user_add(ctl->auth, argv[0], secret, is_hash, &u, &error);
	explicit_bzero(secret, sizeof(secret));
	if (rc < 0) {
		rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("added %s\n", u.address);
	return 0;
}

static int user_passwd(struct loftctl *ctl, int argc, char **argv)
{
	bool is_hash = loftctl_take_flag(&argc, argv, "--hash");
	if (argc != 1)
		return loftctl_usage(&loftctl_user_cmds[1]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	char secret[SECRET_MAX];
	if (read_secret(is_hash, true, secret) < 0)
		return LOFTCTL_EXIT_FAIL;
	char *error = NULL;
	int rc = auth_user_passwd(ctl->auth, u.address, secret, is_hash, &error);
	explicit_bzero(secret, sizeof(secret));
	if (rc < 0) {
		rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("changed the password of %s\n", u.address);
	return 0;
}

static bool confirm_delete(const char *address)
{
	if (!isatty(STDIN_FILENO))
		return false;
	fprintf(stderr, "delete %s and all its mail? [y/N] ", address);
	fflush(stderr);
	char line[16];
	if (fgets(line, sizeof(line), stdin) == NULL)
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

static int user_del(struct loftctl *ctl, int argc, char **argv)
{
	bool yes = loftctl_take_flag(&argc, argv, "--yes");
	if (argc != 1)
		return loftctl_usage(&loftctl_user_cmds[2]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	/* what others see of its mail (shared mailboxes, issue 15) */
	if (!yes && loftctl_acl_print_shared(ctl, &u) > 0)
		return loftctl_fail("not deleted: others see mail of %s"
				    " (above); pass --yes", u.address);
	if (!yes && !confirm_delete(u.address))
		return loftctl_fail("not deleted: confirm on a terminal or "
				    "pass --yes");
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return LOFTCTL_EXIT_FAIL;
	/* who granted it something, while the reverse index still says */
	int64_t *owners = NULL;
	size_t nowners = 0;
	if (auth_acl_owners(ctl->auth, u.id, &owners, &nowners) < 0)
		nowners = 0;
	/* The account goes first, so no new delivery can find it while its
	 * mail is removed; ids are never reused, so nothing can inherit the
	 * mail if its removal fails half way. */
	char *error = NULL;
	if (auth_user_del(ctl->auth, u.address, &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		free(owners);
		return rc;
	}
	/* Then its sessions end (IMAP BYE, POP3 -ERR) before the mail goes,
	 * so none goes on working on a deleted account; so do the sessions
	 * of others on its mail (they listen on its channel). */
	bool running;
	unsigned sessions;
	if (loftctl_kick(ctl, &u, &running, &sessions) == 0 && sessions > 0)
		printf("ended %u sessions of %s\n", sessions, u.address);
	struct store_error err = {0};
	if (store_user_delete(store, u.id, &err) < 0) {
		free(owners);
		return loftctl_fail("%s removed, but its mail (user id %" PRId64
				    ") was not: %s", u.address, u.id, err.msg);
	}
	/* the rights it held on others' mail go too */
	unsigned forgot = loftctl_acl_forget(ctl, u.id, owners, nowners);
	free(owners);
	if (forgot > 0)
		printf("removed %u ACL entries naming %s\n", forgot, u.address);
	printf("deleted %s\n", u.address);
	return 0;
}

static void print_row(void *ctx, const char *name, const char *extra)
{
	(void)ctx;
	if (extra != NULL)
		printf("%s %s\n", name, extra);
	else
		printf("%s\n", name);
}

static int user_list(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 0)
		return loftctl_usage(&loftctl_user_cmds[3]);
	char *error = NULL;
	if (auth_user_list(ctl->auth, print_row, NULL, &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	return 0;
}

static void format_size(uint64_t bytes, char *out, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%" PRIu64 " B", bytes);
	else
		snprintf(out, size, "%.1f %s", v, units[u]);
}

static void print_override(void *ctx, const char *key, const char *value)
{
	(void)ctx;
	printf("  %s = %s\n", key, value);
}

static void print_policy(const struct auth_policy *p)
{
	char q[32];
	if (p->quota_bytes == 0)
		snprintf(q, sizeof(q), "none");
	else
		format_size(p->quota_bytes, q, sizeof(q));
	printf("policy:\n");
	printf("  quota_bytes = %s\n", q);
	if (p->quota_messages == 0)
		printf("  quota_messages = none\n");
	else
		printf("  quota_messages = %" PRIu64 "\n", p->quota_messages);
	printf("  pop3_delete = %s\n", auth_pop3_delete_name(p->pop3_delete));
	printf("  pop3_retention_days = %u\n", p->pop3_retention_days);
	printf("  trash_retention_days = %u\n", p->trash_retention_days);
	printf("  junk_retention_days = %u\n", p->junk_retention_days);
	printf("  over_quota_tempfail = %s\n",
	       p->over_quota_tempfail ? "yes" : "no");
	printf("  send_as = %s\n", p->send_as_any ? "any" : "own");
	printf("  sent_copy = %s\n", p->sent_copy ? "yes" : "no");
	format_size(p->sieve_max_storage, q, sizeof(q));
	printf("  sieve_max_scripts = %u\n", p->sieve_max_scripts);
	printf("  sieve_max_storage = %s\n", q);
	printf("  deleted_retention_days = %u\n", p->deleted_retention_days);
	printf("  deleted_in_quota = %s\n", p->deleted_in_quota ? "yes" : "no");
}

/* The last IMAP login, and what pop3_delete = auto does because of it. */
static void print_sync_login(const struct auth_policy *p, time_t last)
{
	time_t now = time(NULL);
	if (last == 0) {
		printf("last IMAP login: never\n");
	} else {
		char when[32];
		struct tm tm;
		gmtime_r(&last, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("last IMAP login: %s (%lld days ago; kept to the hour)\n",
		       when, (long long)((now - last) / 86400));
	}
	if (p->pop3_delete == AUTH_POP3_AUTO)
		printf("pop3 DELE now: %s\n", store_sync_active(last, now)
		       ? "hide (an IMAP client logged in within 30 days)"
		       : "trash (no IMAP login within 30 days)");
}

static int show_mail(struct loftctl *ctl, const struct auth_user *u,
		     const struct auth_policy *p)
{
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_user *su;
	struct store_error err = {0};
	struct store_usage usage;
	struct store_mailbox_info *list = NULL;
	size_t count = 0;
	if (store_user_open(store, u->id, &su, &err) < 0)
		return loftctl_fail("mail of %s: %s", u->address, err.msg);
	int rc = 0;
	if (store_user_usage(su, &usage, &err) < 0 ||
	    store_mailbox_list(su, &list, &count, &err) < 0) {
		rc = loftctl_fail("mail of %s: %s", u->address, err.msg);
		goto out;
	}
	time_t last = 0;
	if (store_last_sync_login(su, &last, &err) < 0) {
		rc = loftctl_fail("mail of %s: %s", u->address, err.msg);
		goto out;
	}
	print_sync_login(p, last);
	char used[32];
	format_size(usage.bytes, used, sizeof(used));
	printf("usage: %" PRIu64 " bytes (%s), %" PRIu64 " messages\n",
	       usage.bytes, used, usage.messages);
	/* kept for undelete: apart, and in the quota only if it says so */
	struct store_usage kept = {0};
	if (store_deleted_usage(su, &kept, &err) < 0) {
		rc = loftctl_fail("mail of %s: %s", u->address, err.msg);
		store_mailbox_list_free(list, count);
		goto out;
	}
	format_size(kept.bytes, used, sizeof(used));
	printf("deleted (kept for undelete): %" PRIu64 " bytes (%s), %" PRIu64
	       " messages%s\n", kept.bytes, used, kept.messages,
	       p->deleted_in_quota ? ", counted in the quota" : "");
	if (p->quota_bytes > 0)
		printf("quota used: %.1f%%\n",
		       100.0 * (double)(usage.bytes +
					(p->deleted_in_quota ? kept.bytes : 0)) /
		       (double)p->quota_bytes);
	printf("mailboxes:\n");
	for (size_t i = 0; i < count; i++) {
		printf("  %s: %u messages, %u unseen, %" PRIu64 " bytes\n",
		       list[i].name, list[i].messages, list[i].unseen,
		       list[i].size);
	}
	/* bytes on disk now: the index (WAL included; search_bytes is the
	 * part of it that serves SEARCH) and the message bodies */
	struct store_disk disk;
	if (store_user_disk(su, &disk, &err) < 0) {
		rc = loftctl_fail("mail of %s: %s", u->address, err.msg);
		store_mailbox_list_free(list, count);
		goto out;
	}
	printf("disk:\n");
	printf("  index_bytes = %" PRIu64 "\n", disk.index_bytes);
	printf("  search_bytes = %" PRIu64 "\n", disk.search_bytes);
	/* after an import loftd indexes in the background (search is exact
	 * meanwhile, only slower) */
	printf("  search_unindexed = %" PRIu64 "\n", disk.unindexed);
	printf("  blob_bytes = %" PRIu64 "\n", disk.blob_bytes);
	store_mailbox_list_free(list, count);
out:
	store_user_unref(&su);
	return rc;
}

static int user_show(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_user_cmds[4]);
	struct auth_user u;
	struct auth_policy p;
	char scheme[32];
	bool has_scram = false;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	if (auth_user_policy(ctl->auth, u.id, &p) < 0 ||
	    auth_user_scheme(ctl->auth, u.id, scheme, sizeof(scheme),
			     &has_scram) < 0)
		return loftctl_fail("cannot read accounts.db");
	printf("address: %s\n", u.address);
	printf("id: %" PRId64 "\n", u.id);
	printf("status: %s\n", u.disabled ? "disabled" : "active");
	printf("hash: %s%s\n", scheme,
	       has_scram ? ", with SCRAM-SHA-256 keys"
			 : " (SCRAM-SHA-256 after the next PLAIN/LOGIN)");
	print_policy(&p);
	printf("overrides:\n");
	char *error = NULL;
	if (auth_user_overrides(ctl->auth, u.id, print_override, NULL,
				&error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	return show_mail(ctl, &u, &p);
}

static int user_quota(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_user_cmds[5]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	char *error = NULL;
	if (auth_user_set(ctl->auth, u.address, "quota_bytes", argv[1],
			  &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("quota of %s: %s\n", u.address, argv[1]);
	return 0;
}

/* Every KEY=VALUE is checked before any is applied, so a typo in the
 * third leaves the first two unchanged. */
static int check_setting(const char *arg, char *key, size_t key_size,
			 const char **value_r)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL || eq == arg || (size_t)(eq - arg) >= key_size)
		return loftctl_fail("expected KEY=VALUE, got '%s'", arg), -1;
	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	*value_r = eq + 1;
	char *error = NULL;
	bool b;
	if (strcmp(key, "disabled") == 0) {
		if (config_parse_bool(*value_r, &b) == 0)
			return 0;
		return loftctl_fail("disabled: expected yes or no"), -1;
	}
	/* issue 15: auth_user_set checks the value */
	if (strcmp(key, "shared_admin") == 0)
		return 0;
	if (strcmp(*value_r, "default") == 0) {
		for (int i = 0; auth_policy_keys[i] != NULL; i++) {
			if (strcmp(auth_policy_keys[i], key) == 0)
				return 0;
		}
		return loftctl_fail("unknown key '%s'", key), -1;
	}
	struct auth_policy p;
	auth_policy_defaults(&p);
	if (auth_policy_set(&p, key, *value_r, &error) < 0) {
		loftctl_fail("%s", error);
		free(error);
		return -1;
	}
	return 0;
}

static int user_set(struct loftctl *ctl, int argc, char **argv)
{
	if (argc < 2)
		return loftctl_usage(&loftctl_user_cmds[6]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	char key[64];
	const char *value;
	for (int i = 1; i < argc; i++) {
		if (check_setting(argv[i], key, sizeof(key), &value) < 0)
			return LOFTCTL_EXIT_FAIL;
	}
	for (int i = 1; i < argc; i++) {
		char *error = NULL;
		(void)check_setting(argv[i], key, sizeof(key), &value);
		if (auth_user_set(ctl->auth, u.address, key, value, &error) < 0) {
			int rc = loftctl_fail("%s", error);
			free(error);
			return rc;
		}
		printf("%s: %s = %s\n", u.address, key, value);
	}
	return 0;
}

static int user_verify(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_user_cmds[7]);
	char secret[SECRET_MAX];
	if (read_secret(false, false, secret) < 0)
		return LOFTCTL_EXIT_FAIL;
	struct auth_user u;
	enum auth_result r = auth_verify(ctl->auth, argv[0], secret, "loftctl",
					 &u);
	explicit_bzero(secret, sizeof(secret));
	switch (r) {
	case AUTH_OK:
		printf("ok %s\n", u.address);
		return 0;
	case AUTH_DISABLED:
		return loftctl_fail("%s is disabled", argv[0]);
	case AUTH_TEMPFAIL:
		return loftctl_fail("cannot read accounts.db");
	default:
		return loftctl_fail("wrong user or password");
	}
}

/* The order matters: handlers print their usage by index. */
const struct loftctl_cmd loftctl_user_cmds[] = {
	{"user", "add", "ADDRESS [--hash]   (password or {SCHEME}hash on stdin)",
	 user_add},
	{"user", "passwd", "ADDRESS [--hash]   (password or {SCHEME}hash on stdin)",
	 user_passwd},
	{"user", "del", "ADDRESS [--yes]", user_del},
	{"user", "list", "", user_list},
	{"user", "show", "ADDRESS", user_show},
	{"user", "quota", "ADDRESS SIZE|none   (SIZE like 500M, 2G)", user_quota},
	{"user", "set", "ADDRESS KEY=VALUE...   (KEY=default removes an override)",
	 user_set},
	{"user", "verify", "ADDRESS   (password on stdin; exit 0 if right)",
	 user_verify},
	{NULL, NULL, NULL, NULL},
};
