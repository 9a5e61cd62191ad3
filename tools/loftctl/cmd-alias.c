/*
 * loftctl alias add|del|list: extra addresses delivered to a user
 * (LMTP resolves them through auth_lookup). An alias cannot log in.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>

static int alias_add(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_alias_cmds[0]);
	char *error = NULL;
	if (auth_alias_add(ctl->auth, argv[0], argv[1], &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("added alias %s -> %s\n", argv[0], argv[1]);
	return 0;
}

static int alias_del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_alias_cmds[1]);
	char *error = NULL;
	if (auth_alias_del(ctl->auth, argv[0], &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("deleted alias %s\n", argv[0]);
	return 0;
}

static void print_alias(void *ctx, const char *alias, const char *target)
{
	(void)ctx;
	printf("%s -> %s\n", alias, target);
}

static int alias_list(struct loftctl *ctl, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return loftctl_usage(&loftctl_alias_cmds[2]);
	char *error = NULL;
	if (auth_alias_list(ctl->auth, print_alias, NULL, &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	return 0;
}

const struct loftctl_cmd loftctl_alias_cmds[] = {
	{"alias", "add", "ALIAS ADDRESS", alias_add},
	{"alias", "del", "ALIAS", alias_del},
	{"alias", "list", "", alias_list},
	{NULL, NULL, NULL, NULL},
};
