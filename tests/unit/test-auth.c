/*
 * Unit tests of src/auth: settings from the config file, accounts.db admin
 * operations and lookups, the hash schemes (known vectors for
 * SHA512-CRYPT, BLF-CRYPT and argon2id; re-hash at the first login), SASL
 * PLAIN / LOGIN / SCRAM-SHA-256 (the RFC 7677 test vector, end to end),
 * throttling, the verification cache and policies.
 */
#include "test.h"
#include "test-scram.h"

#include "auth-private.h"
#include "auth-wire.h"
#include "buf.h"
#include "config.h"
#include "log.h"

#include <ftw.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <time.h>
#include <unistd.h>
#include "base64.h"

#define DOMAIN "example.test"
#define ALICE "alice@example.test"
#define TEST_CASE(name) static void name(void)

/* Known vectors (checked against crypt(3) / the argon2 reference). */
#define SHA512_VECTOR "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8" \
	"iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
#define SHA512_PASSWORD "Hello world!"
#define BLF_VECTOR "{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0Xou" \
	"QYb4YMJKvyOeW"
#define BLF_PASSWORD "U*U"
#define ARGON2_VECTOR "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$" \
	"CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
#define ARGON2_PASSWORD "password"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void cheap_settings(struct auth_settings *set)
{
	auth_settings_defaults(set);
	set->data_dir = tmpdir;
	set->argon2_t_cost = 1;
	set->argon2_m_cost_kib = 64;
	set->argon2_parallelism = 1;
	set->throttle_max_delay_ms = 200;
	/* tests/unit/pg_run.py: the accounts in PostgreSQL */
	set->postgres = getenv("LOFT_TEST_PG");
}

/* Each case starts with no accounts: on postgres, their schema goes. */
static void pg_empty(const char *conninfo)
{
	struct asql_conn *c = NULL;
	char *error = NULL;
	if (asql_pg_open(conninfo, 10, &c, &error) < 0) {
		fprintf(stderr, "postgres: %s\n", error);
		abort();
	}
	if (asql_exec(c, "DROP SCHEMA IF EXISTS loft_auth CASCADE") < 0) {
		fprintf(stderr, "postgres: %s\n", asql_errmsg(c));
		abort();
	}
	asql_close(c);
}

static struct auth *setup_with(struct auth_settings *set)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/loft-test-auth-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
	set->data_dir = tmpdir;
	if (set->postgres != NULL)
		pg_empty(set->postgres);
	struct auth *auth = NULL;
	char *error = NULL;
	if (auth_open(set, &auth, &error) < 0) {
		fprintf(stderr, "auth_open: %s\n", error);
		abort();
	}
	CHECK_INT(auth_domain_add(auth, DOMAIN, &error), 0);
	return auth;
}

static struct auth *setup(void)
{
	struct auth_settings set;
	cheap_settings(&set);
	return setup_with(&set);
}

static void teardown(struct auth **auth)
{
	auth_close(auth);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int add_user(struct auth *auth, const char *address, const char *pw,
		    bool is_hash)
{
	char *error = NULL;
	int rc = auth_user_add(auth, address, pw, is_hash, NULL, &error);
	if (rc < 0) {
		fprintf(stderr, "add %s: %s\n", address, error);
		free(error);
	}
	return rc;
}

static enum auth_result verify(struct auth *auth, const char *login,
			       const char *pw)
{
	struct auth_user u;
	return auth_verify(auth, login, pw, "192.0.2.1", &u);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *scheme_of(struct auth *auth, const char *address,
			     bool *has_scram)
{
	static char scheme[32];
	struct auth_user u;
	if (auth_lookup(auth, address, &u) != 1)
		return "(none)";
	if (auth_user_scheme(auth, u.id, scheme, sizeof(scheme), has_scram) < 0)
		return "(error)";
	return scheme;
}

/* ---- settings ---------------------------------------------------------- */

TEST_CASE(settings_from_config)
{
	static const char text[] =
		"data_dir = /srv/loft\n"
		"[policy]\n"
		"quota_bytes = 2G\n"
		"pop3_delete = hide\n"
		"pop3_retention_days = 14\n"
		"[auth]\n"
		"argon2_t_cost = 2\n"
		"argon2_m_cost = 64M\n"
		"allow_cleartext = yes\n"
		"cache_ttl = 0\n"
		"throttle_max_delay = 1500ms\n";
	struct config *cfg;
	struct buf errors;
	struct auth_settings set;
	buf_init(&errors, 0);
	CHECK_INT(config_parse("t.conf", text, strlen(text), &cfg, &errors), 0);
	CHECK_INT(auth_settings_from_config(cfg, &set, &errors), 0);
	CHECK_STR(set.data_dir, "/srv/loft");
	CHECK(set.defaults.quota_bytes == 2ULL << 30);
	CHECK_INT(set.defaults.pop3_delete, AUTH_POP3_HIDE);
	CHECK_INT(set.defaults.pop3_retention_days, 14);
	CHECK_INT(set.defaults.trash_retention_days, 30);
	CHECK_INT(set.argon2_t_cost, 2);
	CHECK_INT(set.argon2_m_cost_kib, 65536);
	CHECK(set.allow_cleartext_remote);
	CHECK(set.cache_disabled);
	CHECK_INT(set.throttle_max_delay_ms, 1500);
	config_free(&cfg);

	/* A plain m_cost is KiB, as loftenv.py writes it. */
	static const char text2[] = "[auth]\nargon2_m_cost = 64\n";
	CHECK_INT(config_parse("t.conf", text2, strlen(text2), &cfg, &errors), 0);
	CHECK_INT(auth_settings_from_config(cfg, &set, &errors), 0);
	CHECK_INT(set.argon2_m_cost_kib, 64);
	CHECK_STR(set.data_dir, "/var/lib/loft");
	config_free(&cfg);
	buf_free(&errors);
}

TEST_CASE(settings_errors_have_file_and_line)
{
	static const char text[] =
		"[policy]\n"
		"pop3_delete = shred\n"
		"quota_bytes = lots\n"
		"[auth]\n"
		"argon2_t_cost = 0\n"
		"colour = blue\n"
		"scram_iterations = 100\n";
	struct config *cfg;
	struct buf errors;
	struct auth_settings set;
	buf_init(&errors, 0);
	CHECK_INT(config_parse("bad.conf", text, strlen(text), &cfg, &errors), 0);
	CHECK_INT(auth_settings_from_config(cfg, &set, &errors), -1);
	CHECK(strstr(errors.data, "bad.conf:2: pop3_delete") != NULL);
	CHECK(strstr(errors.data, "bad.conf:3: quota_bytes") != NULL);
	CHECK(strstr(errors.data, "bad.conf:5: argon2_t_cost") != NULL);
	CHECK(strstr(errors.data, "bad.conf:6: unknown key 'colour'") != NULL);
	CHECK(strstr(errors.data, "bad.conf:7: scram_iterations") != NULL);
	config_free(&cfg);
	buf_free(&errors);
}

/* ---- accounts ---------------------------------------------------------- */

TEST_CASE(admin_and_lookups)
{
	struct auth *auth = setup();
	char *error = NULL;
	struct auth_user u, v;
	CHECK(auth_domain_exists(auth, "EXAMPLE.test"));
	CHECK(!auth_domain_exists(auth, "other.test"));
	CHECK_INT(auth_domain_add(auth, DOMAIN, &error), -1);
	free(error);
	CHECK_INT(add_user(auth, "Alice@Example.TEST", "first-user-pw-123", false), 0);
	CHECK_INT(auth_lookup(auth, "ALICE@example.test", &u), 1);
	CHECK_STR(u.address, ALICE);
	CHECK_INT(auth_lookup_id(auth, u.id, &v), 1);
	CHECK_STR(v.address, ALICE);
	CHECK_INT(auth_lookup(auth, "nobody@example.test", &v), 0);

	/* Unknown domain, duplicates, malformed addresses. */
	CHECK_INT(auth_user_add(auth, "bob@other.test", "horse-staple-42", false, NULL,
				&error), -1);
	CHECK(strstr(error, "no domain other.test") != NULL);
	free(error);
	CHECK_INT(auth_user_add(auth, ALICE, "horse-staple-42", false, NULL, &error), -1);
	free(error);
	const char *bad[] = {"../x@example.test", "a b@example.test", "x",
			     "@example.test", "x@", "x@ex ample.test",
			     "x+y@example.test", ".x@example.test", NULL};
	for (int i = 0; bad[i] != NULL; i++) {
		error = NULL;
		CHECK_INT(auth_user_add(auth, bad[i], "horse-staple-42", false, NULL, &error),
			  -1);
		CHECK(error != NULL);
		free(error);
	}
	CHECK_INT(auth_user_add(auth, "c@example.test", "", false, NULL,
				&error), -1);
	free(error);

	/* Aliases resolve to their user, cannot shadow a user. */
	CHECK_INT(auth_alias_add(auth, "postmaster@example.test", ALICE, &error),
		  0);
	CHECK_INT(auth_lookup(auth, "Postmaster@example.test", &v), 1);
	CHECK_INT(v.id, u.id);
	CHECK_INT(auth_alias_add(auth, ALICE, ALICE, &error), -1);
	free(error);
	CHECK_INT(auth_alias_add(auth, "x@example.test", "nobody@example.test",
				 &error), -1);
	free(error);
	CHECK_INT(auth_user_add(auth, "postmaster@example.test", "horse-staple-42", false,
				NULL, &error), -1);
	free(error);
	/* An alias is not a login. */
	CHECK_INT(verify(auth, "postmaster@example.test", "first-user-pw-123"),
		  AUTH_FAILED);

	/* A domain with users stays. */
	CHECK_INT(auth_domain_del(auth, DOMAIN, &error), -1);
	CHECK(strstr(error, "1 users") != NULL);
	free(error);
	CHECK_INT(auth_alias_del(auth, "postmaster@example.test", &error), 0);
	CHECK_INT(auth_alias_del(auth, "postmaster@example.test", &error), -1);
	free(error);
	CHECK_INT(auth_user_del(auth, ALICE, &error), 0);
	CHECK_INT(auth_lookup(auth, ALICE, &v), 0);
	CHECK_INT(auth_domain_del(auth, DOMAIN, &error), 0);
	CHECK(!auth_domain_exists(auth, DOMAIN));

	/* Ids are never reused. */
	CHECK_INT(auth_domain_add(auth, DOMAIN, &error), 0);
	CHECK_INT(add_user(auth, ALICE, "horse-staple-42", false), 0);
	CHECK_INT(auth_lookup(auth, ALICE, &v), 1);
	CHECK(v.id > u.id);
	teardown(&auth);
}

static void count_row(void *ctx, const char *name, const char *extra)
{
	(void)name; (void)extra;
	(*(int *)ctx)++;
}

TEST_CASE(listings)
{
	struct auth *auth = setup();
	char *error = NULL;
	int n = 0;
	add_user(auth, ALICE, "first-listed-1", false);
	add_user(auth, "bob@example.test", "second-listed-2", false);
	auth_alias_add(auth, "info@example.test", ALICE, &error);
	CHECK_INT(auth_user_list(auth, count_row, &n, &error), 0);
	CHECK_INT(n, 2);
	n = 0;
	CHECK_INT(auth_domain_list(auth, count_row, &n, &error), 0);
	CHECK_INT(n, 1);
	n = 0;
	CHECK_INT(auth_alias_list(auth, count_row, &n, &error), 0);
	CHECK_INT(n, 1);
	teardown(&auth);
}

TEST_CASE(second_handle_sees_changes_at_once)
{
	/* loftctl and loftd are two handles on one accounts.db. */
	struct auth *auth = setup();
	struct auth_settings set;
	cheap_settings(&set);
	struct auth *ctl = NULL;
	char *error = NULL;
	CHECK_INT(auth_open(&set, &ctl, &error), 0);
	CHECK_INT(add_user(ctl, ALICE, "first-password-1", false), 0);
	CHECK_INT(verify(auth, ALICE, "first-password-1"), AUTH_OK);
	CHECK_INT(auth_user_passwd(ctl, ALICE, "second-password-2", false, &error), 0);
	CHECK_INT(verify(auth, ALICE, "first-password-1"), AUTH_FAILED);
	CHECK_INT(verify(auth, ALICE, "second-password-2"), AUTH_OK);
	CHECK_INT(auth_user_set(ctl, ALICE, "disabled", "yes", &error), 0);
	CHECK_INT(verify(auth, ALICE, "second-password-2"), AUTH_DISABLED);
	CHECK_INT(auth_user_set(ctl, ALICE, "disabled", "no", &error), 0);
	CHECK_INT(auth_user_set(ctl, ALICE, "quota_bytes", "500M", &error), 0);
	struct auth_user u;
	struct auth_policy p;
	auth_lookup(auth, ALICE, &u);
	CHECK_INT(auth_user_policy(auth, u.id, &p), 0);
	CHECK(p.quota_bytes == 500ULL << 20);
	auth_close(&ctl);
	teardown(&auth);
}

/* ---- hashes ------------------------------------------------------------ */

TEST_CASE(native_argon2id)
{
	struct auth *auth = setup();
	bool scram = false;
	CHECK_INT(add_user(auth, ALICE, "correct horse", false), 0);
	CHECK_STR(scheme_of(auth, ALICE, &scram), "ARGON2ID");
	CHECK(scram);
	CHECK_INT(verify(auth, ALICE, "correct horse"), AUTH_OK);
	CHECK_INT(verify(auth, ALICE, "Correct horse"), AUTH_FAILED);
	CHECK_INT(verify(auth, "nobody@example.test", "x"), AUTH_FAILED);
	CHECK_INT(verify(auth, ALICE, ""), AUTH_FAILED);
	/* The stored hash is argon2id with the configured cost. */
	struct auth_user_row row;
	CHECK_INT(auth_db_user_row(auth, ALICE, &row), 1);
	CHECK(strncmp(row.hash, "{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$",
		      38) == 0);
	teardown(&auth);
}

static void check_import(const char *hash, const char *password,
			 const char *scheme)
{
	struct auth *auth = setup();
	bool scram = true;
	CHECK_INT(add_user(auth, ALICE, hash, true), 0);
	CHECK_STR(scheme_of(auth, ALICE, &scram), scheme);
	CHECK(!scram);
	CHECK_INT(verify(auth, ALICE, "wrong"), AUTH_FAILED);
	/* Still the imported hash after a failure. */
	CHECK_STR(scheme_of(auth, ALICE, &scram), scheme);
	CHECK_INT(verify(auth, ALICE, password), AUTH_OK);
	/* Re-hashed to argon2id with SCRAM keys at the first success. */
	CHECK_STR(scheme_of(auth, ALICE, &scram), "ARGON2ID");
	CHECK(scram);
	CHECK_INT(verify(auth, ALICE, password), AUTH_OK);
	CHECK_INT(verify(auth, ALICE, "wrong"), AUTH_FAILED);
	teardown(&auth);
}

TEST_CASE(import_sha512_crypt)
{
	check_import(SHA512_VECTOR, SHA512_PASSWORD, "SHA512-CRYPT");
}

TEST_CASE(import_blf_crypt)
{
	check_import(BLF_VECTOR, BLF_PASSWORD, "BLF-CRYPT");
}

TEST_CASE(import_argon2id)
{
	check_import(ARGON2_VECTOR, ARGON2_PASSWORD, "ARGON2ID");
}

TEST_CASE(import_rejects_malformed)
{
	struct auth *auth = setup();
	const char *bad[] = {
		"$6$saltstring$svn8", "{MD5}abc", "{SHA512-CRYPT}$1$abc$def",
		"{BLF-CRYPT}$2y$05$short", "{BLF-CRYPT}$2y$31$CCCCCCCCCCCCCCCCCCC"
		"CC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"{ARGON2ID}$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$abc",
		"{ARGON2ID}$argon2id$v=19$m=99999999,t=1,p=1$c29tZXNhbHQ$abc",
		"{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$!!!$abc", NULL};
	for (int i = 0; bad[i] != NULL; i++) {
		char *error = NULL;
		CHECK_INT(auth_user_add(auth, ALICE, bad[i], true, NULL, &error),
			  -1);
		if (error == NULL)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		free(error);
	}
	teardown(&auth);
}

TEST_CASE(rehash_when_cost_changes)
{
	struct auth *auth = setup();
	add_user(auth, ALICE, "horse-staple-42", false);
	struct auth_user_row before, after;
	auth_db_user_row(auth, ALICE, &before);
	auth_close(&auth);
	struct auth_settings set;
	cheap_settings(&set);
	set.argon2_m_cost_kib = 128;
	char *error = NULL;
	CHECK_INT(auth_open(&set, &auth, &error), 0);
	CHECK_INT(verify(auth, ALICE, "horse-staple-42"), AUTH_OK);
	auth_db_user_row(auth, ALICE, &after);
	CHECK(strstr(after.hash, "m=128,") != NULL);
	CHECK(strcmp(before.hash, after.hash) != 0);
	teardown(&auth);
}

/* ---- cache ------------------------------------------------------------- */

TEST_CASE(cache_makes_repeat_cheap_and_password_change_invalidates)
{
	struct auth_settings set;
	cheap_settings(&set);
	set.argon2_m_cost_kib = 16 * 1024;   /* noticeably slow */
	set.argon2_t_cost = 2;
	struct auth *auth = setup_with(&set);
	add_user(auth, ALICE, "old-password-123", false);
	double t0 = now_s();
	CHECK_INT(verify(auth, ALICE, "old-password-123"), AUTH_OK);
	double first = now_s() - t0;
	t0 = now_s();
	for (int i = 0; i < 10; i++)
		CHECK_INT(verify(auth, ALICE, "old-password-123"), AUTH_OK);
	double cached = (now_s() - t0) / 10;
	CHECK(cached * 5 < first);
	/* A wrong password is never answered from the cache. */
	CHECK_INT(verify(auth, ALICE, "old-passworD-123"), AUTH_FAILED);
	char *error = NULL;
	CHECK_INT(auth_user_passwd(auth, ALICE, "new-password-456", false, &error), 0);
	CHECK_INT(verify(auth, ALICE, "old-password-123"), AUTH_FAILED);
	CHECK_INT(verify(auth, ALICE, "new-password-456"), AUTH_OK);
	teardown(&auth);
}

/* ---- throttle ---------------------------------------------------------- */

static char clock_path[96];

static void clock_remove(void)
{
	unlink(clock_path);
}

/* Moves the throttle's clock (LOFT_TEST_CLOCK) to offset seconds ahead. */
static void clock_set(double offset)
{
	FILE *f = fopen(clock_path, "w");
	if (f == NULL)
		abort();
	fprintf(f, "%.3f\n", offset);
	fclose(f);
}

/* One attempt through the throttle: its delay (or -1: banned), then the
 * outcome recorded. */
static int attempt(struct auth *auth, const char *remote, const char *account,
		   bool ok)
{
	struct auth_throttle_ticket tk;
	auth_throttle_admit(auth->throttle, remote, account, &tk);
	if (tk.banned)
		return -1;
	auth_throttle_record(auth->throttle, &tk, ok);
	return (int)tk.delay_ms;
}

static uint32_t delay_of(struct auth *auth, const char *remote,
			 const char *account)
{
	struct auth_throttle_ticket tk;
	auth_throttle_admit(auth->throttle, remote, account, &tk);
	return tk.delay_ms;
}

static struct auth *throttle_setup(uint32_t max_delay, uint32_t ban_after)
{
	struct auth_settings set;
	cheap_settings(&set);
	set.throttle_max_delay_ms = max_delay;
	set.ban_after = ban_after;
	set.ban_time_secs = 60;
	clock_set(0);
	return setup_with(&set);
}

TEST_CASE(throttle_backoff_per_address_account_and_pair)
{
	struct auth *auth = throttle_setup(400, 0);
	/* Two free failures (a typo), then 100, 200, 400 ms, capped. */
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 0);
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 0);
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 0);
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 100);
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 200);
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 400);
	CHECK_INT(attempt(auth, "127.0.0.1", ALICE, false), 400);
	/* Loopback included: the address slows its other accounts too... */
	CHECK_INT(delay_of(auth, "127.0.0.1", "bob@example.test"), 400);
	/* ... and the account its other addresses... */
	CHECK_INT(delay_of(auth, "192.0.2.9", ALICE), 400);
	/* ... but not another account from another address. */
	CHECK_INT(delay_of(auth, "192.0.2.9", "bob@example.test"), 0);
	/* IPv6 neighbours in one /64 share a count, the next /64 does not. */
	char addr[64];
	for (int i = 0; i < 4; i++) {
		snprintf(addr, sizeof(addr), "2001:db8::%x", i + 1);
		attempt(auth, addr, "nobody@example.test", false);
	}
	CHECK_INT(delay_of(auth, "2001:db8::ffff", "bob@example.test"), 200);
	CHECK_INT(delay_of(auth, "2001:db8:0:1::1", "bob@example.test"), 0);
	/* Ten minutes after the last failure the counts are forgotten. */
	clock_set(601);
	CHECK_INT(delay_of(auth, "127.0.0.1", ALICE), 0);
	teardown(&auth);
}

/* The owner is never locked out: an address that logged into the account
 * in the last 30 days is slowed only by the pair's own failures, and
 * those slow nothing else. */
TEST_CASE(throttle_known_pairs)
{
	struct auth *auth = throttle_setup(3000, 5);
	CHECK_INT(attempt(auth, "198.51.100.7", ALICE, true), 0);
	CHECK_INT(attempt(auth, "198.51.100.7", "kid@example.test", true), 0);
	/* A guesser elsewhere hammers alice; one behind the same router
	 * guesses other accounts until the address is banned. */
	for (int i = 0; i < 30; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "203.0.113.%d", i % 7 + 1);
		attempt(auth, addr, ALICE, false);
	}
	for (int i = 0; i < 5; i++)
		attempt(auth, "198.51.100.7", "boss@example.test", false);
	CHECK(delay_of(auth, "192.0.2.1", ALICE) >= 3000);
	CHECK_INT(attempt(auth, "198.51.100.7", "boss@example.test", false), -1);
	/* The owner's device goes on: no delay, no ban, connects. */
	struct auth_throttle_ticket tk;
	auth_throttle_admit(auth->throttle, "198.51.100.7", ALICE, &tk);
	CHECK(tk.known);
	CHECK(!tk.banned);
	CHECK_INT(tk.delay_ms, 0);
	CHECK(auth_may_connect(auth, "198.51.100.7"));
	/* The kid's phone with a stale password slows only itself. */
	for (int i = 0; i < 20; i++)
		CHECK(attempt(auth, "198.51.100.7", "kid@example.test", false) >= 0);
	CHECK_INT(delay_of(auth, "198.51.100.7", "kid@example.test"), 3000);
	CHECK_INT(delay_of(auth, "198.51.100.7", ALICE), 0);
	CHECK_INT(delay_of(auth, "192.0.2.200", "kid@example.test"), 0);
	/* After 30 days without a login the pair is a stranger again. */
	clock_set(31 * 86400.0);
	auth_throttle_admit(auth->throttle, "198.51.100.7", ALICE, &tk);
	CHECK(!tk.known);
	teardown(&auth);
}

static void count_held(void *ctx, const struct auth_held *h)
{
	char line[256];
	auth_held_format(h, line, sizeof(line));
	struct buf *b = ctx;
	buf_printf(b, "%s\n", line);
}

static char *held_lines(struct auth *auth)
{
	struct buf b;
	buf_init(&b, 0);
	char *error = NULL;
	CHECK_INT(auth_ban_list(auth, count_held, &b, &error), 0);
	free(error);
	char *s = xstrdup(b.data != NULL ? b.data : "");
	buf_free(&b);
	return s;
}

TEST_CASE(throttle_bans)
{
	struct auth *auth = throttle_setup(400, 5);
	for (int i = 0; i < 5; i++)
		CHECK(attempt(auth, "192.0.2.66", "x@example.test", false) >= 0);
	CHECK_INT(attempt(auth, "192.0.2.66", ALICE, true), -1);
	CHECK(!auth_may_connect(auth, "192.0.2.66"));
	CHECK(auth_may_connect(auth, "192.0.2.67"));
	char *list = held_lines(auth);
	CHECK(strstr(list, "address 192.0.2.66 banned 60s failures 5") != NULL);
	CHECK(strstr(list, "account x@example.test delay 400ms failures 5") != NULL);
	if (strstr(list, "banned 60s") == NULL)
		fprintf(stderr, "%s", list);
	free(list);
	/* A ban is "a while": over after ban_time... */
	clock_set(61);
	CHECK(auth_may_connect(auth, "192.0.2.66"));
	/* ... but an address that keeps failing is banned again at once,
	 * for twice as long. */
	CHECK(attempt(auth, "192.0.2.66", "x@example.test", false) >= 0);
	CHECK(!auth_may_connect(auth, "192.0.2.66"));
	list = held_lines(auth);
	CHECK(strstr(list, "address 192.0.2.66 banned 120s") != NULL);
	free(list);
	/* ban del: an address (or its account) goes free at once. */
	char *error = NULL;
	CHECK_INT(auth_ban_del(auth, "192.0.2.66", &error), 1);
	CHECK(auth_may_connect(auth, "192.0.2.66"));
	CHECK_INT(delay_of(auth, "192.0.2.66", "y@example.test"), 0);
	CHECK_INT(auth_ban_del(auth, "192.0.2.66", &error), 0);
	CHECK_INT(auth_ban_del(auth, "X@Example.TEST", &error), 1);
	CHECK_INT(delay_of(auth, "192.0.2.1", "x@example.test"), 0);
	CHECK_INT(auth_ban_del(auth, "not an address", &error), -1);
	CHECK(error != NULL && strstr(error, "neither") != NULL);
	free(error);
	teardown(&auth);
}

/* loftd keeps throttle.db current; a restart keeps the bans and known
 * pairs; loftctl (no daemon) lists it and leaves clears loftd applies. */
TEST_CASE(throttle_persisted)
{
	struct auth_settings set;
	cheap_settings(&set);
	set.ban_after = 3;
	set.throttle_daemon = true;
	clock_set(0);
	struct auth *auth = setup_with(&set);
	for (int i = 0; i < 3; i++)
		attempt(auth, "192.0.2.77", "x@example.test", false);
	attempt(auth, "192.0.2.5", ALICE, true);
	auth_close(&auth);                 /* the writer's last flush */
	char *error = NULL;
	CHECK_INT(auth_open(&set, &auth, &error), 0);
	CHECK(!auth_may_connect(auth, "192.0.2.77"));
	struct auth_throttle_ticket tk;
	auth_throttle_admit(auth->throttle, "192.0.2.5", ALICE, &tk);
	CHECK(tk.known);
	auth_close(&auth);
	/* loftctl */
	struct auth_settings tool = set;
	tool.throttle_daemon = false;
	CHECK_INT(auth_open(&tool, &auth, &error), 0);
	char *list = held_lines(auth);
	CHECK(strstr(list, "address 192.0.2.77 banned") != NULL);
	free(list);
	CHECK_INT(auth_ban_del(auth, "192.0.2.77", &error), 1);
	list = held_lines(auth);
	CHECK(strstr(list, "192.0.2.77") == NULL);
	free(list);
	auth_close(&auth);
	CHECK_INT(auth_open(&set, &auth, &error), 0);
	CHECK(auth_may_connect(auth, "192.0.2.77"));
	teardown(&auth);
}

/* The throttle shared between nodes (auth-throttle-share.c, postgres
 * only): a node's batch sent again after a lost answer is not counted
 * twice; another node's is added; a clear starts the count again. */
struct shared_seen {
	int64_t clock_ms;
	int64_t failures, ban_until_ms, seq;
	int rows;
};

static void shared_row(void *ctx, const struct auth_throttle_row *row)
{
	struct shared_seen *s = ctx;
	if (row->key[0] == '\0') {
		s->clock_ms = row->last_fail_ms;
		return;
	}
	if (strcmp(row->key, "u:x@example.test") == 0) {
		s->failures = row->failures;
		s->ban_until_ms = row->ban_until_ms;
		s->seq = row->seq;
		s->rows++;
	}
}

static int64_t shared_send(struct auth *auth, const char *node,
			   int64_t batch, uint8_t flags, uint32_t failures,
			   int64_t ban_until_ms)
{
	struct auth_throttle_row row;
	memset(&row, 0, sizeof(row));
	snprintf(row.key, sizeof(row.key), "u:x@example.test");
	row.flags = flags;
	row.failures = failures;
	row.last_fail_ms = (int64_t)time(NULL) * 1000 + batch;
	row.ban_until_ms = ban_until_ms;
	struct auth_wire_buf w;
	auth_wire_begin(&w, 0, 0, 0);
	auth_wire_throttle_row(&w, &row);
	struct shared_seen seen;
	memset(&seen, 0, sizeof(seen));
	char *error = NULL;
	int rc = auth_throttle_db_sync(auth, node, batch,
				       w.data + AUTH_WIRE_HEADER,
				       w.len - AUTH_WIRE_HEADER, 0, shared_row,
				       &seen, &error);
	if (rc < 0) {
		fprintf(stderr, "auth_throttle_db_sync: %s\n", error);
		free(error);
		return -1;
	}
	CHECK(seen.clock_ms > 1700000000000LL);
	CHECK_INT(seen.rows, 1);
	return seen.failures;
}

TEST_CASE(throttle_shared_batches)
{
	struct auth_settings set;
	cheap_settings(&set);
	if (set.postgres == NULL)
		return;      /* accounts.db: nothing is shared */
	struct auth *auth = setup_with(&set);
	CHECK_INT(shared_send(auth, "0a", 1, 0, 3, 0), 3);
	/* the answer was lost: the same batch again */
	CHECK_INT(shared_send(auth, "0a", 1, 0, 3, 0), 3);
	CHECK_INT(shared_send(auth, "0a", 2, 0, 2, 0), 5);
	/* another node's first batch counts */
	CHECK_INT(shared_send(auth, "0b", 1, 0, 4, 0), 9);
	/* a login resets the count (then adds what followed it) */
	CHECK_INT(shared_send(auth, "0b", 2, AUTH_THROTTLE_ROW_RESET, 1, 0), 1);
	CHECK_INT(shared_send(auth, "0a", 3, 0, 0,
			      (int64_t)time(NULL) * 1000 + 60000), 1);
	/* loftctl ban del through a node: count and ban gone */
	CHECK_INT(shared_send(auth, "0a", 4, AUTH_THROTTLE_ROW_CLEAR, 0, 0), 0);
	/* a clear without loftd (loftctl) bumps the row for every node */
	CHECK_INT(shared_send(auth, "0b", 3, 0, 2, 0), 2);
	char *error = NULL;
	CHECK_INT(auth_throttle_db_clear(auth, 'u', "x@example.test", &error),
		  0);
	struct shared_seen seen;
	memset(&seen, 0, sizeof(seen));
	CHECK_INT(auth_throttle_db_sync(auth, "", 0, NULL, 0, 0, shared_row,
					&seen, &error), 0);
	CHECK_INT(seen.failures, 0);
	CHECK_INT(seen.ban_until_ms, 0);
	teardown(&auth);
}

/* ---- policies ---------------------------------------------------------- */

TEST_CASE(policies)
{
	struct auth_settings set;
	cheap_settings(&set);
	set.defaults.quota_bytes = 1ULL << 30;
	struct auth *auth = setup_with(&set);
	add_user(auth, ALICE, "horse-staple-42", false);
	struct auth_user u;
	struct auth_policy p;
	char *error = NULL;
	auth_lookup(auth, ALICE, &u);
	CHECK_INT(auth_user_policy(auth, u.id, &p), 0);
	CHECK(p.quota_bytes == 1ULL << 30);
	CHECK_INT(p.pop3_delete, AUTH_POP3_AUTO);
	CHECK_INT(p.trash_retention_days, 30);

	CHECK_INT(auth_user_set(auth, ALICE, "pop3_delete", "hide", &error), 0);
	CHECK_INT(auth_user_set(auth, ALICE, "pop3_retention_days", "14",
				&error), 0);
	CHECK_INT(auth_user_set(auth, ALICE, "quota_bytes", "none", &error), 0);
	CHECK_INT(auth_user_set(auth, ALICE, "over_quota_tempfail", "yes",
				&error), 0);
	CHECK_INT(auth_user_policy(auth, u.id, &p), 0);
	CHECK_INT(p.pop3_delete, AUTH_POP3_HIDE);
	CHECK_INT(p.pop3_retention_days, 14);
	CHECK(p.quota_bytes == 0);
	CHECK(p.over_quota_tempfail);

	CHECK_INT(auth_user_set(auth, ALICE, "quota_bytes", "default", &error),
		  0);
	CHECK_INT(auth_user_policy(auth, u.id, &p), 0);
	CHECK(p.quota_bytes == 1ULL << 30);

	CHECK_INT(auth_user_set(auth, ALICE, "pop3_delete", "shred", &error), -1);
	free(error);
	CHECK_INT(auth_user_set(auth, ALICE, "colour", "blue", &error), -1);
	free(error);
	CHECK_INT(auth_user_set(auth, "nobody@example.test", "pop3_delete",
				"hide", &error), -1);
	free(error);
	CHECK_INT(auth_user_set(auth, "nobody@example.test", "quota_bytes",
				"default", &error), -1);
	free(error);
	for (int i = 0; auth_policy_keys[i] != NULL; i++) {
		CHECK_INT(auth_user_set(auth, ALICE, auth_policy_keys[i],
					"default", &error), 0);
	}
	teardown(&auth);
}

/* ---- SASL -------------------------------------------------------------- */

static enum auth_sasl_status step(struct auth_sasl *s, const char *in,
				  size_t len, char **out, struct auth_user *u)
{
	size_t out_len;
	free(*out);
	*out = NULL;
	return auth_sasl_step_now(s, in, len, out, &out_len, u);
}

static enum auth_sasl_status plain(struct auth *auth, const char *msg,
				   size_t len, bool ir)
{
	struct auth_sasl *s;
	struct auth_user u;
	char *out = NULL;
	enum auth_sasl_status st;
	if (auth_sasl_begin(auth, "PLAIN", "192.0.2.1", &s) < 0)
		return AUTH_SASL_TEMPFAIL;
	if (!ir) {
		st = step(s, NULL, 0, &out, &u);
		CHECK_INT(st, AUTH_SASL_CONTINUE);
		CHECK_STR(out, "");
	}
	st = step(s, msg, len, &out, &u);
	if (st == AUTH_SASL_OK)
		CHECK_STR(u.address, ALICE);
	free(out);
	auth_sasl_free(&s);
	return st;
}

#define PLAIN(auth, lit, ir) plain(auth, lit, sizeof(lit) - 1, ir)

TEST_CASE(sasl_plain)
{
	struct auth *auth = setup();
	struct auth_sasl *s;
	add_user(auth, ALICE, "horse-staple-42", false);
	CHECK_INT(PLAIN(auth, "\0alice@example.test\0horse-staple-42", true), AUTH_SASL_OK);
	CHECK_INT(PLAIN(auth, "\0alice@example.test\0horse-staple-42", false), AUTH_SASL_OK);
	CHECK_INT(PLAIN(auth, "alice@example.test\0alice@example.test\0horse-staple-42",
			true), AUTH_SASL_OK);
	CHECK_INT(PLAIN(auth, "bob@example.test\0alice@example.test\0horse-staple-42", true),
		  AUTH_SASL_FAIL);
	CHECK_INT(PLAIN(auth, "\0alice@example.test\0wrong", true),
		  AUTH_SASL_FAIL);
	CHECK_INT(PLAIN(auth, "alice@example.test\0horse-staple-42", true), AUTH_SASL_FAIL);
	CHECK_INT(PLAIN(auth, "\0alice@example.test\0horse-staple-42\0", true),
		  AUTH_SASL_FAIL);
	CHECK_INT(PLAIN(auth, "\0\0horse-staple-42", true), AUTH_SASL_FAIL);
	CHECK_INT(PLAIN(auth, "", true), AUTH_SASL_FAIL);
	CHECK_INT(auth_sasl_begin(auth, "CRAM-MD5", "x", &s), -1);
	CHECK_STR(auth_mechanisms(auth, false), "SCRAM-SHA-256");
	CHECK(strstr(auth_mechanisms(auth, true), "PLAIN") != NULL);
	CHECK(auth_cleartext_allowed(auth, false, true));
	CHECK(auth_cleartext_allowed(auth, true, false));
	CHECK(!auth_cleartext_allowed(auth, false, false));
	teardown(&auth);
}

static enum auth_sasl_status login_exchange(struct auth *auth, bool ir,
					    const char *user, const char *pw)
{
	struct auth_sasl *s;
	struct auth_user u;
	char *out = NULL;
	enum auth_sasl_status st;
	CHECK_INT(auth_sasl_begin(auth, "login", "192.0.2.1", &s), 0);
	if (!ir) {
		CHECK_INT(step(s, NULL, 0, &out, &u), AUTH_SASL_CONTINUE);
		CHECK_STR(out, "Username:");
	}
	CHECK_INT(step(s, user, strlen(user), &out, &u), AUTH_SASL_CONTINUE);
	CHECK_STR(out, "Password:");
	st = step(s, pw, strlen(pw), &out, &u);
	free(out);
	auth_sasl_free(&s);
	return st;
}

TEST_CASE(sasl_login)
{
	struct auth *auth = setup();
	add_user(auth, ALICE, "horse-staple-42", false);
	CHECK_INT(login_exchange(auth, false, ALICE, "horse-staple-42"), AUTH_SASL_OK);
	CHECK_INT(login_exchange(auth, true, ALICE, "horse-staple-42"), AUTH_SASL_OK);
	CHECK_INT(login_exchange(auth, false, ALICE, "wrong"), AUTH_SASL_FAIL);
	CHECK_INT(login_exchange(auth, false, "bob@example.test", "horse-staple-42"),
		  AUTH_SASL_FAIL);
	teardown(&auth);
}

/* The RFC 7677 3 example, through the real server: user "user" with
 * password "pencil", the RFC's salt and server nonce. */
TEST_CASE(scram_rfc7677_vector)
{
	struct auth *auth = setup();
	uint8_t *salt = NULL;
	size_t salt_len = 0;
	uint8_t stored[32], server[32];
	CHECK_INT(b64dec("W22ZaJ0SNY7soEsUEjb6gQ==", 24, &salt, &salt_len), 0);
	CHECK_INT(auth_scram_keys("pencil", salt, salt_len, 4096, stored,
				  server), 0);
	/* The RFC's user name is not an address: put the row in directly
	 * (through the accounts' SQL layer: accounts.db or postgres). */
	struct auth_conn *c = auth_conn_get(auth, NULL);
	CHECK(c != NULL);
	CHECK_INT(asql_run(c->db,
		"INSERT INTO users(address, domain_id, password_hash, "
		"scram_salt, scram_iterations, scram_stored_key, "
		"scram_server_key, created) VALUES ('user', (SELECT min(id) "
		"FROM domains), '{ARGON2ID}x', ?, 4096, ?, ?, 0)", "bbb",
		(const void *)salt, salt_len, (const void *)stored, (size_t)32,
		(const void *)server, (size_t)32), 1);
	auth_conn_put(auth, c);
	free(salt);

	struct auth_sasl *s;
	struct auth_user u;
	char *out = NULL;
	CHECK_INT(auth_sasl_begin(auth, "SCRAM-SHA-256", "192.0.2.1", &s), 0);
	auth_sasl_set_test_nonce(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	const char *first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
	CHECK_INT(step(s, first, strlen(first), &out, &u), AUTH_SASL_CONTINUE);
	CHECK_STR(out, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		       "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	const char *final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfux"
			    "FIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsq"
			    "mmiz7AndVQ=";
	CHECK_INT(step(s, final, strlen(final), &out, &u), AUTH_SASL_CONTINUE);
	CHECK_STR(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	CHECK_INT(step(s, "", 0, &out, &u), AUTH_SASL_OK);
	CHECK_STR(u.address, "user");
	free(out);
	auth_sasl_free(&s);
	teardown(&auth);
}

static enum auth_sasl_status scram(struct auth *auth, const char *gs2,
				   const char *user, const char *pw,
				   char **salt_r)
{
	struct auth_sasl *s;
	struct auth_user u;
	char *out = NULL;
	CHECK_INT(auth_sasl_begin(auth, "SCRAM-SHA-256", "192.0.2.1", &s), 0);
	char *bare = xasprintf("n=%s,r=fyko+d2lbbFgONRv9qkxdawL", user);
	char *first = xasprintf("%s%s", gs2, bare);
	enum auth_sasl_status st = step(s, first, strlen(first), &out, &u);
	if (st == AUTH_SASL_CONTINUE) {
		if (salt_r != NULL) {
			const char *sp = strstr(out, ",s=");
			*salt_r = sp ? xstrdup(sp) : NULL;
		}
		char *cb = base64_encode(gs2, strlen(gs2));
		uint8_t sig[32];
		char *final = scram_client_final(out, pw, bare, cb, sig);
		st = step(s, final, strlen(final), &out, &u);
		if (st == AUTH_SASL_CONTINUE) {
			char *v = base64_encode(sig, 32);
			char *expect = xasprintf("v=%s", v);
			CHECK_STR(out, expect);
			free(expect);
			free(v);
			st = step(s, "", 0, &out, &u);
		}
		free(final);
		free(cb);
	}
	free(out);
	free(first);
	free(bare);
	auth_sasl_free(&s);
	return st;
}

TEST_CASE(scram_exchanges)
{
	struct auth *auth = setup();
	add_user(auth, ALICE, "pencil-sharpener", false);
	CHECK_INT(scram(auth, "n,,", ALICE, "pencil-sharpener", NULL), AUTH_SASL_OK);
	CHECK_INT(scram(auth, "y,,", ALICE, "pencil-sharpener", NULL), AUTH_SASL_OK);
	CHECK_INT(scram(auth, "n,a=alice@example.test,", ALICE, "pencil-sharpener", NULL),
		  AUTH_SASL_OK);
	CHECK_INT(scram(auth, "n,a=bob@example.test,", ALICE, "pencil-sharpener", NULL),
		  AUTH_SASL_FAIL);
	CHECK_INT(scram(auth, "p=tls-unique,,", ALICE, "pencil-sharpener", NULL),
		  AUTH_SASL_FAIL);
	CHECK_INT(scram(auth, "n,,", ALICE, "pencil2", NULL), AUTH_SASL_FAIL);
	/* An unknown user gets a stable salt and fails at the end. */
	char *s1 = NULL, *s2 = NULL;
	CHECK_INT(scram(auth, "n,,", "nobody@example.test", "x", &s1),
		  AUTH_SASL_FAIL);
	CHECK_INT(scram(auth, "n,,", "nobody@example.test", "x", &s2),
		  AUTH_SASL_FAIL);
	CHECK(s1 != NULL && s2 != NULL && strcmp(s1, s2) == 0);
	free(s1);
	free(s2);
	/* Imported hashes have no SCRAM keys until a PLAIN/LOGIN. */
	char *error = NULL;
	CHECK_INT(auth_user_passwd(auth, ALICE, SHA512_VECTOR, true, &error), 0);
	CHECK_INT(scram(auth, "n,,", ALICE, SHA512_PASSWORD, NULL),
		  AUTH_SASL_FAIL);
	CHECK_INT(verify(auth, ALICE, SHA512_PASSWORD), AUTH_OK);
	CHECK_INT(scram(auth, "n,,", ALICE, SHA512_PASSWORD, NULL),
		  AUTH_SASL_OK);
	teardown(&auth);
}

TEST_CASE(scram_malformed)
{
	struct auth *auth = setup();
	add_user(auth, ALICE, "pencil-sharpener", false);
	const char *bad_first[] = {
		"", "n", "x,,n=a,r=b", "n,,r=abc", "n,,n=,r=abc",
		"n,,n=a=2Xb,r=abc", "n,,n=alice@example.test", "n,,n=a,r=",
		"n,b=x,n=a,r=abc", NULL};
	for (int i = 0; bad_first[i] != NULL; i++) {
		struct auth_sasl *s;
		struct auth_user u;
		char *out = NULL;
		auth_sasl_begin(auth, "SCRAM-SHA-256", "192.0.2.1", &s);
		CHECK_INT(step(s, bad_first[i], strlen(bad_first[i]), &out, &u),
			  AUTH_SASL_FAIL);
		free(out);
		auth_sasl_free(&s);
	}
	/* A client-final with the wrong nonce or channel binding. */
	struct auth_sasl *s;
	struct auth_user u;
	char *out = NULL;
	auth_sasl_begin(auth, "SCRAM-SHA-256", "192.0.2.1", &s);
	const char *first = "n,,n=alice@example.test,r=abc";
	CHECK_INT(step(s, first, strlen(first), &out, &u), AUTH_SASL_CONTINUE);
	const char *final = "c=eSws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgs"
			    "qmmiz7AndVQ=";
	CHECK_INT(step(s, final, strlen(final), &out, &u), AUTH_SASL_FAIL);
	free(out);
	auth_sasl_free(&s);
	teardown(&auth);
}

/* ---- threads ----------------------------------------------------------- */

struct thread_arg {
	struct auth *auth;
	int ok;
	int id;
};

static void *verify_thread(void *p)
{
	struct thread_arg *a = p;
	char addr[64];
	for (int i = 0; i < 50; i++) {
		struct auth_user u;
		struct auth_policy pol;
		snprintf(addr, sizeof(addr), "u%d@example.test", (a->id + i) % 4);
		if (auth_verify(a->auth, addr, addr, "10.1.1.1", &u) == AUTH_OK &&
		    strcmp(u.address, addr) == 0 &&
		    auth_user_policy(a->auth, u.id, &pol) == 0 &&
		    auth_lookup(a->auth, addr, &u) == 1)
			a->ok++;
	}
	return NULL;
}

TEST_CASE(concurrent_verify_and_lookups)
{
	struct auth *auth = setup();
	char addr[64];
	for (int i = 0; i < 4; i++) {
		snprintf(addr, sizeof(addr), "u%d@example.test", i);
		add_user(auth, addr, addr, false);   /* password = address */
	}
	pthread_t th[4];
	struct thread_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){auth, 0, i};
		pthread_create(&th[i], NULL, verify_thread, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(args[i].ok, 50);
	}
	teardown(&auth);
}

/* ---- password policy and SASLprep ------------------------------------ */

static void check_weak(struct auth *auth, const char *address, const char *pw,
		       const char *why)
{
	char *error = NULL;
	struct auth_user u;
	CHECK_INT(auth_user_add(auth, address, pw, false, NULL, &error), -1);
	CHECK(error != NULL && strstr(error, why) != NULL);
	if (error != NULL && strstr(error, why) == NULL)
		fprintf(stderr, "  error was: %s\n", error);
	free(error);
	CHECK_INT(auth_lookup(auth, address, &u), 0);   /* nothing created */
}

TEST_CASE(password_policy)
{
	struct auth *auth = setup();
	char *error = NULL;
	check_weak(auth, ALICE, "a", "1 characters, at least 12");
	check_weak(auth, ALICE, "eleven-char", "11 characters, at least 12");
	/* Characters, not bytes: 11 characters in 22 bytes. */
	check_weak(auth, ALICE, "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
		   "\u00e9\u00e9\u00e9\u00e9\u00e9", "11 characters");
	/* Counted after SASLprep: the soft hyphens vanish. */
	check_weak(auth, ALICE, "twelve\u00adchars", "11 characters");
	check_weak(auth, ALICE, "my-Alice-password", "account's name 'alice'");
	check_weak(auth, ALICE, "xx\uff41lice-is-here", "account's name");
	check_weak(auth, ALICE, "tab\tin-the-password", "prohibited");
	check_weak(auth, ALICE, "unassigned-\u0221-x", "not assigned");
	/* A local part of one or two characters is no rule. */
	CHECK_INT(add_user(auth, "al@example.test", "al-is-my-friend", false), 0);
	CHECK_INT(add_user(auth, ALICE, "twelve-chars", false), 0);
	CHECK_INT(auth_user_passwd(auth, ALICE, "short", false, &error), -1);
	CHECK(error != NULL && strstr(error, "at least 12") != NULL);
	free(error);
	error = NULL;
	CHECK_INT(verify(auth, ALICE, "twelve-chars"), AUTH_OK);
	/* Imports are not checked: the admin moves what exists. */
	CHECK_INT(auth_user_passwd(auth, ALICE, SHA512_VECTOR, true, &error), 0);
	CHECK_INT(verify(auth, ALICE, SHA512_PASSWORD), AUTH_OK);
	teardown(&auth);

	/* [auth] password_min_length */
	struct auth_settings set;
	cheap_settings(&set);
	set.password_min_length = 20;
	auth = setup_with(&set);
	check_weak(auth, ALICE, "nineteen-characters", "at least 20");
	CHECK_INT(add_user(auth, ALICE, "twenty-characters-ok", false), 0);
	teardown(&auth);
}

/* One password with a no-break space and full-width letters: the same
 * for PLAIN, LOGIN and SCRAM, whichever form the client sends (RFC 4013
 * maps them all to "pass word-ABC-1234"). */
TEST_CASE(non_ascii_passwords)
{
	struct auth *auth = setup();
	const char *stored = "pass\u00a0word-\uff21\uff22\uff23-1234";
	const char *plain_form = "pass word-ABC-1234";
	const char *other_form = "pass\u3000word-A\uff22C-1234";
	CHECK_INT(add_user(auth, ALICE, stored, false), 0);
	CHECK_INT(verify(auth, ALICE, stored), AUTH_OK);
	CHECK_INT(verify(auth, ALICE, plain_form), AUTH_OK);
	CHECK_INT(verify(auth, ALICE, other_form), AUTH_OK);
	CHECK_INT(verify(auth, ALICE, "pass word-abc-1234"), AUTH_FAILED);
	CHECK_INT(login_exchange(auth, false, ALICE, other_form), AUTH_SASL_OK);
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "%c%s%c%s", 0, ALICE, 0, stored);
	CHECK_INT(plain(auth, msg, (size_t)n, true), AUTH_SASL_OK);
	/* A SCRAM client prepares the password before deriving its keys. */
	CHECK_INT(scram(auth, "n,,", ALICE, plain_form, NULL), AUTH_SASL_OK);
	CHECK_INT(scram(auth, "n,,", ALICE, stored, NULL), AUTH_SASL_FAIL);
	teardown(&auth);

	/* A hash made of the unprepared bytes (imported, or set before
	 * Loft prepared passwords) still matches the bytes as sent, and
	 * the first login re-hashes it to the prepared form, with SCRAM
	 * keys. */
	auth = setup();
	char hash[512];
	struct auth_settings set;
	cheap_settings(&set);
	CHECK_INT(auth_hash_password(&set, stored, hash, sizeof(hash)), 0);
	CHECK_INT(add_user(auth, ALICE, hash, true), 0);
	CHECK_INT(verify(auth, ALICE, stored), AUTH_OK);
	CHECK_INT(scram(auth, "n,,", ALICE, plain_form, NULL), AUTH_SASL_OK);
	CHECK_INT(verify(auth, ALICE, plain_form), AUTH_OK);
	teardown(&auth);
}

static const struct test_case cases[] = {
	{"concurrent_verify_and_lookups", concurrent_verify_and_lookups},
	{"settings_from_config", settings_from_config},
	{"settings_errors_have_file_and_line", settings_errors_have_file_and_line},
	{"admin_and_lookups", admin_and_lookups},
	{"listings", listings},
	{"second_handle_sees_changes_at_once", second_handle_sees_changes_at_once},
	{"native_argon2id", native_argon2id},
	{"import_sha512_crypt", import_sha512_crypt},
	{"import_blf_crypt", import_blf_crypt},
	{"import_argon2id", import_argon2id},
	{"import_rejects_malformed", import_rejects_malformed},
	{"rehash_when_cost_changes", rehash_when_cost_changes},
	{"cache_makes_repeat_cheap_and_password_change_invalidates",
	 cache_makes_repeat_cheap_and_password_change_invalidates},
	{"throttle_backoff_per_address_account_and_pair",
	 throttle_backoff_per_address_account_and_pair},
	{"throttle_known_pairs", throttle_known_pairs},
	{"throttle_bans", throttle_bans},
	{"throttle_persisted", throttle_persisted},
	{"policies", policies},
	{"sasl_plain", sasl_plain},
	{"sasl_login", sasl_login},
	{"scram_rfc7677_vector", scram_rfc7677_vector},
	{"scram_exchanges", scram_exchanges},
	{"scram_malformed", scram_malformed},
	{"password_policy", password_policy},
	{"non_ascii_passwords", non_ascii_passwords},
	{"throttle_shared_batches", throttle_shared_batches},
	{NULL, NULL},
};

int main(void)
{
	log_set_level(LOG_LVL_WARN);
	atexit(clock_remove);
	snprintf(clock_path, sizeof(clock_path), "/tmp/loft-test-clock-%d",
		 (int)getpid());
	setenv("LOFT_TEST_CLOCK", clock_path, 1);
	clock_set(0);
	return test_main(cases);
}
