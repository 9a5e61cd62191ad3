/*
 * Small commands: CAPABILITY, NOOP, CHECK, LOGOUT, ID (RFC 2971), ENABLE
 * (RFC 5161) and NAMESPACE (RFC 2342).
 */
#include <stdlib.h>
#include <string.h>

#include "imap-commands.h"
#include "imap-server.h"
#include "log.h"

#define LOFT_VERSION "0.1.0"

static bool no_args(struct imap_cmd *cmd)
{
	if (cmd->args[0].type == IMAP_ARG_EOL)
		return true;
	imap_cmd_bad(cmd, "[CLIENTBUG] %s takes no arguments", cmd->name);
	return false;
}

void cmd_capability(struct imap_cmd *cmd)
{
	if (!no_args(cmd))
		return;
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* CAPABILITY ");
	imap_client_capabilities(cmd->client, &b);
	buf_append_str(&b, "\r\n");
	imap_client_write(cmd->client, b.data, b.len);
	buf_free(&b);
	imap_cmd_ok(cmd, "Capability completed");
}

void cmd_noop(struct imap_cmd *cmd)
{
	if (no_args(cmd))
		imap_cmd_ok(cmd, "NOOP completed");
}

void cmd_check(struct imap_cmd *cmd)
{
	/* every change is durable when its command returns: nothing to do */
	if (no_args(cmd))
		imap_cmd_ok(cmd, "CHECK completed");
}

void cmd_logout(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (!no_args(cmd))
		return;
	imap_client_untagged(c, "BYE Logging out");
	/* no untagged updates after BYE */
	struct store_view *view = c->view;
	c->view = NULL;
	imap_cmd_ok(cmd, "Logout completed");
	c->view = view;
	c->logged_out = true;
	c->input_mode = IMAP_MODE_LOGOUT;
}

/* RFC 2971 3.3: NIL or a list of at most 30 field/value pairs; field
 * strings at most 30 octets, values at most 1024. */
void cmd_id(struct imap_cmd *cmd)
{
	const struct imap_arg *a = cmd->args;
	bool ok = a[0].type != IMAP_ARG_EOL && a[1].type == IMAP_ARG_EOL;
	if (ok && a[0].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = a[0].list;
		ok = a[0].list_count % 2 == 0 && a[0].list_count <= 60;
		for (size_t i = 0; ok && i < a[0].list_count; i += 2) {
			ok = imap_arg_is_string(&l[i]) && l[i].str.len <= 30 &&
			     (imap_arg_is_string(&l[i + 1]) ||
			      l[i + 1].type == IMAP_ARG_NIL) &&
			     l[i + 1].str.len <= 1024;
		}
		if (ok && a[0].list_count >= 2 &&
		    imap_arg_is_string(&l[0]) && imap_arg_is_string(&l[1]))
			log_debug("imap", cmd->client->sid, "client id %s=%s",
				  l[0].str.ptr, l[1].str.ptr);
	} else if (ok) {
		ok = a[0].type == IMAP_ARG_NIL;
	}
	if (!ok) {
		imap_cmd_bad(cmd, "[CLIENTBUG] ID takes NIL or a list of field/value pairs");
		return;
	}
	imap_client_untagged(cmd->client,
			     "ID (\"name\" \"Loft\" \"version\" \"" LOFT_VERSION "\")");
	imap_cmd_ok(cmd, "ID completed");
}

void cmd_enable(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	static const struct {
		const char *name;
		unsigned bits;
	} known[] = {
		{"CONDSTORE", IMAP_ENABLED_CONDSTORE},
		{"QRESYNC", IMAP_ENABLED_QRESYNC | IMAP_ENABLED_CONDSTORE},
		{"UTF8=ACCEPT", IMAP_ENABLED_UTF8_ACCEPT},
		{"IMAP4rev2", IMAP_ENABLED_IMAP4REV2},
		{"UIDONLY", IMAP_ENABLED_UIDONLY},
	};
	if (cmd->args[0].type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] ENABLE needs at least one capability");
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "ENABLED");
	for (const struct imap_arg *a = cmd->args; a->type != IMAP_ARG_EOL; a++) {
		if (!imap_arg_is_atom(a)) {
			buf_free(&b);
			imap_cmd_bad(cmd, "[CLIENTBUG] ENABLE takes capability names");
			return;
		}
		/* RFC 5161 3.1: unknown capabilities are ignored */
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
			if (!slice_eq_ci(a->str, known[i].name))
				continue;
			if ((c->enabled & known[i].bits) != known[i].bits)
				buf_printf(&b, " %s", known[i].name);
			c->enabled |= known[i].bits;
		}
	}
	imap_client_untagged(c, "%s", b.data);
	buf_free(&b);
	imap_cmd_ok(cmd, "ENABLE completed");
}

void cmd_namespace(struct imap_cmd *cmd)
{
	if (!no_args(cmd))
		return;
	/* RFC 2342: personal, other users', shared; "" turns one off */
	const struct imap_settings *set = &cmd->client->server->set;
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, set->inbox_namespace ? "NAMESPACE ((\"INBOX.\" \".\"))"
						: "NAMESPACE ((\"\" \"/\"))");
	const char *ns[2] = {set->other_namespace, set->shared_namespace};
	for (int i = 0; i < 2; i++) {
		if (ns[i] == NULL || ns[i][0] == '\0') {
			buf_append_str(&b, " NIL");
			continue;
		}
		char *pfx = xasprintf("%s/", ns[i]);
		buf_append_str(&b, " ((");
		imap_append_string(&b, pfx, strlen(pfx), false);
		buf_append_str(&b, " \"/\"))");
		free(pfx);
	}
	imap_client_untagged(cmd->client, "%s", b.data);
	buf_free(&b);
	imap_cmd_ok(cmd, "NAMESPACE completed");
}
