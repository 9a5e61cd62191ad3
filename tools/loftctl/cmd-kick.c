/*
 * loftctl kick ADDRESS: ends every session of the account in the running
 * loftd within a second (IMAP "* BYE", POP3 "-ERR", JMAP EventSource
 * streams closed), through the control socket, and signs its webmail
 * out (its web sessions end: the next request gets 401). The account
 * stays as it is; its clients may log in again.
 */
#include "loftctl.h"

#include <stdio.h>

static int kick(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_kick_cmds[0]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	/* the webmail's sessions first: a page that reloads after its
	 * stream closed must not find its cookie still good */
	int web = auth_sessions_end(ctl->auth, u.id);
	if (web < 0)
		return loftctl_fail("%s: its web sessions could not be ended",
				    u.address);
	if (web > 0)
		printf("%s: %d web sessions signed out\n", u.address, web);
	bool running;
	unsigned sessions;
	if (loftctl_kick(ctl, &u, &running, &sessions) < 0)
		return LOFTCTL_EXIT_FAIL;
	if (!running && ctl->store_set.backend == STORE_BACKEND_POSTGRES)
		printf("%s: loftd is not running here; every node sharing the"
		       " database was told to end its sessions\n", u.address);
	else if (!running)
		printf("%s: loftd is not running, no sessions\n", u.address);
	else
		printf("%s: %u sessions ended\n", u.address, sessions);
	return 0;
}

const struct loftctl_cmd loftctl_kick_cmds[] = {
	{"kick", NULL, "ADDRESS   (ends the account's sessions in loftd and"
	 " signs its webmail out)", kick},
	{NULL, NULL, NULL, NULL},
};
