/*
 * DKIM verification (RFC 6376 6, RFC 8463, RFC 8301) on a stream: the
 * header is kept until it ends (at most DKIM_HEAD_MAX), its
 * DKIM-Signature fields are parsed, and the body then streams through one
 * canonicalizer per signature. At the end the caller looks the keys up
 * (dkim_verifier_queries / _complete, in one DNS batch with SPF's and
 * DMARC's) and each signature gets its result.
 */
#include "mailauth-private.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dns.h"

#define DKIM_HEAD_MAX (1024 * 1024)

struct dkim_verifier *dkim_verifier_create(void)
{
	struct dkim_verifier *v = xcalloc(1, sizeof(*v));

	buf_init(&v->head, DKIM_HEAD_MAX);
	return v;
}

void dkim_verifier_free(struct dkim_verifier **vp)
{
	struct dkim_verifier *v = *vp;

	if (v == NULL)
		return;
	for (size_t i = 0; i < v->count; i++) {
		dkim_sig_free(&v->sigs[i].sig);
		dkim_body_free(&v->sigs[i].body);
		free(v->sigs[i].field);
	}
	buf_free(&v->head);
	free(v);
	*vp = NULL;
}

static void set_result(struct dkim_pending *p, enum ma_status st,
		       const char *reason)
{
	p->result.status = st;
	snprintf(p->result.reason, sizeof(p->result.reason), "%s", reason);
}

/* The header is complete: its signatures are parsed and the body
 * hashers set up. Returns the header's length in v->head. */
static size_t start_body(struct dkim_verifier *v)
{
	struct ma_field *f;
	size_t hlen, n = ma_header_split(v->head.data ? v->head.data : "",
					  v->head.len, &f, &hlen);

	for (size_t i = 0; i < n && v->count < DKIM_MAX_SIGNATURES; i++) {
		if (!(f[i].name_len == 14 &&
		      strncasecmp(f[i].name, "DKIM-Signature", 14) == 0))
			continue;
		struct dkim_pending *p = &v->sigs[v->count++];
		char why[128];
		p->field = xstrndup(f[i].raw, f[i].raw_len);
		p->field_len = f[i].raw_len;
		int parsed = dkim_sig_parse(f[i].value, f[i].value_len, &p->sig,
					    why, sizeof(why));
		/* what we know of it, for the A-R field */
		memcpy(p->result.domain, p->sig.domain, sizeof(p->result.domain));
		if (parsed < 0) {
			set_result(p, MA_PERMERROR, why);
			continue;
		}
		memcpy(p->result.selector, p->sig.selector,
		       sizeof(p->result.selector));
		memcpy(p->result.auid, p->sig.auid, sizeof(p->result.auid));
		memcpy(p->result.b, p->sig.b_text, sizeof(p->result.b));
		if (p->sig.algo == DKIM_ALGO_RSA_SHA1) {
			/* RFC 8301 3.1: never valid */
			set_result(p, MA_PERMERROR, "rsa-sha1 is not accepted");
			continue;
		}
		p->body = dkim_body_create(p->sig.bcanon, false,
					   p->sig.has_length, p->sig.length);
	}
	free(f);
	v->in_body = true;
	return hlen;
}

static void feed_body(struct dkim_verifier *v, const char *data, size_t len)
{
	for (size_t i = 0; i < v->count; i++)
		if (v->sigs[i].body != NULL)
			dkim_body_feed(v->sigs[i].body, data, len);
}

/* Where the header ends in v->head (an empty line), or 0. */
static size_t header_end(const struct buf *h, size_t from)
{
	for (size_t i = from; i < h->len; i++) {
		if (h->data[i] != '\n')
			continue;
		if (i + 1 < h->len && h->data[i + 1] == '\n')
			return i + 2;
		if (i + 2 < h->len && h->data[i + 1] == '\r' &&
		    h->data[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

void dkim_verifier_feed(struct dkim_verifier *v, const char *data, size_t len)
{
	if (v->too_big || v->ended || len == 0)
		return;
	if (v->in_body) {
		feed_body(v, data, len);
		return;
	}
	size_t from = v->head.len > 2 ? v->head.len - 2 : 0;
	if (buf_append(&v->head, data, len) < 0) {
		v->too_big = true;
		return;
	}
	if (header_end(&v->head, from) == 0)
		return;
	size_t hlen = start_body(v);
	feed_body(v, v->head.data + hlen, v->head.len - hlen);
	v->head.len = hlen;     /* the header stays for the field hashes */
}

size_t dkim_verifier_end(struct dkim_verifier *v)
{
	if (!v->ended && !v->too_big && !v->in_body) {
		/* no empty line: whatever follows the fields is the body */
		size_t hlen = start_body(v);
		if (v->head.len > hlen)
			feed_body(v, v->head.data + hlen, v->head.len - hlen);
		v->head.len = hlen;
	}
	v->ended = true;
	return v->too_big ? 0 : v->count;
}

/* ---- the header hash ---------------------------------------------- */

static void header_data(const struct dkim_verifier *v,
			const struct dkim_pending *p, struct buf *out)
{
	struct ma_field *f;
	size_t hlen, n = ma_header_split(v->head.data ? v->head.data : "",
					  v->head.len, &f, &hlen);

	dkim_signed_data(f, n, (const char *const *)p->sig.headers,
			 p->sig.header_count, p->sig.hcanon, p->field,
			 p->field_len, out);
	free(f);
}

/* ---- keys and signatures ------------------------------------------ */

static EVP_PKEY *load_key(const struct dkim_key *k, char *why, size_t size)
{
	const unsigned char *p = k->pub;
	EVP_PKEY *pkey;

	if (k->type == DKIM_KEY_ED25519)
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k->pub,
						   k->pub_len);
	/* SubjectPublicKeyInfo, or a bare RSAPublicKey (RFC 6376 3.6.1) */
	pkey = d2i_PUBKEY(NULL, &p, (long)k->pub_len);
	if (pkey == NULL) {
		p = k->pub;
		pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)k->pub_len);
	}
	if (pkey == NULL) {
		snprintf(why, size, "key does not parse");
		return NULL;
	}
	if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
		snprintf(why, size, "not an RSA key");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (EVP_PKEY_bits(pkey) < 1024) {
		/* RFC 8301 3.2 */
		snprintf(why, size, "RSA key shorter than 1024 bits");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

static bool signature_ok(const struct dkim_pending *p, EVP_PKEY *pkey,
			 const struct buf *data)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	if (ctx == NULL)
		return false;
	if (p->sig.algo == DKIM_ALGO_ED25519_SHA256) {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the data */
		uint8_t hash[32];
		unsigned hl = 0;
		EVP_Digest(data->data, data->len, hash, &hl, EVP_sha256(), NULL);
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		     EVP_DigestVerify(ctx, p->sig.b, p->sig.b_len, hash, hl) == 1;
	} else {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
		     EVP_DigestVerify(ctx, p->sig.b, p->sig.b_len,
				      (const uint8_t *)data->data, data->len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	return ok;
}

static void check_one(struct dkim_verifier *v, struct dkim_pending *p,
		      const struct dkim_key *key)
{
	uint8_t bh[64];
	size_t bh_len = 0;
	char why[128] = "";
	time_t now = time(NULL);

	p->result.testing = key->testing;
	if (key->revoked) {
		set_result(p, MA_PERMERROR, "key revoked");
		return;
	}
	if ((key->type == DKIM_KEY_ED25519) !=
	    (p->sig.algo == DKIM_ALGO_ED25519_SHA256)) {
		set_result(p, MA_PERMERROR, "key type does not match a=");
		return;
	}
	if (!key->sha256) {
		set_result(p, MA_PERMERROR, "key does not allow sha256");
		return;
	}
	if (key->strict) {
		const char *at = strrchr(p->sig.auid, '@');
		if (at == NULL || strcasecmp(at + 1, p->sig.domain) != 0) {
			set_result(p, MA_PERMERROR, "key needs i= = d= (t=s)");
			return;
		}
	}
	if (p->sig.expire >= 0 && now > p->sig.expire) {
		set_result(p, MA_FAIL, "signature expired");
		return;
	}
	if (dkim_body_final(p->body, bh, &bh_len) < 0) {
		set_result(p, MA_FAIL, "l= is longer than the body");
		return;
	}
	if (bh_len != p->sig.bh_len || memcmp(bh, p->sig.bh, bh_len) != 0) {
		set_result(p, MA_FAIL, "body hash did not verify");
		return;
	}
	EVP_PKEY *pkey = load_key(key, why, sizeof(why));
	if (pkey == NULL) {
		set_result(p, MA_PERMERROR, why);
		return;
	}
	struct buf data;
	buf_init(&data, 0);
	header_data(v, p, &data);
	if (signature_ok(p, pkey, &data))
		set_result(p, MA_PASS, "");
	else
		set_result(p, MA_FAIL, "signature did not verify");
	buf_free(&data);
	EVP_PKEY_free(pkey);
}

void dkim_verifier_queries(struct dkim_verifier *v, struct dns_batch *b)
{
	for (size_t i = 0; i < v->count; i++) {
		struct dkim_pending *p = &v->sigs[i];
		if (p->result.status != MA_NONE || p->body == NULL)
			continue;
		char name[600];
		snprintf(name, sizeof(name), "%s._domainkey.%s", p->sig.selector,
			 p->sig.domain);
		p->query = dns_batch_add(b, name, DNS_TXT);
	}
}

void dkim_verifier_check_key(struct dkim_verifier *v, size_t i, int status,
			     const char *const *txts, size_t n)
{
	struct dkim_pending *p = &v->sigs[i];
	char why[128] = "no usable key";

	if (i >= v->count || p->result.status != MA_NONE || p->body == NULL)
		return;
	if (status == DNS_TEMPFAIL || status == DNS_BOGUS) {
		set_result(p, MA_TEMPERROR, "key lookup failed");
		return;
	}
	if (status != DNS_OK || n == 0) {
		set_result(p, MA_PERMERROR, "no key");
		return;
	}
	/* the first record that parses as a key */
	for (size_t k = 0; k < n; k++) {
		struct dkim_key key;
		int rc = dkim_key_parse(txts[k], strlen(txts[k]), &key, why,
					sizeof(why));
		if (rc == 0)
			check_one(v, p, &key);
		dkim_key_free(&key);
		if (rc == 0)
			return;
	}
	set_result(p, MA_PERMERROR, why);
}

void dkim_verifier_complete(struct dkim_verifier *v, const struct dns_batch *b)
{
	for (size_t i = 0; i < v->count; i++) {
		struct dkim_pending *p = &v->sigs[i];
		if (p->result.status != MA_NONE || p->body == NULL)
			continue;
		const struct dns_answer *a = dns_batch_answer(b, p->query);
		char **txts = xcalloc(a->count ? a->count : 1, sizeof(char *));
		size_t n = 0;
		for (size_t k = 0; a->status == DNS_OK && k < a->count; k++)
			if ((txts[n] = dns_parse_txt(a->data[k], a->len[k])) != NULL)
				n++;
		dkim_verifier_check_key(v, i, (int)a->status,
					(const char *const *)txts, n);
		for (size_t k = 0; k < n; k++)
			free(txts[k]);
		free(txts);
	}
}

size_t dkim_verifier_results(const struct dkim_verifier *v,
			     struct dkim_result *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < v->count && n < max; i++)
		out[n++] = v->sigs[i].result;
	return n;
}
