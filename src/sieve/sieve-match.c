/*
 * Comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric) and
 * match types (RFC 5228 2.7.1 :is :contains :matches, RFC 5231 :value).
 * :matches keeps the text of each wildcard for the match variables (RFC
 * 5229 3.2): the classic glob walk that backtracks only to the last '*',
 * so earlier wildcards match as little as possible and the cost is
 * bounded by value length times pattern length, counted in steps.
 */
#include "sieve-private.h"

#include <string.h>

static inline unsigned char fold(enum sv_cmp c, unsigned char x)
{
	if (c == C_CASEMAP && x >= 'A' && x <= 'Z')
		return (unsigned char)(x + 32);
	return x;
}

/* i;ascii-numeric (RFC 4790 9.1): the leading digits as a number; a
 * string that starts with no digit is positive infinity. */
static int numeric_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t ad = 0, bd = 0;
	while (ad < alen && a[ad] >= '0' && a[ad] <= '9')
		ad++;
	while (bd < blen && b[bd] >= '0' && b[bd] <= '9')
		bd++;
	if (ad == 0 && bd == 0)
		return 0;
	if (ad == 0)
		return 1;
	if (bd == 0)
		return -1;
	size_t as = 0, bs = 0;
	while (as + 1 < ad && a[as] == '0')
		as++;
	while (bs + 1 < bd && b[bs] == '0')
		bs++;
	if (ad - as != bd - bs)
		return ad - as < bd - bs ? -1 : 1;
	int r = memcmp(a + as, b + bs, ad - as);
	return r < 0 ? -1 : r > 0;
}

int sv_compare(enum sv_cmp c, const char *a, size_t alen, const char *b,
	       size_t blen)
{
	if (c == C_NUMERIC)
		return numeric_cmp(a, alen, b, blen);
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = fold(c, (unsigned char)a[i]);
		unsigned char y = fold(c, (unsigned char)b[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return alen == blen ? 0 : alen < blen ? -1 : 1;
}

bool sv_relate(enum sv_rel r, int o)
{
	switch (r) {
	case R_GT: return o > 0;
	case R_GE: return o >= 0;
	case R_LT: return o < 0;
	case R_LE: return o <= 0;
	case R_EQ: return o == 0;
	case R_NE: return o != 0;
	default: return false;
	}
}

/* ASCII upper case to lower, every other byte as it is. */
static const unsigned char casemap_tab[256] = {
#define R4(b) (b), (b) + 1, (b) + 2, (b) + 3
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
	R16(0x00), R16(0x10), R16(0x20), R16(0x30),
	/* 'A'..'Z' -> 'a'..'z' */
	0x40, R4(0x61), R4(0x65), R4(0x69), R4(0x6d), R4(0x71), R4(0x75),
	0x79, 0x7a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
	R16(0x60), R16(0x70), R16(0x80), R16(0x90), R16(0xa0), R16(0xb0),
	R16(0xc0), R16(0xd0), R16(0xe0), R16(0xf0),
#undef R16
#undef R4
};

/* :contains under i;ascii-casemap. The key is anchored on one byte:
 * one whose case cannot differ (a digit, a space) if it has one, else its
 * last letter in both cases; memchr finds the anchor's places and only
 * those are compared. Steps: the scan by sixteens, then each place tried
 * and the bytes compared there. */
static bool contains_casemap(const unsigned char *v, size_t vlen,
			     const unsigned char *k, size_t klen,
			     uint64_t *steps)
{
	const unsigned char *t = casemap_tab;
	size_t a = klen - 1;
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = t[k[i]];
		if (c < 'a' || c > 'z') {
			a = i;
			break;
		}
	}
	unsigned char lo = t[k[a]];
	unsigned char up = lo >= 'a' && lo <= 'z' ? (unsigned char)(lo - 32)
						  : lo;
	/* the anchor's possible places: the key fits around them */
	const unsigned char *p = v + a, *end = v + (vlen - klen) + a + 1;
	*steps += vlen / 16 + 1;
	const unsigned char *na = memchr(p, lo, (size_t)(end - p));
	const unsigned char *nb = up != lo ? memchr(p, up, (size_t)(end - p))
					   : NULL;
	while (na != NULL || nb != NULL) {
		const unsigned char *h = nb == NULL || (na != NULL && na < nb)
						 ? na : nb;
		const unsigned char *s = h - a;
		size_t j = 0;
		while (j < klen && t[s[j]] == t[k[j]])
			j++;
		*steps += j + 1;
		if (j == klen)
			return true;
		if (h == na)
			na = memchr(h + 1, lo, (size_t)(end - h - 1));
		else
			nb = memchr(h + 1, up, (size_t)(end - h - 1));
	}
	return false;
}

static bool contains(enum sv_cmp c, const char *v, size_t vlen,
		     const char *k, size_t klen, uint64_t *steps)
{
	if (klen == 0)
		return true;
	if (klen > vlen)
		return false;
	if (c != C_CASEMAP) {
		*steps += vlen / 16 + 1;
		return memmem(v, vlen, k, klen) != NULL;
	}
	return contains_casemap((const unsigned char *)v, vlen,
				(const unsigned char *)k, klen, steps);
}

static size_t char_len(enum sv_cmp c, const char *v, size_t left)
{
	if (c == C_OCTET)
		return 1;
	size_t n = sv_utf8_seq((const unsigned char *)v, left);
	return n ? n : 1;
}

static void cap_set(struct sv_captures *caps, unsigned i, const char *p,
		    size_t n)
{
	if (caps && i + 1 < SV_MAX_MATCH) {
		caps->v[i + 1] = slice_make(p, n);
		if (caps->count < i + 2)
			caps->count = i + 2;
	}
}

static bool matches(enum sv_cmp c, const char *v, size_t vlen, const char *k,
		    size_t klen, struct sv_captures *caps, uint64_t *steps)
{
	size_t ti = 0, pi = 0;
	size_t star_pi = SIZE_MAX, star_ti = 0, star_start = 0;
	unsigned ncap = 0, star_cap = 0;
	if (caps)
		caps->count = 1;
	while (ti < vlen) {
		(*steps)++;
		if (pi < klen && k[pi] == '*') {
			star_pi = ++pi;
			star_ti = star_start = ti;
			star_cap = ncap;
			cap_set(caps, ncap++, v + ti, 0);
			continue;
		}
		if (pi < klen && k[pi] == '?') {
			size_t cl = char_len(c, v + ti, vlen - ti);
			cap_set(caps, ncap++, v + ti, cl);
			ti += cl;
			pi++;
			continue;
		}
		if (pi < klen) {
			size_t ep = pi;
			if (k[ep] == '\\' && ep + 1 < klen)
				ep++;
			if (fold(c, (unsigned char)k[ep]) ==
			    fold(c, (unsigned char)v[ti])) {
				pi = ep + 1;
				ti++;
				continue;
			}
		}
		if (star_pi == SIZE_MAX)
			return false;
		star_ti += char_len(c, v + star_ti, vlen - star_ti);
		ti = star_ti;
		pi = star_pi;
		ncap = star_cap + 1;
		cap_set(caps, star_cap, v + star_start, star_ti - star_start);
	}
	while (pi < klen && k[pi] == '*') {
		cap_set(caps, ncap++, v + vlen, 0);
		pi++;
	}
	if (pi != klen)
		return false;
	if (caps) {
		caps->v[0] = slice_make(v, vlen);
		if (caps->count > ncap + 1)
			caps->count = ncap + 1 < SV_MAX_MATCH ? ncap + 1
							       : SV_MAX_MATCH;
	}
	return true;
}

bool sv_match(enum sv_match m, enum sv_cmp c, const char *v, size_t vlen,
	      const char *k, size_t klen, struct sv_captures *caps,
	      uint64_t *steps)
{
	switch (m) {
	case M_IS:
		*steps += (vlen < klen ? vlen : klen) / 16 + 1;
		return sv_compare(c, v, vlen, k, klen) == 0;
	case M_CONTAINS:
		return contains(c, v, vlen, k, klen, steps);
	case M_MATCHES:
		return matches(c, v, vlen, k, klen, caps, steps);
	default:
		return false;
	}
}
