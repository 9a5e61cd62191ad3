/*
 * EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, UIDPLUS RFC 4315 2.1). The
 * store removes the messages; the EXPUNGE (or, with QRESYNC, VANISHED)
 * responses come from the view sync that precedes the tagged OK.
 */
#include <stdlib.h>

#include "imap-commands.h"

void cmd_expunge(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	struct store_uid_range *r = NULL;
	size_t rn = 0;
	if (cmd->uid ? (a[0].type == IMAP_ARG_EOL || a[1].type != IMAP_ARG_EOL)
		     : a[0].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, cmd->uid ? "[CLIENTBUG] UID EXPUNGE needs a UID set"
					   : "[CLIENTBUG] EXPUNGE takes no arguments");
		return;
	}
	if (c->readonly) {
		imap_cmd_no(cmd, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (cmd->uid) {
		if (imap_cmd_seqset(cmd, &a[0], &r, &rn) < 0)
			return;
		if (rn == 0) {
			free(r);
			imap_cmd_ok(cmd, "EXPUNGE completed");
			return;
		}
	}
	uint32_t *uids = NULL;
	size_t n = 0;
	struct store_error err = {0};
	if (store_expunge(imap_client_sel_user(c), c->mailbox, r, rn, false, &uids, &n,
			  &err) < 0)
		imap_cmd_store_error(cmd, &err);
	else
		imap_cmd_ok(cmd, "EXPUNGE completed");
	free(uids);
	free(r);
}
