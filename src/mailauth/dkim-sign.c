/*
 * DKIM signing (RFC 6376 5, RFC 8463): one DKIM-Signature per key of the
 * From: domain, c=relaxed/relaxed, the usual fields signed and the ones
 * an attacker would add oversigned (named once more than they occur, so
 * a second From: or Subject: breaks the signature). The body hash is
 * computed once for all keys. Keys are read from DIR/<domain>/ at every
 * message (a directory read; a key file is parsed again only when it
 * changed), so `loftctl dkim add` takes effect at the next message.
 */
#include "mailauth-private.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "base64.h"
#include "log.h"

EVP_PKEY *dkim_key_load(const char *path, char **error_r);

/* Signed when present, in this order; the first group also once more
 * than present (oversigned). */
static const char *const oversigned[] = {
	"from", "to", "cc", "subject", "date", "reply-to", "message-id",
	"in-reply-to", "references", "mime-version", "content-type",
	"content-transfer-encoding", NULL,
};
static const char *const signed_if_present[] = {
	"sender", "resent-date", "resent-from", "resent-to", "resent-cc",
	"resent-message-id", "list-id", "list-help", "list-unsubscribe",
	"list-unsubscribe-post", "list-subscribe", "list-post", "list-owner",
	"list-archive", "content-id", "content-description", "autocrypt",
	"openpgp", NULL,
};

struct cached_key {
	char *path;
	char selector[64];
	time_t mtime;
	ino_t ino;
	off_t size;
	EVP_PKEY *key;
	bool seen;
};

struct dkim_signer {
	char *dir;
	pthread_mutex_t mu;
	struct cached_key *keys;
	size_t count, cap;
};

struct dkim_signer *dkim_signer_create(const char *dir)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));

	s->dir = xstrdup(dir);
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

void dkim_signer_destroy(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->count; i++) {
		EVP_PKEY_free(s->keys[i].key);
		free(s->keys[i].path);
	}
	free(s->keys);
	pthread_mutex_destroy(&s->mu);
	free(s->dir);
	free(s);
	*sp = NULL;
}

/* The keys of domain, current (references taken: caller frees each). */
static size_t domain_keys(struct dkim_signer *s, const char *domain,
			  EVP_PKEY **keys, char sels[][64], size_t max)
{
	char *ddir = xasprintf("%s/%s", s->dir, domain);
	DIR *d = opendir(ddir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL) {
		free(ddir);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	while ((de = readdir(d)) != NULL && n < max) {
		size_t len = strlen(de->d_name);
		struct stat st;
		if (de->d_name[0] == '.' || len <= 4 || len - 4 >= 64 ||
		    strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		char *path = xasprintf("%s/%s", ddir, de->d_name);
		if (stat(path, &st) < 0) {
			free(path);
			continue;
		}
		struct cached_key *c = NULL;
		for (size_t i = 0; i < s->count; i++)
			if (strcmp(s->keys[i].path, path) == 0)
				c = &s->keys[i];
		if (c == NULL) {
			if (s->count == s->cap) {
				s->cap = s->cap ? s->cap * 2 : 8;
				s->keys = xrealloc(s->keys,
						   s->cap * sizeof(*s->keys));
			}
			c = &s->keys[s->count++];
			memset(c, 0, sizeof(*c));
			c->path = xstrdup(path);
		}
		if (c->key == NULL || c->mtime != st.st_mtime ||
		    c->ino != st.st_ino || c->size != st.st_size) {
			char *err = NULL;
			EVP_PKEY_free(c->key);
			c->key = dkim_key_load(path, &err);
			if (c->key == NULL) {
				log_error("dkim", NULL, "key %s", err);
				free(err);
			}
			c->mtime = st.st_mtime;
			c->ino = st.st_ino;
			c->size = st.st_size;
			snprintf(c->selector, sizeof(c->selector), "%.*s",
				 (int)(len - 4), de->d_name);
		}
		if (c->key != NULL) {
			EVP_PKEY_up_ref(c->key);
			keys[n] = c->key;
			memcpy(sels[n], c->selector, 64);
			n++;
		}
		free(path);
	}
	pthread_mutex_unlock(&s->mu);
	closedir(d);
	free(ddir);
	return n;
}

/* The h= names for this header: present ones, oversigned ones once
 * more. */
static size_t header_list(const struct ma_field *f, size_t n,
			  const char **names, size_t max)
{
	size_t count = 0;

	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? oversigned
						    : signed_if_present;
		for (size_t k = 0; list[k] != NULL; k++) {
			size_t nl = strlen(list[k]), present = 0;
			for (size_t i = 0; i < n; i++)
				present += f[i].name_len == nl &&
					   strncasecmp(f[i].name, list[k],
						       nl) == 0;
			size_t times = present + (pass == 0 ? 1 : 0);
			for (size_t t = 0; t < times && count < max; t++)
				names[count++] = list[k];
		}
	}
	return count;
}

/* Appends "\r\n\t" when the current line would pass 76 columns. */
static void fold(struct buf *out, size_t *col, size_t add)
{
	if (*col + add > 76) {
		buf_append_str(out, "\r\n\t");
		*col = 8;
	}
	*col += add;
}

static int sign_one(EVP_PKEY *key, const char *domain, const char *selector,
		    time_t now, const struct ma_field *f, size_t n,
		    const uint8_t *bh, size_t bh_len, struct buf *out,
		    char **error_r)
{
	const char *names[DKIM_MAX_HEADERS];
	size_t count = header_list(f, n, names, DKIM_MAX_HEADERS);
	bool ed = EVP_PKEY_base_id(key) == EVP_PKEY_ED25519;
	struct buf field, data;
	size_t col;
	int rc = -1;

	buf_init(&field, 0);
	buf_init(&data, 0);
	buf_printf(&field, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;",
		   ed ? "ed25519-sha256" : "rsa-sha256");
	col = field.len;
	char part[600];
	snprintf(part, sizeof(part), " d=%s;", domain);
	fold(&field, &col, strlen(part));
	buf_append_str(&field, part);
	snprintf(part, sizeof(part), " s=%s;", selector);
	fold(&field, &col, strlen(part));
	buf_append_str(&field, part);
	snprintf(part, sizeof(part), " t=%lld;", (long long)now);
	fold(&field, &col, strlen(part));
	buf_append_str(&field, part);
	fold(&field, &col, 3);
	buf_append_str(&field, " h=");
	for (size_t i = 0; i < count; i++) {
		size_t l = strlen(names[i]) + 1;
		fold(&field, &col, l);
		buf_printf(&field, "%s%s", names[i], i + 1 < count ? ":" : ";");
	}
	char *bh64 = base64_encode(bh, bh_len);
	fold(&field, &col, strlen(bh64) + 5);
	buf_printf(&field, " bh=%s;", bh64);
	free(bh64);
	buf_append_str(&field, "\r\n\tb=");
	size_t b_at = field.len;
	buf_append_str(&field, "\r\n");

	dkim_signed_data(f, n, names, count, DKIM_CANON_RELAXED, field.data,
			 field.len, &data);
	uint8_t sig[1024], hash[32];
	size_t sig_len = sizeof(sig);
	unsigned hl = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;
	if (ed) {
		/* RFC 8463 3: PureEdDSA over SHA-256 of the data */
		EVP_Digest(data.data, data.len, hash, &hl, EVP_sha256(), NULL);
		ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
		     EVP_DigestSign(ctx, sig, &sig_len, hash, hl) == 1;
	} else {
		ok = EVP_PKEY_size(key) <= (int)sizeof(sig) &&
		     EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
		     EVP_DigestSign(ctx, sig, &sig_len,
				    (const uint8_t *)data.data, data.len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		*error_r = xasprintf("signing with %s._domainkey.%s failed",
				     selector, domain);
		goto out;
	}
	/* the b= value, folded, where the empty one was */
	char *b64 = base64_encode(sig, sig_len);
	struct buf done;
	buf_init(&done, 0);
	buf_append(&done, field.data, b_at);
	for (size_t i = 0, len = strlen(b64); i < len; i += 70) {
		if (i > 0)
			buf_append_str(&done, "\r\n\t ");
		buf_append(&done, b64 + i, len - i < 70 ? len - i : 70);
	}
	buf_append_str(&done, "\r\n");
	buf_append(out, done.data, done.len);
	buf_free(&done);
	free(b64);
	rc = 0;
out:
	buf_free(&field);
	buf_free(&data);
	return rc;
}

/* The body hash, relaxed, SHA-256. */
static void body_hash(const char *body, size_t len, uint8_t *bh,
		      size_t *bh_len)
{
	struct dkim_body *b = dkim_body_create(DKIM_CANON_RELAXED, false,
					       false, 0);
	dkim_body_feed(b, body, len);
	dkim_body_final(b, bh, bh_len);
	dkim_body_free(&b);
}

/* The domain whose keys sign: the From: field's (one address). */
static bool signing_domain(const struct ma_field *f, size_t n, char out[256])
{
	char doms[4][256];

	for (size_t i = 0; i < n; i++) {
		if (f[i].name_len == 4 && strncasecmp(f[i].name, "From", 4) == 0 &&
		    ma_from_domains(f[i].value, f[i].value_len, doms, 4) >= 1) {
			memcpy(out, doms[0], 256);
			return true;
		}
	}
	return false;
}

#define MAX_KEYS 8

size_t dkim_sign_split(const char *data, size_t len, uint8_t bh[32],
		       size_t *bh_len_r)
{
	struct ma_field *f;
	size_t hlen;
	ma_header_split(data, len, &f, &hlen);
	free(f);
	*bh_len_r = 0;
	body_hash(data + hlen, len - hlen, bh, bh_len_r);
	return hlen;
}

int dkim_signer_sign_head(struct dkim_signer *s, const char *head,
			  size_t head_len, const uint8_t *bh, size_t bh_len,
			  struct buf *out)
{
	struct ma_field *f;
	size_t hlen, n = ma_header_split(head, head_len, &f, &hlen);
	char domain[256], sels[MAX_KEYS][64];
	EVP_PKEY *keys[MAX_KEYS];
	size_t nk = 0;
	int rc = 0;

	if (!signing_domain(f, n, domain) ||
	    (nk = domain_keys(s, domain, keys, sels, MAX_KEYS)) == 0) {
		free(f);
		return 0;
	}
	time_t now = time(NULL);
	for (size_t i = 0; i < nk; i++) {
		char *err = NULL;
		if (sign_one(keys[i], domain, sels[i], now, f, n, bh, bh_len, out,
			     &err) < 0) {
			log_error("dkim", NULL, "%s", err);
			free(err);
			rc = -1;
		}
		EVP_PKEY_free(keys[i]);
	}
	free(f);
	return rc;
}

int dkim_signer_sign(struct dkim_signer *s, const char *data, size_t len,
		     struct buf *out)
{
	uint8_t bh[32];
	size_t bh_len;
	size_t hlen = dkim_sign_split(data, len, bh, &bh_len);
	return dkim_signer_sign_head(s, data, hlen, bh, bh_len, out);
}

int dkim_sign_with(const char *pem, size_t pem_len, const char *domain,
		   const char *selector, time_t now, const char *data,
		   size_t len, struct buf *out, char **error_r)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"")
			    : NULL;
	struct ma_field *f;
	size_t hlen, n;
	uint8_t bh[32];
	size_t bh_len = 0;
	int rc;

	BIO_free(bio);
	if (key == NULL) {
		*error_r = xstrdup("not a private key");
		return -1;
	}
	n = ma_header_split(data, len, &f, &hlen);
	body_hash(data + hlen, len - hlen, bh, &bh_len);
	rc = sign_one(key, domain, selector, now, f, n, bh, bh_len, out,
		      error_r);
	free(f);
	EVP_PKEY_free(key);
	return rc;
}
