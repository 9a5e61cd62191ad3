/*
 * loftctl domain add|del|list: the local domains. A domain is deleted
 * only when no user or alias is left in it.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>

static int domain_add(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_domain_cmds[0]);
	char *error = NULL;
	if (auth_domain_add(ctl->auth, argv[0], &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("added domain %s\n", argv[0]);
	return 0;
}

static int domain_del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_domain_cmds[1]);
	char *error = NULL;
	if (auth_domain_del(ctl->auth, argv[0], &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	printf("deleted domain %s\n", argv[0]);
	return 0;
}

static void print_name(void *ctx, const char *name, const char *extra)
{
	(void)ctx;
	(void)extra;
	printf("%s\n", name);
}

static int domain_list(struct loftctl *ctl, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return loftctl_usage(&loftctl_domain_cmds[2]);
	char *error = NULL;
	if (auth_domain_list(ctl->auth, print_name, NULL, &error) < 0) {
		int rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	return 0;
}

const struct loftctl_cmd loftctl_domain_cmds[] = {
	{"domain", "add", "DOMAIN", domain_add},
	{"domain", "del", "DOMAIN", domain_del},
	{"domain", "list", "", domain_list},
	{NULL, NULL, NULL, NULL},
};
