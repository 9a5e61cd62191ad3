/*
 * loftctl import ADDRESS SOURCE [--folder F] [--dry-run] [--json]
 * loftctl export ADDRESS DEST --format maildir|mbox [--folder F] [--json]
 *
 * Moving mail into and out of an existing account (src/migrate). A
 * progress line on a terminal, a summary per folder, each failure with
 * its folder and message; exit 0 only if every message was imported (or
 * was there from an earlier run), 1 otherwise, 2 for a usage error.
 */
#include "loftctl.h"
#include "migrate.h"
#include "buf.h"

#include <jansson.h>
#ifdef LOFTCTL_HAVE_QUEUE
#include "delivery-sieve.h"
#include "queue.h"
#include "sieve.h"
#endif
#ifdef LOFTCTL_HAVE_MAILAUTH
#include "mailauth.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int open_account(struct loftctl *ctl, const char *address,
			struct store_user **user_r)
{
	struct auth_user u;
	if (loftctl_lookup_user(ctl, address, &u) < 0)
		return -1;
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return -1;
	struct store_error err;
	if (store_user_open(store, u.id, user_r, &err) < 0) {
		loftctl_fail("%s: %s", address, err.msg);
		return -1;
	}
	return 0;
}

/* Takes "--folder F" / "--folder=F" and "--format X" out of argv. */
static bool take_value(int *argc, char **argv, const char *flag,
		       const char **value_r, bool *bad_r)
{
	size_t fl = strlen(flag);
	for (int i = 0; i < *argc; i++) {
		int skip;
		if (strcmp(argv[i], flag) == 0) {
			if (i + 1 >= *argc) {
				*bad_r = true;
				return false;
			}
			*value_r = argv[i + 1];
			skip = 2;
		} else if (strncmp(argv[i], flag, fl) == 0 && argv[i][fl] == '=') {
			*value_r = argv[i] + fl + 1;
			skip = 1;
		} else {
			continue;
		}
		for (int j = i; j + skip < *argc; j++)
			argv[j] = argv[j + skip];
		*argc -= skip;
		return true;
	}
	return false;
}

#ifdef LOFTCTL_HAVE_QUEUE
/* A script from a backup: compiled with [sieve]'s limits, as `loftctl
 * sieve put` does. */
static int sieve_restore(void *ctx, struct store_user *user, const char *name,
			 const char *source, size_t len, bool active,
			 char *why, size_t why_size)
{
	struct loftctl *ctl = ctx;
	static struct sieve_limits def;
	struct buf errors;
	buf_init(&errors, 0);
	struct delivery_sieve *ds = delivery_sieve_load(ctl->cfg, &errors);
	buf_free(&errors);
	const struct sieve_limits *lim = ds ? delivery_sieve_limits(ds) : NULL;
	if (lim == NULL) {
		sieve_limits_default(&def);
		lim = &def;
	}
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile(source, len, name, lim, &e);
	int ret = -1;
	if (s == NULL) {
		snprintf(why, why_size, "does not compile here: %s",
			 e.count > 0 ? e.items[0].message : "?");
	} else {
		size_t ilen;
		const void *img = sieve_script_image(s, &ilen);
		struct store_error err;
		if (store_sieve_put(user, name, source, len, img, ilen, &err) < 0 ||
		    (active && store_sieve_activate(user, name, &err) < 0))
			snprintf(why, why_size, "%s", err.msg);
		else
			ret = 0;
	}
	sieve_script_free(&s);
	sieve_errors_free(&e);
	delivery_sieve_unref(&ds);
	return ret;
}
#endif

/* A running loftd's IDLE clients see each commit of an import or a
 * restore while it runs. */
static void tell_committed(void *ctx, struct store_user *user)
{
	loftctl_tell_soon(ctx, store_user_id(user));
}

static int cmd_import(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	bool bad = false;
	const char *password_file = NULL;
	take_value(&argc, argv, "--folder", &m.folder, &bad);
	take_value(&argc, argv, "--password-file", &password_file, &bad);
	take_value(&argc, argv, "--authzid", &m.authzid, &bad);
	m.dry_run = loftctl_take_flag(&argc, argv, "--dry-run");
	m.json = loftctl_take_flag(&argc, argv, "--json");
	m.expunge_vanished = loftctl_take_flag(&argc, argv, "--expunge");
	if (bad || argc != 2 || argv[0][0] == '-' || argv[1][0] == '-')
		return loftctl_usage(&loftctl_migrate_cmds[0]);
	/* a remote source's password: one line, never on the command line */
	char password[1024];
	if (strstr(argv[1], "://") != NULL) {
		if (password_file != NULL) {
			FILE *f = fopen(password_file, "r");
			if (f == NULL)
				return loftctl_fail("%s: %s", password_file,
						    strerror(errno));
			bool ok = fgets(password, sizeof(password), f) != NULL;
			fclose(f);
			if (!ok)
				return loftctl_fail("%s: empty", password_file);
			password[strcspn(password, "\r\n")] = '\0';
		} else if (loftctl_read_secret("Password of the source: ", false,
					       password, sizeof(password)) < 0) {
			return LOFTCTL_EXIT_FAIL;
		}
		m.password = password;
	}
	if (strstr(argv[1], "://") == NULL &&
	    loftctl_user_can(ctl, argv[1], false, "SOURCE") < 0)
		return LOFTCTL_EXIT_FAIL;
	if (open_account(ctl, argv[0], &m.user) < 0)
		return LOFTCTL_EXIT_FAIL;
	m.store = ctl->store;
	m.progress = !m.json && isatty(STDERR_FILENO);
	m.account_ctx = ctl;
	m.committed = tell_committed;
#ifdef LOFTCTL_HAVE_QUEUE
	m.sieve_restore = sieve_restore;   /* a Dovecot home's scripts */
#endif
	int r = migrate_import(&m, argv[1]);
	/* IDLE clients of a running loftd see the new mail at once */
	if (!m.dry_run)
		loftctl_tell_changed(ctl, store_user_id(m.user));
	store_user_unref(&m.user);
	explicit_bzero(password, sizeof(password));
	return r == 0 ? 0 : LOFTCTL_EXIT_FAIL;
}

static int cmd_export(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	bool bad = false;
	const char *format = NULL;
	take_value(&argc, argv, "--folder", &m.folder, &bad);
	take_value(&argc, argv, "--format", &format, &bad);
	m.json = loftctl_take_flag(&argc, argv, "--json");
	if (bad || argc != 2 || argv[0][0] == '-' || argv[1][0] == '-' ||
	    format == NULL ||
	    (strcmp(format, "maildir") != 0 && strcmp(format, "mbox") != 0))
		return loftctl_usage(&loftctl_migrate_cmds[1]);
	if (loftctl_user_can(ctl, argv[1], true, "DEST") < 0)
		return LOFTCTL_EXIT_FAIL;
	if (open_account(ctl, argv[0], &m.user) < 0)
		return LOFTCTL_EXIT_FAIL;
	m.store = ctl->store;
	m.progress = !m.json && isatty(STDERR_FILENO);
	int r = migrate_export(&m, argv[1], strcmp(format, "mbox") == 0
						    ? MIGRATE_MBOX
						    : MIGRATE_MAILDIR);
	store_user_unref(&m.user);
	return r == 0 ? 0 : LOFTCTL_EXIT_FAIL;
}

struct names {
	char **v;
	size_t n;
};

static void collect(void *ctx, const char *name, const char *extra)
{
	(void)extra;
	struct names *l = ctx;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(char *));
	l->v[l->n++] = xstrdup(name);
}

/* ---- the account's accounts.db record (backup, restore) ----------- */

static void collect_alias(void *ctx, const char *alias, const char *target)
{
	json_t **pair = ctx;
	if (target != NULL &&
	    strcmp(target, json_string_value(pair[0])) == 0)
		json_array_append_new(pair[1], json_string(alias));
}

static void collect_setting(void *ctx, const char *key, const char *value)
{
	json_object_set_new(ctx, key, json_string(value ? value : ""));
}

/* "HASH_HEX CREATED EXPIRES" of auth_token_hashes */
static void collect_token(void *ctx, const char *name, const char *extra)
{
	char hash[65];
	long long created = 0, expires = 0;
	if (extra != NULL &&
	    sscanf(extra, "%64s %lld %lld", hash, &created, &expires) == 3)
		json_array_append_new(ctx, json_pack("{s:s, s:s, s:I, s:I}",
			"name", name, "hash", hash, "created",
			(json_int_t)created, "expires", (json_int_t)expires));
}

/* {secret, disabled, aliases, settings}: what `restore` needs to make
 * the account again as it was. */
static json_t *account_record(void *ctx, const char *address)
{
	struct loftctl *ctl = ctx;
	struct auth_user u;
	char *error = NULL, *secret = NULL;
	if (auth_lookup(ctl->auth, address, &u) != 1 ||
	    auth_user_secret(ctl->auth, u.id, &secret, &error) < 0) {
		free(error);
		return NULL;
	}
	json_t *rec = json_object();
	json_object_set_new(rec, "secret", json_string(secret));
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
	json_object_set_new(rec, "disabled", json_boolean(u.disabled));
	json_t *pair[2] = {json_string(u.address), json_array()};
	auth_alias_list(ctl->auth, collect_alias, pair, &error);
	free(error);
	error = NULL;
	json_decref(pair[0]);
	json_object_set_new(rec, "aliases", pair[1]);
	json_t *settings = json_object();
	auth_user_overrides(ctl->auth, u.id, collect_setting, settings, &error);
	free(error);
	error = NULL;
	json_object_set_new(rec, "settings", settings);
	json_t *tokens = json_array();
	auth_token_hashes(ctl->auth, u.id, collect_token, tokens, &error);
	free(error);
	if (json_array_size(tokens) > 0)
		json_object_set_new(rec, "tokens", tokens);
	else
		json_decref(tokens);
	return rec;
}

/* A user id's address, and an address's id (readers' own \Seen). */
static char *user_address(void *ctx, int64_t id)
{
	struct loftctl *ctl = ctx;
	struct auth_user u;
	return auth_lookup_id(ctl->auth, id, &u) == 1 ? xstrdup(u.address)
						      : NULL;
}

static int64_t user_id(void *ctx, const char *address)
{
	struct loftctl *ctl = ctx;
	struct auth_user u;
	return auth_lookup(ctl->auth, address, &u) == 1 ? u.id : 0;
}

/* ---- the server record: what is in no one account ------------------ */

static void collect_name(void *ctx, const char *name, const char *extra)
{
	(void)extra;
	json_array_append_new(ctx, json_string(name));
}

#ifdef LOFTCTL_HAVE_MAILAUTH
struct dkim_collect {
	json_t *keys;
	const char *dir;
	bool failed;
};

static void collect_dkim(void *ctx, const struct dkim_key_info *info)
{
	struct dkim_collect *dc = ctx;
	char *pem = NULL, *error = NULL;
	if (dkim_key_export(dc->dir, info->domain, info->selector, &pem,
			    &error) < 0) {
		fprintf(stderr, "loftctl: DKIM key %s of %s: %s\n",
			info->selector, info->domain, error);
		free(error);
		dc->failed = true;
		return;
	}
	json_array_append_new(dc->keys, json_pack("{s:s, s:s, s:I, s:s}",
		"domain", info->domain, "selector", info->selector,
		"created", (json_int_t)info->created, "key", pem));
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
}
#endif

#ifdef LOFTCTL_HAVE_QUEUE
static bool collect_qid(void *ctx, const struct queue_message_info *info)
{
	json_array_append_new(ctx, json_string(info->id));
	return true;
}

/* The queue's messages with recipients still to deliver: envelope,
 * those recipients, and the bytes (DKIM-Signature fields included) in
 * DEST/blobs. */
static json_t *queue_record(struct loftctl *ctl, const char *dest)
{
	struct queue *q = loftctl_open_queue(ctl);
	if (q == NULL)
		return NULL;
	json_t *ids = json_array(), *out = json_array();
	struct queue_error qe = {0};
	if (queue_list(q, collect_qid, ids, &qe) < 0) {
		loftctl_fail("the queue: %s", qe.msg);
		json_decref(out);
		out = NULL;
	}
	size_t i;
	json_t *id;
	json_array_foreach(out != NULL ? ids : NULL, i, id) {
		struct queue_message_info *mi = NULL;
		char *data = NULL;
		size_t len = 0;
		if (queue_message_get(q, json_string_value(id), &mi, &qe) < 0 ||
		    queue_message_data(q, json_string_value(id), &data, &len,
				       &qe) < 0) {
			queue_message_info_free(&mi);
			if (qe.kind == QUEUE_ERR_NOTFOUND)
				continue;      /* delivered meanwhile */
			loftctl_fail("queue %s: %s", json_string_value(id),
				     qe.msg);
			json_decref(out);
			out = NULL;
			break;
		}
		char sha[65];
		json_t *rcpts = json_array();
		for (size_t r = 0; r < mi->rcpt_count; r++) {
			const struct queue_rcpt_info *ri = &mi->rcpts[r];
			if (ri->status != QUEUE_RCPT_QUEUED)
				continue;
			json_t *jr = json_pack("{s:s, s:I}", "address",
					       ri->address, "notify",
					       (json_int_t)ri->notify);
			if (ri->orcpt != NULL)
				json_object_set_new(jr, "orcpt",
						    json_string(ri->orcpt));
			json_array_append_new(rcpts, jr);
		}
		if (json_array_size(rcpts) == 0) {
			json_decref(rcpts);
		} else if (migrate_backup_blob_put(dest, data, len, sha) < 0) {
			loftctl_fail("queue %s: %s: %s", mi->id, dest,
				     strerror(errno));
			json_decref(rcpts);
			json_decref(out);
			out = NULL;
		} else {
			json_t *jm = json_pack("{s:s, s:s, s:I, s:I, s:b, s:o,"
					       " s:s, s:I}", "id", mi->id,
					       "sender", mi->sender, "flags",
					       (json_int_t)mi->flags, "created",
					       (json_int_t)mi->created, "held",
					       mi->held, "rcpts", rcpts,
					       "sha256", sha, "size",
					       (json_int_t)len);
			if (mi->envid != NULL)
				json_object_set_new(jm, "envid",
						    json_string(mi->envid));
			char *who = mi->user_id > 0
				? user_address(ctl, mi->user_id) : NULL;
			if (who != NULL)
				json_object_set_new(jm, "user", json_string(who));
			free(who);
			json_array_append_new(out, jm);
		}
		free(data);
		queue_message_info_free(&mi);
		if (out == NULL)
			break;
	}
	json_decref(ids);
	queue_close(&q);
	return out;
}
#endif

/* domains (with or without accounts), groups and their members, DKIM
 * keys, the queue. */
static json_t *server_record(void *ctx, struct migrate *m, const char *dest)
{
	(void)m;
	struct loftctl *ctl = ctx;
	char *error = NULL;
	json_t *srv = json_object(), *domains = json_array(),
	       *groups = json_array();
	bool ok = auth_domain_list(ctl->auth, collect_name, domains,
				   &error) == 0 &&
		  auth_group_list(ctl->auth, NULL, collect_name, groups,
				  &error) == 0;
	json_object_set_new(srv, "domains", domains);
	json_t *gl = json_array();
	size_t i;
	json_t *g;
	json_array_foreach(ok ? groups : NULL, i, g) {
		json_t *members = json_array();
		ok = auth_group_members(ctl->auth, json_string_value(g),
					collect_name, members, &error) == 0;
		json_array_append_new(gl, json_pack("{s:O, s:o}", "group", g,
						    "members", members));
		if (!ok)
			break;
	}
	json_decref(groups);
	json_object_set_new(srv, "groups", gl);
	if (!ok) {
		loftctl_fail("accounts.db: %s", error ? error : "?");
		free(error);
		json_decref(srv);
		return NULL;
	}
#ifdef LOFTCTL_HAVE_MAILAUTH
	struct dkim_collect dc = {json_array(), loftctl_dkim_dir(ctl), false};
	struct stat st;
	if (stat(dc.dir, &st) == 0 &&
	    dkim_key_list(dc.dir, NULL, collect_dkim, &dc, &error) < 0) {
		loftctl_fail("DKIM keys: %s", error);
		free(error);
		dc.failed = true;
	}
	free((char *)dc.dir);
	json_object_set_new(srv, "dkim", dc.keys);
	if (dc.failed) {
		json_decref(srv);
		return NULL;
	}
#endif
#ifdef LOFTCTL_HAVE_QUEUE
	json_t *queue = queue_record(ctl, dest);
	if (queue == NULL) {
		json_decref(srv);
		return NULL;
	}
	json_object_set_new(srv, "queue", queue);
#else
	(void)dest;
#endif
	return srv;
}


/* ---- ACL entries by identifier text (backup, restore) ------------- */

static char *acl_ident(void *ctx, const struct store_acl_entry *e,
		       const char *owner)
{
	struct loftctl *ctl = ctx;
	return auth_acl_identifier_text(ctl->auth, (int)e->kind, e->id,
					e->negative, owner);
}

static int acl_restore(void *ctx, struct store_user *user, const char *mailbox,
		       const char *ident, const char *rights, char *why,
		       size_t why_size)
{
	struct loftctl *ctl = ctx;
	struct auth_user owner;
	if (auth_lookup_id(ctl->auth, store_user_id(user), &owner) != 1) {
		snprintf(why, why_size, "the account is not in accounts.db");
		return -1;
	}
	struct store_acl_entry e = {0};
	int kind;
	const char *err_text;
	if (store_rights_parse(rights, strlen(rights), &e.rights) < 0) {
		snprintf(why, why_size, "invalid rights %.20s", rights);
		return -1;
	}
	if (auth_acl_identifier(ctl->auth, ident, owner.address,
				loftctl_cross_domain(ctl), &kind, &e.id,
				&e.negative, &err_text) < 0) {
		const char *t = strchr(err_text, ']');
		snprintf(why, why_size, "%s", t ? t + 2 : err_text);
		return -1;
	}
	e.kind = (enum store_acl_kind)kind;
	struct store_acl_entry *have = NULL;
	size_t n = 0;
	struct store_error err;
	if (store_acl_get(user, mailbox, &have, &n, &err) < 0) {
		snprintf(why, why_size, "%s", err.msg);
		return -1;
	}
	bool there = false;
	for (size_t i = 0; i < n; i++)
		there |= have[i].kind == e.kind && have[i].id == e.id &&
			 have[i].negative == e.negative;
	free(have);
	if (there)
		return 0;
	if (store_acl_set(user, mailbox, &e, 0, loftctl_max_acl_entries(ctl),
			  &err) < 0) {
		snprintf(why, why_size, "%s", err.msg);
		return -1;
	}
	return 1;
}

/* Makes address as the backup's record has it (domain too); the
 * aliases only when it is the account itself (not --as). */
static int account_create(struct loftctl *ctl, const char *dest,
			  const char *from, const char *address)
{
	char why[240];
	json_t *rec = migrate_backup_account(dest, from, why, sizeof(why));
	if (rec == NULL)
		return loftctl_fail("%s does not exist, and it cannot be made"
				    " from the backup: %s", address, why);
	const char *secret = json_string_value(json_object_get(rec, "secret"));
	char *error = NULL;
	int ret = -1;
	char *hash = secret ? xstrndup(secret, strcspn(secret, "\t")) : NULL;
	const char *at = strrchr(address, '@');
	if (hash == NULL || at == NULL) {
		loftctl_fail("%s: the backup's account record is damaged",
			     address);
		goto out;
	}
	if (auth_domain_add(ctl->auth, at + 1, &error) < 0) {
		/* there already: fine */
		free(error);
		error = NULL;
	}
	struct auth_user u;
	if (auth_user_add(ctl->auth, address, hash, true, &u, &error) < 0 ||
	    auth_user_secret_set(ctl->auth, address, secret, &error) < 0) {
		loftctl_fail("%s: %s", address, error ? error : "cannot make it");
		goto out;
	}
	const char *key;
	json_t *val;
	json_object_foreach(json_object_get(rec, "settings"), key, val) {
		if (auth_user_set(ctl->auth, address, key,
				  json_string_value(val), &error) < 0) {
			fprintf(stderr, "loftctl: %s: setting %s not restored:"
				" %s\n", address, key, error);
			free(error);
			error = NULL;
		}
	}
	if (json_is_true(json_object_get(rec, "disabled")))
		auth_user_set(ctl->auth, address, "disabled", "yes", NULL);
	size_t i;
	json_t *al;
	json_array_foreach(strcmp(from, address) == 0
			   ? json_object_get(rec, "aliases") : NULL, i, al) {
		if (auth_alias_add(ctl->auth, json_string_value(al), address,
				   &error) < 0) {
			fprintf(stderr, "loftctl: alias %s not restored: %s\n",
				json_string_value(al), error);
			free(error);
			error = NULL;
		}
	}
	json_t *tk;
	json_array_foreach(json_object_get(rec, "tokens"), i, tk) {
		if (auth_token_hash_add(ctl->auth, address,
					json_string_value(json_object_get(tk, "name")),
					json_string_value(json_object_get(tk, "hash")),
					(time_t)json_integer_value(
						json_object_get(tk, "created")),
					(time_t)json_integer_value(
						json_object_get(tk, "expires")),
					&error) < 0) {
			fprintf(stderr, "loftctl: %s: app password not"
				" restored: %s\n", address, error);
			free(error);
			error = NULL;
		}
	}
	printf("%s: account made from the backup\n", address);
	ret = 0;
out:
	if (hash != NULL) {
		OPENSSL_cleanse(hash, strlen(hash));
		free(hash);
	}
	free(error);
	json_decref(rec);
	return ret;
}

/* "2026-12-06" or "2026-12-06T10:00:00Z" (UTC) */
static int parse_since(const char *s, time_t *t_r)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *e = strptime(s, "%Y-%m-%d", &tm);
	if (e != NULL && *e == 'T')
		e = strptime(e + 1, "%H:%M:%S", &tm);
	if (e != NULL && *e == 'Z')
		e++;
	if (e == NULL || *e != '\0')
		return -1;
	*t_r = timegm(&tm);
	return 0;
}

/* --older-than: "30d", "12h", "2w" back from now, or a DATE as above */
static int parse_age(const char *s, time_t *t_r)
{
	char *e;
	unsigned long n = strtoul(s, &e, 10);
	if (e != s && e[0] != '\0' && e[1] == '\0' && s[0] != '-' &&
	    strchr("hdw", e[0]) != NULL && n > 0 && n < 100000) {
		unsigned long unit = e[0] == 'h' ? 3600 : e[0] == 'd' ? 86400
								  : 604800;
		*t_r = time(NULL) - (time_t)(n * unit);
		return 0;
	}
	return parse_since(s, t_r);
}

static int cmd_backup_prune(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	bool bad = false;
	const char *keep_s = NULL, *age_s = NULL;
	take_value(&argc, argv, "--keep", &keep_s, &bad);
	take_value(&argc, argv, "--older-than", &age_s, &bad);
	bool dry = loftctl_take_flag(&argc, argv, "--dry-run");
	long keep = -1;
	time_t before = 0;
	char *e = NULL;
	if (keep_s != NULL)
		keep = strtol(keep_s, &e, 10);
	if (bad || argc != 1 || argv[0][0] == '-' ||
	    (keep_s == NULL && age_s == NULL) ||
	    (keep_s != NULL && (*e != '\0' || keep < 1)) ||
	    (age_s != NULL && parse_age(age_s, &before) < 0))
		return loftctl_usage(&loftctl_migrate_cmds[4]);
	if (loftctl_user_can(ctl, argv[0], true, "DEST") < 0)
		return LOFTCTL_EXIT_FAIL;
	int r = migrate_backup_prune(&m, argv[0], keep, before, dry);
	return r == 0 ? 0 : LOFTCTL_EXIT_FAIL;
}

static int cmd_backup(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	m.account_record = account_record;
	m.account_ctx = ctl;
	m.acl_ident = acl_ident;
	m.user_address = user_address;
	m.json = loftctl_take_flag(&argc, argv, "--json");
	if (argc < 1 || argv[argc - 1][0] == '-')
		return loftctl_usage(&loftctl_migrate_cmds[5]);
	if (loftctl_user_can(ctl, argv[argc - 1], true, "DEST") < 0)
		return LOFTCTL_EXIT_FAIL;
	if (argc == 1)
		m.server_record = server_record;   /* the whole server */
	struct names l = {NULL, 0};
	if (argc == 1) {
		char *error = NULL;
		if (auth_user_list(ctl->auth, collect, &l, &error) < 0) {
			int r = loftctl_fail("%s", error ? error : "accounts.db");
			free(error);
			return r;
		}
	} else {
		for (int i = 0; i + 1 < argc; i++)
			collect(&l, argv[i], NULL);
	}
	struct store_user **users = xcalloc(l.n + 1, sizeof(*users));
	int r = 0;
	for (size_t i = 0; i < l.n && r == 0; i++)
		if (open_account(ctl, l.v[i], &users[i]) < 0)
			r = LOFTCTL_EXIT_FAIL;
	if (r == 0) {
		m.store = ctl->store;
		m.progress = !m.json && isatty(STDERR_FILENO);
		r = migrate_backup(&m, argv[argc - 1], (const char **)l.v, users,
				   l.n) == 0 ? 0 : LOFTCTL_EXIT_FAIL;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (users[i] != NULL)
			store_user_unref(&users[i]);
		free(l.v[i]);
	}
	free(l.v);
	free(users);
	return r;
}

static int cmd_backup_verify(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	m.json = loftctl_take_flag(&argc, argv, "--json");
	if (argc != 1)
		return loftctl_usage(&loftctl_migrate_cmds[2]);
	if (loftctl_user_can(ctl, argv[0], false, "DEST") < 0)
		return LOFTCTL_EXIT_FAIL;
	return migrate_backup_verify(&m, argv[0]) == 0 ? 0 : LOFTCTL_EXIT_FAIL;
}

static int cmd_backup_list(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	if (argc != 1)
		return loftctl_usage(&loftctl_migrate_cmds[3]);
	if (loftctl_user_can(ctl, argv[0], false, "DEST") < 0)
		return LOFTCTL_EXIT_FAIL;
	return migrate_backup_list(&m, argv[0]) == 0 ? 0 : LOFTCTL_EXIT_FAIL;
}


/* One account of the snapshot into target (made if missing). */
static int restore_one(struct loftctl *ctl, struct migrate *proto,
		       const char *dest, const char *address,
		       const char *target, time_t since)
{
	struct migrate m = *proto;
	struct auth_user tu;
	bool made = false;
	if (auth_lookup(ctl->auth, target, &tu) == 0) {
		if (account_create(ctl, dest, address, target) < 0)
			return LOFTCTL_EXIT_FAIL;
		made = true;
	}
	if (open_account(ctl, target, &m.user) < 0)
		return LOFTCTL_EXIT_FAIL;
	m.store = ctl->store;
	m.progress = !m.json && isatty(STDERR_FILENO);
	m.account_ctx = ctl;
	m.acl_restore = acl_restore;
	m.user_id = user_id;
	m.committed = tell_committed;
#ifdef LOFTCTL_HAVE_QUEUE
	m.sieve_restore = sieve_restore;
#endif
	int r = migrate_restore(&m, dest, address, since);
	int64_t id = store_user_id(m.user);
	if (r != 2)
		loftctl_tell_changed(ctl, id);
	store_user_unref(&m.user);
	if (r == 2 && made) {
		/* refused before anything was written (a damaged backup):
		 * the account this run made goes again, so that no empty
		 * account with the backup's password is left behind */
		char *error = NULL;
		struct store_error err = {0};
		if (auth_user_del(ctl->auth, target, &error) < 0)
			fprintf(stderr, "loftctl: %s: made from the backup and"
				" not removed again: %s\n", target,
				error != NULL ? error : "?");
		else if (store_user_delete(ctl->store, id, &err) < 0)
			fprintf(stderr, "loftctl: %s: its empty index (user id"
				" %" PRId64 ") was not removed: %s\n", target,
				id, err.msg);
		else
			printf("%s: not made after all (nothing restored)\n",
			       target);
		free(error);
	}
	return r == 0 ? 0 : LOFTCTL_EXIT_FAIL;
}

#ifdef LOFTCTL_HAVE_QUEUE
/* The queue's messages not restored yet (data_dir/.restore-queue names
 * those that were, by their id in the backup: a rerun adds none twice). */
static int restore_queue(struct loftctl *ctl, const char *dest, json_t *srv)
{
	json_t *list = json_object_get(srv, "queue");
	if (json_array_size(list) == 0)
		return 0;
	char *marks = xasprintf("%s/.restore-queue", ctl->set.data_dir);
	struct buf done;
	buf_init(&done, 0);
	FILE *f = fopen(marks, "r");
	char line[128];
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		buf_append_str(&done, line);
	if (f != NULL)
		fclose(f);
	buf_append_char(&done, '\0');
	struct queue *q = loftctl_open_queue(ctl);
	int rc = q == NULL ? LOFTCTL_EXIT_FAIL : 0;
	size_t i, restored = 0;
	json_t *jm;
	json_array_foreach(q != NULL ? list : NULL, i, jm) {
		const char *id = json_string_value(json_object_get(jm, "id"));
		const char *sha = json_string_value(json_object_get(jm, "sha256"));
		char key[64];
		snprintf(key, sizeof(key), "\n%s\n", id ? id : "");
		if (id == NULL || strstr(done.data, key) != NULL ||
		    (strncmp(done.data, key + 1, strlen(key + 1)) == 0))
			continue;
		struct buf data;
		buf_init(&data, 0);
		char why[200];
		size_t nr = json_array_size(json_object_get(jm, "rcpts"));
		struct queue_rcpt *rc_list = xcalloc(nr ? nr : 1,
						     sizeof(*rc_list));
		size_t k;
		json_t *jr;
		json_array_foreach(json_object_get(jm, "rcpts"), k, jr) {
			rc_list[k].address = json_string_value(
				json_object_get(jr, "address"));
			rc_list[k].notify = (unsigned)json_integer_value(
				json_object_get(jr, "notify"));
			rc_list[k].orcpt = json_string_value(
				json_object_get(jr, "orcpt"));
		}
		const char *who = json_string_value(json_object_get(jm, "user"));
		/* signed already (its DKIM-Signature fields are in the
		 * bytes), and counted against no hourly limit again */
		struct queue_envelope env = {
			.sender = json_string_value(json_object_get(jm, "sender")),
			.rcpts = rc_list,
			.rcpt_count = nr,
			.envid = json_string_value(json_object_get(jm, "envid")),
			.flags = (unsigned)json_integer_value(
					 json_object_get(jm, "flags")) &
				 ~(unsigned)(QUEUE_F_SIGN | QUEUE_F_SUBMISSION),
			.user_id = who != NULL ? user_id(ctl, who) : 0,
		};
		char nid[QUEUE_ID_SIZE];
		struct queue_error qe = {0};
		if (migrate_backup_blob_get(dest, sha, &data, why,
					    sizeof(why)) < 0) {
			rc = loftctl_fail("queue %s: %s", id, why);
		} else if (env.sender == NULL || nr == 0) {
			rc = loftctl_fail("queue %s: damaged record", id);
		} else if (queue_enqueue(q, &env, data.data, data.len, nid, NULL,
					 &qe) < 0) {
			rc = loftctl_fail("queue %s: %s", id, qe.msg);
		} else {
			if (json_is_true(json_object_get(jm, "held")) &&
			    nid[0] != '\0')
				queue_hold(q, nid, &qe);
			FILE *w = fopen(marks, "a");
			if (w != NULL) {
				fprintf(w, "%s\n", id);
				fflush(w);
				fsync(fileno(w));
				fclose(w);
			}
			restored++;
		}
		free(rc_list);
		buf_free(&data);
	}
	if (q != NULL)
		queue_close(&q);
	printf("queue: %zu messages restored\n", restored);
	buf_free(&done);
	free(marks);
	return rc;
}
#endif

/* Domains (also those without accounts) before the accounts. */
static int restore_domains(struct loftctl *ctl, json_t *srv)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(srv, "domains"), i, d) {
		char *error = NULL;
		if (!auth_domain_exists(ctl->auth, json_string_value(d)) &&
		    auth_domain_add(ctl->auth, json_string_value(d), &error) < 0) {
			loftctl_fail("domain %s: %s", json_string_value(d), error);
			free(error);
			return LOFTCTL_EXIT_FAIL;
		}
	}
	return 0;
}

/* Groups and their members (once the accounts are there), and DKIM
 * keys the server lacks (mode 0600, as `dkim add` makes them). */
static int restore_server_rest(struct loftctl *ctl, json_t *srv)
{
	int rc = 0;
	size_t i, k;
	json_t *g, *mem;
	json_array_foreach(json_object_get(srv, "groups"), i, g) {
		const char *name = json_string_value(json_object_get(g, "group"));
		char *error = NULL;
		if (auth_group_add(ctl->auth, name, &error) < 0) {
			/* there already: its members are added to it */
			free(error);
			error = NULL;
		}
		json_array_foreach(json_object_get(g, "members"), k, mem) {
			if (auth_group_member(ctl->auth, name,
					      json_string_value(mem), true,
					      &error) < 0) {
				fprintf(stderr, "loftctl: group %s: member %s"
					" not restored: %s\n", name,
					json_string_value(mem), error);
				free(error);
				error = NULL;
			}
		}
	}
#ifdef LOFTCTL_HAVE_MAILAUTH
	char *dir = loftctl_dkim_dir(ctl);
	json_t *key;
	json_array_foreach(json_object_get(srv, "dkim"), i, key) {
		char *error = NULL;
		bool existed;
		const char *dom = json_string_value(json_object_get(key, "domain"));
		const char *sel = json_string_value(json_object_get(key,
								  "selector"));
		const char *pem = json_string_value(json_object_get(key, "key"));
		if (dom == NULL || sel == NULL || pem == NULL) {
			rc = loftctl_fail("a damaged DKIM key record");
		} else if (dkim_key_import(dir, dom, sel, pem,
					   (time_t)json_integer_value(
						   json_object_get(key, "created")),
					   &existed, &error) < 0) {
			rc = loftctl_fail("DKIM key %s of %s: %s", sel, dom, error);
			free(error);
		} else if (existed) {
			fprintf(stderr, "loftctl: DKIM key %s of %s: this server"
				" has one: kept\n", sel, dom);
		}
	}
	free(dir);
#endif
	return rc;
}

static int cmd_restore(struct loftctl *ctl, int argc, char **argv)
{
	struct migrate m;
	memset(&m, 0, sizeof(m));
	bool bad = false;
	const char *as = NULL, *since_s = NULL;
	take_value(&argc, argv, "--folder", &m.folder, &bad);
	take_value(&argc, argv, "--as", &as, &bad);
	take_value(&argc, argv, "--since", &since_s, &bad);
	m.json = loftctl_take_flag(&argc, argv, "--json");
	time_t since = 0;
	if (bad || argc < 1 || argc > 2 || argv[0][0] == '-' ||
	    (argc == 2 && argv[1][0] == '-') || (argc == 1 && as != NULL) ||
	    (since_s != NULL && parse_since(since_s, &since) < 0))
		return loftctl_usage(&loftctl_migrate_cmds[6]);
	if (loftctl_user_can(ctl, argv[0], false, "DEST") < 0)
		return LOFTCTL_EXIT_FAIL;
	if (argc == 2)
		return restore_one(ctl, &m, argv[0], argv[1],
				   as != NULL ? as : argv[1], since);
	/* every account of the snapshot, each made if missing, and what is
	 * in no account (when the snapshot is of the whole server) */
	char **v;
	size_t n;
	char why[200];
	if (migrate_backup_addresses(argv[0], &v, &n, why, sizeof(why)) < 0)
		return loftctl_fail("%s: %s", argv[0], why);
	int rc = 0;
	json_t *srv = m.folder == NULL && since == 0
		? migrate_backup_server(argv[0], why, sizeof(why)) : NULL;
	if (srv == NULL && m.folder == NULL && since == 0 &&
	    strstr(why, "no server record") == NULL) {
		/* damaged: nothing is restored */
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return loftctl_fail("%s: the server record %s: restore refused"
				    " (backup verify names the files)",
				    argv[0], why);
	}
	if (srv != NULL && restore_domains(ctl, srv) != 0)
		rc = LOFTCTL_EXIT_FAIL;
	/* every account first: an ACL entry may name another of them */
	for (size_t i = 0; i < n; i++) {
		struct auth_user tu;
		if (auth_lookup(ctl->auth, v[i], &tu) == 0 &&
		    account_create(ctl, argv[0], v[i], v[i]) < 0)
			rc = LOFTCTL_EXIT_FAIL;
	}
	/* groups before the mail: an ACL entry may name one */
	if (srv != NULL && restore_server_rest(ctl, srv) != 0)
		rc = LOFTCTL_EXIT_FAIL;
	for (size_t i = 0; i < n; i++) {
		if (restore_one(ctl, &m, argv[0], v[i], v[i], since) != 0)
			rc = LOFTCTL_EXIT_FAIL;
		free(v[i]);
	}
	free(v);
#ifdef LOFTCTL_HAVE_QUEUE
	/* last: a local recipient's account is there now */
	if (srv != NULL && restore_queue(ctl, argv[0], srv) != 0)
		rc = LOFTCTL_EXIT_FAIL;
#endif
	json_decref(srv);
	return rc;
}

/* DEST of backup and export: the last argument that is neither an option
 * nor an option's value (loftctl.h). */
const char *loftctl_migrate_dest(const struct loftctl_cmd *cmd, int argc,
				 char **argv)
{
	if (cmd->run != cmd_export && cmd->run != cmd_backup)
		return NULL;
	const char *last = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--format") == 0 ||
		    strcmp(argv[i], "--folder") == 0)
			i++;
		else if (argv[i][0] != '-')
			last = argv[i];
	}
	return last;
}

const struct loftctl_cmd loftctl_migrate_cmds[] = {
	{"import", NULL, "ADDRESS SOURCE [--folder F] [--dry-run] [--json]"
	 " [--password-file FILE] [--authzid USER] [--expunge]   (SOURCE: a"
	 " Maildir or Dovecot home,"
	 " an mbox file or tree, imap[s]://USER@HOST[:PORT],"
	 " pop3[s]://USER@HOST[:PORT])",
	 cmd_import},
	{"export", NULL, "ADDRESS DEST --format maildir|mbox [--folder F]"
	 " [--json]", cmd_export},
	{"backup", "verify", "DEST", cmd_backup_verify},
	{"backup", "list", "DEST", cmd_backup_list},
	{"backup", "prune", "DEST --keep N | --older-than AGE (30d, 12h, 2w,"
	 " DATE) [--dry-run]", cmd_backup_prune},
	{"backup", NULL, "[ADDRESS...] DEST [--json]", cmd_backup},
	{"restore", NULL, "DEST [ADDRESS [--as NEW-ADDRESS]] [--folder F]"
	 " [--since DATE]   (no ADDRESS: every account of the snapshot)",
	 cmd_restore},
	{NULL, NULL, NULL, NULL},
};
