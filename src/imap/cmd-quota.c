/*
 * QUOTA (RFC 9208): one quota root "" per account with the STORAGE (in
 * units of 1024 octets) and MESSAGE resources. Limits are the account's
 * policy (auth), usage the store's counters; SETQUOTA is for the
 * administrator (loftctl user quota) and refused here.
 */
#include <stdio.h>
#include <stdlib.h>

#include "imap-commands.h"
#include "imap-server.h"

/* Appends "STORAGE u l MESSAGE u l" for the limits that exist; returns
 * false when the account has no limits at all. */
static int quota_resources(struct imap_client *c, struct buf *out,
			   struct store_error *err)
{
	struct auth_policy policy;
	struct store_usage usage;
	if (auth_user_policy(c->server->auth, c->user.id, &policy) < 0) {
		err->kind = STORE_ERR_TEMP;
		snprintf(err->msg, sizeof(err->msg), "Account data unavailable");
		return -1;
	}
	if (policy.quota_bytes == 0 && policy.quota_messages == 0)
		return 0;
	if (store_user_usage(c->store_user, &usage, err) < 0)
		return -1;
	if (policy.quota_bytes > 0)
		buf_printf(out, "STORAGE %llu %llu",
			   (unsigned long long)((usage.bytes + 1023) / 1024),
			   (unsigned long long)(policy.quota_bytes / 1024));
	if (policy.quota_messages > 0)
		buf_printf(out, "%sMESSAGE %llu %llu", policy.quota_bytes > 0 ? " " : "",
			   (unsigned long long)usage.messages,
			   (unsigned long long)policy.quota_messages);
	return 1;
}

void cmd_getquotaroot(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (cmd->args[0].type == IMAP_ARG_EOL || cmd->args[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] GETQUOTAROOT needs one mailbox name");
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &cmd->args[0], false, &ref) < 0)
		return;
	char *name = ref.name;
	struct store_mailbox_info info;
	struct store_error err = {0};
	struct buf res, b;
	buf_init(&res, 0);
	buf_init(&b, 0);
	int r;
	if (ref.shared) {
		/* the owner's quota: not the viewer's to see here */
		imap_cmd_no(cmd, "[NOPERM] Quota of another account");
	} else if (store_mailbox_status(ref.user, name, &info, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
	} else if ((r = quota_resources(c, &res, &err)) < 0) {
		store_mailbox_info_free(&info);
		imap_cmd_store_error(cmd, &err);
	} else {
		store_mailbox_info_free(&info);
		buf_append_str(&b, "* QUOTAROOT ");
		imap_client_mailbox_out(c, name, &b);
		if (r > 0)
			buf_printf(&b, " \"\"\r\n* QUOTA \"\" (%s)", res.data);
		buf_append_str(&b, "\r\n");
		imap_client_write(c, b.data, b.len);
		imap_cmd_ok(cmd, "GETQUOTAROOT completed");
	}
	buf_free(&res);
	buf_free(&b);
	imap_mbref_free(&ref);
}

void cmd_getquota(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (!imap_arg_is_astring(&a[0]) || a[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] GETQUOTA needs one quota root");
		return;
	}
	struct store_error err = {0};
	struct buf res;
	buf_init(&res, 0);
	int r = a[0].str.len == 0 ? quota_resources(c, &res, &err) : 0;
	if (r < 0)
		imap_cmd_store_error(cmd, &err);
	else if (r == 0)
		imap_cmd_no(cmd, "[NONEXISTENT] No such quota root");
	else {
		imap_client_untagged(c, "QUOTA \"\" (%s)", res.data);
		imap_cmd_ok(cmd, "GETQUOTA completed");
	}
	buf_free(&res);
}

void cmd_setquota(struct imap_cmd *cmd)
{
	imap_cmd_no(cmd, "[NOPERM] Quotas are set by the administrator");
}
