/*
 * A SCRAM-SHA-256 client (RFC 5802 3) for the unit tests of src/auth:
 * the client-final message for a server-first message and a password,
 * and the server signature the client expects back.
 */
#ifndef LOFT_TEST_SCRAM_H
#define LOFT_TEST_SCRAM_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "auth-private.h"
#include "base64.h"
#include "buf.h"

/* base64.h's strict decoder into a fresh NUL-terminated array. */
static inline int b64dec(const char *in, size_t len, uint8_t **out_r,
			 size_t *n_r)
{
	struct buf b;
	buf_init(&b, 0);
	if (base64_decode(in, len, BASE64_STRICT, &b) < 0) {
		buf_free(&b);
		return -1;
	}
	buf_append(&b, "", 0);
	*out_r = (uint8_t *)buf_steal(&b, n_r);
	return 0;
}

static inline char *scram_client_final(const char *server_first, const char *pw,
				const char *client_first_bare,
				const char *cbind_b64, uint8_t server_sig[32])
{
	const char *r = strstr(server_first, "r=");
	const char *sp = strstr(server_first, ",s=");
	const char *ip = strstr(server_first, ",i=");
	if (r == NULL || sp == NULL || ip == NULL)
		return NULL;
	char *nonce = xstrndup(r + 2, (size_t)(sp - r - 2));
	uint8_t *salt;
	size_t salt_len;
	if (b64dec(sp + 3, (size_t)(ip - sp - 3), &salt,
			       &salt_len) < 0)
		return NULL;
	int iter = atoi(ip + 3);
	uint8_t salted[32], ckey[32], skey[32], stored[32], csig[32];
	unsigned len = 32;
	PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)salt_len, iter,
			  EVP_sha256(), 32, salted);
	HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ckey,
	     &len);
	HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Server Key", 10, skey,
	     &len);
	SHA256(ckey, 32, stored);
	char *without = xasprintf("c=%s,r=%s", cbind_b64, nonce);
	char *am = xasprintf("%s,%s,%s", client_first_bare, server_first,
			     without);
	HMAC(EVP_sha256(), stored, 32, (uint8_t *)am, strlen(am), csig, &len);
	HMAC(EVP_sha256(), skey, 32, (uint8_t *)am, strlen(am), server_sig,
	     &len);
	uint8_t proof[32];
	for (int i = 0; i < 32; i++)
		proof[i] = ckey[i] ^ csig[i];
	char *p64 = base64_encode(proof, 32);
	char *msg = xasprintf("%s,p=%s", without, p64);
	free(p64);
	free(am);
	free(without);
	free(salt);
	free(nonce);
	return msg;
}

#endif
