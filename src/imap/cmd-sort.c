/*
 * SORT and UID SORT (RFC 5256 3, RFC 5957 DISPLAYFROM/DISPLAYTO): a
 * search, then one store pass over the matches for the cached sort
 * fields, then imap-sort.c. The plain "* SORT" response (no ESORT).
 */
#include "imap-client.h"
#include "imap-search.h"
#include "imap-sort.h"

#include <stdlib.h>
#include <string.h>

static int parse_criteria(const struct imap_arg *list,
			  struct imap_sort_program *prog, const char **error_r)
{
	bool reverse = false;
	prog->count = 0;
	for (; list->type != IMAP_ARG_EOL; list++) {
		if (list->type != IMAP_ARG_ATOM) {
			*error_r = "Invalid sort criterion";
			return -1;
		}
		if (!reverse && slice_eq_ci(list->str, "REVERSE")) {
			reverse = true;
			continue;
		}
		enum imap_sort_key key;
		if (imap_sort_key_parse(list->str.ptr, list->str.len, &key) < 0) {
			*error_r = "Unknown sort criterion";
			return -1;
		}
		if (prog->count == IMAP_SORT_MAX_CRITERIA) {
			*error_r = "Too many sort criteria";
			return -1;
		}
		prog->crit[prog->count].key = key;
		prog->crit[prog->count].reverse = reverse;
		prog->count++;
		reverse = false;
	}
	if (reverse || prog->count == 0) {
		*error_r = reverse ? "REVERSE needs a sort criterion"
				   : "Empty sort criteria";
		return -1;
	}
	return 0;
}

/* UID ranges covering exactly the given ascending UIDs. */
static struct store_uid_range *uids_to_ranges(const uint32_t *uids, size_t n,
					      size_t *count_r)
{
	struct store_uid_range *r = calloc(n ? n : 1, sizeof(*r));
	size_t k = 0;
	if (r == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && r[k - 1].hi + 1 == uids[i])
			r[k - 1].hi = uids[i];
		else
			r[k++] = (struct store_uid_range){uids[i], uids[i]};
	}
	*count_r = k;
	return r;
}

static char *dup_or_empty(const char *s)
{
	return xstrdup(s != NULL ? s : "");
}

static void free_msgs(struct imap_sort_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)msgs[i].subject);
		free((char *)msgs[i].from);
		free((char *)msgs[i].to);
		free((char *)msgs[i].cc);
		free((char *)msgs[i].display_from);
		free((char *)msgs[i].display_to);
	}
	free(msgs);
}

/* Fills msgs (one per match, in result order) from the store. Messages
 * expunged meanwhile keep empty fields and still sort. */
static int gather(struct imap_client *c, const struct imap_search_result *res,
		  bool fields, struct imap_sort_msg *msgs, bool uid,
		  struct store_error *err)
{
	size_t range_count, j = 0;
	struct store_uid_range *ranges = uids_to_ranges(res->uids, res->count,
							&range_count);
	struct store_fetch *f;
	const struct store_msg *m;
	int ret;

	for (size_t i = 0; i < res->count; i++) {
		msgs[i].seq = res->seqs[i];
		msgs[i].number = uid ? res->uids[i] : res->seqs[i];
	}
	if (store_fetch_begin(c->store_user, c->mailbox, ranges, range_count,
			      STORE_FETCH_SIZE |
			      (fields ? STORE_FETCH_SORT : 0), &f, err) < 0) {
		free(ranges);
		return -1;
	}
	while ((ret = store_fetch_next(f, &m, err)) == 1) {
		while (j < res->count && res->uids[j] < m->uid)
			j++;
		if (j == res->count)
			break;
		if (res->uids[j] != m->uid)
			continue;
		struct imap_sort_msg *s = &msgs[j];
		s->size = m->size;
		s->arrival = m->internaldate;
		s->sent_date = m->sent_date != 0 ? m->sent_date : m->internaldate;
		if (fields) {
			s->subject = dup_or_empty(m->sort_subject);
			s->from = dup_or_empty(m->sort_from);
			s->to = dup_or_empty(m->sort_to);
			s->cc = dup_or_empty(m->sort_cc);
			s->display_from = dup_or_empty(m->sort_display_from);
			s->display_to = dup_or_empty(m->sort_display_to);
		}
	}
	store_fetch_end(&f);
	free(ranges);
	return ret < 0 ? -1 : 0;
}

void cmd_sort(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *args = cmd->args;
	struct imap_sort_program sprog;
	struct imap_search_program *prog = NULL;
	struct imap_search_result res;
	struct store_error err = {0};
	const char *error;

	if (args[0].type != IMAP_ARG_LIST) {
		imap_cmd_bad(cmd, "SORT needs a list of sort criteria");
		return;
	}
	if (parse_criteria(args[0].list, &sprog, &error) < 0) {
		imap_cmd_bad(cmd, "%s", error);
		return;
	}
	if (search_prepare(cmd, args + 1, true, &prog) < 0)
		return;
	if (search_execute(cmd, prog, &res) < 0) {
		imap_search_program_free(&prog);
		return;
	}
	struct imap_sort_msg *msgs = calloc(res.count ? res.count : 1,
					    sizeof(*msgs));
	if (msgs == NULL)
		abort();
	/* empty strings until gathered, so a vanished message compares */
	bool fields = imap_sort_needs_fields(&sprog);
	if (gather(c, &res, fields, msgs, cmd->uid, &err) < 0) {
		free_msgs(msgs, res.count);
		imap_search_result_free(&res);
		imap_search_program_free(&prog);
		imap_cmd_store_error(cmd, &err);
		return;
	}
	for (size_t i = 0; i < res.count; i++) {
		struct imap_sort_msg *s = &msgs[i];
		if (s->subject == NULL) {
			s->subject = xstrdup("");
			s->from = xstrdup("");
			s->to = xstrdup("");
			s->cc = xstrdup("");
			s->display_from = xstrdup("");
			s->display_to = xstrdup("");
		}
	}
	imap_sort_run(&sprog, msgs, res.count);

	struct buf line;
	buf_init(&line, 0);
	buf_append_str(&line, "* SORT");
	for (size_t i = 0; i < res.count; i++)
		buf_printf(&line, " %u", msgs[i].number);
	search_write_line(c, &line);
	buf_free(&line);
	free_msgs(msgs, res.count);
	imap_search_result_free(&res);
	imap_search_program_free(&prog);
	imap_cmd_ok(cmd, "%sSORT completed", cmd->uid ? "UID " : "");
}
