/*
 * SORT comparison (RFC 5256 3 and RFC 5957). The program is a list of
 * keys compared in order; the sort itself is qsort_r over the gathered
 * records, so a SORT of 100,000 messages is one store pass plus
 * n log n comparisons of collation keys made once per message.
 */
#include "imap-sort.h"

#include "buf.h"

#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

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

/* Base letters of U+00C0..U+017F that have a canonical decomposition
 * (letter + combining mark); 0 where there is none (Æ, Ð, Ø, Þ, ß, Đ,
 * Ħ, ı, Ł, Ŋ, Œ, Ŧ ... stay letters of their own, as in Unicode). */
static const char latin_base[] =
	/* C0 */ "AAAAAA\0CEEEEIIII"
	/* D0 */ "\0NOOOOO\0\0UUUUY\0\0"
	/* E0 */ "AAAAAA\0CEEEEIIII"
	/* F0 */ "\0NOOOOO\0\0UUUUY\0Y"
	/* 100 */ "AAAAAACCCCCCCCDD"
	/* 110 */ "\0\0EEEEEEEEEEGGGG"
	/* 120 */ "GGGGHH\0\0IIIIIIII"
	/* 130 */ "I\0\0\0JJKK\0LLLLLL\0"
	/* 140 */ "\0\0\0NNNNNN\0\0\0OOOO"
	/* 150 */ "OO\0\0RRRRRRSSSSSS"
	/* 160 */ "SSTTTT\0\0UUUUUUUU"
	/* 170 */ "UUUUWWYYYZZZZZZ\0";

static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;
static locale_t utf8_locale;

static void utf8_locale_init(void)
{
	utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static int utf8_decode(const unsigned char *p, uint32_t *cp_r)
{
	int n;
	uint32_t cp;
	if (p[0] < 0x80) {
		*cp_r = p[0];
		return 1;
	}
	if ((p[0] & 0xE0) == 0xC0) {
		n = 2;
		cp = p[0] & 0x1F;
	} else if ((p[0] & 0xF0) == 0xE0) {
		n = 3;
		cp = p[0] & 0x0F;
	} else if ((p[0] & 0xF8) == 0xF0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return -1;
	}
	for (int i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	*cp_r = cp;
	return n;
}

static void utf8_append(struct buf *out, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_append(out, b, n);
}

void imap_sort_collation_key(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	pthread_once(&utf8_once, utf8_locale_init);
	while (*p != '\0') {
		uint32_t cp;
		int n = utf8_decode(p, &cp);
		if (n < 0) {
			buf_append(out, p, 1);   /* not UTF-8: as it is */
			p++;
			continue;
		}
		p += n;
		if (cp < 0x80) {
			buf_append_char(out, (char)(cp >= 'a' && cp <= 'z' ?
						    cp - 32 : cp));
		} else if (cp >= 0xC0 && cp <= 0x17F &&
			   latin_base[cp - 0xC0] != '\0') {
			/* base letter, then a combining mark (U+0300): after
			 * the bare letter, before the next one, as the
			 * decomposed form sorts */
			buf_append_char(out, latin_base[cp - 0xC0]);
			buf_append(out, "\xCC\x80", 2);
		} else {
			if (utf8_locale != (locale_t)0)
				cp = (uint32_t)towupper_l((wint_t)cp, utf8_locale);
			utf8_append(out, cp);
		}
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
		return strcmp(a->cc, b->cc);
	case IMAP_SORT_FROM:
		return strcmp(a->from, b->from);
	case IMAP_SORT_TO:
		return strcmp(a->to, b->to);
	case IMAP_SORT_SUBJECT:
		return strcmp(a->subject, b->subject);
	case IMAP_SORT_DISPLAYFROM:
		return strcmp(a->display_from, b->display_from);
	case IMAP_SORT_DISPLAYTO:
		return strcmp(a->display_to, b->display_to);
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
