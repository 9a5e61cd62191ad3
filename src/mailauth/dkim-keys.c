/*
 * DKIM keys on disk: DIR/<domain>/<selector>.pem, a PKCS#8 private key
 * (RSA or Ed25519) with mode 0600 in directories of mode 0700, written to
 * a temporary name, fsynced and linked into place (an existing selector
 * is never overwritten). `loftctl dkim add|list|del` and loftd's signer
 * read the same files, so a key added while loftd runs signs its next
 * message. The public half, for DNS, is derived from the private key.
 */
#include "mailauth-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"

static bool selector_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return strstr(s, "..") == NULL;
}

/* The domain as a directory name: lowercase, valid, no trailing dot. */
static int domain_dir(const char *domain, char out[256], char **error_r)
{
	size_t n = strlen(domain);

	if (n == 0 || n >= 256) {
		*error_r = xasprintf("'%s' is not a domain name", domain);
		return -1;
	}
	memcpy(out, domain, n + 1);
	if (out[n - 1] == '.')
		out[--n] = '\0';
	ma_lower(out);
	if (!ma_domain_valid(out) || strchr(out, '.') == NULL ||
	    strchr(out, '/') != NULL) {
		*error_r = xasprintf("'%s' is not a domain name", domain);
		return -1;
	}
	return 0;
}

EVP_PKEY *dkim_key_load(const char *path, char **error_r)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	fclose(f);
	if (k == NULL || (EVP_PKEY_base_id(k) != EVP_PKEY_RSA &&
			  EVP_PKEY_base_id(k) != EVP_PKEY_ED25519)) {
		EVP_PKEY_free(k);
		*error_r = xasprintf("%s: not an RSA or Ed25519 private key",
				     path);
		return NULL;
	}
	return k;
}

/* "v=DKIM1; k=...; p=..." for the public half of k. */
char *dkim_key_record(EVP_PKEY *k)
{
	struct buf b;
	unsigned char *der = NULL;

	buf_init(&b, 0);
	if (EVP_PKEY_base_id(k) == EVP_PKEY_ED25519) {
		unsigned char raw[32];
		size_t n = sizeof(raw);
		EVP_PKEY_get_raw_public_key(k, raw, &n);
		buf_append_str(&b, "v=DKIM1; k=ed25519; p=");
		base64_encode_buf(&b, raw, n);
	} else {
		int n = i2d_PUBKEY(k, &der);
		buf_append_str(&b, "v=DKIM1; k=rsa; p=");
		if (n > 0)
			base64_encode_buf(&b, der, (size_t)n);
		OPENSSL_free(der);
	}
	return buf_steal(&b, NULL);
}

static void info_fill(struct dkim_key_info *info, const char *domain,
		      const char *selector, EVP_PKEY *k, time_t created)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->domain, sizeof(info->domain), "%s", domain);
	snprintf(info->selector, sizeof(info->selector), "%s", selector);
	info->type = EVP_PKEY_base_id(k) == EVP_PKEY_ED25519 ? DKIM_KEY_ED25519
							     : DKIM_KEY_RSA;
	info->bits = (unsigned)EVP_PKEY_bits(k);
	info->created = created;
	info->record = dkim_key_record(k);
}

void dkim_key_info_free(struct dkim_key_info *info)
{
	free(info->record);
	info->record = NULL;
}

static int mkdir_private(const char *path, char **error_r)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("cannot create %s: %s", path,
				     strerror(errno));
		return -1;
	}
	return 0;
}

static int write_key(const char *path, EVP_PKEY *k, char **error_r)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int rc = -1;

	if (f == NULL) {
		*error_r = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(tmp);
		return -1;
	}
	if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		*error_r = xasprintf("cannot write %s", tmp);
		fclose(f);
	} else if (fclose(f) != 0) {
		*error_r = xasprintf("cannot write %s", tmp);
	} else if (link(tmp, path) < 0) {
		*error_r = errno == EEXIST
				   ? xasprintf("a key with that selector exists "
					       "(%s)", path)
				   : xasprintf("cannot create %s: %s", path,
					       strerror(errno));
	} else {
		rc = 0;
	}
	unlink(tmp);
	free(tmp);
	if (rc == 0) {
		char *dir = xstrdup(path);
		*strrchr(dir, '/') = '\0';
		int dfd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	return rc;
}

int dkim_key_create(const char *dir, const char *domain, const char *selector,
		    enum dkim_key_type type, unsigned bits,
		    struct dkim_key_info *info_r, char **error_r)
{
	char dom[256], sel[64];
	EVP_PKEY *k;
	char *ddir, *path;
	int rc = -1;

	if (domain_dir(domain, dom, error_r) < 0)
		return -1;
	if (selector == NULL) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		snprintf(sel, sizeof(sel), "%s-%04d%02d%02d",
			 type == DKIM_KEY_ED25519 ? "ed25519" : "rsa",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	} else {
		snprintf(sel, sizeof(sel), "%s", selector);
		ma_lower(sel);
	}
	if (!selector_valid(sel)) {
		*error_r = xasprintf("'%s' is not a valid selector (letters, "
				     "digits, '-', '_', '.'; up to 63)",
				     selector ? selector : sel);
		return -1;
	}
	if (type == DKIM_KEY_RSA && (bits < 1024 || bits > 4096)) {
		*error_r = xasprintf("RSA keys are 1024 to 4096 bits (2048 is "
				     "the usual size), not %u", bits);
		return -1;
	}
	k = type == DKIM_KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
				     : EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
							 (size_t)bits);
	if (k == NULL) {
		*error_r = xstrdup("key generation failed");
		return -1;
	}
	ddir = xasprintf("%s/%s", dir, dom);
	path = xasprintf("%s/%s.pem", ddir, sel);
	if (mkdir_private(dir, error_r) == 0 &&
	    mkdir_private(ddir, error_r) == 0 &&
	    write_key(path, k, error_r) == 0) {
		info_fill(info_r, dom, sel, k, time(NULL));
		rc = 0;
	}
	EVP_PKEY_free(k);
	free(ddir);
	free(path);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of path, sorted; suffix: only those ending in it (cut). */
static char **sorted_entries(const char *path, const char *suffix,
			     size_t *count_r)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, sl = suffix ? strlen(suffix) : 0;

	*count_r = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' ||
		    (suffix && (len <= sl ||
				strcmp(de->d_name + len - sl, suffix) != 0)))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = xrealloc(names, cap * sizeof(char *));
		}
		names[n++] = xstrndup(de->d_name, len - sl);
	}
	closedir(d);
	if (n > 0)     /* qsort(NULL, 0): UB (an empty dkim/ directory) */
		qsort(names, n, sizeof(char *), name_cmp);
	*count_r = n;
	return names;
}

static void free_entries(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int list_domain(const char *dir, const char *dom, dkim_key_list_fn *fn,
		       void *ctx, char **error_r)
{
	char *ddir = xasprintf("%s/%s", dir, dom);
	size_t n;
	char **sels = sorted_entries(ddir, ".pem", &n);
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		char *path = xasprintf("%s/%s.pem", ddir, sels[i]);
		struct stat st;
		EVP_PKEY *k = dkim_key_load(path, error_r);
		if (k == NULL) {
			rc = -1;
		} else {
			struct dkim_key_info info;
			info_fill(&info, dom, sels[i], k,
				  stat(path, &st) == 0 ? st.st_mtime : 0);
			fn(ctx, &info);
			dkim_key_info_free(&info);
			EVP_PKEY_free(k);
		}
		free(path);
	}
	free_entries(sels, n);
	free(ddir);
	return rc;
}

int dkim_key_list(const char *dir, const char *domain, dkim_key_list_fn *fn,
		  void *ctx, char **error_r)
{
	char dom[256];
	size_t n;
	char **doms;
	int rc = 0;

	if (domain != NULL) {
		if (domain_dir(domain, dom, error_r) < 0)
			return -1;
		return list_domain(dir, dom, fn, ctx, error_r);
	}
	doms = sorted_entries(dir, NULL, &n);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = list_domain(dir, doms[i], fn, ctx, error_r);
	free_entries(doms, n);
	return rc;
}

int dkim_key_delete(const char *dir, const char *domain, const char *selector,
		    char **error_r)
{
	char dom[256], sel[64];
	char *ddir, *path;
	int rc = 0;

	if (domain_dir(domain, dom, error_r) < 0)
		return -1;
	snprintf(sel, sizeof(sel), "%s", selector);
	ma_lower(sel);
	if (!selector_valid(sel)) {
		*error_r = xasprintf("'%s' is not a valid selector", selector);
		return -1;
	}
	ddir = xasprintf("%s/%s", dir, dom);
	path = xasprintf("%s/%s.pem", ddir, sel);
	if (unlink(path) < 0) {
		*error_r = errno == ENOENT
				   ? xasprintf("no key %s for %s", sel, dom)
				   : xasprintf("cannot remove %s: %s", path,
					       strerror(errno));
		rc = -1;
	} else {
		rmdir(ddir);    /* only if it is empty now */
	}
	free(path);
	free(ddir);
	return rc;
}

static void check_one(void *ctx, const struct dkim_key_info *info)
{
	(void)ctx;
	(void)info;
}

int dkim_keys_check(const char *dir, struct buf *errors)
{
	char *err = NULL;
	struct stat st;

	if (stat(dir, &st) < 0)
		return 0;       /* no keys yet */
	if (dkim_key_list(dir, NULL, check_one, NULL, &err) < 0) {
		buf_printf(errors, "DKIM key %s\n", err);
		free(err);
		return -1;
	}
	return 0;
}

/* ---- backup and restore (loftctl backup / restore) ---------------- */

/* DIR/<domain>/<selector>.pem of a valid domain and selector (NULL with
 * *error_r). */
static char *key_path(const char *dir, const char *domain,
		      const char *selector, char **ddir_r, char **error_r)
{
	char dom[256], sel[64];
	if (domain_dir(domain, dom, error_r) < 0)
		return NULL;
	snprintf(sel, sizeof(sel), "%s", selector);
	ma_lower(sel);
	if (!selector_valid(sel)) {
		*error_r = xasprintf("'%s' is not a valid selector", selector);
		return NULL;
	}
	*ddir_r = xasprintf("%s/%s", dir, dom);
	return xasprintf("%s/%s.pem", *ddir_r, sel);
}

int dkim_key_export(const char *dir, const char *domain, const char *selector,
		    char **pem_r, char **error_r)
{
	char *ddir = NULL;
	char *path = key_path(dir, domain, selector, &ddir, error_r);
	if (path == NULL)
		return -1;
	EVP_PKEY *k = dkim_key_load(path, error_r);
	int rc = -1;
	BIO *b = k != NULL ? BIO_new(BIO_s_mem()) : NULL;
	if (b != NULL &&
	    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		*pem_r = xstrndup(p, (size_t)n);
		rc = 0;
	} else if (k != NULL) {
		*error_r = xasprintf("cannot encode %s", path);
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	free(path);
	free(ddir);
	return rc;
}

int dkim_key_import(const char *dir, const char *domain, const char *selector,
		    const char *pem, time_t created, bool *existed_r,
		    char **error_r)
{
	*existed_r = false;
	char *ddir = NULL;
	char *path = key_path(dir, domain, selector, &ddir, error_r);
	if (path == NULL)
		return -1;
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)
				: NULL;
	BIO_free(b);
	int rc = -1;
	struct stat st;
	if (k == NULL) {
		*error_r = xasprintf("%s: not a private key", path);
	} else if (stat(path, &st) == 0) {
		*existed_r = true;
		rc = 0;
	} else if (mkdir_private(dir, error_r) == 0 &&
		   mkdir_private(ddir, error_r) == 0 &&
		   write_key(path, k, error_r) == 0) {
		/* its age, as `dkim list` shows it */
		struct timespec ts[2] = {{created, 0}, {created, 0}};
		if (created > 0)
			utimensat(AT_FDCWD, path, ts, 0);
		rc = 0;
	}
	EVP_PKEY_free(k);
	free(path);
	free(ddir);
	return rc;
}

/* ---- keys shared by several nodes (docs/scale-out.md "Accounts") ---- */

struct local_key {
	char domain[256], selector[64];
	time_t created;
};

struct local_keys {
	struct local_key *keys;
	size_t count, cap;
};

static void collect_local(void *ctx, const struct dkim_key_info *info)
{
	struct local_keys *lk = ctx;
	if (lk->count == lk->cap) {
		lk->cap = lk->cap ? lk->cap * 2 : 8;
		lk->keys = xrealloc(lk->keys, lk->cap * sizeof(*lk->keys));
	}
	struct local_key *k = &lk->keys[lk->count++];
	snprintf(k->domain, sizeof(k->domain), "%s", info->domain);
	snprintf(k->selector, sizeof(k->selector), "%s", info->selector);
	k->created = info->created;
}

int dkim_keys_mirror(const char *dir, const struct dkim_shared_key *keys,
		     size_t count, dkim_key_upload_fn *upload, void *ctx,
		     char **error_r)
{
	*error_r = NULL;
	int changes = 0;
	/* what the node has that the rows do not name at all (keys made
	 * before they were shared): added to the rows, not removed */
	struct local_keys lk = {0};
	struct stat st;
	if (stat(dir, &st) == 0 &&
	    dkim_key_list(dir, NULL, collect_local, &lk, error_r) < 0)
		goto fail;
	for (size_t i = 0; i < lk.count; i++) {
		bool named = false;
		for (size_t k = 0; k < count && !named; k++)
			named = strcasecmp(keys[k].domain, lk.keys[i].domain)
					== 0 &&
				strcasecmp(keys[k].selector,
					   lk.keys[i].selector) == 0;
		if (named)
			continue;
		char *pem = NULL;
		if (dkim_key_export(dir, lk.keys[i].domain, lk.keys[i].selector,
				    &pem, error_r) < 0)
			goto fail;
		int rc = upload(ctx, lk.keys[i].domain, lk.keys[i].selector,
				pem, lk.keys[i].created, error_r);
		explicit_bzero(pem, strlen(pem));
		free(pem);
		if (rc < 0)
			goto fail;
	}
	/* the rows: live ones copied (or replaced when the node's copy is
	 * another key), deleted ones removed */
	for (size_t i = 0; i < count; i++) {
		const struct dkim_shared_key *k = &keys[i];
		char *have = NULL, *err = NULL;
		bool there = dkim_key_export(dir, k->domain, k->selector, &have,
					     &err) == 0;
		free(err);
		err = NULL;
		bool same = there && k->pem != NULL &&
			    strcmp(have, k->pem) == 0;
		if (have != NULL) {
			explicit_bzero(have, strlen(have));
			free(have);
		}
		if (same || (!there && k->pem == NULL))
			continue;
		if (there && dkim_key_delete(dir, k->domain, k->selector,
					     error_r) < 0)
			goto fail;
		bool existed;
		if (k->pem != NULL &&
		    dkim_key_import(dir, k->domain, k->selector, k->pem,
				    k->created, &existed, error_r) < 0)
			goto fail;
		changes++;
	}
	free(lk.keys);
	return changes;
fail:
	free(lk.keys);
	return -1;
}
