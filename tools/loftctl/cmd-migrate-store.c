/*
 * loftctl migrate-store ADDRESS... --to postgres|sqlite, or --all --to
 * ...: moves accounts between the backends of a store that has both
 * ([store] backend = sqlite with [store] postgres; docs/scale-out.md),
 * one at a time (store_move_account). Each is copied while loftd serves
 * it, then locked for as long as the changes made meanwhile take: a
 * running loftd ends its sessions (* BYE [UNAVAILABLE]) and answers new
 * ones and deliveries with temporary errors meanwhile.
 */
#include "loftctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control.h"

/* loftd's wait for the account's sessions and handles, and a margin */
#define QUIESCE_TIMEOUT_MS 15000

struct mover {
	struct loftctl *ctl;
};

static int fail(struct store_error *err, enum store_error_kind kind,
		const char *what, const char *why)
{
	err->kind = kind;
	snprintf(err->msg, sizeof(err->msg), "%s%s", what, why ? why : "");
	return -1;
}

static int call_loftd(struct mover *mv, const char *verb, int64_t user_id,
		      const char *what, struct store_error *err)
{
	char *why = NULL;
	char *path = control_socket_path(mv->ctl->cfg, &why);
	if (path == NULL) {
		fail(err, STORE_ERR_INVALID, "", why);
		free(why);
		return -1;
	}
	char id[32];
	snprintf(id, sizeof(id), "%" PRId64, user_id);
	const char *words[] = {"store", verb, id};
	char *final = NULL;
	enum control_call_result r = control_call(path, words, 3,
						  QUIESCE_TIMEOUT_MS, NULL,
						  NULL, &final);
	int ret = 0;
	/* no loftd: nothing has the account open but this process */
	if (r != CONTROL_CALL_OK && r != CONTROL_CALL_NOT_RUNNING)
		ret = fail(err, STORE_ERR_TEMP, what, final ? final
			   : "no answer");
	free(final);
	free(path);
	return ret;
}

static int quiesce(void *ctx, int64_t user_id, struct store_error *err)
{
	return call_loftd(ctx, "quiesce", user_id, "loftd did not let go of "
			  "the account: ", err);
}

/* before the side not serving the account is emptied */
static int release(void *ctx, int64_t user_id, struct store_error *err)
{
	return call_loftd(ctx, "release", user_id, "loftd did not let go of "
			  "the account's other copy: ", err);
}

static int flip(void *ctx, int64_t user_id, enum store_backend to,
		struct store_error *err)
{
	struct mover *mv = ctx;
	char *why = NULL;
	if (auth_user_mail_store_set(mv->ctl->auth, user_id, (int)to,
				     &why) < 0) {
		fail(err, STORE_ERR_TEMP, "", why);
		free(why);
		return -1;
	}
	return 0;
}

static int move_one(struct loftctl *ctl, struct store *store,
		    const char *address, enum store_backend to)
{
	struct auth_user u;
	if (loftctl_lookup_user(ctl, address, &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	struct mover mv = {ctl};
	struct store_move_hooks hooks = {.quiesce = quiesce, .flip = flip,
					 .release = release, .ctx = &mv};
	struct store_move_report rep;
	struct store_error err;
	if (store_move_account(store, u.id, to, &hooks, &rep, &err) < 0)
		return loftctl_fail("%s: not moved, still served from where "
				    "it was: %s", u.address, err.msg);
	if (rep.already) {
		printf("%s: already on %s\n", u.address,
		       store_backend_name(to));
		return 0;
	}
	printf("%s: moved to %s: %u folders, %" PRIu64 " messages, %" PRIu64
	       " bytes, locked %" PRIu64 " ms (copied while served on in %"
	       PRIu64 " ms, %u catch-up rounds; under the lock %" PRIu64
	       " changes, %" PRIu64 " of them messages%s)\n", u.address,
	       store_backend_name(to), rep.mailboxes, rep.messages, rep.bytes,
	       rep.locked_ms, rep.live_ms, rep.rounds, rep.delta_changes,
	       rep.delta_messages,
	       rep.full_locked ? "; then copied whole under the lock" : "");
	if (rep.full_locked)
		fprintf(stderr, "loftctl: note: %s: the changes made while it "
			"was copied did not carry over (%s): it was copied again "
			"whole, locked\n", u.address, rep.full_reason);
	if (rep.source_kept)
		fprintf(stderr, "loftctl: note: %s: the old copy on %s was not"
			" removed (%s); the next move removes it\n", u.address,
			store_backend_name(to == STORE_BACKEND_POSTGRES
						   ? STORE_BACKEND_SQLITE
						   : STORE_BACKEND_POSTGRES),
			rep.source_error);
	fflush(stdout);
	return 0;
}

struct name_list {
	char **v;
	size_t n;
};

static void collect(void *ctx, const char *name, const char *extra)
{
	(void)extra;
	struct name_list *l = ctx;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(name);
}

static int migrate_store(struct loftctl *ctl, int argc, char **argv)
{
	const char *to_name = NULL;
	bool all = false;
	struct name_list names = {0};
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			to_name = argv[++i];
		else if (strcmp(argv[i], "--all") == 0)
			all = true;
		else if (argv[i][0] == '-')
			return loftctl_usage(&loftctl_migrate_store_cmds[0]);
		else
			collect(&names, argv[i], NULL);
	}
	enum store_backend to;
	if (to_name != NULL && strcmp(to_name, "postgres") == 0)
		to = STORE_BACKEND_POSTGRES;
	else if (to_name != NULL && strcmp(to_name, "sqlite") == 0)
		to = STORE_BACKEND_SQLITE;
	else
		to_name = NULL;
	if (to_name == NULL || (all == (names.n > 0))) {
		for (size_t i = 0; i < names.n; i++)
			free(names.v[i]);
		free(names.v);
		return loftctl_usage(&loftctl_migrate_store_cmds[0]);
	}
	int ret = 0;
	struct store *store = loftctl_store(ctl);
	if (store == NULL) {
		ret = LOFTCTL_EXIT_FAIL;
	} else if (!store_has_both(store)) {
		ret = LOFTCTL_EXIT_FAIL;
		loftctl_fail("moving accounts needs [store] backend = sqlite "
			     "with [store] postgres (and blob_dir or [s3]) set;"
			     " see docs/scale-out.md");
	} else if (all) {
		char *why = NULL;
		if (auth_user_list(ctl->auth, collect, &names, &why) < 0) {
			ret = loftctl_fail("cannot list the accounts: %s",
					   why ? why : "?");
			free(why);
		}
	}
	unsigned failed = 0;
	for (size_t i = 0; ret == 0 && i < names.n; i++)
		if (move_one(ctl, store, names.v[i], to) != 0)
			failed++;
	if (ret == 0 && failed > 0) {
		fprintf(stderr, "loftctl: %u of %zu accounts not moved\n",
			failed, names.n);
		ret = LOFTCTL_EXIT_FAIL;
	}
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	return ret;
}

const struct loftctl_cmd loftctl_migrate_store_cmds[] = {
	{"migrate-store", NULL,
	 "ADDRESS... --to postgres|sqlite  or  --all --to postgres|sqlite"
	 "   (moves accounts between the backends; docs/scale-out.md)",
	 migrate_store},
	{NULL, NULL, NULL, NULL},
};
