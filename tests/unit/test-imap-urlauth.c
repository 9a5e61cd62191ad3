/*
 * imap_urlauth_resolve (imap-urlauth.h), the function SMTP's BURL calls:
 * a URL made by GENURLAUTH's INTERNAL mechanism resolves for the
 * submitter it names, and not for others, not when forged, expired,
 * re-keyed, or when the message is gone; sections and partials give the
 * octets FETCH would. The URLs are signed here as GENURLAUTH signs them
 * (HMAC-SHA1 of the rump with the mailbox's access key).
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "imap-urlauth.h"
#include "store.h"
#include "test.h"

static char data_dir[256];
static struct store *store;
static struct auth *auth;
static struct auth_user alice, bob;

static void setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(data_dir, sizeof(data_dir), "%s/loft-test-urlauth-XXXXXX", tmp);
	if (mkdtemp(data_dir) == NULL)
		abort();
	struct auth_settings aset;
	auth_settings_defaults(&aset);
	aset.data_dir = data_dir;
	aset.argon2_t_cost = 1;
	aset.argon2_m_cost_kib = 64;
	aset.argon2_parallelism = 1;
	aset.throttle_disabled = true;
	char *error = NULL;
	if (auth_open(&aset, &auth, &error) < 0 ||
	    auth_domain_add(auth, "example.test", &error) < 0 ||
	    auth_user_add(auth, "alice@example.test", "Correct-Horse-17", false,
			  &alice, &error) < 0 ||
	    auth_user_add(auth, "bob@example.test", "Battery-Staple-29", false,
			  &bob, &error) < 0) {
		fprintf(stderr, "auth: %s\n", error ? error : "?");
		abort();
	}
	struct store_settings sset = {.data_dir = data_dir, .fsync = false};
	struct store_error err;
	if (store_open(&sset, &store, &err) < 0)
		abort();
}

static void teardown(void)
{
	store_close(&store);
	auth_close(&auth);
	char *cmd = xasprintf("rm -rf '%s'", data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", data_dir);
	free(cmd);
}

/* rump + ":INTERNAL:" + token, as GENURLAUTH answers */
static char *sign(struct store_user *u, const char *mailbox, const char *rump)
{
	unsigned char key[STORE_URLAUTH_KEY_LEN], mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	struct store_error err;
	CHECK_INT(store_urlauth_key(u, mailbox, false, key, &err), 0);
	HMAC(EVP_sha1(), key, sizeof(key), (const unsigned char *)rump,
	     strlen(rump), mac, &len);
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s:INTERNAL:", rump);
	for (unsigned i = 0; i < len; i++)
		buf_printf(&b, "%02x", mac[i]);
	size_t n;
	return buf_steal(&b, &n);
}

static bool resolves(int64_t submitter, const char *url, const char *want)
{
	char *data = NULL, *error = NULL;
	size_t len = 0;
	int r = imap_urlauth_resolve(store, auth, submitter, url, &data, &len,
				     &error);
	bool ok = want == NULL ? r < 0 && error != NULL && error[0] != '\0'
			       : r == 0 && len == strlen(want) &&
				 memcmp(data, want, len) == 0;
	if (!ok)
		fprintf(stderr, "  %s -> %d %s [%.*s]\n", url, r, error ? error : "",
			(int)len, data ? data : "");
	free(data);
	free(error);
	return ok;
}

static void test_resolve(void)
{
	setup();
	struct store_user *u;
	struct store_error err;
	uint32_t uid, uv;
	const char *msg = "Subject: burl\r\nFrom: alice@example.test\r\n\r\nthe body\r\n";
	CHECK_INT(store_user_open(store, alice.id, &u, &err), 0);
	CHECK_INT(store_append(u, "INBOX", msg, strlen(msg), NULL, &uid, &uv, &err), 0);
	char rump[512];
	snprintf(rump, sizeof(rump), "imap://alice%%40example.test@loft.example.test/INBOX;"
		 "UIDVALIDITY=%u/;UID=%u;URLAUTH=submit+bob%%40example.test", uv, uid);
	char *url = sign(u, "INBOX", rump);
	CHECK(resolves(bob.id, url, msg));
	CHECK(resolves(alice.id, url, NULL));   /* submit+bob: not for alice */
	/* sections and partials, as FETCH BODY[] gives them */
	snprintf(rump, sizeof(rump), "imap://alice%%40example.test@h/INBOX;UIDVALIDITY=%u"
		 "/;UID=%u/;SECTION=TEXT/;PARTIAL=4.3;URLAUTH=authuser", uv, uid);
	char *part = sign(u, "INBOX", rump);
	CHECK(resolves(bob.id, part, "bod"));
	CHECK(resolves(alice.id, part, "bod"));
	/* forged, changed, expired */
	char *forged = xstrdup(url);
	forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0';
	CHECK(resolves(bob.id, forged, NULL));
	snprintf(rump, sizeof(rump), "imap://alice%%40example.test@h/INBOX;UIDVALIDITY=%u"
		 "/;UID=%u;EXPIRE=2000-01-01T00:00:00Z;URLAUTH=authuser", uv, uid);
	char *expired = sign(u, "INBOX", rump);
	CHECK(resolves(bob.id, expired, NULL));
	CHECK(resolves(bob.id, "imap://alice%40example.test@h/INBOX/;UID=1", NULL));
	CHECK(resolves(bob.id, "not a url", NULL));
	CHECK(resolves(bob.id, "/INBOX;UIDVALIDITY=1/;UID=1;URLAUTH=authuser:INTERNAL:"
		       "0000000000000000000000000000000000000000", NULL));
	CHECK(resolves(424242, url, NULL));    /* no such submitter */
	/* a new key voids the URLs of the mailbox */
	unsigned char key[STORE_URLAUTH_KEY_LEN];
	CHECK_INT(store_urlauth_key(u, "INBOX", true, key, &err), 0);
	CHECK(resolves(bob.id, url, NULL));
	char *url2 = sign(u, "INBOX", strstr(url, ":INTERNAL:") == NULL ? url :
			  (*strstr(url, ":INTERNAL:") = '\0', url));
	CHECK(resolves(bob.id, url2, msg));
	/* the message gone: no data, a reason */
	struct store_uid_range r = {uid, uid};
	uint32_t *gone = NULL;
	size_t ngone = 0;
	CHECK_INT(store_expunge(u, "INBOX", &r, 1, true, &gone, &ngone, &err), 0);
	free(gone);
	CHECK(resolves(bob.id, url2, NULL));
	free(url);
	free(url2);
	free(part);
	free(forged);
	free(expired);
	store_user_unref(&u);
	teardown();
}

int main(void)
{
	static const struct test_case cases[] = {
		{"resolve", test_resolve},
		{NULL, NULL},
	};
	return test_main(cases);
}
