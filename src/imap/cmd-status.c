/*
 * STATUS (RFC 9051 6.3.11) with DELETED and SIZE (STATUS=SIZE, RFC 8438),
 * HIGHESTMODSEQ (RFC 7162), APPENDLIMIT (RFC 7889) and MAILBOXID (RFC
 * 8474). The items are shared with LIST-STATUS (cmd-list.c).
 */
#include <stdlib.h>
#include <string.h>

#include "imap-commands.h"
#include "imap-server.h"

static const struct {
	const char *name;
	unsigned bit;
} items[] = {
	{"MESSAGES", IMAP_STATUS_MESSAGES},
	{"RECENT", IMAP_STATUS_RECENT},
	{"UIDNEXT", IMAP_STATUS_UIDNEXT},
	{"UIDVALIDITY", IMAP_STATUS_UIDVALIDITY},
	{"UNSEEN", IMAP_STATUS_UNSEEN},
	{"DELETED", IMAP_STATUS_DELETED},
	{"SIZE", IMAP_STATUS_SIZE},
	{"HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ},
	{"APPENDLIMIT", IMAP_STATUS_APPENDLIMIT},
	{"MAILBOXID", IMAP_STATUS_MAILBOXID},
};

int imap_status_parse_items(const struct imap_arg *list, unsigned *items_r)
{
	*items_r = 0;
	for (const struct imap_arg *a = list; a->type != IMAP_ARG_EOL; a++) {
		size_t k;
		for (k = 0; k < sizeof(items) / sizeof(items[0]); k++) {
			if (imap_arg_atom_eq(a, items[k].name))
				break;
		}
		if (k == sizeof(items) / sizeof(items[0]))
			return -1;
		*items_r |= items[k].bit;
	}
	return *items_r != 0 ? 0 : -1;
}

void imap_status_write(struct imap_client *c,
		       const struct store_mailbox_info *info, unsigned want,
		       const char *ns_name)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "* STATUS ");
	if (ns_name != NULL)
		imap_client_ns_out(c, ns_name, &b);
	else
		imap_client_mailbox_out(c, info->name, &b);
	buf_append_str(&b, " (");
	size_t start = b.len;
#define SEP() (b.len > start ? " " : "")
	if (want & IMAP_STATUS_MESSAGES)
		buf_printf(&b, "%sMESSAGES %u", SEP(), info->messages);
	if (want & IMAP_STATUS_RECENT)
		buf_printf(&b, "%sRECENT %u", SEP(), info->recent);
	if (want & IMAP_STATUS_UIDNEXT)
		buf_printf(&b, "%sUIDNEXT %u", SEP(), info->uidnext);
	if (want & IMAP_STATUS_UIDVALIDITY)
		buf_printf(&b, "%sUIDVALIDITY %u", SEP(), info->uidvalidity);
	if (want & IMAP_STATUS_UNSEEN)
		buf_printf(&b, "%sUNSEEN %u", SEP(), info->unseen);
	if (want & IMAP_STATUS_DELETED)
		buf_printf(&b, "%sDELETED %u", SEP(), info->deleted);
	if (want & IMAP_STATUS_SIZE)
		buf_printf(&b, "%sSIZE %llu", SEP(), (unsigned long long)info->size);
	if (want & IMAP_STATUS_HIGHESTMODSEQ)
		buf_printf(&b, "%sHIGHESTMODSEQ %llu", SEP(),
			   (unsigned long long)info->highestmodseq);
	if (want & IMAP_STATUS_APPENDLIMIT)
		buf_printf(&b, "%sAPPENDLIMIT %llu", SEP(),
			   (unsigned long long)c->server->set.append_limit);
	if (want & IMAP_STATUS_MAILBOXID)
		buf_printf(&b, "%sMAILBOXID (%s)", SEP(), info->objectid);
#undef SEP
	buf_append_str(&b, ")\r\n");
	imap_client_write(c, b.data, b.len);
	buf_free(&b);
}

void cmd_status(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	unsigned want;
	if (a[0].type == IMAP_ARG_EOL || a[1].type != IMAP_ARG_LIST ||
	    a[2].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] STATUS needs a mailbox and a list of items");
		return;
	}
	if (imap_status_parse_items(a[1].list, &want) < 0) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Unknown or missing STATUS item");
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0)
		return;
	if (want & IMAP_STATUS_HIGHESTMODSEQ)
		c->enabled |= IMAP_ENABLED_CONDSTORE;   /* RFC 7162 3.1 */
	struct store_mailbox_info info;
	struct store_error err = {0};
	if (store_mailbox_status(ref.user, ref.name, &info, &err) < 0) {
		imap_cmd_ref_error(cmd, &ref, &err);
	} else if (info.noselect) {
		store_mailbox_info_free(&info);
		imap_cmd_no(cmd, "[NONEXISTENT] Mailbox cannot be selected");
	} else {
		/* another's: the name as the client gave it, never
		 * rewritten as a personal one (namespace = inbox) */
		char *given = ref.shared ? imap_client_mailbox_in_raw(
						   c, a[0].str.ptr, a[0].str.len)
					 : NULL;
		imap_status_write(c, &info, want, given);
		free(given);
		store_mailbox_info_free(&info);
		imap_cmd_ok(cmd, "STATUS completed");
	}
	imap_mbref_free(&ref);
}
