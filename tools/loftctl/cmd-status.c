/*
 * loftctl status: whether a loftd serves this configuration's instance
 * (its control socket answers). Exit 0 and "loftd running, pid N" when it
 * does, 3 and "loftd is not running" when nothing listens (as LSB status
 * commands do), 1 when the socket cannot be asked.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>

#include "control.h"

#define LOFTCTL_EXIT_NOT_RUNNING 3

static int status(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 0)
		return loftctl_usage(&loftctl_status_cmds[0]);
	char *why = NULL;
	char *path = control_socket_path(ctl->cfg, &why);
	if (path == NULL) {
		int rc = loftctl_fail("%s", why);
		free(why);
		return rc;
	}
	const char *words[] = {"ping"};
	char *final = NULL;
	enum control_call_result r = control_call(path, words, 1, 10000, NULL,
						  NULL, &final);
	int rc = 0;
	long pid;
	if (r == CONTROL_CALL_OK && sscanf(final, "pong pid %ld", &pid) == 1) {
		printf("loftd running, pid %ld\n", pid);
	} else if (r == CONTROL_CALL_NOT_RUNNING) {
		printf("loftd is not running\n");
		rc = LOFTCTL_EXIT_NOT_RUNNING;
	} else {
		rc = loftctl_fail("%s: %s", path, final);
	}
	free(final);
	free(path);
	return rc;
}

const struct loftctl_cmd loftctl_status_cmds[] = {
	{"status", NULL, "   (whether loftd runs: exit 0, or 3 when not)", status},
	{NULL, NULL, NULL, NULL},
};
