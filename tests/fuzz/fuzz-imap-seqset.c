/*
 * Fuzz target for IMAP sequence sets (src/imap/imap-seqset.c).
 *
 * imap_seqset_parse() is compared with a plain reading of the grammar
 * (RFC 9051 9: sequence-set, nz-number below 2^32, "$" alone), and every
 * set it accepts goes round the printing helpers: '*' is given a value,
 * the ranges are normalized (sorted, disjoint, not adjacent), printed
 * with imap_uid_ranges_append_set and with imap_uids_append_set, and the
 * printed text must parse back to the same normalized ranges.
 *
 * Input: [flags][the set as an atom]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap-seqset.h"

/* nz-number / "*" at s[*i..n); 0 stands for '*'. */
static bool ref_number(const char *s, size_t n, size_t *i, uint64_t *v)
{
	if (*i < n && s[*i] == '*') {
		(*i)++;
		*v = 0;
		return true;
	}
	if (*i >= n || s[*i] < '1' || s[*i] > '9')
		return false;
	*v = 0;
	while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
		*v = *v * 10 + (uint64_t)(s[*i] - '0');
		if (*v > UINT32_MAX)
			return false;
		(*i)++;
	}
	return true;
}

static bool ref_valid(const char *s, size_t n, bool allow_saved)
{
	if (n == 1 && s[0] == '$')
		return allow_saved;
	size_t i = 0;
	for (;;) {
		uint64_t v;
		if (!ref_number(s, n, &i, &v))
			return false;
		if (i < n && s[i] == ':') {
			i++;
			if (!ref_number(s, n, &i, &v))
				return false;
		}
		if (i == n)
			return true;
		if (s[i++] != ',')
			return false;
	}
}

static void check_normalized(const struct store_uid_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].lo == 0 || r[i].lo > r[i].hi)
			abort();
		if (i > 0 && (uint64_t)r[i - 1].hi + 1 >= r[i].lo)
			abort();
	}
}

/* Parses text, resolves '*' to star and returns the normalized ranges. */
static struct store_uid_range *normalized(const char *text, size_t len,
					  uint32_t star, size_t *n_r)
{
	struct imap_seqset set;
	if (imap_seqset_parse(slice_make(text, len), false, &set) < 0)
		abort();
	struct store_uid_range *r = xmalloc((set.count + 1) * sizeof(*r));
	for (size_t i = 0; i < set.count; i++) {
		uint32_t lo = set.ranges[i].lo ? set.ranges[i].lo : star;
		uint32_t hi = set.ranges[i].hi ? set.ranges[i].hi : star;
		r[i].lo = lo < hi ? lo : hi;
		r[i].hi = lo < hi ? hi : lo;
	}
	*n_r = imap_uid_ranges_normalize(r, set.count);
	imap_seqset_free(&set);
	check_normalized(r, *n_r);
	return r;
}

static void round_trip(const struct imap_seqset *set, uint32_t star)
{
	struct store_uid_range *r = xmalloc((set->count + 1) * sizeof(*r));
	uint64_t members = 0;
	for (size_t i = 0; i < set->count; i++) {
		uint32_t lo = set->ranges[i].lo ? set->ranges[i].lo : star;
		uint32_t hi = set->ranges[i].hi ? set->ranges[i].hi : star;
		r[i].lo = lo < hi ? lo : hi;
		r[i].hi = lo < hi ? hi : lo;
	}
	size_t n = imap_uid_ranges_normalize(r, set->count);
	check_normalized(r, n);
	/* every number the client named is in the set; the gaps are not */
	for (size_t i = 0; i < set->count; i++) {
		uint32_t lo = set->ranges[i].lo ? set->ranges[i].lo : star;
		uint32_t hi = set->ranges[i].hi ? set->ranges[i].hi : star;
		if (!imap_uid_ranges_contain(r, n, lo) ||
		    !imap_uid_ranges_contain(r, n, hi))
			abort();
	}
	for (size_t i = 0; i < n; i++) {
		if (r[i].lo > 1 && imap_uid_ranges_contain(r, n, r[i].lo - 1))
			abort();
		if (r[i].hi < UINT32_MAX &&
		    imap_uid_ranges_contain(r, n, r[i].hi + 1))
			abort();
		members += (uint64_t)r[i].hi - r[i].lo + 1;
	}
	if (imap_uid_ranges_contain(r, n, 0))
		abort();

	struct buf text;
	buf_init(&text, 0);
	if (imap_uid_ranges_append_set(&text, r, n) < 0)
		abort();
	if (n > 0) {
		size_t n2;
		struct store_uid_range *r2 = normalized(text.data, text.len, star, &n2);
		if (n2 != n || memcmp(r, r2, n * sizeof(*r)) != 0)
			abort();
		free(r2);
	}

	/* the same members as a UID list, when it is small */
	if (members > 0 && members <= 4096) {
		uint32_t *uids = xmalloc(members * sizeof(*uids));
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			for (uint64_t u = r[i].lo; u <= r[i].hi; u++)
				uids[k++] = (uint32_t)u;
		buf_reset(&text);
		if (imap_uids_append_set(&text, uids, k) < 0)
			abort();
		size_t n3;
		struct store_uid_range *r3 = normalized(text.data, text.len, star, &n3);
		if (n3 != n || memcmp(r, r3, n * sizeof(*r)) != 0)
			abort();
		free(r3);
		free(uids);
	}
	buf_free(&text);
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t stars[] = {1, 7, 1000, UINT32_MAX - 1, UINT32_MAX};
	struct imap_seqset set;

	if (size < 1)
		return 0;
	bool allow_saved = data[0] & 1;
	uint32_t star = stars[(data[0] >> 1) % 5];
	const char *s = (const char *)data + 1;
	size_t n = size - 1;

	int ret = imap_seqset_parse(slice_make(s, n), allow_saved, &set);
	if ((ret == 0) != ref_valid(s, n, allow_saved))
		abort();
	if (ret < 0)
		return 0;
	if (set.saved != (n == 1 && s[0] == '$') || (!set.saved && set.count == 0))
		abort();
	round_trip(&set, star);
	imap_seqset_free(&set);
	return 0;
}
