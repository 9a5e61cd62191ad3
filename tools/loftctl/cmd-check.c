/*
 * loftctl check ADDRESS: verifies an account's index against its blobs
 * (store_check) and repairs what it can, printing each finding and
 * repair. Exit 0 when the account is consistent afterwards.
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
	if (store_check(store, u.id, true, print_finding, &findings, &err) < 0)
		return loftctl_fail("%s: not consistent after repair%s%s",
				    u.address, err.msg[0] ? ": " : "",
				    err.msg);
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
