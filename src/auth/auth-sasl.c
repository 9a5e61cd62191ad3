/*
 * SASL server mechanisms, protocol-neutral: the front-end (IMAP
 * AUTHENTICATE, POP3 AUTH, later SMTP AUTH) does the base64 and the
 * framing, this file the exchange.
 *
 *   PLAIN          RFC 4616; authzid must be empty or equal to authcid.
 *   LOGIN          draft-murchison-sasl-login: "Username:", "Password:".
 *   SCRAM-SHA-256  RFC 7677 / RFC 5802, without channel binding: "n,," and
 *                  "y,," are accepted (we do not offer -PLUS, RFC 5802 6),
 *                  "p=" is refused. The server-final message (v=...) is
 *                  sent as one more challenge; the exchange succeeds when
 *                  the client answers it with an empty response, so IMAP
 *                  and POP3 need no "additional data with success".
 *
 * A step never checks a credential itself: when the exchange has one to
 * check (PLAIN's message, LOGIN's password, SCRAM's client-final) it
 * returns AUTH_SASL_CHECK, and the login gate (auth-login.c) decides when
 * the check runs (throttling) and where (the bounded hash pool for a
 * password, the worker for a SCRAM proof). auth_sasl_step_now does it at
 * once, for tests and tools.
 *
 * In the mail process (a client struct auth, auth-client.c) PLAIN and
 * LOGIN run here as everywhere (they hold nothing secret; their password
 * is checked through the auth process), while a SCRAM-SHA-256 exchange
 * runs in the auth process, which alone has the stored keys: begin, each
 * step, the proof check and free are requests; the login name it parsed
 * comes back with the step that asks for the check.
 */
#include "auth-private.h"
#include "base64.h"

#include "buf.h"
#include "log.h"
#include "saslprep.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCRAM_NONCE_RAND 18        /* 24 base64 characters */
#define SASL_MSG_MAX 4096

enum mech { MECH_PLAIN, MECH_LOGIN, MECH_SCRAM };

struct auth_sasl {
	struct auth *auth;
	enum mech mech;
	int state;
	char remote[64];
	char login[AUTH_ADDRESS_MAX + 1];   /* authcid / user name */
	char *password;                     /* PLAIN, LOGIN: to check */
	/* SCRAM client-final, to check */
	char *auth_msg;
	uint8_t proof[32];
	/* SCRAM */
	char *gs2_header;
	char *client_first_bare;
	char *server_first;
	char *nonce;
	char *test_nonce;
	bool user_ok;                       /* found, with SCRAM keys */
	struct auth_user_row row;
	/* In a client (auth-client.c): the exchange in the auth process. */
	uint32_t remote_id;
	uint64_t remote_gen;
};

int auth_sasl_begin(struct auth *auth, const char *mech, const char *remote,
		    struct auth_sasl **sasl_r)
{
	enum mech m;
	if (strcasecmp(mech, "PLAIN") == 0)
		m = MECH_PLAIN;
	else if (strcasecmp(mech, "LOGIN") == 0)
		m = MECH_LOGIN;
	else if (strcasecmp(mech, "SCRAM-SHA-256") == 0)
		m = MECH_SCRAM;
	else
		return -1;
	struct auth_sasl *s = xcalloc(1, sizeof(*s));
	s->auth = auth;
	s->mech = m;
	snprintf(s->remote, sizeof(s->remote), "%s", remote ? remote : "");
	/* A client whose auth process is away still returns an exchange: its
	 * first step fails as temporary (NO [UNAVAILABLE]), not as an
	 * unknown mechanism. */
	if (auth->client != NULL && m == MECH_SCRAM)
		(void)auth_client_sasl_begin(auth, mech, remote, &s->remote_id,
					     &s->remote_gen);
	*sasl_r = s;
	return 0;
}

void auth_sasl_free(struct auth_sasl **saslp)
{
	struct auth_sasl *s = *saslp;
	if (s == NULL)
		return;
	if (s->auth->client != NULL && s->mech == MECH_SCRAM)
		auth_client_sasl_free(s->auth, s->remote_id, s->remote_gen);
	free(s->gs2_header);
	free(s->client_first_bare);
	free(s->server_first);
	free(s->nonce);
	free(s->test_nonce);
	free(s->auth_msg);
	if (s->password != NULL) {
		OPENSSL_cleanse(s->password, strlen(s->password));
		free(s->password);
	}
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	*saslp = NULL;
}

void auth_sasl_set_test_nonce(struct auth_sasl *sasl, const char *nonce)
{
	free(sasl->test_nonce);
	sasl->test_nonce = xstrdup(nonce);
}

static enum auth_sasl_status reply(const char *s, size_t len, char **out_r,
				   size_t *out_len_r,
				   enum auth_sasl_status status)
{
	*out_r = xstrndup(s, len);
	*out_len_r = len;
	return status;
}

enum auth_sasl_status auth_sasl_status_of(enum auth_result r)
{
	switch (r) {
	case AUTH_OK: return AUTH_SASL_OK;
	case AUTH_TEMPFAIL: return AUTH_SASL_TEMPFAIL;
	default: return AUTH_SASL_FAIL;
	}
}

/* The credentials of a PLAIN or LOGIN exchange, to check. */
static enum auth_sasl_status pending(struct auth_sasl *s, const char *login,
				     size_t login_len, const char *pw,
				     size_t pw_len)
{
	memcpy(s->login, login, login_len);
	s->login[login_len] = '\0';
	s->password = xstrndup(pw, pw_len);
	return AUTH_SASL_CHECK;
}

/* ---- PLAIN ----------------------------------------------------------- */

static enum auth_sasl_status plain_step(struct auth_sasl *s, const char *in,
					size_t len)
{
	/* message = [authzid] NUL authcid NUL passwd (RFC 4616 2) */
	const char *nul1 = memchr(in, '\0', len);
	const char *nul2 = nul1 ? memchr(nul1 + 1, '\0',
					 len - (size_t)(nul1 + 1 - in)) : NULL;
	if (nul2 == NULL || memchr(nul2 + 1, '\0',
				   len - (size_t)(nul2 + 1 - in)) != NULL)
		return AUTH_SASL_FAIL;
	size_t zlen = (size_t)(nul1 - in);
	size_t clen = (size_t)(nul2 - nul1 - 1);
	size_t plen = len - (size_t)(nul2 + 1 - in);
	if (clen == 0 || clen > AUTH_ADDRESS_MAX || plen == 0 ||
	    plen > AUTH_PASSWORD_MAX)
		return AUTH_SASL_FAIL;
	if (zlen > 0 && (zlen != clen || strncasecmp(in, nul1 + 1, clen) != 0))
		return AUTH_SASL_FAIL;
	return pending(s, nul1 + 1, clen, nul2 + 1, plen);
}

/* ---- LOGIN ----------------------------------------------------------- */

static enum auth_sasl_status login_step(struct auth_sasl *s, const char *in,
					size_t len, char **out_r,
					size_t *out_len_r)
{
	static const char user_prompt[] = "Username:";
	static const char pass_prompt[] = "Password:";
	if (s->state == 0 && in == NULL) {
		s->state = 1;
		return reply(user_prompt, strlen(user_prompt), out_r,
			     out_len_r, AUTH_SASL_CONTINUE);
	}
	if (in == NULL || memchr(in, '\0', len) != NULL)
		return AUTH_SASL_FAIL;
	if (s->state <= 1) {
		if (len == 0 || len > AUTH_ADDRESS_MAX)
			return AUTH_SASL_FAIL;
		memcpy(s->login, in, len);
		s->login[len] = '\0';
		s->state = 2;
		return reply(pass_prompt, strlen(pass_prompt), out_r,
			     out_len_r, AUTH_SASL_CONTINUE);
	}
	if (len == 0 || len > AUTH_PASSWORD_MAX || s->state > 2)
		return AUTH_SASL_FAIL;
	s->state = 3;
	char login[AUTH_ADDRESS_MAX + 1];
	memcpy(login, s->login, sizeof(login));
	return pending(s, login, strlen(login), in, len);
}

/* ---- SCRAM-SHA-256 --------------------------------------------------- */

/* saslname (RFC 5802 5.1): "=2C" is ',', "=3D" is '='; any other '=' is
 * an error. */
static int saslname_decode(const char *in, size_t len, char *out,
			   size_t size)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '=') {
			if (len - i < 3)
				return -1;
			if (memcmp(in + i, "=2C", 3) == 0)
				c = ',';
			else if (memcmp(in + i, "=3D", 3) == 0)
				c = '=';
			else
				return -1;
			i += 2;
		} else if (c == ',' || c == '\0') {
			return -1;
		}
		if (n + 1 >= size)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static bool printable_nonce(const char *p, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	}
	return true;
}

/* A salt for unknown users that stays the same across attempts, so a
 * client cannot tell them from real ones by the salt changing. */
static void fake_salt(struct auth_sasl *s)
{
	uint8_t mac[32];
	unsigned len = sizeof(mac);
	HMAC(EVP_sha256(), s->auth->secret, sizeof(s->auth->secret),
	     (const uint8_t *)s->login, strlen(s->login), mac, &len);
	memcpy(s->row.scram_salt, mac, AUTH_SCRAM_SALT_LEN);
	s->row.scram_salt_len = AUTH_SCRAM_SALT_LEN;
	s->row.scram_iterations = auth_scram_iterations(&s->auth->set);
}

static enum auth_sasl_status scram_first(struct auth_sasl *s, const char *in,
					 size_t len, char **out_r,
					 size_t *out_len_r)
{
	/* gs2-header = gs2-cbind-flag "," [ authzid ] "," (RFC 5802 7) */
	if (len < 3 || (in[0] != 'n' && in[0] != 'y') || in[1] != ',')
		return AUTH_SASL_FAIL;   /* "p=": channel binding not offered */
	const char *comma = memchr(in + 2, ',', len - 2);
	if (comma == NULL)
		return AUTH_SASL_FAIL;
	char authzid[AUTH_ADDRESS_MAX + 1] = "";
	if (comma > in + 2) {
		if (strncmp(in + 2, "a=", 2) != 0 ||
		    saslname_decode(in + 4, (size_t)(comma - in - 4), authzid,
				    sizeof(authzid)) < 0)
			return AUTH_SASL_FAIL;
	}
	const char *bare = comma + 1;
	size_t blen = len - (size_t)(bare - in);
	/* client-first-message-bare = "n=" saslname ",r=" nonce [,ext] ;
	 * a mandatory extension "m=" is refused (RFC 5802 5.1). */
	if (blen < 2 || strncmp(bare, "n=", 2) != 0)
		return AUTH_SASL_FAIL;
	const char *uend = memchr(bare, ',', blen);
	if (uend == NULL ||
	    saslname_decode(bare + 2, (size_t)(uend - bare - 2), s->login,
			    sizeof(s->login)) < 0)
		return AUTH_SASL_FAIL;
	/* RFC 5802 5.1: the user name is prepared with SASLprep. */
	char *prepped;
	const char *why;
	if (saslprep(s->login, SASLPREP_QUERY, &prepped, &why) < 0)
		return AUTH_SASL_FAIL;
	snprintf(s->login, sizeof(s->login), "%s", prepped);
	free(prepped);
	const char *r = uend + 1;
	size_t rlen = blen - (size_t)(r - bare);
	if (rlen < 3 || strncmp(r, "r=", 2) != 0)
		return AUTH_SASL_FAIL;
	const char *rend = memchr(r, ',', rlen);
	size_t nlen = (size_t)((rend ? rend : r + rlen) - r - 2);
	if (!printable_nonce(r + 2, nlen))
		return AUTH_SASL_FAIL;
	if (authzid[0] != '\0' && strcasecmp(authzid, s->login) != 0)
		return AUTH_SASL_FAIL;

	s->gs2_header = xstrndup(in, (size_t)(bare - in));
	s->client_first_bare = xstrndup(bare, blen);
	int found = auth_db_user_row(s->auth, s->login, &s->row);
	if (found < 0)
		return AUTH_SASL_TEMPFAIL;
	s->user_ok = found == 1 && s->row.has_scram;
	if (!s->user_ok)
		fake_salt(s);

	char *server_part;
	if (s->test_nonce != NULL) {
		server_part = xstrdup(s->test_nonce);
	} else {
		uint8_t rnd[SCRAM_NONCE_RAND];
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return AUTH_SASL_TEMPFAIL;
		server_part = base64_encode(rnd, sizeof(rnd));
	}
	s->nonce = xasprintf("%.*s%s", (int)nlen, r + 2, server_part);
	free(server_part);
	char *salt = base64_encode(s->row.scram_salt,
					s->row.scram_salt_len);
	s->server_first = xasprintf("r=%s,s=%s,i=%u", s->nonce, salt,
				    s->row.scram_iterations);
	free(salt);
	s->state = 2;
	return reply(s->server_first, strlen(s->server_first), out_r,
		     out_len_r, AUTH_SASL_CONTINUE);
}

/* Checks the proof of client-final; fills the server signature. */
static bool scram_proof_ok(struct auth_sasl *s, const char *auth_msg,
			   const uint8_t *proof, uint8_t server_sig[32])
{
	uint8_t client_sig[32], client_key[32], stored[32];
	unsigned len = 32;
	HMAC(EVP_sha256(), s->row.stored_key, 32, (const uint8_t *)auth_msg,
	     strlen(auth_msg), client_sig, &len);
	for (int i = 0; i < 32; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	SHA256(client_key, sizeof(client_key), stored);
	bool ok = CRYPTO_memcmp(stored, s->row.stored_key, 32) == 0;
	HMAC(EVP_sha256(), s->row.server_key, 32, (const uint8_t *)auth_msg,
	     strlen(auth_msg), server_sig, &len);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok && s->user_ok;
}

/* Parses client-final; the proof is checked by auth_sasl_check_scram. */
static enum auth_sasl_status scram_final(struct auth_sasl *s, const char *in,
					 size_t len)
{
	/* client-final-message = "c=" b64(gs2-header) ",r=" nonce [,ext]
	 * ",p=" proof (RFC 5802 7) */
	char *msg = xstrndup(in, len);
	enum auth_sasl_status ret = AUTH_SASL_FAIL;
	char *p = strlen(msg) == len ? strstr(msg, ",p=") : NULL;
	char *cb = base64_encode(s->gs2_header, strlen(s->gs2_header));
	char *expect = xasprintf("c=%s,r=%s", cb, s->nonce);
	size_t elen = strlen(expect);
	struct buf pb;
	uint8_t *proof = NULL;
	buf_init(&pb, 64);
	if (p == NULL || strncmp(msg, expect, elen) != 0 ||
	    (msg + elen != p && msg[elen] != ',') ||
	    strchr(p + 3, ',') != NULL ||
	    base64_decode(p + 3, strlen(p + 3), BASE64_STRICT, &pb) < 0 ||
	    pb.len != 32) {
		buf_free(&pb);
		goto out;
	}
	proof = (uint8_t *)buf_steal(&pb, NULL);
	*p = '\0';   /* msg is now client-final-message-without-proof */
	s->auth_msg = xasprintf("%s,%s,%s", s->client_first_bare,
				s->server_first, msg);
	memcpy(s->proof, proof, sizeof(s->proof));
	s->state = 5;
	ret = AUTH_SASL_CHECK;
out:
	free(proof);
	free(expect);
	free(cb);
	free(msg);
	return ret;
}

enum auth_sasl_status auth_sasl_check_scram(struct auth_sasl *s, char **out_r,
					    size_t *out_len_r, bool *proof_ok_r)
{
	*out_r = NULL;
	*out_len_r = 0;
	*proof_ok_r = false;
	if (s->auth->client != NULL)
		return auth_client_sasl_check(s->auth, s->remote_id,
					      s->remote_gen, out_r, out_len_r,
					      proof_ok_r);
	if (s->mech != MECH_SCRAM || s->state != 5 || s->auth_msg == NULL)
		return AUTH_SASL_FAIL;
	uint8_t server_sig[32];
	bool ok = scram_proof_ok(s, s->auth_msg, s->proof, server_sig);
	free(s->auth_msg);
	s->auth_msg = NULL;
	OPENSSL_cleanse(s->proof, sizeof(s->proof));
	*proof_ok_r = ok;
	if (!ok || s->row.user.disabled) {
		s->state = 6;
		return AUTH_SASL_FAIL;
	}
	char *v = base64_encode(server_sig, sizeof(server_sig));
	char *final = xasprintf("v=%s", v);
	free(v);
	*out_len_r = strlen(final);
	*out_r = final;
	s->state = 3;
	return AUTH_SASL_CONTINUE;
}

struct auth *auth_sasl_auth(const struct auth_sasl *s)
{
	return s->auth;
}

const char *auth_sasl_login(const struct auth_sasl *s)
{
	return s->login;
}

const char *auth_sasl_password(const struct auth_sasl *s)
{
	return s->password;
}

bool auth_sasl_checks_proof(const struct auth_sasl *s)
{
	return s->mech == MECH_SCRAM;
}

void auth_sasl_checked(struct auth_sasl *s)
{
	if (s->password != NULL) {
		OPENSSL_cleanse(s->password, strlen(s->password));
		free(s->password);
		s->password = NULL;
	}
	s->state = 6;   /* PLAIN and LOGIN are over */
}

static enum auth_sasl_status scram_step(struct auth_sasl *s, const char *in,
					size_t len, char **out_r,
					size_t *out_len_r,
					struct auth_user *user_r)
{
	switch (s->state) {
	case 0:
		if (in == NULL) {
			s->state = 1;
			return reply("", 0, out_r, out_len_r,
				     AUTH_SASL_CONTINUE);
		}
		return scram_first(s, in, len, out_r, out_len_r);
	case 1:
		return in ? scram_first(s, in, len, out_r, out_len_r)
			  : AUTH_SASL_FAIL;
	case 2:
		return in ? scram_final(s, in, len) : AUTH_SASL_FAIL;
	case 3:
		/* The client acknowledged v=...: an empty response. */
		if (in == NULL || len != 0)
			return AUTH_SASL_FAIL;
		*user_r = s->row.user;
		s->state = 4;
		return reply("", 0, out_r, out_len_r, AUTH_SASL_OK);
	default:
		return AUTH_SASL_FAIL;
	}
}

enum auth_sasl_status auth_sasl_step(struct auth_sasl *s, const void *in,
				     size_t in_len, char **out_r,
				     size_t *out_len_r, struct auth_user *user_r)
{
	*out_r = NULL;
	*out_len_r = 0;
	if (in_len > SASL_MSG_MAX)
		return AUTH_SASL_FAIL;
	if (s->auth->client != NULL && s->mech == MECH_SCRAM)
		return auth_client_sasl_step(s->auth, s->remote_id,
					     s->remote_gen, in, in_len, out_r,
					     out_len_r, user_r, s->login,
					     sizeof(s->login));
	enum auth_sasl_status st;
	switch (s->mech) {
	case MECH_PLAIN:
		if (in == NULL && s->state == 0) {
			s->state = 1;
			st = reply("", 0, out_r, out_len_r, AUTH_SASL_CONTINUE);
		} else if (in == NULL || s->state > 1) {
			st = AUTH_SASL_FAIL;
		} else {
			s->state = 2;
			st = plain_step(s, in, in_len);
		}
		break;
	case MECH_LOGIN:
		st = login_step(s, in, in_len, out_r, out_len_r);
		break;
	case MECH_SCRAM:
		st = scram_step(s, in, in_len, out_r, out_len_r, user_r);
		break;
	default:
		st = AUTH_SASL_FAIL;
	}
	if (st != AUTH_SASL_CONTINUE && st != AUTH_SASL_OK &&
	    st != AUTH_SASL_CHECK) {
		free(*out_r);
		*out_r = NULL;
		*out_len_r = 0;
	}
	if (*out_r == NULL && st == AUTH_SASL_OK)
		*out_r = xstrdup("");
	return st;
}

enum auth_sasl_status auth_sasl_step_now(struct auth_sasl *s, const void *in,
					 size_t in_len, char **out_r,
					 size_t *out_len_r,
					 struct auth_user *user_r)
{
	enum auth_sasl_status st = auth_sasl_step(s, in, in_len, out_r,
						  out_len_r, user_r);
	if (st != AUTH_SASL_CHECK)
		return st;
	free(*out_r);
	if (auth_sasl_checks_proof(s)) {
		bool ok;
		return auth_sasl_check_scram(s, out_r, out_len_r, &ok);
	}
	enum auth_result r = auth_check_password(s->auth, s->login, s->password,
						 user_r);
	auth_sasl_checked(s);
	*out_r = r == AUTH_OK ? xstrdup("") : NULL;
	*out_len_r = 0;
	return auth_sasl_status_of(r);
}
