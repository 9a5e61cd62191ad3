/*
 * SPF (RFC 7208): check_host() with every mechanism (all, include, a,
 * mx, ptr, ip4, ip6, exists), the redirect modifier, macros (section 7)
 * and the limits of section 4.6.4 (10 lookups that reach DNS, 2 void
 * lookups, 10 MX and 10 PTR names per mechanism). Record parsing and
 * macro expansion are pure and fuzzed (tests/fuzz/fuzz-mailauth-spf.c);
 * the lookups go through src/dns under the message's deadline, so a
 * server that answers nothing costs one bounded wait and a temperror.
 */
#include "mailauth-private.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dns.h"

#define SPF_MAX_LOOKUPS 10
#define SPF_MAX_VOID 2
#define SPF_MAX_NAMES 10
#define SPF_MAX_TERMS 64
#define SPF_MAX_DEPTH 10

/* ---- macros (RFC 7208 7) ------------------------------------------ */

static bool delimiter(char c)
{
	return strchr(".-+,/_=", c) != NULL && c != '\0';
}

/* The dotted nibbles of an IPv6 address, or the IPv4 address. */
static void ip_dotted(const char *ip, bool v6, char *out, size_t size)
{
	unsigned char a[16];
	size_t o = 0;

	if (!v6 || inet_pton(AF_INET6, ip, a) != 1) {
		snprintf(out, size, "%s", ip);
		return;
	}
	for (int i = 0; i < 16 && o + 4 < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%x.%x", i ? "." : "",
				      a[i] >> 4, a[i] & 15);
}

static void url_escape(const char *s, struct buf *out)
{
	/* RFC 7208 7.3: uppercase macro letters are URL-escaped (RFC 3986
	 * unreserved characters stay) */
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || strchr("-._~", c))
			buf_append_char(out, (char)c);
		else
			buf_printf(out, "%%%02X", c);
	}
}

static int expand_one(char letter, unsigned digits, bool reverse,
		      const char *delims, const struct spf_macro_env *e,
		      bool exp, struct buf *out)
{
	char value[1024], tmp[64];
	const char *v;
	char lower = (char)tolower((unsigned char)letter);

	switch (lower) {
	case 's': v = e->sender; break;
	case 'l': v = e->local; break;
	case 'o': v = e->sender_domain; break;
	case 'd': v = e->domain; break;
	case 'i':
		ip_dotted(e->ip, e->ipv6, value, sizeof(value));
		v = value;
		break;
	case 'p': v = e->validated ? e->validated : "unknown"; break;
	case 'v': v = e->ipv6 ? "ip6" : "in-addr"; break;
	case 'h': v = e->helo; break;
	case 'c':
		if (!exp)
			return -1;
		v = e->ip;
		break;
	case 'r':
		if (!exp)
			return -1;
		v = e->receiver ? e->receiver : "unknown";
		break;
	case 't':
		if (!exp)
			return -1;
		snprintf(tmp, sizeof(tmp), "%lld", (long long)e->now);
		v = tmp;
		break;
	default:
		return -1;
	}
	if (v == NULL)
		v = "";
	if (v != value)
		snprintf(value, sizeof(value), "%s", v);
	/* split into parts at the delimiters (default "."), reverse, keep
	 * the right-most digits parts, join with "." */
	const char *parts[128];
	size_t np = 0;
	char *p = value;
	parts[np++] = p;
	for (; *p != '\0'; p++) {
		if (strchr(delims[0] ? delims : ".", *p) != NULL) {
			*p = '\0';
			if (np == 128)
				return -1;
			parts[np++] = p + 1;
		}
	}
	if (reverse)
		for (size_t i = 0; i < np / 2; i++) {
			const char *t = parts[i];
			parts[i] = parts[np - 1 - i];
			parts[np - 1 - i] = t;
		}
	size_t first = digits > 0 && digits < np ? np - digits : 0;
	struct buf joined;
	buf_init(&joined, 0);
	for (size_t i = first; i < np; i++) {
		if (i > first)
			buf_append_char(&joined, '.');
		buf_append_str(&joined, parts[i]);
	}
	if (isupper((unsigned char)letter))
		url_escape(joined.data ? joined.data : "", out);
	else if (joined.len > 0)
		buf_append(out, joined.data, joined.len);
	buf_free(&joined);
	return 0;
}

int spf_macro_expand(const char *s, size_t len, const struct spf_macro_env *e,
		     bool exp, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c != '%') {
			/* macro-literal: %x21-24 / %x26-7E (and SP in exp) */
			if (c < 0x21 || c > 0x7e) {
				if (!(exp && c == ' '))
					return -1;
			}
			buf_append_char(out, (char)c);
			continue;
		}
		if (++i >= len)
			return -1;
		if (s[i] == '%') {
			buf_append_char(out, '%');
		} else if (s[i] == '_') {
			buf_append_char(out, ' ');
		} else if (s[i] == '-') {
			buf_append_str(out, "%20");
		} else if (s[i] == '{') {
			char letter, delims[8] = "";
			unsigned digits = 0, nd = 0, ndig = 0;
			bool reverse = false;
			if (++i >= len)
				return -1;
			letter = s[i++];
			while (i < len && isdigit((unsigned char)s[i])) {
				if (++ndig > 3)
					return -1;
				digits = digits * 10 + (unsigned)(s[i++] - '0');
			}
			if (ndig > 0 && digits == 0)
				return -1;  /* 7.3: a DIGIT is nonzero */
			if (i < len && (s[i] == 'r' || s[i] == 'R')) {
				reverse = true;
				i++;
			}
			while (i < len && delimiter(s[i])) {
				if (nd + 1 < sizeof(delims))
					delims[nd++] = s[i];
				i++;
			}
			delims[nd] = '\0';
			if (i >= len || s[i] != '}')
				return -1;
			if (expand_one(letter, digits, reverse, delims, e, exp,
				       out) < 0)
				return -1;
		} else {
			return -1;
		}
		if (out->len > 8192)
			return -1;
	}
	return 0;
}

/* ---- records ------------------------------------------------------ */

enum spf_kind { SPF_ALL, SPF_INCLUDE, SPF_A, SPF_MX, SPF_PTR, SPF_IP4,
		SPF_IP6, SPF_EXISTS, SPF_REDIRECT, SPF_EXP, SPF_UNKNOWN_MOD };

struct spf_term {
	enum spf_kind kind;
	char qual;                  /* + - ~ ? */
	struct slice domain;        /* domain-spec (macro-string), may be empty */
	unsigned cidr4, cidr6;
	unsigned char ip[16];
};

/* "/n" and "//n" of a, mx, ip4, ip6: strips them from *spec. */
static int parse_cidr(struct slice *spec, unsigned *c4, unsigned *c6,
		      bool allow4, bool allow6)
{
	const char *p = spec->ptr;
	size_t n = spec->len;
	size_t slash = n;

	*c4 = 32;
	*c6 = 128;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '/') {
			slash = i;
			break;
		}
	if (slash == n)
		return 0;
	spec->len = slash;
	size_t i = slash;
	/* "/32", "//64", "/24//64" */
	for (int round = 0; round < 2 && i < n; round++) {
		bool six = i + 1 < n && p[i + 1] == '/';
		size_t k = i + (six ? 2 : 1);
		unsigned v = 0, d = 0;
		while (k < n && isdigit((unsigned char)p[k]) && d < 4) {
			v = v * 10 + (unsigned)(p[k++] - '0');
			d++;
		}
		if (d == 0 || (d > 1 && p[i + (six ? 2 : 1)] == '0'))
			return -1;
		if (six) {
			if (!allow6 || v > 128)
				return -1;
			*c6 = v;
		} else {
			if (!allow4 || v > 32 || round > 0)
				return -1;
			*c4 = v;
		}
		i = k;
	}
	return i == n ? 0 : -1;
}

static bool name_is(struct slice s, const char *name)
{
	return s.len == strlen(name) && strncasecmp(s.ptr, name, s.len) == 0;
}

/* Parses the terms of a record (after "v=spf1"). */
static int parse_terms(const char *txt, size_t len, struct spf_term *terms,
		       size_t *count_r)
{
	size_t i = 0, n = 0;
	bool redirect = false, exp = false;

	while (i < len) {
		while (i < len && txt[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t a = i;
		while (i < len && txt[i] != ' ')
			i++;
		struct slice t = slice_make(txt + a, i - a);
		struct spf_term *term;
		if (n == SPF_MAX_TERMS)
			return -1;
		term = &terms[n];
		memset(term, 0, sizeof(*term));
		term->qual = '+';
		/* a modifier: name "=" macro-string */
		size_t k = 0;
		while (k < t.len && (isalnum((unsigned char)t.ptr[k]) ||
				     t.ptr[k] == '-' || t.ptr[k] == '_' ||
				     t.ptr[k] == '.'))
			k++;
		if (k > 0 && k < t.len && t.ptr[k] == '=' &&
		    isalpha((unsigned char)t.ptr[0])) {
			struct slice name = slice_make(t.ptr, k);
			term->domain = slice_make(t.ptr + k + 1, t.len - k - 1);
			if (name_is(name, "redirect")) {
				if (redirect || term->domain.len == 0)
					return -1;
				redirect = true;
				term->kind = SPF_REDIRECT;
			} else if (name_is(name, "exp")) {
				if (exp || term->domain.len == 0)
					return -1;
				exp = true;
				term->kind = SPF_EXP;
			} else {
				term->kind = SPF_UNKNOWN_MOD;
			}
			n++;
			continue;
		}
		if (strchr("+-~?", t.ptr[0]) != NULL) {
			term->qual = t.ptr[0];
			t.ptr++;
			t.len--;
		}
		/* mechanism name, then ":" domain-spec or "/" cidr */
		k = 0;
		while (k < t.len && t.ptr[k] != ':' && t.ptr[k] != '/')
			k++;
		struct slice name = slice_make(t.ptr, k);
		struct slice arg = slice_make(t.ptr + k, t.len - k);
		bool colon = arg.len > 0 && arg.ptr[0] == ':';
		if (colon) {
			arg.ptr++;
			arg.len--;
			if (arg.len == 0)
				return -1;
		}
		if (name_is(name, "all")) {
			if (arg.len > 0 || colon)
				return -1;
			term->kind = SPF_ALL;
		} else if (name_is(name, "include") || name_is(name, "exists")) {
			if (!colon)
				return -1;
			term->kind = name_is(name, "include") ? SPF_INCLUDE
							      : SPF_EXISTS;
			term->domain = arg;
		} else if (name_is(name, "a") || name_is(name, "mx")) {
			term->kind = name_is(name, "a") ? SPF_A : SPF_MX;
			if (parse_cidr(&arg, &term->cidr4, &term->cidr6, true,
				       true) < 0)
				return -1;
			if (colon && arg.len == 0)
				return -1;
			term->domain = arg;
		} else if (name_is(name, "ptr")) {
			if (!colon && arg.len > 0)
				return -1;
			term->kind = SPF_PTR;
			term->domain = arg;
		} else if (name_is(name, "ip4") || name_is(name, "ip6")) {
			bool six = name_is(name, "ip6");
			unsigned max = six ? 128 : 32, bits = max;
			char addr[64];
			if (!colon)
				return -1;
			/* ip4:a.b.c.d[/n], ip6:x:y::z[/n] (here "/" is the
			 * prefix of the address itself) */
			arg = slice_make(t.ptr + k + 1, t.len - k - 1);
			size_t sl = 0;
			while (sl < arg.len && arg.ptr[sl] != '/')
				sl++;
			if (sl < arg.len) {
				unsigned v = 0, d = 0;
				for (size_t q = sl + 1; q < arg.len; q++) {
					if (!isdigit((unsigned char)arg.ptr[q]) ||
					    ++d > 3)
						return -1;
					v = v * 10 + (unsigned)(arg.ptr[q] - '0');
				}
				if (d == 0 || v > max ||
				    (d > 1 && arg.ptr[sl + 1] == '0'))
					return -1;
				bits = v;
			}
			if (sl == 0 || sl >= sizeof(addr))
				return -1;
			memcpy(addr, arg.ptr, sl);
			addr[sl] = '\0';
			if (inet_pton(six ? AF_INET6 : AF_INET, addr, term->ip) != 1)
				return -1;
			term->kind = six ? SPF_IP6 : SPF_IP4;
			term->cidr4 = six ? 32 : bits;
			term->cidr6 = six ? bits : 128;
		} else {
			return -1;  /* unknown mechanism: permerror */
		}
		n++;
	}
	*count_r = n;
	return 0;
}

/* "v=spf1" followed by a space or the end. */
static bool is_spf(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 &&
	       (len == 6 || txt[6] == ' ');
}

int spf_record_check(const char *txt, size_t len, char *why_r, size_t size)
{
	struct spf_term terms[SPF_MAX_TERMS];
	size_t n;

	if (!is_spf(txt, len)) {
		snprintf(why_r, size, "not an SPF record");
		return -1;
	}
	if (parse_terms(txt + 6, len - 6, terms, &n) < 0) {
		snprintf(why_r, size, "SPF record syntax");
		return -1;
	}
	return 0;
}

/* ---- evaluation --------------------------------------------------- */

struct spf_eval {
	struct dns *dns;
	const struct ma_deadline *deadline;
	struct spf_macro_env env;
	unsigned char addr[16];
	bool v6;
	unsigned lookups, voids;
	char reason[160];
};

static enum ma_status fail_reason(struct spf_eval *e, enum ma_status st,
				  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum ma_status fail_reason(struct spf_eval *e, enum ma_status st,
				  const char *fmt, ...)
{
	va_list ap;

	if (e->reason[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
		va_end(ap);
	}
	return st;
}

/* One lookup that reaches DNS (counted), waited for within the deadline. */
static void query(struct spf_eval *e, const char *name, enum dns_type type,
		  struct dns_answer *a)
{
	struct dns_batch *b = dns_batch_create(e->dns);
	size_t i = dns_batch_add(b, name, type);
	unsigned left = ma_deadline_left(e->deadline);

	dns_batch_wait(b, left);
	const struct dns_answer *ans = dns_batch_answer(b, i);
	memset(a, 0, sizeof(*a));
	a->status = ans->status;
	a->count = ans->count;
	if (ans->count > 0) {
		a->data = xcalloc(ans->count, sizeof(*a->data));
		a->len = xcalloc(ans->count, sizeof(*a->len));
		for (size_t k = 0; k < ans->count; k++) {
			a->data[k] = xmalloc(ans->len[k] ? ans->len[k] : 1);
			memcpy(a->data[k], ans->data[k], ans->len[k]);
			a->len[k] = ans->len[k];
		}
	}
	dns_batch_free(&b);
}

static bool prefix_match(const unsigned char *a, const unsigned char *b,
			 unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* Whether the client's address is among the A/AAAA records of name.
 * 1 match, 0 no, -1 temperror, -2 void lookup limit. */
static int addr_match(struct spf_eval *e, const char *name, unsigned c4,
		      unsigned c6, bool count_void)
{
	struct dns_answer a;
	int rc = 0;

	query(e, name, e->v6 ? DNS_AAAA : DNS_A, &a);
	if (a.status == DNS_TEMPFAIL || a.status == DNS_BOGUS) {
		rc = -1;
	} else if (a.status != DNS_OK || a.count == 0) {
		if (count_void && ++e->voids > SPF_MAX_VOID)
			rc = -2;
	} else {
		for (size_t i = 0; i < a.count && rc == 0; i++) {
			size_t want = e->v6 ? 16 : 4;
			if (a.len[i] == want &&
			    prefix_match(a.data[i], e->addr, e->v6 ? c6 : c4))
				rc = 1;
		}
	}
	dns_answer_free(&a);
	return rc;
}

/* A domain-spec expanded (the current domain when empty), cut to 253
 * octets from the left (RFC 7208 7.3). */
static int target(struct spf_eval *e, struct slice spec, const char *domain,
		  char out[256])
{
	struct buf b;

	if (spec.len == 0) {
		snprintf(out, 256, "%s", domain);
		return 0;
	}
	buf_init(&b, 0);
	struct spf_macro_env env = e->env;
	env.domain = domain;
	if (spf_macro_expand(spec.ptr, spec.len, &env, false, &b) < 0 ||
	    b.len == 0) {
		buf_free(&b);
		return -1;
	}
	const char *p = b.data;
	while (strlen(p) > 253) {
		const char *dot = strchr(p, '.');
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	snprintf(out, 256, "%s", p);
	buf_free(&b);
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
	ma_lower(out);
	return ma_domain_valid(out) ? 0 : -1;
}

static enum ma_status check_host(struct spf_eval *e, const char *domain,
				 int depth);

static int mech_mx(struct spf_eval *e, const char *name, unsigned c4,
		   unsigned c6)
{
	struct dns_answer a;
	int rc = 0;

	query(e, name, DNS_MX, &a);
	if (a.status == DNS_TEMPFAIL || a.status == DNS_BOGUS) {
		dns_answer_free(&a);
		return -1;
	}
	if (a.status != DNS_OK || a.count == 0) {
		dns_answer_free(&a);
		return ++e->voids > SPF_MAX_VOID ? -2 : 0;
	}
	if (a.count > SPF_MAX_NAMES) {
		dns_answer_free(&a);
		return -3;      /* 4.6.4: more than 10 MX: permerror */
	}
	for (size_t i = 0; i < a.count && rc == 0; i++) {
		struct dns_mx mx;
		if (dns_parse_mx(a.data[i], a.len[i], &mx) < 0 ||
		    mx.host[0] == '\0')
			continue;
		rc = addr_match(e, mx.host, c4, c6, false);
	}
	dns_answer_free(&a);
	return rc;
}

/* ptr (RFC 7208 5.5): a validated name of the client that is the target
 * or under it. */
static int mech_ptr(struct spf_eval *e, const char *name)
{
	char rev[128];
	struct dns_answer a;
	int rc = 0;

	if (dns_reverse_name(e->env.ip, rev, sizeof(rev)) < 0)
		return 0;
	query(e, rev, DNS_PTR, &a);
	if (a.status == DNS_TEMPFAIL || a.status == DNS_BOGUS) {
		dns_answer_free(&a);
		return 0;       /* 5.5: a temporary error is no match */
	}
	size_t n = strlen(name);
	for (size_t i = 0; i < a.count && i < SPF_MAX_NAMES && rc == 0; i++) {
		char host[256];
		size_t off = 0;
		if (dns_wire_name(a.data[i], a.len[i], &off, host,
				  sizeof(host)) < 0)
			continue;
		size_t hn = strlen(host);
		bool under = strcmp(host, name) == 0 ||
			     (hn > n && host[hn - n - 1] == '.' &&
			      strcmp(host + hn - n, name) == 0);
		if (under && addr_match(e, host, 32, 128, false) == 1)
			rc = 1;
	}
	dns_answer_free(&a);
	return rc;
}

static enum ma_status qual_result(char q)
{
	switch (q) {
	case '-': return MA_FAIL;
	case '~': return MA_SOFTFAIL;
	case '?': return MA_NEUTRAL;
	default: return MA_PASS;
	}
}

/* The SPF record of domain: 1 found (*txt_r, caller frees), 0 none, -1
 * temperror, -2 several (permerror). */
static int fetch_record(struct spf_eval *e, const char *domain, char **txt_r)
{
	struct dns_answer a;
	int found = 0;

	*txt_r = NULL;
	query(e, domain, DNS_TXT, &a);
	if (a.status == DNS_TEMPFAIL || a.status == DNS_BOGUS) {
		dns_answer_free(&a);
		return -1;
	}
	for (size_t i = 0; i < a.count; i++) {
		char *txt = dns_parse_txt(a.data[i], a.len[i]);
		if (txt == NULL || !is_spf(txt, strlen(txt))) {
			free(txt);
			continue;
		}
		if (++found > 1) {
			free(txt);
			break;
		}
		*txt_r = txt;
	}
	dns_answer_free(&a);
	if (found > 1) {
		free(*txt_r);
		*txt_r = NULL;
		return -2;
	}
	return found;
}

/* Runs the mechanism terms[i]: 1 match, 0 none, or a final status
 * through *st_r (returns -1). */
static int run_mechanism(struct spf_eval *e, const struct spf_term *t,
			 const char *domain, int depth, enum ma_status *st_r)
{
	char name[256];
	int rc;

	switch (t->kind) {
	case SPF_ALL:
		return 1;
	case SPF_IP4:
		return !e->v6 && prefix_match(t->ip, e->addr, t->cidr4);
	case SPF_IP6:
		return e->v6 && prefix_match(t->ip, e->addr, t->cidr6);
	default:
		break;
	}
	if (++e->lookups > SPF_MAX_LOOKUPS) {
		*st_r = fail_reason(e, MA_PERMERROR, "more than %d DNS lookups",
				    SPF_MAX_LOOKUPS);
		return -1;
	}
	if (target(e, t->domain, domain, name) < 0) {
		*st_r = fail_reason(e, MA_PERMERROR, "bad domain-spec in %s",
				    domain);
		return -1;
	}
	switch (t->kind) {
	case SPF_INCLUDE: {
		enum ma_status st = check_host(e, name, depth + 1);
		if (st == MA_PASS)
			return 1;
		if (st == MA_TEMPERROR || st == MA_PERMERROR) {
			*st_r = st;
			return -1;
		}
		if (st == MA_NONE) {
			*st_r = fail_reason(e, MA_PERMERROR, "include:%s has no "
					    "SPF record", name);
			return -1;
		}
		return 0;
	}
	case SPF_A:
		rc = addr_match(e, name, t->cidr4, t->cidr6, true);
		break;
	case SPF_MX:
		rc = mech_mx(e, name, t->cidr4, t->cidr6);
		break;
	case SPF_PTR:
		rc = mech_ptr(e, name);
		break;
	case SPF_EXISTS: {
		struct dns_answer a;
		query(e, name, DNS_A, &a);
		rc = a.status == DNS_OK && a.count > 0 ? 1
		     : a.status == DNS_TEMPFAIL || a.status == DNS_BOGUS ? -1
		     : ++e->voids > SPF_MAX_VOID ? -2 : 0;
		dns_answer_free(&a);
		break;
	}
	default:
		return 0;
	}
	if (rc == -1) {
		*st_r = fail_reason(e, MA_TEMPERROR, "DNS lookup of %s failed",
				    name);
		return -1;
	}
	if (rc == -2) {
		*st_r = fail_reason(e, MA_PERMERROR, "more than %d void lookups",
				    SPF_MAX_VOID);
		return -1;
	}
	if (rc == -3) {
		*st_r = fail_reason(e, MA_PERMERROR, "more than %d MX names",
				    SPF_MAX_NAMES);
		return -1;
	}
	return rc;
}

static enum ma_status check_host(struct spf_eval *e, const char *domain,
				 int depth)
{
	struct spf_term terms[SPF_MAX_TERMS];
	const struct spf_term *redirect = NULL;
	char *txt;
	size_t n;
	enum ma_status st = MA_NEUTRAL;
	bool has_all = false;

	if (depth > SPF_MAX_DEPTH)
		return fail_reason(e, MA_PERMERROR, "includes nested too deep");
	if (!ma_domain_valid(domain) || strchr(domain, '.') == NULL)
		return MA_NONE;     /* 4.3 */
	switch (fetch_record(e, domain, &txt)) {
	case -1:
		return fail_reason(e, MA_TEMPERROR, "SPF lookup of %s failed",
				   domain);
	case -2:
		return fail_reason(e, MA_PERMERROR, "%s has several SPF "
				   "records", domain);
	case 0:
		return MA_NONE;
	default:
		break;
	}
	if (parse_terms(txt + 6, strlen(txt) - 6, terms, &n) < 0) {
		free(txt);
		return fail_reason(e, MA_PERMERROR, "SPF record of %s does not "
				   "parse", domain);
	}
	for (size_t i = 0; i < n; i++) {
		if (terms[i].kind == SPF_REDIRECT)
			redirect = &terms[i];
		has_all |= terms[i].kind == SPF_ALL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct spf_term *t = &terms[i];
		if (t->kind == SPF_REDIRECT || t->kind == SPF_EXP ||
		    t->kind == SPF_UNKNOWN_MOD)
			continue;
		enum ma_status fin = MA_PERMERROR;
		int rc = run_mechanism(e, t, domain, depth, &fin);
		if (rc < 0) {
			free(txt);
			return fin;
		}
		if (rc == 1) {
			free(txt);
			return qual_result(t->qual);
		}
	}
	if (redirect != NULL && !has_all) {
		/* 6.1: as if the target's record were this one */
		char name[256];
		if (++e->lookups > SPF_MAX_LOOKUPS)
			st = fail_reason(e, MA_PERMERROR, "more than %d DNS "
					 "lookups", SPF_MAX_LOOKUPS);
		else if (target(e, redirect->domain, domain, name) < 0)
			st = fail_reason(e, MA_PERMERROR, "bad redirect in %s",
					 domain);
		else if ((st = check_host(e, name, depth + 1)) == MA_NONE)
			st = fail_reason(e, MA_PERMERROR, "redirect=%s has no "
					 "SPF record", name);
	}
	free(txt);
	return st;
}

void spf_check(struct dns *dns, const struct ma_deadline *deadline,
	       const char *ip, const char *sender, const char *helo,
	       const char *receiver, struct spf_result *r)
{
	struct spf_eval e;
	char local[320], domain[256];
	const char *at = strrchr(sender, '@');

	memset(&e, 0, sizeof(e));
	memset(r, 0, sizeof(*r));
	e.dns = dns;
	e.deadline = deadline;
	if (inet_pton(AF_INET, ip, e.addr) == 1) {
		e.v6 = false;
	} else if (inet_pton(AF_INET6, ip, e.addr) == 1) {
		e.v6 = true;
		/* an IPv4-mapped address is checked as IPv4 (5.6.2?) */
		if (memcmp(e.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
			memmove(e.addr, e.addr + 12, 4);
			e.v6 = false;
		}
	} else {
		r->status = MA_NONE;
		return;
	}
	/* 2.4: with the null sender, the HELO identity as
	 * postmaster@helo */
	if (sender[0] == '\0' || at == NULL) {
		snprintf(local, sizeof(local), "postmaster");
		snprintf(domain, sizeof(domain), "%s", helo ? helo : "");
		r->helo = true;
	} else {
		snprintf(local, sizeof(local), "%.*s", (int)(at - sender), sender);
		snprintf(domain, sizeof(domain), "%s", at + 1);
	}
	ma_lower(domain);
	char full[600];
	snprintf(full, sizeof(full), "%s@%s", local, domain);
	char ipbuf[64];
	if (!e.v6)
		inet_ntop(AF_INET, e.addr, ipbuf, sizeof(ipbuf));
	else
		snprintf(ipbuf, sizeof(ipbuf), "%s", ip);
	e.env = (struct spf_macro_env){
		.sender = full, .local = local, .sender_domain = domain,
		.domain = domain, .ip = ipbuf, .ipv6 = e.v6,
		.helo = helo ? helo : "", .receiver = receiver,
		.now = (int64_t)time(NULL),
	};
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->status = check_host(&e, domain, 0);
	snprintf(r->reason, sizeof(r->reason), "%s", e.reason);
}
