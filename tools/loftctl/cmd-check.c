/*
 * loftctl check ADDRESS: verifies an account's index against its blobs
 * (store_check) and repairs what it can, printing each finding and
 * repair, and the index schema version when it is not this build's
 * (upgraded, or too new to open). Exit 0 when the account is consistent
 * afterwards.
 */
#include "loftctl.h"

#include <stdio.h>

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
	/* The schema version as found: checking opens the account, which
	 * upgrades an older index (and refuses a newer one). A current
	 * index gets no line of its own. */
	unsigned found, known;
	if (store_index_version(store, u.id, &found, &known, &err) < 0)
		return loftctl_fail("%s: cannot read the index: %s",
				    u.address, err.msg);
	if (found > known)
		return loftctl_fail("%s: index schema version %u, this loftctl"
				    " knows up to %u: upgrade Loft",
				    u.address, found, known);
	if (store_check(store, u.id, true, print_finding, &findings, &err) < 0)
		return loftctl_fail("%s: not consistent after repair%s%s",
				    u.address, err.msg[0] ? ": " : "",
				    err.msg);
	if (found != 0 && found < known) {
		printf("index schema upgraded from version %u to %u\n",
		       found, known);
		findings++;
	}
	if (findings == 0)
		printf("%s: consistent\n", u.address);
	else
		printf("%s: consistent after %u repairs\n", u.address,
		       findings);
	return 0;
}

const struct loftctl_cmd loftctl_check_cmds[] = {
	{"check", NULL, "ADDRESS", check},
	{NULL, NULL, NULL, NULL},
};
