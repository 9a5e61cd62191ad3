/*
 * Sequence sets: parsing, resolving against a view, printing.
 */
#include "imap-seqset.h"

#include <stdlib.h>
#include <string.h>

static int parse_number(const char **p, const char *end, uint32_t *v_r)
{
	if (*p < end && **p == '*') {
		(*p)++;
		*v_r = 0;
		return 0;
	}
	uint64_t v = 0;
	const char *start = *p;
	while (*p < end && **p >= '0' && **p <= '9') {
		v = v * 10 + (uint64_t)(**p - '0');
		if (v > UINT32_MAX)
			return -1;
		(*p)++;
	}
	/* nz-number: no zero, no leading zero */
	if (*p == start || v == 0 || *start == '0')
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

int imap_seqset_parse(struct slice s, bool allow_saved,
		      struct imap_seqset *set_r)
{
	memset(set_r, 0, sizeof(*set_r));
	if (s.len == 1 && s.ptr[0] == '$') {
		if (!allow_saved)
			return -1;
		set_r->saved = true;
		return 0;
	}
	const char *p = s.ptr, *end = s.ptr + s.len;
	size_t cap = 0;
	if (s.len == 0)
		return -1;
	while (p < end) {
		struct imap_seqrange r;
		if (parse_number(&p, end, &r.lo) < 0)
			goto bad;
		r.hi = r.lo;
		if (p < end && *p == ':') {
			p++;
			if (parse_number(&p, end, &r.hi) < 0)
				goto bad;
		}
		if (set_r->count == cap) {
			cap = cap ? cap * 2 : 8;
			set_r->ranges = xrealloc(set_r->ranges,
						 cap * sizeof(*set_r->ranges));
		}
		set_r->ranges[set_r->count++] = r;
		if (p == end)
			break;
		if (*p != ',' || p + 1 == end)
			goto bad;
		p++;
	}
	return 0;
bad:
	imap_seqset_free(set_r);
	return -1;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->count = 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct store_uid_range *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

size_t imap_uid_ranges_normalize(struct store_uid_range *r, size_t count)
{
	if (count == 0)
		return 0;
	qsort(r, count, sizeof(*r), cmp_range);
	size_t out = 0;
	for (size_t i = 1; i < count; i++) {
		if (r[i].lo <= r[out].hi ||
		    (r[out].hi != UINT32_MAX && r[i].lo == r[out].hi + 1)) {
			if (r[i].hi > r[out].hi)
				r[out].hi = r[i].hi;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

bool imap_uid_ranges_contain(const struct store_uid_range *r, size_t count,
			     uint32_t uid)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uid < r[mid].lo)
			hi = mid;
		else if (uid > r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Message sequence numbers -> UID ranges. Consecutive sequence numbers
 * map to runs of UIDs which may have holes; the view's UIDs in a seq
 * range are exactly [uid(lo), uid(hi)] intersected with the view, so one
 * UID range per seq range is exact for the store (which only returns
 * existing messages) as long as the caller skips UIDs not in the view. */
static int resolve_seq(const struct imap_seqset *set,
		       const struct store_view *view,
		       struct store_uid_range *out, size_t *n_r,
		       const char **error_r)
{
	uint32_t count = store_view_count(view);
	size_t n = 0;
	bool star = false;
	for (size_t i = 0; i < set->count; i++) {
		uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
		if (lo == 0 || hi == 0)
			star = true;
		if (lo == 0)
			lo = count;
		if (hi == 0)
			hi = count;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (lo == 0)
			lo = 1;   /* '*' in an empty mailbox */
		if (hi > count)
			hi = count;
		if (lo > hi)
			continue;
		out[n].lo = store_view_uid(view, lo);
		out[n].hi = store_view_uid(view, hi);
		n++;
	}
	if (n == 0 && !star && set->count > 0) {
		*error_r = "Invalid message sequence number";
		return -1;
	}
	*n_r = n;
	return 0;
}

static int resolve_uid(const struct imap_seqset *set,
		       const struct store_view *view,
		       struct store_uid_range *out, size_t *n_r)
{
	uint32_t count = store_view_count(view);
	uint32_t max = count > 0 ? store_view_uid(view, count) : 0;
	size_t n = 0;
	for (size_t i = 0; i < set->count; i++) {
		uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
		if (lo == 0)
			lo = max;
		if (hi == 0)
			hi = max;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (lo == 0)
			lo = 1;
		if (hi > max)
			hi = max;
		if (lo > hi)
			continue;
		out[n].lo = lo;
		out[n].hi = hi;
		n++;
	}
	*n_r = n;
	return 0;
}

int imap_seqset_resolve(const struct imap_seqset *set,
			const struct store_view *view, bool uid,
			const uint32_t *saved, size_t saved_count,
			struct store_uid_range **ranges_r, size_t *count_r,
			const char **error_r)
{
	*ranges_r = NULL;
	*count_r = 0;
	if (set->saved) {
		/* RFC 5182 2.1: "$" is the saved UIDs; in a sequence-number
		 * command it still means those messages. */
		uint32_t count = store_view_count(view);
		uint32_t max = count > 0 ? store_view_uid(view, count) : 0;
		struct store_uid_range *r = xmalloc((saved_count + 1) * sizeof(*r));
		size_t n = 0;
		for (size_t i = 0; i < saved_count; i++) {
			if (saved[i] > max)
				continue;
			r[n].lo = r[n].hi = saved[i];
			n++;
		}
		*count_r = imap_uid_ranges_normalize(r, n);
		*ranges_r = r;
		return 0;
	}
	struct store_uid_range *r = xmalloc((set->count + 1) * sizeof(*r));
	size_t n = 0;
	int ret = uid ? resolve_uid(set, view, r, &n)
		      : resolve_seq(set, view, r, &n, error_r);
	if (ret < 0) {
		free(r);
		return -1;
	}
	*count_r = imap_uid_ranges_normalize(r, n);
	*ranges_r = r;
	return 0;
}

int imap_uids_append_set(struct buf *out, const uint32_t *uids, size_t count)
{
	for (size_t i = 0; i < count;) {
		size_t j = i;
		while (j + 1 < count && uids[j + 1] == uids[j] + 1)
			j++;
		if (i > 0 && buf_append_char(out, ',') < 0)
			return -1;
		int r = j > i ? buf_printf(out, "%u:%u", uids[i], uids[j])
			      : buf_printf(out, "%u", uids[i]);
		if (r < 0)
			return -1;
		i = j + 1;
	}
	return 0;
}

int imap_uid_ranges_append_set(struct buf *out,
			       const struct store_uid_range *r, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (i > 0 && buf_append_char(out, ',') < 0)
			return -1;
		int ret = r[i].hi > r[i].lo
				  ? buf_printf(out, "%u:%u", r[i].lo, r[i].hi)
				  : buf_printf(out, "%u", r[i].lo);
		if (ret < 0)
			return -1;
	}
	return 0;
}
