/*
 * SORT comparison (RFC 5256 3 and RFC 5957). The program is a list of
 * keys compared in order; the sort itself is qsort_r over the gathered
 * records, so a SORT of 100,000 messages is one store pass plus
 * n log n comparisons of cached strings.
 */
#include "imap-sort.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum imap_sort_key key;
} sort_keys[] = {
	{"ARRIVAL", IMAP_SORT_ARRIVAL},
	{"CC", IMAP_SORT_CC},
	{"DATE", IMAP_SORT_DATE},
	{"FROM", IMAP_SORT_FROM},
	{"SIZE", IMAP_SORT_SIZE},
	{"SUBJECT", IMAP_SORT_SUBJECT},
	{"TO", IMAP_SORT_TO},
	{"DISPLAYFROM", IMAP_SORT_DISPLAYFROM},
	{"DISPLAYTO", IMAP_SORT_DISPLAYTO},
};

int imap_sort_key_parse(const char *name, size_t len, enum imap_sort_key *key_r)
{
	for (size_t i = 0; i < sizeof(sort_keys) / sizeof(sort_keys[0]); i++) {
		if (strlen(sort_keys[i].name) == len &&
		    strncasecmp(sort_keys[i].name, name, len) == 0) {
			*key_r = sort_keys[i].key;
			return 0;
		}
	}
	return -1;
}

bool imap_sort_needs_fields(const struct imap_sort_program *prog)
{
	for (unsigned i = 0; i < prog->count; i++)
		if (prog->crit[i].key != IMAP_SORT_ARRIVAL &&
		    prog->crit[i].key != IMAP_SORT_SIZE)
			return true;
	return false;
}

/* i;ascii-casemap (RFC 4790 9.2): ASCII letters folded, then octets. */
static int casemap_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a;
	const unsigned char *y = (const unsigned char *)b;
	for (;; x++, y++) {
		unsigned cx = *x, cy = *y;
		if (cx >= 'a' && cx <= 'z')
			cx -= 32;
		if (cy >= 'a' && cy <= 'z')
			cy -= 32;
		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (cx == 0)
			return 0;
	}
}

#define CMP_NUM(a, b) ((a) < (b) ? -1 : (a) > (b) ? 1 : 0)

static int cmp_key(enum imap_sort_key key, const struct imap_sort_msg *a,
		   const struct imap_sort_msg *b)
{
	switch (key) {
	case IMAP_SORT_ARRIVAL:
		return CMP_NUM(a->arrival, b->arrival);
	case IMAP_SORT_DATE:
		return CMP_NUM(a->sent_date, b->sent_date);
	case IMAP_SORT_SIZE:
		return CMP_NUM(a->size, b->size);
	case IMAP_SORT_CC:
		return casemap_cmp(a->cc, b->cc);
	case IMAP_SORT_FROM:
		return casemap_cmp(a->from, b->from);
	case IMAP_SORT_TO:
		return casemap_cmp(a->to, b->to);
	case IMAP_SORT_SUBJECT:
		return casemap_cmp(a->subject, b->subject);
	case IMAP_SORT_DISPLAYFROM:
		return casemap_cmp(a->display_from, b->display_from);
	case IMAP_SORT_DISPLAYTO:
		return casemap_cmp(a->display_to, b->display_to);
	}
	return 0;
}

static int cmp_msgs(const void *pa, const void *pb, void *ctx)
{
	const struct imap_sort_program *prog = ctx;
	const struct imap_sort_msg *a = pa, *b = pb;
	for (unsigned i = 0; i < prog->count; i++) {
		int c = cmp_key(prog->crit[i].key, a, b);
		if (c != 0)
			return prog->crit[i].reverse ? -c : c;
	}
	/* RFC 5256 3: exact matches stay in sequence order */
	return CMP_NUM(a->seq, b->seq);
}

void imap_sort_run(const struct imap_sort_program *prog,
		   struct imap_sort_msg *msgs, size_t count)
{
	qsort_r(msgs, count, sizeof(*msgs), cmp_msgs, (void *)prog);
}
