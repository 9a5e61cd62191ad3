/*
 * COPY and MOVE (RFC 9051 6.4.7-8, MOVE RFC 6851) with UIDPLUS COPYUID
 * (RFC 4315). The store copies rows that point at the same blobs (within
 * one account; between two, store_copy_between appends copies). For
 * MOVE the COPYUID goes in an untagged OK before the EXPUNGE/VANISHED
 * responses (RFC 6851 4.3), which the view sync sends.
 */
#include <stdlib.h>

#include "imap-commands.h"

static void do_copy(struct imap_cmd *cmd, bool move)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a[0].type == IMAP_ARG_EOL || a[1].type == IMAP_ARG_EOL ||
	    a[2].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s needs a message set and a mailbox",
			     cmd->name);
		return;
	}
	struct store_uid_range *r;
	size_t rn;
	if (imap_cmd_seqset(cmd, &a[0], &r, &rn) < 0)
		return;
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[1], false, &ref) < 0) {
		free(r);
		return;
	}
	const char *dst = ref.name;
	if (move && c->readonly) {
		imap_cmd_no(cmd, "[READ-ONLY] Mailbox is read-only");
		goto out;
	}
	if (rn == 0) {
		imap_cmd_ok(cmd, "%s completed", cmd->name);
		goto out;
	}
	uint32_t uidvalidity = 0, *src_uids = NULL, *dst_uids = NULL;
	size_t n = 0;
	struct store_error err = {0};
	/* the destination may be another account's mail (issue 15) */
	if (store_copy_between(imap_client_sel_user(c), c->mailbox, r, rn,
			       ref.user, dst, move, &uidvalidity, &src_uids,
			       &dst_uids, &n, &err) < 0) {
		if (err.kind == STORE_ERR_NOTFOUND)
			imap_cmd_no(cmd, "[TRYCREATE] %s",
				    ref.shared || c->sel_user != NULL
					    ? "Mailbox doesn't exist" : err.msg);
		else
			imap_cmd_store_error(cmd, &err);
		goto out;
	}
	if (n == 0) {
		imap_cmd_ok(cmd, "%s completed", cmd->name);
	} else {
		struct buf b;
		buf_init(&b, 0);
		buf_printf(&b, "COPYUID %u ", uidvalidity);
		imap_uids_append_set(&b, src_uids, n);
		buf_append_char(&b, ' ');
		imap_uids_append_set(&b, dst_uids, n);
		if (move) {
			imap_client_untagged(c, "OK [%s] Moved", b.data);
			imap_cmd_ok(cmd, "MOVE completed");
		} else {
			imap_cmd_ok(cmd, "[%s] COPY completed", b.data);
		}
		buf_free(&b);
	}
	free(src_uids);
	free(dst_uids);
out:
	imap_mbref_free(&ref);
	free(r);
}

void cmd_copy(struct imap_cmd *cmd)
{
	do_copy(cmd, false);
}

void cmd_move(struct imap_cmd *cmd)
{
	do_copy(cmd, true);
}
