/*
 * loftctl check ADDRESS: verifies an account's index against its blobs
 * (store_check) and repairs what it can, printing each finding and
 * repair, and the index schema version when it is not this build's
 * (upgraded, or too new to open). Holds the account's store handle for
 * every index access. The reverse ACL index (accounts.db acl_hints) of the
 * account's grants is rebuilt from its ACLs. Exit 0 when the account is
 * consistent afterwards.
 *
 * loftctl compact ADDRESS: gives back now the space expunged messages
 * left in the account's index (store_compact: bounded steps deliveries
 * interleave with; loftd also does it by itself for idle accounts) and
 * prints the index's size before and after. An index from an older Loft
 * is converted once, holding the account's writes until done.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>

static void print_finding(void *ctx, const char *line)
{
	unsigned *count = ctx;
	(*count)++;
	printf("%s\n", line);
	fflush(stdout);
}

static int check(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_check_cmds[0]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_error err = {0};
	unsigned findings = 0;
	/* The account's handle is held across every index access below
	 * (the version, the check, the orphan sweep), as loftd's own users
	 * of the index hold theirs. Opening it upgrades an older index and
	 * refuses a newer one; the handle remembers the version it found.
	 * An account without mail has nothing to check. */
	struct store_user *su;
	if (store_user_open_existing(store, u.id, &su, &err) < 0) {
		if (err.kind != STORE_ERR_NOTFOUND)
			return loftctl_fail("%s: %s", u.address, err.msg);
		printf("%s: consistent\n", u.address);
		return 0;
	}
	unsigned found, known;
	store_user_index_version(su, &found, &known);
	int r = store_check(store, u.id, true, print_finding, &findings, &err);
	/* the reverse index of what this account shares (accounts.db
	 * acl_hints) from its ACLs: stale hints go, missing ones come */
	struct store_acl_row *rows = NULL;
	size_t nrows = 0;
	if (r == 0 && store_acl_all(su, &rows, &nrows, &err) < 0)
		r = -1;
	if (r == 0) {
		unsigned added, removed;
		char *error = NULL;
		if (auth_acl_hints_rebuild(ctl->auth, u.id, rows, nrows, &added,
					   &removed, &error) < 0) {
			snprintf(err.msg, sizeof(err.msg), "%s",
				 error ? error : "acl_hints");
			free(error);
			r = -1;
		} else if (added + removed > 0) {
			printf("reverse ACL index: %u hints added, %u stale"
			       " removed\n", added, removed);
			findings++;
		}
	}
	store_acl_all_free(rows, nrows);
	store_user_unref(&su);
	if (r < 0)
		return loftctl_fail("%s: not consistent after repair%s%s",
				    u.address, err.msg[0] ? ": " : "",
				    err.msg);
	if (found != 0 && found < known) {
		printf("index schema upgraded from version %u to %u\n",
		       found, known);
		findings++;
	}
	if (findings == 0) {
		printf("%s: consistent\n", u.address);
	} else {
		printf("%s: consistent after %u repairs\n", u.address,
		       findings);
		/* a repaired search text is indexed by loftd */
		loftctl_tell_changed(ctl, u.id);
	}
	return 0;
}

static int compact(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_check_cmds[1]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_error err = {0};
	struct store_compact_report rep;
	if (store_compact(store, u.id, &rep, &err) < 0)
		return loftctl_fail("%s: %s", u.address, err.msg);
	printf("%s: compacted%s\n", u.address,
	       rep.converted ? " (index converted to incremental compaction)"
			     : "");
	printf("  index_bytes_before = %llu\n",
	       (unsigned long long)rep.bytes_before);
	printf("  index_bytes_after = %llu\n",
	       (unsigned long long)rep.bytes_after);
	printf("  free_pages = %llu\n", (unsigned long long)rep.free_pages);
	return 0;
}

const struct loftctl_cmd loftctl_check_cmds[] = {
	{"check", NULL, "ADDRESS", check},
	{"compact", NULL, "ADDRESS", compact},
	{NULL, NULL, NULL, NULL},
};
