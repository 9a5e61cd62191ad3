/*
 * loftctl ban list | ban del ADDRESS|ACCOUNT: who the login throttle holds
 * back (failed logins per address, account and pair; banned addresses)
 * and clearing one. With loftd running they go through its control
 * socket, so the list is what loftd holds this instant and a clear works
 * at once; without it, data_dir/throttle/throttle.db as loftd left it.
 */
#include "loftctl.h"

#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 loftd answered (and *final_r is set), 0 it is not running, -1 failed
 * (reported). */
static int call(struct loftctl *ctl, const char *const *words, size_t n,
		control_line_fn *fn, char **final_r)
{
	char *why = NULL;
	char *path = control_socket_path(ctl->cfg, &why);
	if (path == NULL) {
		loftctl_fail("%s", why);
		free(why);
		return -1;
	}
	enum control_call_result r = control_call(path, words, n,
						  LOFTCTL_CONTROL_TIMEOUT_MS,
						  fn, NULL, final_r);
	free(path);
	switch (r) {
	case CONTROL_CALL_OK:
		return 1;
	case CONTROL_CALL_NOT_RUNNING:
		free(*final_r);
		*final_r = NULL;
		return 0;
	default:
		loftctl_fail("%s", *final_r);
		free(*final_r);
		*final_r = NULL;
		return -1;
	}
}

static void print_line(void *ctx, const char *text)
{
	(void)ctx;
	printf("%s\n", text);
}

static void print_held(void *ctx, const struct auth_held *held)
{
	char line[512];
	auth_held_format(held, line, sizeof(line));
	print_line(ctx, line);
}

static int ban_list(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 0)
		return loftctl_usage(&loftctl_ban_cmds[0]);
	const char *words[] = {"ban", "list"};
	char *final = NULL;
	int rc = call(ctl, words, 2, print_line, &final);
	free(final);
	if (rc != 0)
		return rc < 0 ? LOFTCTL_EXIT_FAIL : 0;
	char *error = NULL;
	if (auth_ban_list(ctl->auth, print_held, NULL, &error) < 0) {
		rc = loftctl_fail("%s", error);
		free(error);
		return rc;
	}
	return 0;
}

static int ban_del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_ban_cmds[1]);
	const char *words[] = {"ban", "del", argv[0]};
	char *final = NULL;
	int rc = call(ctl, words, 3, NULL, &final);
	if (rc < 0)
		return LOFTCTL_EXIT_FAIL;
	bool cleared;
	if (rc > 0) {
		cleared = strcmp(final, "cleared") == 0;
		free(final);
	} else {
		char *error = NULL;
		int r = auth_ban_del(ctl->auth, argv[0], &error);
		if (r < 0) {
			rc = loftctl_fail("%s", error);
			free(error);
			return rc;
		}
		cleared = r > 0;
	}
	printf("%s: %s\n", argv[0], cleared ? "cleared" : "nothing held back");
	return 0;
}

const struct loftctl_cmd loftctl_ban_cmds[] = {
	{"ban", "list", "   (addresses, accounts and pairs held back for "
	 "failed logins, and for how long)", ban_list},
	{"ban", "del", "ADDRESS|ACCOUNT   (clears its failures and ban)",
	 ban_del},
	{NULL, NULL, NULL, NULL},
};
