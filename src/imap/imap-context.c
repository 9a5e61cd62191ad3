/*
 * Search and sort contexts with updates (RFC 5267 4). See imap-context.h.
 *
 * A context keeps its search program, the sort criteria for a SORT, and
 * the result the client holds, as UIDs in result order. An update runs
 * the search over the view again and sends the difference. For a sorted
 * result the client must be able to replay it pair by pair: removals go
 * first, highest place first; the messages whose place changed relative
 * to the others (outside a longest run that kept its order) are removed
 * and added again; additions go in ascending order of their new place,
 * so each place is right when it is read.
 */
#include "imap-context.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap-search.h"
#include "imap-sort.h"
#include "log.h"
#include "u32.h"

struct imap_context {
	char *tag;
	bool uid;
	bool sorted;
	struct imap_search_program *prog;
	struct imap_sort_program sprog;
	uint32_t *uids;           /* the result the client holds */
	size_t count;
};

static void context_free(struct imap_context *x)
{
	imap_search_program_free(&x->prog);
	free(x->tag);
	free(x->uids);
	free(x);
}

static void noupdate(struct imap_client *c, const char *tag, const char *why)
{
	imap_client_untagged(c, "OK [NOUPDATE \"%s\"] %s", tag, why);
}

bool imap_context_add(struct imap_client *c, const char *tag, bool uid,
		      struct imap_search_program **prog,
		      const struct imap_sort_program *sprog,
		      const uint32_t *uids, size_t count)
{
	struct imap_search_program *p = *prog;
	if (p->uses_seqset || p->uses_saved) {
		noupdate(c, tag, "Message numbers and $ change as the mailbox does");
		return false;
	}
	if (p->return_opts & IMAP_SEARCH_RETURN_PARTIAL) {
		noupdate(c, tag, "No updates for a PARTIAL result");
		return false;
	}
	/* a tag used again replaces its context */
	for (size_t i = 0; i < c->context_count; i++) {
		if (strcmp(c->contexts[i]->tag, tag) == 0) {
			context_free(c->contexts[i]);
			c->contexts[i] = c->contexts[--c->context_count];
			break;
		}
	}
	if (c->context_count >= IMAP_CONTEXT_MAX) {
		noupdate(c, tag, "Too many search contexts");
		return false;
	}
	struct imap_context *x = xcalloc(1, sizeof(*x));
	x->tag = xstrdup(tag);
	x->uid = uid;
	x->sorted = sprog != NULL;
	if (sprog != NULL)
		x->sprog = *sprog;
	x->prog = p;
	*prog = NULL;
	x->uids = xmalloc((count ? count : 1) * sizeof(*x->uids));
	if (count > 0)
		memcpy(x->uids, uids, count * sizeof(*x->uids));
	x->count = count;
	c->contexts = xrealloc(c->contexts, (c->context_count + 1) *
					    sizeof(*c->contexts));
	c->contexts[c->context_count++] = x;
	return true;
}

void imap_context_clear(struct imap_client *c)
{
	for (size_t i = 0; i < c->context_count; i++)
		context_free(c->contexts[i]);
	free(c->contexts);
	c->contexts = NULL;
	c->context_count = 0;
}

static void head(struct imap_context *x, struct buf *out, const char *what)
{
	buf_printf(out, "* ESEARCH (TAG \"%s\")%s %s (", x->tag,
		   x->uid ? " UID" : "", what);
}

/* The number the client knows uid by. */
static uint32_t number(struct imap_client *c, struct imap_context *x,
		       uint32_t uid)
{
	return x->uid ? uid : store_view_seq(c->view, uid);
}

void imap_context_expunged(struct imap_client *c, uint32_t seq, uint32_t uid,
			   struct buf *out)
{
	for (size_t i = 0; i < c->context_count; i++) {
		struct imap_context *x = c->contexts[i];
		size_t k;
		for (k = 0; k < x->count && x->uids[k] != uid; k++)
			;
		if (k == x->count)
			continue;
		head(x, out, "REMOVEFROM");
		buf_printf(out, "%zu %u)\r\n", x->sorted ? k + 1 : 0,
			   x->uid ? uid : seq);
		memmove(x->uids + k, x->uids + k + 1,
			(x->count - k - 1) * sizeof(*x->uids));
		x->count--;
	}
}

static int context_result(struct imap_client *c, struct imap_context *x,
			  uint32_t **uids_r, size_t *count_r)
{
	struct imap_search_env env = {
		.user = imap_client_sel_user(c),
		.mailbox = c->mailbox,
		.view = c->view,
		.saved_uids = c->searchres,
		.saved_count = c->searchres_count,
		.now = time(NULL),
	};
	struct imap_search_result res;
	struct store_error err = {0};
	if (imap_search_run(x->prog, &env, &res, &err) < 0) {
		log_warn("imap", c->sid, "context %s: %s", x->tag, err.msg);
		return -1;
	}
	int ret = 0;
	if (x->sorted) {
		ret = sort_execute(c, &x->sprog, &res, uids_r, &err);
	} else {
		*uids_r = xmalloc((res.count ? res.count : 1) * sizeof(uint32_t));
		if (res.count > 0)
			memcpy(*uids_r, res.uids, res.count * sizeof(uint32_t));
	}
	*count_r = res.count;
	imap_search_result_free(&res);
	return ret;
}

static bool has(const uint32_t *sorted, size_t n, uint32_t uid)
{
	return bsearch(&uid, sorted, n, sizeof(uid), u32_cmp) != NULL;
}

/* An unsorted result: one REMOVEFROM and one ADDTO with position 0. */
static void update_unsorted(struct imap_client *c, struct imap_context *x,
			    uint32_t *now, size_t n, struct buf *out)
{
	uint32_t *gone = xmalloc((x->count + 1) * sizeof(uint32_t));
	uint32_t *added = xmalloc((n + 1) * sizeof(uint32_t));
	size_t ng = 0, na = 0;
	for (size_t i = 0; i < x->count; i++) {
		uint32_t num = number(c, x, x->uids[i]);
		if (!has(now, n, x->uids[i]) && num != 0)
			gone[ng++] = num;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t num = number(c, x, now[i]);
		if (!has(x->uids, x->count, now[i]) && num != 0)
			added[na++] = num;
	}
	if (ng > 0) {
		head(x, out, "REMOVEFROM");
		buf_append_str(out, "0 ");
		imap_search_append_set(out, gone, ng);
		buf_append_str(out, ")\r\n");
	}
	if (na > 0) {
		head(x, out, "ADDTO");
		buf_append_str(out, "0 ");
		imap_search_append_set(out, added, na);
		buf_append_str(out, ")\r\n");
	}
	free(gone);
	free(added);
}

/* For each element of a (indexes into the new order), whether it is part
 * of a longest increasing run: those keep their place. */
static bool *longest_run(const size_t *a, size_t n)
{
	bool *keep = xcalloc(n ? n : 1, sizeof(bool));
	size_t *tail = xmalloc((n + 1) * sizeof(size_t));   /* indexes into a */
	size_t *prev = xmalloc((n + 1) * sizeof(size_t));
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t lo = 0, hi = len;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (a[tail[mid]] < a[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		prev[i] = lo > 0 ? tail[lo - 1] : SIZE_MAX;
		tail[lo] = i;
		if (lo == len)
			len++;
	}
	for (size_t i = len ? tail[len - 1] : SIZE_MAX; i != SIZE_MAX; i = prev[i])
		keep[i] = true;
	free(tail);
	free(prev);
	return keep;
}

struct placed {
	uint32_t uid;
	size_t index;
};

static int cmp_placed(const void *a, const void *b)
{
	const struct placed *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static void update_sorted(struct imap_client *c, struct imap_context *x,
			  uint32_t *now, size_t n, struct buf *out)
{
	/* where each UID of the new order is */
	struct placed *by_uid = xmalloc((n + 1) * sizeof(*by_uid));
	for (size_t j = 0; j < n; j++)
		by_uid[j] = (struct placed){now[j], j};
	qsort(by_uid, n, sizeof(*by_uid), cmp_placed);
	size_t *new_index = xmalloc((x->count + 1) * sizeof(size_t));
	bool *kept = xcalloc(x->count + 1, sizeof(bool));
	size_t *kidx = xmalloc((x->count + 1) * sizeof(size_t));
	size_t nk = 0;
	for (size_t i = 0; i < x->count; i++) {
		struct placed key = {x->uids[i], 0};
		const struct placed *p = bsearch(&key, by_uid, n, sizeof(*by_uid),
						 cmp_placed);
		if (p == NULL)
			continue;
		new_index[i] = p->index;
		kidx[nk++] = i;
	}
	size_t *seq_new = xmalloc((nk + 1) * sizeof(size_t));
	for (size_t i = 0; i < nk; i++)
		seq_new[i] = new_index[kidx[i]];
	bool *run = longest_run(seq_new, nk);
	for (size_t i = 0; i < nk; i++)
		kept[kidx[i]] = run[i];
	/* removals, highest place first */
	bool any = false;
	for (size_t i = x->count; i > 0; i--) {
		if (kept[i - 1])
			continue;
		uint32_t num = number(c, x, x->uids[i - 1]);
		if (num == 0)
			continue;
		if (!any)
			head(x, out, "REMOVEFROM");
		buf_printf(out, "%s%zu %u", any ? " " : "", i, num);
		any = true;
	}
	if (any)
		buf_append_str(out, ")\r\n");
	/* additions in ascending new place */
	bool *present = xcalloc(n + 1, sizeof(bool));
	for (size_t i = 0; i < x->count; i++)
		if (kept[i])
			present[new_index[i]] = true;
	any = false;
	for (size_t j = 0; j < n; j++) {
		if (present[j])
			continue;
		uint32_t num = number(c, x, now[j]);
		if (num == 0)
			continue;
		if (!any)
			head(x, out, "ADDTO");
		buf_printf(out, "%s%zu %u", any ? " " : "", j + 1, num);
		any = true;
	}
	if (any)
		buf_append_str(out, ")\r\n");
	free(present);
	free(run);
	free(seq_new);
	free(kidx);
	free(kept);
	free(new_index);
	free(by_uid);
}

void imap_context_update(struct imap_client *c, struct buf *out)
{
	for (size_t i = 0; i < c->context_count && c->view != NULL; i++) {
		struct imap_context *x = c->contexts[i];
		uint32_t *now;
		size_t n;
		if (context_result(c, x, &now, &n) < 0)
			continue;
		if (x->sorted)
			update_sorted(c, x, now, n, out);
		else
			update_unsorted(c, x, now, n, out);
		free(x->uids);
		x->uids = now;
		x->count = n;
	}
}

/* CANCELUPDATE "tag" ... (RFC 5267 4.3.5). */
void cmd_cancelupdate(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a->type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] CANCELUPDATE needs context tags");
		return;
	}
	for (const struct imap_arg *p = a; p->type != IMAP_ARG_EOL; p++) {
		if (p->type != IMAP_ARG_QUOTED) {
			imap_cmd_bad(cmd, "[CLIENTBUG] CANCELUPDATE takes quoted tags");
			return;
		}
	}
	bool unknown = false;
	for (; a->type != IMAP_ARG_EOL; a++) {
		size_t i;
		for (i = 0; i < c->context_count; i++)
			if (strcmp(c->contexts[i]->tag, a->str.ptr) == 0)
				break;
		if (i == c->context_count) {
			unknown = true;
			continue;
		}
		context_free(c->contexts[i]);
		c->contexts[i] = c->contexts[--c->context_count];
	}
	if (unknown)
		imap_cmd_no(cmd, "[NONEXISTENT] No such search context");
	else
		imap_cmd_ok(cmd, "CANCELUPDATE completed");
}
