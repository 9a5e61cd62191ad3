/*
 * Fuzz target for the SASL server mechanisms (src/auth/auth-sasl.c):
 * PLAIN, LOGIN and SCRAM-SHA-256 messages, as a front-end hands them over
 * after base64 decoding.
 *
 * A real account database is made once per process in a temp dir (cheap
 * argon2 and SCRAM costs, no throttle sleeps): alice@example.test and a
 * disabled bob@example.test, both with the password PASSWORD, and the
 * alias al@example.test for alice. Besides surviving any input, the
 * exchange must never succeed without the password: PLAIN and LOGIN only
 * when the password sent prepares (SASLprep) to PASSWORD, SCRAM only when
 * the harness itself
 * computed the proof (flag bit 1: it plays a correct client for the
 * client-final message, with the fuzzer's bytes as extensions).
 *
 * Input: [mechanism][flags][messages separated by '\n']
 * flags bit 0: the first step has no initial response (NULL).
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth-private.h"
#include "buf.h"
#include "saslprep.h"
#include "base64.h"

/* base64.h's strict decoder into a fresh NUL-terminated array. */
static int b64dec(const char *in, size_t len, uint8_t **out_r, size_t *n_r)
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


#define PASSWORD "fuzzing-secret-1"

static struct auth *auth;
static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	auth_close(&auth);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	struct auth_settings set;
	char *error = NULL;

	auth_settings_defaults(&set);
	set.argon2_t_cost = 1;
	set.argon2_m_cost_kib = 64;
	set.argon2_parallelism = 1;
	set.scram_iterations = 16;
	set.throttle_disabled = true;
	set.cache_disabled = true;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/loft-fuzz-auth-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
	set.data_dir = tmpdir;
	if (auth_open(&set, &auth, &error) < 0 ||
	    auth_domain_add(auth, "example.test", &error) < 0 ||
	    auth_user_add(auth, "alice@example.test", PASSWORD, false, NULL,
			  &error) < 0 ||
	    auth_user_add(auth, "bob@example.test", PASSWORD, false, NULL,
			  &error) < 0 ||
	    auth_user_set(auth, "bob@example.test", "disabled", "yes",
			  &error) < 0 ||
	    auth_alias_add(auth, "al@example.test", "alice@example.test",
			   &error) < 0) {
		fprintf(stderr, "fuzz-auth-sasl setup: %s\n", error);
		abort();
	}
	atexit(cleanup);
}

/* The client-final message of a client that knows the password
 * (RFC 5802 3), for the server-first message sf; ext is put before the
 * proof. NULL if sf is not what the server sends. */
static char *scram_client_final(const char *gs2, size_t gs2_len,
				const char *client_first_bare, const char *sf,
				const char *ext, size_t ext_len)
{
	const char *r = strstr(sf, "r="), *s = strstr(sf, ",s="),
		   *i = strstr(sf, ",i=");
	if (r != sf || s == NULL || i == NULL || i < s)
		return NULL;
	char *nonce = xstrndup(r + 2, (size_t)(s - r - 2));
	uint8_t *salt;
	size_t salt_len;
	if (b64dec(s + 3, (size_t)(i - s - 3), &salt, &salt_len) < 0)
		abort();
	unsigned iter = (unsigned)strtoul(i + 3, NULL, 10);

	uint8_t salted[32], client_key[32], stored[32], sig[32], proof[32];
	unsigned len = 32;
	if (PKCS5_PBKDF2_HMAC(PASSWORD, (int)strlen(PASSWORD), salt, (int)salt_len,
			      (int)iter, EVP_sha256(), 32, salted) != 1)
		abort();
	HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10,
	     client_key, &len);
	SHA256(client_key, 32, stored);
	char *cb = base64_encode(gs2, gs2_len);
	char *without = xasprintf("c=%s,r=%s%.*s", cb, nonce, (int)ext_len, ext);
	char *auth_msg = xasprintf("%s,%s,%s", client_first_bare, sf, without);
	HMAC(EVP_sha256(), stored, 32, (const uint8_t *)auth_msg,
	     strlen(auth_msg), sig, &len);
	for (int k = 0; k < 32; k++)
		proof[k] = client_key[k] ^ sig[k];
	char *p = base64_encode(proof, 32);
	char *final = xasprintf("%s,p=%s", without, p);
	free(p);
	free(auth_msg);
	free(without);
	free(cb);
	free(salt);
	free(nonce);
	return final;
}

/* Whether the password sent is PASSWORD after SASLprep (RFC 4013). */
static bool is_secret(const char *p, size_t len)
{
	char *s = xstrndup(p, len), *prepped = NULL;
	const char *why;
	bool same = strlen(s) == len &&
		    saslprep(s, SASLPREP_QUERY, &prepped, &why) == 0 &&
		    strcmp(prepped, PASSWORD) == 0;
	free(prepped);
	free(s);
	return same;
}

/* PLAIN: the password is what follows the second NUL. */
static bool plain_is_secret(const char *msg, size_t len)
{
	const char *nul = memchr(msg, '\0', len);
	nul = nul != NULL ? memchr(nul + 1, '\0', len - (size_t)(nul + 1 - msg))
			  : NULL;
	return nul != NULL &&
	       is_secret(nul + 1, len - (size_t)(nul + 1 - msg));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = {"PLAIN", "LOGIN", "SCRAM-SHA-256"};
	struct auth_sasl *sasl;

	if (auth == NULL)
		setup();
	if (size < 2)
		return 0;
	int mech = data[0] % 3;
	bool no_initial = data[1] & 1, play_client = (data[1] >> 1) & 1;
	const char *p = (const char *)data + 2, *end = (const char *)data + size;

	if (auth_sasl_begin(auth, mechs[mech], "192.0.2.1", &sasl) < 0)
		abort();
	auth_sasl_set_test_nonce(sasl, "fuzzNonce");
	char *gs2 = NULL, *bare = NULL;
	bool computed = false;
	const char *last = NULL;
	size_t last_len = 0;
	for (int step = 0; step < 8; step++) {
		const char *msg = NULL;
		size_t len = 0;
		char *mine = NULL;
		if (!(step == 0 && no_initial)) {
			if (p > end)
				break;
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			msg = p;
			len = (size_t)((nl ? nl : end) - p);
			p = nl ? nl + 1 : end + 1;
		}
		char *out = NULL;
		size_t out_len = 0;
		struct auth_user user;
		memset(&user, 0, sizeof(user));
		if (mech == 2 && play_client && msg != NULL && bare != NULL &&
		    !computed && last != NULL &&
		    strncmp(last, "r=", 2) == 0) {
			/* client-final with the right proof */
			mine = scram_client_final(gs2, strlen(gs2), bare, last,
						  msg, len);
			if (mine != NULL) {
				msg = mine;
				len = strlen(mine);
				computed = true;
			}
		}
		if (mech == 2 && msg != NULL && bare == NULL) {
			/* remember gs2-header and client-first-bare */
			const char *c1 = memchr(msg, ',', len);
			const char *c2 = c1 ? memchr(c1 + 1, ',', len - (size_t)(c1 + 1 - msg)) : NULL;
			if (c2 != NULL) {
				gs2 = xstrndup(msg, (size_t)(c2 + 1 - msg));
				bare = xstrndup(c2 + 1, len - (size_t)(c2 + 1 - msg));
			}
		}
		enum auth_sasl_status st =
			auth_sasl_step_now(sasl, msg, len, &out, &out_len, &user);
		if ((st == AUTH_SASL_CONTINUE || st == AUTH_SASL_OK) != (out != NULL) ||
		    (out != NULL && strlen(out) != out_len))
			abort();
		if (st == AUTH_SASL_OK) {
			/* never without the password, never a disabled user */
			if (strcmp(user.address, "alice@example.test") != 0 ||
			    user.id <= 0 || user.disabled)
				abort();
			if (mech == 2 ? !computed
				      : msg == NULL ||
						(mech == 0 && !plain_is_secret(msg, len)) ||
						(mech == 1 && !is_secret(msg, len)))
				abort();
		}
		free(mine);
		if (st != AUTH_SASL_CONTINUE) {
			free(out);
			break;
		}
		/* the challenge SCRAM's client answers */
		free((char *)last);
		last = out;
		last_len = out_len;
	}
	(void)last_len;
	free((char *)last);
	free(gs2);
	free(bare);
	auth_sasl_free(&sasl);
	return 0;
}
