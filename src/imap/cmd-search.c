/*
 * SEARCH and UID SEARCH (RFC 9051 6.4.4), with ESEARCH result options
 * (RFC 4731), SEARCHRES (RFC 5182) and CONDSTORE's MODSEQ (RFC 7162
 * 3.1.5). The program and its evaluation are in imap-search.c.
 * SORT and THREAD share search_prepare/search_execute from here.
 */
#include "imap-client.h"
#include "imap-context.h"
#include "imap-search.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* RFC 5182 2.1: a failed SEARCH ... RETURN (SAVE) leaves $ empty. Looks
 * at the raw arguments, since the program may not have parsed. */
static bool args_ask_save(const struct imap_arg *args)
{
	if (!imap_arg_atom_eq(&args[0], "RETURN") || args[1].type != IMAP_ARG_LIST)
		return false;
	for (const struct imap_arg *a = args[1].list; a->type != IMAP_ARG_EOL; a++)
		if (imap_arg_atom_eq(a, "SAVE"))
			return true;
	return false;
}

int search_prepare(struct imap_cmd *cmd, const struct imap_arg *args,
		   bool sort_or_thread, struct imap_search_program **prog_r)
{
	struct imap_search_parse_params params = {
		.allow_return = !sort_or_thread,
		.charset_required = sort_or_thread,
	};
	enum imap_search_parse_error kind;
	const char *error;

	if (imap_search_parse(args, &params, prog_r, &kind, &error) == 0) {
		/* RFC 9586 3: no message numbers in the criteria either */
		if ((cmd->client->enabled & IMAP_ENABLED_UIDONLY) &&
		    (*prog_r)->uses_seqset) {
			imap_search_program_free(prog_r);
			imap_cmd_bad(cmd, "[UIDREQUIRED] Search by UID only (UIDONLY is enabled)");
			return -1;
		}
		return 0;
	}
	switch (kind) {
	case IMAP_SEARCH_ERR_BADCHARSET:
		imap_cmd_no(cmd, "[BADCHARSET (UTF-8 US-ASCII)] %s", error);
		break;
	case IMAP_SEARCH_ERR_LIMIT:
		imap_cmd_bad(cmd, "[LIMIT] %s", error);
		break;
	case IMAP_SEARCH_ERR_SYNTAX:
		imap_cmd_bad(cmd, "%s", error);
		break;
	}
	return -1;
}

int search_execute(struct imap_cmd *cmd, struct imap_search_program *prog,
		   struct imap_search_result *result_r)
{
	struct imap_client *c = cmd->client;
	/* UID SEARCH / SORT / THREAD: a message the client knows of by
	 * other means (another session's APPENDUID, a delivery) is found */
	imap_cmd_sync_uid(cmd, 0);
	struct imap_search_env env = {
		.user = imap_client_sel_user(c),
		.mailbox = c->mailbox,
		.view = c->view,
		.saved_uids = c->searchres,
		.saved_count = c->searchres_count,
		.now = time(NULL),
	};
	struct store_error err = {0};

	if (imap_search_run(prog, &env, result_r, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return -1;
	}
	/* RFC 7162 3.1: a SEARCH with MODSEQ enables CONDSTORE */
	if (prog->has_modseq)
		c->enabled |= IMAP_ENABLED_CONDSTORE;
	return 0;
}

int search_write_line(struct imap_client *c, struct buf *line)
{
	if (line->len == 0)
		return 0;
	buf_append_str(line, "\r\n");
	return imap_client_write(c, line->data, line->len);
}

void cmd_search(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	struct imap_search_program *prog = NULL;
	struct imap_search_result res;

	if (search_prepare(cmd, cmd->args, false, &prog) < 0) {
		if (args_ask_save(cmd->args))
			imap_client_set_searchres(c, NULL, 0);
		return;
	}
	if (search_execute(cmd, prog, &res) < 0) {
		if (prog->return_opts & IMAP_SEARCH_RETURN_SAVE)
			imap_client_set_searchres(c, NULL, 0);
		imap_search_program_free(&prog);
		return;
	}
	/* Replying before saving: a "$" in this very command meant the
	 * previous result (RFC 5182 2.1 processes the search first). */
	struct imap_search_reply_params rp = {
		.tag = cmd->tag,
		.tag_len = strlen(cmd->tag),
		.uid = cmd->uid,
		.esearch = (c->enabled & IMAP_ENABLED_IMAP4REV2) != 0,
		.condstore = true,
	};
	struct buf line;
	buf_init(&line, 0);
	imap_search_reply(prog, &res, &rp, &line);
	search_write_line(c, &line);
	buf_free(&line);
	if (prog->return_opts & IMAP_SEARCH_RETURN_SAVE) {
		uint32_t *uids;
		size_t n;
		imap_search_saved_uids(prog, &res, &uids, &n);
		imap_client_set_searchres(c, uids, n);
		free(uids);
	}
	if (prog->return_opts & IMAP_SEARCH_RETURN_UPDATE) {
		/* updates start at the state the result was taken in */
		c->context_modseq = store_view_info(c->view)->highestmodseq;
		c->context_exists = store_view_count(c->view);
		imap_context_add(c, cmd->tag, cmd->uid, &prog, NULL, res.uids,
				 res.count);
	}
	imap_search_result_free(&res);
	imap_search_program_free(&prog);
	imap_cmd_ok(cmd, "%sSEARCH completed", cmd->uid ? "UID " : "");
}
