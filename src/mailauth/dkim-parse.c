/*
 * DKIM's records, strictly: the tag-list syntax (RFC 6376 3.2, shared
 * with DMARC), the DKIM-Signature field (3.5) and the key record in DNS
 * (3.6.1, RFC 8463 for k=ed25519). Pure functions of their input: they
 * face the internet and are fuzzed (tests/fuzz/fuzz-mailauth-dkim.c).
 */
#include "mailauth-private.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

/* ---- tag lists ---------------------------------------------------- */

static bool fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ma_tags_parse(const char *s, size_t len, struct ma_tag *tags,
		  size_t *count_r)
{
	size_t i = 0, n = 0;

	*count_r = 0;
	while (i < len) {
		size_t a, b;
		while (i < len && fws(s[i]))
			i++;
		if (i == len)
			break;          /* a final ";" (and FWS) is allowed */
		/* tag-name = ALPHA *(ALPHA / DIGIT / "_") */
		a = i;
		if (!isalpha((unsigned char)s[i]))
			return -1;
		while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '_'))
			i++;
		b = i;
		while (i < len && fws(s[i]))
			i++;
		if (i == len || s[i] != '=')
			return -1;
		i++;
		if (n == MA_MAX_TAGS)
			return -1;
		tags[n].name = slice_make(s + a, b - a);
		/* tag-value: up to ';', no control characters, FWS only
		 * between value characters (trimmed at both ends) */
		while (i < len && fws(s[i]))
			i++;
		a = i;
		while (i < len && s[i] != ';') {
			unsigned char c = (unsigned char)s[i];
			if (!fws((char)c) && (c < 0x21 || c == 0x7f))
				return -1;
			i++;
		}
		b = i;
		while (b > a && fws(s[b - 1]))
			b--;
		tags[n].value = slice_make(s + a, b - a);
		for (size_t k = 0; k < n; k++)
			if (tags[k].name.len == tags[n].name.len &&
			    memcmp(tags[k].name.ptr, tags[n].name.ptr,
				   tags[n].name.len) == 0)
				return -1;  /* RFC 6376 3.2: a tag twice */
		n++;
		if (i < len)
			i++;            /* the ';' */
	}
	*count_r = n;
	return 0;
}

const struct ma_tag *ma_tag_find(const struct ma_tag *tags, size_t count,
				 const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (slice_eq(tags[i].name, name))
			return &tags[i];
	return NULL;
}

bool ma_tag_copy(const struct ma_tag *t, char *out, size_t size)
{
	if (t->value.len >= size)
		return false;
	memcpy(out, t->value.ptr, t->value.len);
	out[t->value.len] = '\0';
	return true;
}

static int why(char *why_r, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int why(char *why_r, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why_r != NULL && size > 0) {
		va_start(ap, fmt);
		vsnprintf(why_r, size, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A decimal of at most digits digits. */
static bool parse_number(struct slice v, unsigned digits, uint64_t *n_r)
{
	uint64_t n = 0;

	if (v.len == 0 || v.len > digits)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (!isdigit((unsigned char)v.ptr[i]) ||
		    __builtin_mul_overflow(n, 10, &n) ||
		    __builtin_add_overflow(n, (uint64_t)(v.ptr[i] - '0'), &n))
			return false;
	}
	*n_r = n;
	return true;
}

static int decode_b64(struct slice v, uint8_t **out_r, size_t *len_r)
{
	struct buf b;

	buf_init(&b, 16384);
	if (base64_decode(v.ptr, v.len, BASE64_SKIP_WS, &b) < 0) {
		buf_free(&b);
		return -1;
	}
	*out_r = (uint8_t *)buf_steal(&b, len_r);
	return 0;
}

/* ---- DKIM-Signature ----------------------------------------------- */

static int parse_canon(struct slice v, struct dkim_sig *sig)
{
	size_t slash = 0;

	while (slash < v.len && v.ptr[slash] != '/')
		slash++;
	struct slice h = slice_make(v.ptr, slash);
	struct slice b = slash < v.len ? slice_make(v.ptr + slash + 1,
						    v.len - slash - 1)
				       : slice_make("simple", 6);
	if (slice_eq(h, "simple"))
		sig->hcanon = DKIM_CANON_SIMPLE;
	else if (slice_eq(h, "relaxed"))
		sig->hcanon = DKIM_CANON_RELAXED;
	else
		return -1;
	if (slice_eq(b, "simple"))
		sig->bcanon = DKIM_CANON_SIMPLE;
	else if (slice_eq(b, "relaxed"))
		sig->bcanon = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

static int parse_headers(struct slice v, struct dkim_sig *sig)
{
	size_t i = 0;
	bool from = false;

	while (i <= v.len) {
		size_t a = i, b;
		while (i < v.len && v.ptr[i] != ':')
			i++;
		b = i;
		while (a < b && fws(v.ptr[a]))
			a++;
		while (b > a && fws(v.ptr[b - 1]))
			b--;
		if (a == b || sig->header_count == DKIM_MAX_HEADERS)
			return -1;
		for (size_t k = a; k < b; k++)
			if ((unsigned char)v.ptr[k] < 33 ||
			    (unsigned char)v.ptr[k] > 126)
				return -1;
		char *name = xstrndup(v.ptr + a, b - a);
		ma_lower(name);
		from |= strcmp(name, "from") == 0;
		sig->headers[sig->header_count++] = name;
		i++;
	}
	return from ? 0 : -1;
}

/* i= is "[local-part]@domain" with domain d= or a subdomain of it. */
static int parse_auid(struct slice v, struct dkim_sig *sig)
{
	const char *at = NULL;
	char dom[256];

	if (v.len >= sizeof(sig->auid))
		return -1;
	for (size_t i = 0; i < v.len; i++)
		if (v.ptr[i] == '@')
			at = v.ptr + i;
	if (at == NULL)
		return -1;
	size_t dl = v.len - (size_t)(at + 1 - v.ptr);
	if (dl == 0 || dl >= sizeof(dom))
		return -1;
	memcpy(dom, at + 1, dl);
	dom[dl] = '\0';
	ma_lower(dom);
	size_t n = strlen(sig->domain);
	if (!(strcmp(dom, sig->domain) == 0 ||
	      (dl > n && dom[dl - n - 1] == '.' &&
	       strcmp(dom + dl - n, sig->domain) == 0)))
		return -1;
	memcpy(sig->auid, v.ptr, v.len);
	sig->auid[v.len] = '\0';
	return 0;
}

int dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig,
		   char *why_r, size_t why_size)
{
	struct ma_tag tags[MA_MAX_TAGS];
	const struct ma_tag *t;
	size_t n;
	uint64_t num;

	memset(sig, 0, sizeof(*sig));
	sig->timestamp = sig->expire = -1;
	if (ma_tags_parse(value, len, tags, &n) < 0)
		return why(why_r, why_size, "signature syntax");
	t = ma_tag_find(tags, n, "v");
	if (t == NULL || !slice_eq(t->value, "1"))
		return why(why_r, why_size, "v= is not 1");
	t = ma_tag_find(tags, n, "a");
	if (t == NULL)
		return why(why_r, why_size, "no a=");
	if (slice_eq(t->value, "rsa-sha256"))
		sig->algo = DKIM_ALGO_RSA_SHA256;
	else if (slice_eq(t->value, "ed25519-sha256"))
		sig->algo = DKIM_ALGO_ED25519_SHA256;
	else if (slice_eq(t->value, "rsa-sha1"))
		sig->algo = DKIM_ALGO_RSA_SHA1;
	else
		return why(why_r, why_size, "unknown algorithm");
	t = ma_tag_find(tags, n, "d");
	if (t == NULL || !ma_tag_copy(t, sig->domain, sizeof(sig->domain)))
		return why(why_r, why_size, "bad d=");
	ma_lower(sig->domain);
	if (!ma_domain_valid(sig->domain))
		return why(why_r, why_size, "bad d=");
	t = ma_tag_find(tags, n, "s");
	if (t == NULL || !ma_tag_copy(t, sig->selector, sizeof(sig->selector)))
		return why(why_r, why_size, "bad s=");
	ma_lower(sig->selector);
	if (!ma_domain_valid(sig->selector) ||
	    strlen(sig->selector) + strlen(sig->domain) + 13 > 253)
		return why(why_r, why_size, "bad s=");
	t = ma_tag_find(tags, n, "h");
	if (t == NULL || parse_headers(t->value, sig) < 0)
		return why(why_r, why_size, "bad h= (From: must be signed)");
	t = ma_tag_find(tags, n, "bh");
	if (t == NULL)
		return why(why_r, why_size, "no bh=");
	uint8_t *bh = NULL;
	size_t bh_len = 0;
	if (decode_b64(t->value, &bh, &bh_len) < 0 || bh_len == 0 ||
	    bh_len > sizeof(sig->bh)) {
		free(bh);
		return why(why_r, why_size, "bad bh=");
	}
	memcpy(sig->bh, bh, bh_len);
	sig->bh_len = bh_len;
	free(bh);
	t = ma_tag_find(tags, n, "b");
	if (t == NULL || decode_b64(t->value, &sig->b, &sig->b_len) < 0 ||
	    sig->b_len == 0)
		return why(why_r, why_size, "bad b=");
	size_t o = 0;
	for (size_t i = 0; i < t->value.len && o < 8; i++)
		if (!fws(t->value.ptr[i]))
			sig->b_text[o++] = t->value.ptr[i];
	sig->b_text[o] = '\0';
	t = ma_tag_find(tags, n, "c");
	if (t != NULL && parse_canon(t->value, sig) < 0)
		return why(why_r, why_size, "bad c=");
	t = ma_tag_find(tags, n, "i");
	if (t != NULL) {
		if (parse_auid(t->value, sig) < 0)
			return why(why_r, why_size, "i= is not in d=");
	} else {
		snprintf(sig->auid, sizeof(sig->auid), "@%s", sig->domain);
	}
	t = ma_tag_find(tags, n, "l");
	if (t != NULL) {
		if (!parse_number(t->value, 76, &sig->length))
			return why(why_r, why_size, "bad l=");
		sig->has_length = true;
	}
	t = ma_tag_find(tags, n, "q");
	if (t != NULL) {
		/* a colon list; dns/txt is the only method */
		bool dns = false;
		for (size_t i = 0; i < t->value.len;) {
			size_t k = i;
			while (k < t->value.len && t->value.ptr[k] != ':')
				k++;
			struct slice m = slice_make(t->value.ptr + i, k - i);
			while (m.len > 0 && fws(m.ptr[0])) {
				m.ptr++;
				m.len--;
			}
			while (m.len > 0 && fws(m.ptr[m.len - 1]))
				m.len--;
			dns |= slice_eq(m, "dns/txt");
			i = k + 1;
		}
		if (!dns)
			return why(why_r, why_size, "unsupported q=");
	}
	t = ma_tag_find(tags, n, "t");
	if (t != NULL) {
		if (!parse_number(t->value, 12, &num))
			return why(why_r, why_size, "bad t=");
		sig->timestamp = (int64_t)num;
	}
	t = ma_tag_find(tags, n, "x");
	if (t != NULL) {
		if (!parse_number(t->value, 12, &num))
			return why(why_r, why_size, "bad x=");
		sig->expire = (int64_t)num;
		if (sig->timestamp >= 0 && sig->expire < sig->timestamp)
			return why(why_r, why_size, "x= before t=");
	}
	return 0;
}

void dkim_sig_free(struct dkim_sig *sig)
{
	for (size_t i = 0; i < sig->header_count; i++)
		free(sig->headers[i]);
	sig->header_count = 0;
	free(sig->b);
	sig->b = NULL;
}

/* ---- the key record ----------------------------------------------- */

/* Whether a colon list (FWS allowed) holds word. */
static bool list_has(struct slice v, const char *word)
{
	size_t i = 0;

	while (i <= v.len) {
		size_t a = i, b;
		while (i < v.len && v.ptr[i] != ':')
			i++;
		b = i;
		while (a < b && fws(v.ptr[a]))
			a++;
		while (b > a && fws(v.ptr[b - 1]))
			b--;
		if (slice_eq(slice_make(v.ptr + a, b - a), word))
			return true;
		i++;
	}
	return false;
}

int dkim_key_parse(const char *txt, size_t len, struct dkim_key *key,
		   char *why_r, size_t why_size)
{
	struct ma_tag tags[MA_MAX_TAGS];
	const struct ma_tag *t;
	size_t n;

	memset(key, 0, sizeof(*key));
	key->sha256 = true;
	if (ma_tags_parse(txt, len, tags, &n) < 0)
		return why(why_r, why_size, "key record syntax");
	t = ma_tag_find(tags, n, "v");
	if (t != NULL && (t != &tags[0] || !slice_eq(t->value, "DKIM1")))
		return why(why_r, why_size, "key record v= is not DKIM1");
	t = ma_tag_find(tags, n, "k");
	if (t == NULL || slice_eq(t->value, "rsa"))
		key->type = DKIM_KEY_RSA;
	else if (slice_eq(t->value, "ed25519"))
		key->type = DKIM_KEY_ED25519;
	else
		return why(why_r, why_size, "unknown key type");
	t = ma_tag_find(tags, n, "h");
	if (t != NULL)
		key->sha256 = list_has(t->value, "sha256");
	t = ma_tag_find(tags, n, "s");
	if (t != NULL && !list_has(t->value, "*") && !list_has(t->value, "email"))
		return why(why_r, why_size, "key not for email");
	t = ma_tag_find(tags, n, "t");
	if (t != NULL) {
		key->testing = list_has(t->value, "y");
		key->strict = list_has(t->value, "s");
	}
	t = ma_tag_find(tags, n, "p");
	if (t == NULL)
		return why(why_r, why_size, "key record without p=");
	if (t->value.len == 0) {
		key->revoked = true;
		return 0;
	}
	if (decode_b64(t->value, &key->pub, &key->pub_len) < 0 ||
	    key->pub_len == 0)
		return why(why_r, why_size, "bad p=");
	if (key->type == DKIM_KEY_ED25519 && key->pub_len != 32)
		return why(why_r, why_size, "ed25519 key is not 32 bytes");
	return 0;
}

void dkim_key_free(struct dkim_key *key)
{
	free(key->pub);
	key->pub = NULL;
}
