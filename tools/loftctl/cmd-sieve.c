/*
 * loftctl sieve: a user's Sieve scripts in the store (the same ones
 * ManageSieve and JMAP show).
 *
 *   put USER NAME [--activate] < FILE   compile, store (source as given)
 *   get USER NAME                       the source, byte for byte
 *   list USER                           names, the active one marked
 *   activate USER NAME | deactivate USER
 *   del USER NAME
 *   check < FILE                        "line:column: message", exit 1
 *   test USER SCRIPT MESSAGE [--from A] [--to A]
 *                                       the actions, nothing delivered
 *                                       (SCRIPT: a file, else a stored
 *                                       script of USER)
 *
 * Scripts compile with the limits of [sieve] in the configuration.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "delivery-sieve.h"
#include "sieve.h"

static const struct sieve_limits *limits(struct loftctl *ctl,
					 struct delivery_sieve **ds_r)
{
	static struct sieve_limits def;
	struct buf errors;
	buf_init(&errors, 0);
	*ds_r = delivery_sieve_load(ctl->cfg, &errors);
	buf_free(&errors);
	if (*ds_r != NULL)
		return delivery_sieve_limits(*ds_r);
	sieve_limits_default(&def);
	return &def;
}

static int read_all(FILE *f, struct buf *out)
{
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(out, chunk, n);
	return ferror(f) ? -1 : 0;
}

static struct store_user *open_user(struct loftctl *ctl, const char *address)
{
	struct auth_user u;
	if (loftctl_lookup_user(ctl, address, &u) < 0)
		return NULL;
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return NULL;
	struct store_user *user;
	struct store_error err;
	if (store_user_open(store, u.id, &user, &err) < 0) {
		loftctl_fail("%s: %s", address, err.msg);
		return NULL;
	}
	return user;
}

static void print_errors(const struct sieve_errors *e, const char *prefix)
{
	for (size_t i = 0; i < e->count; i++)
		fprintf(stderr, "%s%u:%u: %s\n", prefix, e->items[i].line,
			e->items[i].column, e->items[i].message);
}

static int put(struct loftctl *ctl, int argc, char **argv)
{
	bool activate = loftctl_take_flag(&argc, argv, "--activate");
	if (argc != 2)
		return loftctl_usage(&loftctl_sieve_cmds[0]);
	struct buf text;
	buf_init(&text, 0);
	if (read_all(stdin, &text) < 0) {
		buf_free(&text);
		return loftctl_fail("cannot read the script from stdin");
	}
	struct delivery_sieve *ds;
	const struct sieve_limits *lim = limits(ctl, &ds);
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile(text.data ? text.data : "",
					       text.len, argv[1], lim, &e);
	int rc = 0;
	if (s == NULL) {
		print_errors(&e, "");
		rc = loftctl_fail("%s: the script does not compile; nothing "
				  "stored", argv[1]);
		goto out;
	}
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL) {
		rc = LOFTCTL_EXIT_FAIL;
		goto out;
	}
	size_t ilen;
	const void *img = sieve_script_image(s, &ilen);
	struct store_error err;
	if (store_sieve_put(user, argv[1], text.data ? text.data : "", text.len,
			    img, ilen, &err) < 0 ||
	    (activate && store_sieve_activate(user, argv[1], &err) < 0))
		rc = loftctl_fail("%s: %s", argv[1], err.msg);
	else
		printf("%s: stored%s\n", argv[1], activate ? " and active" : "");
	store_user_unref(&user);
out:
	sieve_script_free(&s);
	sieve_errors_free(&e);
	delivery_sieve_unref(&ds);
	buf_free(&text);
	return rc;
}

static int get(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_sieve_cmds[1]);
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL)
		return LOFTCTL_EXIT_FAIL;
	char *src = NULL;
	size_t len = 0;
	struct store_error err;
	int rc = 0;
	if (store_sieve_get(user, argv[1], &src, &len, NULL, NULL, NULL,
			    &err) < 0)
		rc = loftctl_fail("%s: %s", argv[1], err.msg);
	else
		fwrite(src, 1, len, stdout);
	free(src);
	store_user_unref(&user);
	return rc;
}

static int list(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_sieve_cmds[2]);
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_sieve_script *l;
	size_t n;
	struct store_error err;
	int rc = 0;
	if (store_sieve_list(user, &l, &n, &err) < 0) {
		rc = loftctl_fail("%s", err.msg);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s%s\t%llu\n", l[i].name,
			       l[i].active ? " (active)" : "",
			       (unsigned long long)l[i].size);
		store_sieve_list_free(l, n);
	}
	store_user_unref(&user);
	return rc;
}

static int activate(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_sieve_cmds[3]);
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_error err;
	int rc = 0;
	if (store_sieve_activate(user, argv[1], &err) < 0)
		rc = loftctl_fail("%s: %s", argv[1], err.msg);
	else
		printf("%s: active\n", argv[1]);
	store_user_unref(&user);
	return rc;
}

static int deactivate(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_sieve_cmds[4]);
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_error err;
	int rc = 0;
	if (store_sieve_activate(user, NULL, &err) < 0)
		rc = loftctl_fail("%s", err.msg);
	else
		printf("%s: no active script\n", argv[0]);
	store_user_unref(&user);
	return rc;
}

static int del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_sieve_cmds[5]);
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_error err;
	int rc = 0;
	if (store_sieve_delete(user, argv[1], &err) < 0)
		rc = loftctl_fail("%s: %s", argv[1],
				  err.kind == STORE_ERR_EXISTS
				  ? "the script is active (deactivate it first)"
				  : err.msg);
	else
		printf("%s: deleted\n", argv[1]);
	store_user_unref(&user);
	return rc;
}

static int check(struct loftctl *ctl, int argc, char **argv)
{
	bool verbose = loftctl_take_flag(&argc, argv, "--verbose");
	if (argc != 0)
		return loftctl_usage(&loftctl_sieve_cmds[6]);
	struct buf text;
	buf_init(&text, 0);
	read_all(stdin, &text);
	struct delivery_sieve *ds;
	const struct sieve_limits *lim = limits(ctl, &ds);
	struct sieve_errors e;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct sieve_script *s = sieve_compile(text.data ? text.data : "",
					       text.len, "stdin", lim, &e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int rc = 0;
	if (s == NULL) {
		for (size_t i = 0; i < e.count; i++)
			printf("%u:%u: %s\n", e.items[i].line, e.items[i].column,
			       e.items[i].message);
		rc = LOFTCTL_EXIT_FAIL;
	} else {
		printf("ok\n");
		if (verbose) {
			size_t ilen;
			sieve_script_image(s, &ilen);
			printf("compiled in %.3f ms, %zu bytes of source, %zu "
			       "bytes compiled\n",
			       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
			       text.len, ilen);
		}
	}
	sieve_script_free(&s);
	sieve_errors_free(&e);
	delivery_sieve_unref(&ds);
	buf_free(&text);
	return rc;
}

/* ---- test ---------------------------------------------------------- */

struct test_ctx {
	struct store_user *user;
	const struct sieve_limits *lim;
	struct sieve_script *loaded[16];
	size_t nloaded;
};

static bool t_exists(void *ctx, const char *name)
{
	struct test_ctx *t = ctx;
	struct store_mailbox_info info;
	if (store_mailbox_status(t->user, name, &info, NULL) < 0)
		return false;
	store_mailbox_info_free(&info);
	return true;
}

static bool t_dup(void *ctx, const char *id)
{
	struct test_ctx *t = ctx;
	bool seen = false;
	store_sieve_record_seen(t->user, id, time(NULL), &seen, NULL);
	return seen;
}

static const struct sieve_script *t_include(void *ctx, bool global,
					    const char *name)
{
	struct test_ctx *t = ctx;
	if (global || t->nloaded >= 16)
		return NULL;
	char *src = NULL;
	size_t len = 0;
	if (store_sieve_get(t->user, name, &src, &len, NULL, NULL, NULL,
			    NULL) < 0)
		return NULL;
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile(src, len, name, t->lim, &e);
	sieve_errors_free(&e);
	free(src);
	if (s)
		t->loaded[t->nloaded++] = s;
	return s;
}

static int load_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	int r = read_all(f, out);
	fclose(f);
	return r;
}

static int test(struct loftctl *ctl, int argc, char **argv)
{
	const char *from = "sender@example.org", *to = NULL;
	int n = 0;
	for (int i = 0; i < argc; i++) {
		if ((strcmp(argv[i], "--from") == 0 ||
		     strcmp(argv[i], "--to") == 0) && i + 1 < argc) {
			if (argv[i][2] == 'f')
				from = argv[i + 1];
			else
				to = argv[i + 1];
			i++;
		} else {
			argv[n++] = argv[i];
		}
	}
	if (n != 3)
		return loftctl_usage(&loftctl_sieve_cmds[7]);
	struct store_user *user = open_user(ctl, argv[0]);
	if (user == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct delivery_sieve *ds;
	const struct sieve_limits *lim = limits(ctl, &ds);
	struct buf src, msg;
	buf_init(&src, 0);
	buf_init(&msg, 0);
	int rc = 0;
	struct sieve_script *s = NULL;
	struct sieve_errors e = {0};
	if (load_file(argv[1], &src) < 0) {
		char *text = NULL;
		size_t len = 0;
		struct store_error err;
		if (store_sieve_get(user, argv[1], &text, &len, NULL, NULL, NULL,
				    &err) < 0) {
			rc = loftctl_fail("%s: no such file or stored script",
					  argv[1]);
			goto out;
		}
		buf_append(&src, text, len);
		free(text);
	}
	if (load_file(argv[2], &msg) < 0) {
		rc = loftctl_fail("%s: cannot read the message", argv[2]);
		goto out;
	}
	s = sieve_compile(src.data ? src.data : "", src.len, argv[1], lim, &e);
	if (s == NULL) {
		print_errors(&e, "");
		rc = LOFTCTL_EXIT_FAIL;
		goto out;
	}
	struct test_ctx t = {.user = user, .lim = lim};
	struct sieve_callbacks cb = {t_exists, t_dup, t_include};
	const char *rcpt = to ? to : argv[0];
	const char *at = strrchr(rcpt, '@');
	struct sieve_input in = {
		.env_from = from, .env_to = rcpt,
		.data = msg.data ? msg.data : "", .len = msg.len,
		.domain = at ? at + 1 : "", .host = "localhost",
		.now = time(NULL), .cb = &cb, .cb_ctx = &t,
	};
	struct sieve_result r;
	const struct sieve_script *seq[] = {s};
	sieve_execute(seq, 1, &in, lim, &r);
	struct buf out;
	buf_init(&out, 0);
	sieve_result_format(&r, &out);
	fputs(out.data ? out.data : "", stdout);
	if (r.error)
		rc = LOFTCTL_EXIT_FAIL;
	buf_free(&out);
	sieve_result_free(&r);
	for (size_t i = 0; i < t.nloaded; i++)
		sieve_script_free(&t.loaded[i]);
out:
	sieve_script_free(&s);
	sieve_errors_free(&e);
	delivery_sieve_unref(&ds);
	buf_free(&src);
	buf_free(&msg);
	store_user_unref(&user);
	return rc;
}

const struct loftctl_cmd loftctl_sieve_cmds[] = {
	{"sieve", "put", "USER NAME [--activate] < FILE", put},
	{"sieve", "get", "USER NAME", get},
	{"sieve", "list", "USER", list},
	{"sieve", "activate", "USER NAME", activate},
	{"sieve", "deactivate", "USER", deactivate},
	{"sieve", "del", "USER NAME", del},
	{"sieve", "check", "[--verbose] < FILE   (line:column: message; exit 1)", check},
	{"sieve", "test", "USER SCRIPT MESSAGE [--from A] [--to A]", test},
	{NULL, NULL, NULL, NULL},
};
