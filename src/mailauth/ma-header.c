/*
 * What the checks need of a message's header, byte-exact (DKIM hashes
 * the fields as they are): the fields as slices of the input, the
 * domains of From:, and the organizational domain of a name (RFC 7489
 * 3.2, from the public suffix list through libpsl). Also the deadline
 * and status helpers the other files share.
 */
#include "mailauth-private.h"

#include <ctype.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- header fields ------------------------------------------------ */

static size_t line_end(const char *d, size_t len, size_t i, size_t *next_r)
{
	const char *nl = memchr(d + i, '\n', len - i);
	size_t e;

	if (nl == NULL) {
		*next_r = len;
		return len;
	}
	e = (size_t)(nl - d);
	*next_r = e + 1;
	return e > i && d[e - 1] == '\r' ? e - 1 : e;
}

static bool field_name_char(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

size_t ma_header_split(const char *d, size_t len, struct ma_field **fields_r,
		       size_t *header_len_r)
{
	struct ma_field *f = NULL;
	size_t n = 0, cap = 0, i = 0;

	*fields_r = NULL;
	*header_len_r = len;
	while (i < len) {
		size_t next, e = line_end(d, len, i, &next), k = i;
		if (e == i) {          /* the empty line */
			*header_len_r = next;
			break;
		}
		while (k < e && field_name_char((unsigned char)d[k]))
			k++;
		size_t name_end = k;
		/* RFC 5322 4.5: obsolete WSP before the colon */
		while (k < e && k > i && (d[k] == ' ' || d[k] == '\t'))
			k++;
		if (name_end == i || k >= e || d[k] != ':') {
			/* not a field: the body starts here (RFC 5322 2.2) */
			*header_len_r = i;
			break;
		}
		/* continuation lines */
		size_t vend = e, fnext = next;
		while (fnext < len && (d[fnext] == ' ' || d[fnext] == '\t')) {
			vend = line_end(d, len, fnext, &next);
			fnext = next;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			f = xrealloc(f, cap * sizeof(*f));
		}
		f[n].name = d + i;
		f[n].name_len = name_end - i;
		f[n].value = d + k + 1;
		f[n].value_len = vend - (k + 1);
		f[n].raw = d + i;
		f[n].raw_len = fnext - i;
		n++;
		i = fnext;
	}
	*fields_r = f;
	return n;
}

/* ---- From: domains ------------------------------------------------ */

/* The domain of an addr-spec ("local@domain", maybe with a source route
 * "@a,@b:local@domain"), lowercase; false if there is none. */
static bool addr_domain(const char *a, size_t n, char out[256])
{
	const char *at = NULL;
	size_t o = 0;

	while (n > 0 && isspace((unsigned char)*a)) {
		a++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)a[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++)
		if (a[i] == '@')
			at = a + i;
	if (at == NULL || at == a + n - 1 || at == a)
		return false;
	for (const char *p = at + 1; p < a + n; p++) {
		unsigned char c = (unsigned char)*p;
		if (isspace(c))
			continue;
		if (o + 1 >= 256 || c == '@' || c == '<' || c == '>' ||
		    c == '"' || c == ',' || c == ';' || c == '(' || c < 32)
			return false;
		out[o++] = (char)tolower(c);
	}
	while (o > 0 && out[o - 1] == '.')
		o--;
	out[o] = '\0';
	return o > 0 && out[0] != '.';
}

int ma_from_domains(const char *v, size_t len, char domains[][256], size_t max)
{
	char tok[1024];
	size_t t = 0, count = 0;
	int depth = 0;
	bool quoted = false, angle = false, has_angle = false;
	char angle_buf[1024];
	size_t ab = 0;

	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? v[i] : ',';
		if (quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (angle) {
			if (c == '>')
				angle = false;
			else if (ab + 1 < sizeof(angle_buf))
				angle_buf[ab++] = c;
			else
				return -1;
			continue;
		}
		if (c == '"') {
			quoted = true;
		} else if (c == '(') {
			depth = 1;
		} else if (c == '<') {
			angle = true;
			has_angle = true;
			ab = 0;
		} else if (c == ':' && !has_angle) {
			t = 0;          /* a group's display name */
		} else if (c == ',' || c == ';') {
			const char *a = has_angle ? angle_buf : tok;
			size_t an = has_angle ? ab : t;
			size_t k = 0;
			while (k < an && isspace((unsigned char)a[k]))
				k++;
			if (k < an) {
				if (count >= max ||
				    !addr_domain(a, an, domains[count]))
					return -1;
				count++;
			}
			t = ab = 0;
			has_angle = false;
		} else if (t + 1 < sizeof(tok)) {
			tok[t++] = c;
		} else {
			return -1;
		}
	}
	if (quoted || depth > 0 || angle)
		return -1;
	return (int)count;
}

/* ---- organizational domains --------------------------------------- */

static const psl_ctx_t *psl;
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;

static void psl_init(void)
{
	psl = psl_latest(NULL);
	if (psl == NULL)
		psl = psl_builtin();
}

void ma_org_domain(const char *domain, char *out, size_t size)
{
	const char *reg = NULL;

	pthread_once(&psl_once, psl_init);
	if (psl != NULL)
		reg = psl_registrable_domain(psl, domain);
	snprintf(out, size, "%s", reg != NULL ? reg : domain);
}

/* ---- shared helpers ----------------------------------------------- */

const char *ma_status_name(enum ma_status s)
{
	switch (s) {
	case MA_NONE: return "none";
	case MA_PASS: return "pass";
	case MA_FAIL: return "fail";
	case MA_SOFTFAIL: return "softfail";
	case MA_NEUTRAL: return "neutral";
	case MA_POLICY: return "policy";
	case MA_TEMPERROR: return "temperror";
	case MA_PERMERROR: return "permerror";
	}
	return "none";
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ma_deadline ma_deadline_in(unsigned ms)
{
	struct ma_deadline d = {now_ms() + ms};
	return d;
}

unsigned ma_deadline_left(const struct ma_deadline *d)
{
	int64_t left = d->at_ms - now_ms();
	return left > 0 ? (unsigned)left : 0;
}

bool ma_domain_valid(const char *d)
{
	size_t n = strlen(d), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum(c) || c == '-' || c == '_' || c >= 0x80) ||
		    ++label > 63)
			return false;
	}
	return label > 0 || d[n - 1] == '.';
}

void ma_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}
