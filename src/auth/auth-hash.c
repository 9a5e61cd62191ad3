/*
 * Password hashes. Loft's own scheme is argon2id (libargon2) stored as
 * "{ARGON2ID}$argon2id$v=19$m=..,t=..,p=..$salt$hash", with SCRAM-SHA-256
 * keys beside it in the database. Hashes imported from Dovecot keep their
 * scheme prefix ({SHA512-CRYPT}, {BLF-CRYPT} through crypt_r(3) of
 * libcrypt, {ARGON2ID}) until the first successful PLAIN/LOGIN re-hashes
 * the password. Also: SCRAM key derivation (RFC 5802 3).
 */
#include "auth-private.h"

#include "buf.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGON2_DEFAULT_T 3
#define ARGON2_DEFAULT_M (64 * 1024)
#define ARGON2_DEFAULT_P 1
#define ARGON2_SALT_LEN 16
#define ARGON2_HASH_LEN 32
/* Imported hashes are checked on a worker; refuse costs that would let a
 * hostile import stall one for minutes or exhaust memory. */
#define IMPORT_MAX_ARGON2_M (1024 * 1024)
#define IMPORT_MAX_ARGON2_T 64
#define IMPORT_MAX_BCRYPT_COST 16
#define IMPORT_MAX_SHA_ROUNDS 5000000UL
#define SCRAM_DEFAULT_ITERATIONS 4096

#define PFX_ARGON2ID "{ARGON2ID}"
#define PFX_SHA512 "{SHA512-CRYPT}"
#define PFX_BLF "{BLF-CRYPT}"

static void argon2_params(const struct auth_settings *set, uint32_t *t,
			  uint32_t *m, uint32_t *p)
{
	*t = set->argon2_t_cost ? set->argon2_t_cost : ARGON2_DEFAULT_T;
	*m = set->argon2_m_cost_kib ? set->argon2_m_cost_kib : ARGON2_DEFAULT_M;
	*p = set->argon2_parallelism ? set->argon2_parallelism : ARGON2_DEFAULT_P;
}

uint32_t auth_scram_iterations(const struct auth_settings *set)
{
	return set->scram_iterations ? set->scram_iterations
				     : SCRAM_DEFAULT_ITERATIONS;
}

static bool has_prefix(const char *s, const char *pfx)
{
	return strncmp(s, pfx, strlen(pfx)) == 0;
}

int auth_hash_password(const struct auth_settings *set, const char *password,
		       char *out, size_t out_size)
{
	uint32_t t, m, p;
	uint8_t salt[ARGON2_SALT_LEN];
	argon2_params(set, &t, &m, &p);
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	size_t pfx = strlen(PFX_ARGON2ID);
	size_t need = argon2_encodedlen(t, m, p, sizeof(salt), ARGON2_HASH_LEN,
					Argon2_id);
	if (out_size < pfx + need)
		return -1;
	memcpy(out, PFX_ARGON2ID, pfx);
	int rc = argon2id_hash_encoded(t, m, p, password, strlen(password),
				       salt, sizeof(salt), ARGON2_HASH_LEN,
				       out + pfx, out_size - pfx);
	return rc == ARGON2_OK ? 0 : -1;
}

void auth_hash_dummy(const struct auth_settings *set, const char *password)
{
	uint32_t t, m, p;
	uint8_t salt[ARGON2_SALT_LEN] = {0}, out[ARGON2_HASH_LEN];
	argon2_params(set, &t, &m, &p);
	(void)argon2id_hash_raw(t, m, p, password, strlen(password), salt,
				sizeof(salt), out, sizeof(out));
}

/* "$argon2id$v=19$m=M,t=T,p=P$..." -> M, T, P; -1 if not that shape. */
static int argon2_parse(const char *enc, uint32_t *m, uint32_t *t, uint32_t *p)
{
	unsigned v, mm, tt, pp;
	int n = 0;
	if (sscanf(enc, "$argon2id$v=%u$m=%u,t=%u,p=%u$%n", &v, &mm, &tt, &pp,
		   &n) != 4 || n == 0 || v != ARGON2_VERSION_13)
		return -1;
	*m = mm;
	*t = tt;
	*p = pp;
	return 0;
}

bool auth_hash_needs_rehash(const struct auth_settings *set, const char *hash)
{
	uint32_t t, m, p, ht, hm, hp;
	if (!has_prefix(hash, PFX_ARGON2ID))
		return true;
	argon2_params(set, &t, &m, &p);
	if (argon2_parse(hash + strlen(PFX_ARGON2ID), &hm, &ht, &hp) < 0)
		return true;
	return hm != m || ht != t || hp != p;
}

void auth_hash_scheme(const char *hash, char *out, size_t out_size)
{
	const char *end = hash[0] == '{' ? strchr(hash, '}') : NULL;
	if (end == NULL) {
		snprintf(out, out_size, "unknown");
		return;
	}
	snprintf(out, out_size, "%.*s", (int)(end - hash - 1), hash + 1);
}

/* crypt_r(3) with the stored string as setting; the result must equal it. */
static int crypt_verify(const char *stored, const char *password)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *res = crypt_r(password, stored, cd);
	int ret;
	if (res == NULL || res[0] == '*') {
		ret = -1;
	} else {
		size_t n = strlen(stored);
		ret = strlen(res) == n && CRYPTO_memcmp(res, stored, n) == 0;
	}
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ret;
}

int auth_hash_verify(const char *hash, const char *password)
{
	/* a shared address (auth_shared_add): no password opens it */
	if (strcmp(hash, AUTH_HASH_NOLOGIN) == 0)
		return 0;
	if (has_prefix(hash, PFX_ARGON2ID)) {
		const char *enc = hash + strlen(PFX_ARGON2ID);
		int rc = argon2id_verify(enc, password, strlen(password));
		if (rc == ARGON2_OK)
			return 1;
		return rc == ARGON2_VERIFY_MISMATCH ? 0 : -1;
	}
	if (has_prefix(hash, PFX_SHA512))
		return crypt_verify(hash + strlen(PFX_SHA512), password);
	if (has_prefix(hash, PFX_BLF))
		return crypt_verify(hash + strlen(PFX_BLF), password);
	return -1;
}

static int validate_sha512(const char *s, char **error_r)
{
	if (!has_prefix(s, "$6$")) {
		*error_r = xstrdup("SHA512-CRYPT hash must start with $6$");
		return -1;
	}
	unsigned long rounds;
	if (sscanf(s, "$6$rounds=%lu$", &rounds) == 1 &&
	    rounds > IMPORT_MAX_SHA_ROUNDS) {
		*error_r = xstrdup("SHA512-CRYPT rounds too high");
		return -1;
	}
	return 0;
}

static int validate_bcrypt(const char *s, char **error_r)
{
	unsigned cost;
	char v;
	if (sscanf(s, "$2%c$%2u$", &v, &cost) != 2 ||
	    (v != 'a' && v != 'b' && v != 'y') || strlen(s) != 60) {
		*error_r = xstrdup("BLF-CRYPT hash must look like "
				   "$2y$NN$ + 53 characters");
		return -1;
	}
	if (cost < 4 || cost > IMPORT_MAX_BCRYPT_COST) {
		*error_r = xasprintf("BLF-CRYPT cost must be 4..%d",
				     IMPORT_MAX_BCRYPT_COST);
		return -1;
	}
	return 0;
}

static int validate_argon2(const char *s, char **error_r)
{
	uint32_t m, t, p;
	if (argon2_parse(s, &m, &t, &p) < 0) {
		*error_r = xstrdup("ARGON2ID hash must look like "
				   "$argon2id$v=19$m=M,t=T,p=P$salt$hash");
		return -1;
	}
	if (m > IMPORT_MAX_ARGON2_M || t > IMPORT_MAX_ARGON2_T || p > 64 ||
	    p == 0 || t == 0) {
		*error_r = xstrdup("ARGON2ID parameters out of range");
		return -1;
	}
	return 0;
}

int auth_hash_validate(const char *hash, char **error_r)
{
	int rc;
	const char *rest;
	if (has_prefix(hash, PFX_SHA512)) {
		rest = hash + strlen(PFX_SHA512);
		rc = validate_sha512(rest, error_r);
	} else if (has_prefix(hash, PFX_BLF)) {
		rest = hash + strlen(PFX_BLF);
		rc = validate_bcrypt(rest, error_r);
	} else if (has_prefix(hash, PFX_ARGON2ID)) {
		rest = hash + strlen(PFX_ARGON2ID);
		rc = validate_argon2(rest, error_r);
	} else {
		*error_r = xstrdup("unknown scheme: expected {SHA512-CRYPT}, "
				   "{BLF-CRYPT} or {ARGON2ID}");
		return -1;
	}
	if (rc < 0)
		return -1;
	if (strlen(hash) >= sizeof(((struct auth_user_row *)0)->hash)) {
		*error_r = xstrdup("hash too long");
		return -1;
	}
	/* The hash must be usable: a check against a dummy password has to
	 * get as far as a clean mismatch. */
	if (auth_hash_verify(hash, "\x01loft-import-check\x01") < 0) {
		*error_r = xstrdup("malformed hash");
		return -1;
	}
	return 0;
}

int auth_scram_keys(const char *password, const uint8_t *salt,
		    size_t salt_len, uint32_t iterations,
		    uint8_t stored_key[AUTH_SCRAM_KEY_LEN],
		    uint8_t server_key[AUTH_SCRAM_KEY_LEN])
{
	uint8_t salted[AUTH_SCRAM_KEY_LEN], client_key[AUTH_SCRAM_KEY_LEN];
	unsigned len = AUTH_SCRAM_KEY_LEN;
	/* RFC 5802 3: SaltedPassword := Hi(Normalize(password), salt, i).
	 * Normalize (SASLprep) is the identity for ASCII passwords. */
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt,
			      (int)salt_len, (int)iterations, EVP_sha256(),
			      sizeof(salted), salted) != 1)
		return -1;
	if (HMAC(EVP_sha256(), salted, sizeof(salted),
		 (const uint8_t *)"Client Key", 10, client_key, &len) == NULL ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
		 (const uint8_t *)"Server Key", 10, server_key, &len) == NULL)
		return -1;
	SHA256(client_key, sizeof(client_key), stored_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return 0;
}
