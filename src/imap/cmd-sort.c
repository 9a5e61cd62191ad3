/*
 * SORT and UID SORT (RFC 5256 3, RFC 5957 DISPLAYFROM/DISPLAYTO): a
 * search, then one store pass over the matches for the cached base
 * subject, sent date and ENVELOPE (the address keys are defined on its
 * address structures), then imap-sort.c. "* SORT", or with RETURN
 * (ESORT, RFC 5267 3) an ESEARCH in sort order, PARTIAL (RFC 9394) and
 * UPDATE contexts (CONTEXT=SORT, imap-context.c) included.
 */
#include "imap-client.h"
#include "imap-context.h"
#include "imap-search.h"
#include "imap-sort.h"
#include "mail.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* The first address structure of an ENVELOPE address list (RFC 9051
 * 7.5.2). RFC 5256 and RFC 5957 define the address sort keys on it: "the
 * [IMAP] addr-mailbox of the first address", so a group's start marker
 * counts, with its name as addr-mailbox (Dovecot reads it so too). */
static bool env_first_address(const char *env, enum imap_env_field field,
			      struct imap_envelope_address *a)
{
	const char *p = imap_envelope_find(env, field);
	bool in_list = false;
	return p != NULL && imap_envelope_next_address(&p, &in_list, a) == 1;
}

/* Collation keys of the address sort fields of one message. */
static void address_keys(const char *env, enum imap_env_field field,
			 char **mailbox_key_r, char **display_key_r)
{
	struct imap_envelope_address a;
	struct buf dec, key;
	memset(&a, 0, sizeof(a));
	buf_init(&dec, 0);
	buf_init(&key, 0);
	if (env_first_address(env, field, &a)) {
		const char *mbox = a.mailbox.data ? a.mailbox.data : "";
		imap_sort_collation_key(&key, mbox);
		if (display_key_r != NULL) {
			/* RFC 5957 2: the decoded display name, else the
			 * addr-spec; decoded as every header text Loft
			 * shows or searches (raw 8-bit that is not UTF-8 is
			 * taken as Windows-1252) */
			mail_header_decode(&dec, slice_make(a.name.data ? a.name.data : "",
							    a.name.len));
			if (dec.len == 0 && !a.host_nil)
				buf_printf(&dec, "%s@%s", mbox,
					   a.host.data ? a.host.data : "");
			else if (dec.len == 0)
				buf_append_str(&dec, mbox);
		}
	}
	*mailbox_key_r = xstrdup(key.data ? key.data : "");
	if (display_key_r != NULL) {
		buf_reset(&key);
		imap_sort_collation_key(&key, dec.data ? dec.data : "");
		*display_key_r = xstrdup(key.data ? key.data : "");
	}
	buf_free(&a.name);
	buf_free(&a.adl);
	buf_free(&a.mailbox);
	buf_free(&a.host);
	buf_free(&dec);
	buf_free(&key);
}

static char *collation_dup(const char *s)
{
	struct buf key;
	buf_init(&key, 0);
	imap_sort_collation_key(&key, s != NULL ? s : "");
	char *r = xstrdup(key.data ? key.data : "");
	buf_free(&key);
	return r;
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
	struct store_uid_range *ranges = store_uid_ranges(res->uids, res->count,
							&range_count);
	struct store_fetch *f;
	const struct store_msg *m;
	int ret;

	for (size_t i = 0; i < res->count; i++) {
		msgs[i].seq = res->seqs[i];
		msgs[i].number = uid ? res->uids[i] : res->seqs[i];
	}
	if (store_fetch_begin(imap_client_sel_user(c), c->mailbox, ranges, range_count,
			      STORE_FETCH_SIZE | (fields ? STORE_FETCH_SORT |
						   STORE_FETCH_ENVELOPE : 0),
			      &f, err) < 0) {
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
			char *df, *dt;
			s->subject = collation_dup(m->sort_subject);
			address_keys(m->envelope, IMAP_ENV_FROM, (char **)&s->from, &df);
			address_keys(m->envelope, IMAP_ENV_TO, (char **)&s->to, &dt);
			address_keys(m->envelope, IMAP_ENV_CC, (char **)&s->cc, NULL);
			s->display_from = df;
			s->display_to = dt;
		}
	}
	store_fetch_end(&f);
	free(ranges);
	return ret < 0 ? -1 : 0;
}

int sort_execute(struct imap_client *c, const struct imap_sort_program *sprog,
		 const struct imap_search_result *res, uint32_t **uids_r,
		 struct store_error *err)
{
	struct imap_sort_msg *msgs = xcalloc(res->count ? res->count : 1,
					     sizeof(*msgs));
	/* empty strings until gathered, so a vanished message compares */
	bool fields = imap_sort_needs_fields(sprog);
	if (gather(c, res, fields, msgs, true, err) < 0) {
		free_msgs(msgs, res->count);
		return -1;
	}
	for (size_t i = 0; i < res->count; i++) {
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
	imap_sort_run(sprog, msgs, res->count);
	*uids_r = xmalloc((res->count ? res->count : 1) * sizeof(uint32_t));
	for (size_t i = 0; i < res->count; i++)
		(*uids_r)[i] = msgs[i].number;
	free_msgs(msgs, res->count);
	return 0;
}

/* The index of uid in res (whose uids ascend). */
static size_t index_of(const struct imap_search_result *res, uint32_t uid)
{
	size_t lo = 0, hi = res->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (res->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t seq_of(const struct imap_search_result *res, uint32_t uid)
{
	size_t i = index_of(res, uid);
	return i < res->count && res->uids[i] == uid ? res->seqs[i] : 0;
}

/* SORT RETURN (...) (RFC 5267 3): an ESEARCH in sort order. */
static void esort_reply(struct imap_cmd *cmd, struct imap_search_program *prog,
			const struct imap_search_result *res,
			const uint32_t *uids)
{
	struct imap_client *c = cmd->client;
	uint32_t *nums = xmalloc((res->count ? res->count : 1) * sizeof(*nums));
	uint64_t *modseqs = xmalloc((res->count ? res->count : 1) *
				    sizeof(*modseqs));
	for (size_t i = 0; i < res->count; i++) {
		size_t k = index_of(res, uids[i]);
		nums[i] = cmd->uid ? uids[i] : res->seqs[k];
		modseqs[i] = res->modseqs != NULL ? res->modseqs[k] : 0;
	}
	struct imap_esearch e = {
		.tag = cmd->tag, .tag_len = strlen(cmd->tag), .uid = cmd->uid,
		.sorted = true, .nums = nums, .modseqs = modseqs,
		.count = res->count, .show_modseq = prog->has_modseq,
	};
	struct buf line;
	buf_init(&line, 0);
	imap_esearch_reply(prog, &e, &line);
	search_write_line(c, &line);
	buf_free(&line);
	free(nums);
	free(modseqs);
}

void cmd_sort(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *args = cmd->args;
	const struct imap_arg *ret_list = NULL;
	struct imap_sort_program sprog;
	struct imap_search_program *prog = NULL;
	struct imap_search_result res;
	struct store_error err = {0};
	const char *error;

	/* ESORT (RFC 5267 3): SORT RETURN (...) (criteria) charset keys */
	if (imap_arg_atom_eq(&args[0], "RETURN")) {
		if (args[1].type != IMAP_ARG_LIST) {
			imap_cmd_bad(cmd, "RETURN needs a list");
			return;
		}
		ret_list = args[1].list;
		args += 2;
	}
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
	if (ret_list != NULL &&
	    imap_search_parse_return(ret_list, prog, &error) < 0) {
		imap_search_program_free(&prog);
		imap_cmd_bad(cmd, "%s", error);
		return;
	}
	if (search_execute(cmd, prog, &res) < 0) {
		imap_search_program_free(&prog);
		return;
	}
	uint32_t *uids;
	if (sort_execute(c, &sprog, &res, &uids, &err) < 0) {
		imap_search_result_free(&res);
		imap_search_program_free(&prog);
		imap_cmd_store_error(cmd, &err);
		return;
	}
	if (prog->esearch) {
		esort_reply(cmd, prog, &res, uids);
		if (prog->return_opts & IMAP_SEARCH_RETURN_SAVE) {
			/* the returned ones, as a set (RFC 5182 2.4) */
			uint32_t *saved;
			size_t n;
			imap_search_saved_uids(prog, &res, &saved, &n);
			imap_client_set_searchres(c, saved, n);
			free(saved);
		}
		if (prog->return_opts & IMAP_SEARCH_RETURN_UPDATE) {
			c->context_modseq = store_view_info(c->view)->highestmodseq;
			c->context_exists = store_view_count(c->view);
			imap_context_add(c, cmd->tag, cmd->uid, &prog, &sprog,
					 uids, res.count);
		}
	} else {
		struct buf line;
		buf_init(&line, 0);
		buf_append_str(&line, "* SORT");
		for (size_t i = 0; i < res.count; i++)
			buf_printf(&line, " %u",
				   cmd->uid ? uids[i] : seq_of(&res, uids[i]));
		search_write_line(c, &line);
		buf_free(&line);
	}
	free(uids);
	imap_search_result_free(&res);
	imap_search_program_free(&prog);
	imap_cmd_ok(cmd, "%sSORT completed", cmd->uid ? "UID " : "");
}
