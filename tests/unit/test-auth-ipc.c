/*
 * Unit tests of src/auth across the socketpair: a client struct auth
 * (auth-client.c) against a server (auth-server.c) over a real
 * SOCK_SEQPACKET pair, in one process. Lookups, policies, the user list,
 * verification, PLAIN and SCRAM-SHA-256 through the client; the server's
 * refusals of malformed packets, unknown and busy exchanges; half-done
 * exchanges when the server goes away, and the client carrying on with a
 * new server; many threads at once.
 */
#include "test.h"
#include "test-scram.h"

#include "auth-ipc.h"
#include "auth-private.h"
#include "auth-wire.h"
#include "buf.h"
#include "log.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DOMAIN "example.test"
#define ALICE "alice@example.test"
#define PW "tidal-marble-staircase"

static char tmpdir[64];
static struct auth *local;

struct srv {
	struct auth_server *srv;
	pthread_t th;
	int peer_fd;     /* the client's end */
	int fd;          /* the server's end */
};

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void *srv_main(void *p)
{
	struct srv *s = p;
	auth_server_run(s->srv);
	return NULL;
}

static void srv_start(struct srv *s)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	s->fd = sv[0];
	s->peer_fd = sv[1];
	char *err = NULL;
	s->srv = auth_server_create(local, s->fd, 4, &err);
	if (s->srv == NULL)
		abort();
	pthread_create(&s->th, NULL, srv_main, s);
}

/* As if the auth process died: its end closes, its threads go. */
static void srv_kill(struct srv *s)
{
	auth_server_stop(s->srv);
	pthread_join(s->th, NULL);
	auth_server_destroy(&s->srv);
	close(s->fd);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/loft-test-ipc-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
	struct auth_settings set;
	auth_settings_defaults(&set);
	set.data_dir = tmpdir;
	set.argon2_t_cost = 1;
	set.argon2_m_cost_kib = 64;
	set.argon2_parallelism = 1;
	set.throttle_disabled = true;
	char *error = NULL;
	if (auth_open(&set, &local, &error) < 0)
		abort();
	CHECK_INT(auth_domain_add(local, DOMAIN, &error), 0);
	CHECK_INT(auth_user_add(local, ALICE, PW, false, NULL, &error), 0);
	CHECK_INT(auth_user_add(local, "bob@" DOMAIN, "quiet-lantern-orbit", false,
				NULL, &error), 0);
	CHECK_INT(auth_user_set(local, "bob@" DOMAIN, "disabled", "yes",
				&error), 0);
	CHECK_INT(auth_user_set(local, ALICE, "quota_bytes", "5M", &error), 0);
	CHECK_INT(auth_alias_add(local, "al@" DOMAIN, ALICE, &error), 0);
}

static void teardown(void)
{
	auth_close(&local);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct auth *client_for(struct srv *s)
{
	struct auth_settings set;
	auth_settings_defaults(&set);
	struct auth *c = NULL;
	char *err = NULL;
	CHECK_INT(auth_client_open(&set, s->peer_fd, &c, &err), 0);
	CHECK(auth_is_client(c));
	auth_client_set_connect_wait(c, 500);
	return c;
}

static void count_row(void *ctx, const char *name, const char *extra)
{
	int *n = ctx;
	(*n)++;
	if (strcmp(name, "bob@" DOMAIN) == 0)
		CHECK(extra != NULL && strcmp(extra, "disabled") == 0);
}

static void test_lookups(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	struct auth_user u;
	CHECK_INT(auth_lookup(c, "ALICE@example.test", &u), 1);
	CHECK_STR(u.address, ALICE);
	int64_t alice_id = u.id;
	CHECK_INT(auth_lookup(c, "al@" DOMAIN, &u), 1);
	CHECK_INT(u.id, alice_id);
	CHECK_INT(auth_lookup(c, "nobody@" DOMAIN, &u), 0);
	CHECK_INT(auth_lookup_id(c, alice_id, &u), 1);
	CHECK_STR(u.address, ALICE);
	CHECK_INT(auth_lookup_id(c, 999999, &u), 0);
	char longname[3000];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_INT(auth_lookup(c, longname, &u), 0);
	struct auth_policy p;
	CHECK_INT(auth_user_policy(c, alice_id, &p), 0);
	CHECK_INT(p.quota_bytes, 5 * 1024 * 1024);
	CHECK_INT(p.pop3_delete, AUTH_POP3_AUTO);
	CHECK(auth_domain_exists(c, "EXAMPLE.test"));
	CHECK(!auth_domain_exists(c, "example.org"));
	int rows = 0;
	char *err = NULL;
	CHECK_INT(auth_user_list(c, count_row, &rows, &err), 0);
	CHECK_INT(rows, 2);
	/* loftctl's calls are not the mail process's business. */
	CHECK_INT(auth_user_add(c, "eve@" DOMAIN, "harbor-violet-engine", false, NULL,
				&err), -1);
	CHECK(err != NULL && strstr(err, "not open") != NULL);
	free(err);
	CHECK_STR(auth_mechanisms(c, false), "SCRAM-SHA-256");
	auth_close(&c);
	srv_kill(&s);
}

static void test_user_list_many(void)
{
	/* More rows than one packet holds: the reply comes in pieces. */
	char *err = NULL;
	char pad[181];
	memset(pad, 'x', 180);
	pad[180] = '\0';
	for (int i = 0; i < 150; i++) {
		char a[256];
		snprintf(a, sizeof(a), "%s%04d@" DOMAIN, pad, i);
		CHECK_INT(auth_user_add(local, a, "{SHA512-CRYPT}$6$saltstring$"
					"svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
					"O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEd"
					"FCoEOfaS35inz1", true, NULL, &err), 0);
	}
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	int rows = 0;
	CHECK_INT(auth_user_list(c, count_row, &rows, &err), 0);
	CHECK_INT(rows, 152);
	auth_close(&c);
	srv_kill(&s);
}

static void test_verify(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	struct auth_user u;
	CHECK_INT(auth_verify(c, ALICE, PW, "192.0.2.1", &u), AUTH_OK);
	CHECK_STR(u.address, ALICE);
	CHECK_INT(auth_verify(c, ALICE, "wrong", "192.0.2.1", &u),
		  AUTH_FAILED);
	CHECK_INT(auth_verify(c, "bob@" DOMAIN, "quiet-lantern-orbit", "192.0.2.1",
			      &u), AUTH_DISABLED);
	CHECK_INT(auth_verify(c, "nobody@" DOMAIN, PW, NULL, &u), AUTH_FAILED);
	/* The cache of recent logins is the auth process's: a hit now. */
	enum auth_result r = AUTH_FAILED;
	memset(&u, 0, sizeof(u));
	CHECK_INT(auth_check_cached(c, ALICE, PW, &r, &u), 1);
	CHECK_INT(r, AUTH_OK);
	CHECK_STR(u.address, ALICE);
	CHECK_INT(auth_check_cached(c, ALICE, "not-it-at-all", &r, &u), 0);
	CHECK_INT(auth_check_password(c, ALICE, PW, &u), AUTH_OK);
	auth_close(&c);
	srv_kill(&s);
}

static enum auth_sasl_status step(struct auth_sasl *sa, const char *in,
				  size_t len, char **out, struct auth_user *u)
{
	size_t out_len;
	free(*out);
	*out = NULL;
	/* The gate's order (step, then the check it asks for), at once. */
	return auth_sasl_step_now(sa, in, len, out, &out_len, u);
}

static void test_sasl(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	struct auth_user u;
	struct auth_sasl *sa;
	char *out = NULL;

	CHECK_INT(auth_sasl_begin(c, "X-UNKNOWN", "192.0.2.1", &sa), -1);
	/* PLAIN with no initial response: an empty challenge, then OK. */
	CHECK_INT(auth_sasl_begin(c, "PLAIN", "192.0.2.1", &sa), 0);
	CHECK_INT(step(sa, NULL, 0, &out, &u), AUTH_SASL_CONTINUE);
	CHECK_STR(out, "");
	const char plain[] = "\0" ALICE "\0" PW;
	CHECK_INT(step(sa, plain, sizeof(plain) - 1, &out, &u), AUTH_SASL_OK);
	CHECK_STR(u.address, ALICE);
	auth_sasl_free(&sa);

	/* SCRAM-SHA-256 end to end: the keys stay with the server. */
	CHECK_INT(auth_sasl_begin(c, "SCRAM-SHA-256", "192.0.2.1", &sa), 0);
	const char *bare = "n=" ALICE ",r=fyko+d2lbbFgONRv9qkxdawL";
	char *first = xasprintf("n,,%s", bare);
	CHECK_INT(step(sa, first, strlen(first), &out, &u), AUTH_SASL_CONTINUE);
	uint8_t sig[32];
	char *final = scram_client_final(out, PW, bare, "biws", sig);
	CHECK(final != NULL);
	CHECK_INT(step(sa, final, strlen(final), &out, &u), AUTH_SASL_CONTINUE);
	char *v = base64_encode(sig, 32);
	CHECK(out != NULL && strncmp(out, "v=", 2) == 0 &&
	      strcmp(out + 2, v) == 0);
	CHECK_INT(step(sa, "", 0, &out, &u), AUTH_SASL_OK);
	CHECK_STR(u.address, ALICE);
	auth_sasl_free(&sa);
	free(v);
	free(final);

	/* A wrong proof fails; the exchange is over on both sides. */
	CHECK_INT(auth_sasl_begin(c, "SCRAM-SHA-256", "192.0.2.1", &sa), 0);
	CHECK_INT(step(sa, first, strlen(first), &out, &u), AUTH_SASL_CONTINUE);
	final = scram_client_final(out, "not-the-password", bare, "biws", sig);
	CHECK_INT(step(sa, final, strlen(final), &out, &u), AUTH_SASL_FAIL);
	CHECK_INT(step(sa, "", 0, &out, &u), AUTH_SASL_FAIL);
	auth_sasl_free(&sa);
	free(final);
	free(first);
	free(out);
	auth_close(&c);
	srv_kill(&s);
}

/* Half-done exchanges when the auth process dies: the next step is a
 * temporary failure, then a new server serves new exchanges. */
static void test_restart(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	struct auth_user u;
	struct auth_sasl *sa;
	char *out = NULL;
	/* LOGIN runs here: its password check is the auth process's. */
	CHECK_INT(auth_sasl_begin(c, "LOGIN", "192.0.2.1", &sa), 0);
	CHECK_INT(step(sa, NULL, 0, &out, &u), AUTH_SASL_CONTINUE);
	CHECK_STR(out, "Username:");
	/* SCRAM runs there: the exchange dies with it. */
	struct auth_sasl *sc;
	char *out2 = NULL;
	const char *bare = "n=" ALICE ",r=fyko+d2lbbFgONRv9qkxdawL";
	char *first = xasprintf("n,,%s", bare);
	CHECK_INT(auth_sasl_begin(c, "SCRAM-SHA-256", "192.0.2.1", &sc), 0);
	CHECK_INT(step(sc, first, strlen(first), &out2, &u), AUTH_SASL_CONTINUE);
	uint8_t sig[32];
	char *final = scram_client_final(out2, PW, bare, "biws", sig);
	srv_kill(&s);
	CHECK_INT(step(sa, ALICE, strlen(ALICE), &out, &u), AUTH_SASL_CONTINUE);
	CHECK_INT(step(sa, PW, strlen(PW), &out, &u), AUTH_SASL_TEMPFAIL);
	auth_sasl_free(&sa);
	CHECK_INT(step(sc, final, strlen(final), &out2, &u), AUTH_SASL_TEMPFAIL);
	auth_sasl_free(&sc);
	free(first);
	free(final);
	free(out2);
	/* While it is away, a call waits for it: then a lookup fails as
	 * temporary, not as "no such user". */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(auth_lookup(c, ALICE, &u), -1);
	CHECK_INT(auth_verify(c, ALICE, PW, NULL, &u), AUTH_TEMPFAIL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
		CHECK((t1.tv_sec - t0.tv_sec) * 1000 +
	      (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 450);
	/* A SASL exchange begun meanwhile fails at its first step. */
	CHECK_INT(auth_sasl_begin(c, "PLAIN", "192.0.2.1", &sa), 0);
	const char plain[] = "\0" ALICE "\0" PW;
	CHECK_INT(step(sa, plain, sizeof(plain) - 1, &out, &u),
		  AUTH_SASL_TEMPFAIL);
	auth_sasl_free(&sa);

	struct srv s2;
	srv_start(&s2);
	auth_client_set_fd(c, s2.peer_fd);
	CHECK_INT(auth_lookup(c, ALICE, &u), 1);
	CHECK_INT(auth_sasl_begin(c, "PLAIN", "192.0.2.1", &sa), 0);
	CHECK_INT(step(sa, plain, sizeof(plain) - 1, &out, &u), AUTH_SASL_OK);
	auth_sasl_free(&sa);
	free(out);
	auth_close(&c);
	srv_kill(&s2);
}

/* A packet sent on the raw socket; the reply read back. */
static ssize_t raw_call(int fd, const void *pkt, size_t len, uint8_t *reply,
			size_t size)
{
	if (send(fd, pkt, len, 0) < 0)
		return -1;
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, 10000) != 1)
		return -1;
	return recv(fd, reply, size, 0);
}

static int raw_reply_type(const uint8_t *r, ssize_t n)
{
	return n >= AUTH_WIRE_HEADER ? r[0] | r[1] << 8 : -1;
}

/* The server trusts the mail process no more than a client. */
static void test_server_refuses(void)
{
	struct srv s;
	srv_start(&s);
	int fd = s.peer_fd;
	uint8_t reply[AUTH_WIRE_MAX + 1];
	struct auth_wire_buf b;
	ssize_t n;

	/* Unknown type, a reply's flags, trailing bytes, a string with NUL,
	 * a string longer than its field, a short packet. */
	auth_wire_begin(&b, 99, 0, 7);
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_ERROR);
	CHECK_INT(reply[4], 7);
	auth_wire_begin(&b, AUTH_WIRE_LOOKUP, AUTH_WIRE_REPLY, 8);
	auth_wire_str(&b, ALICE);
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_ERROR);
	auth_wire_begin(&b, AUTH_WIRE_LOOKUP, 0, 9);
	auth_wire_str(&b, ALICE);
	auth_wire_u8(&b, 0);
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_ERROR);
	uint8_t with_nul[] = {AUTH_WIRE_LOOKUP, 0, 0, 0, 10, 0, 0, 0,
			      3, 0, 'a', 0, 'b'};
	n = raw_call(fd, with_nul, sizeof(with_nul), reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_ERROR);
	auth_wire_begin(&b, AUTH_WIRE_SASL_BEGIN, 0, 11);
	char mech[64];
	memset(mech, 'M', sizeof(mech) - 1);
	mech[sizeof(mech) - 1] = '\0';
	auth_wire_str(&b, mech);
	auth_wire_str(&b, "");
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_ERROR);
	uint8_t shortpkt[] = {AUTH_WIRE_LOOKUP, 0, 0};
	send(fd, shortpkt, sizeof(shortpkt), 0);
	/* Too big for any request: cut by the kernel, refused. */
	uint8_t *big = xcalloc(1, AUTH_WIRE_MAX + 100);
	big[0] = AUTH_WIRE_LOOKUP;
	big[4] = 12;
	n = raw_call(fd, big, AUTH_WIRE_MAX + 100, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_ERROR);
	free(big);

	/* A step for an exchange never begun, and after it ended. */
	auth_wire_begin(&b, AUTH_WIRE_SASL_STEP, 0, 13);
	auth_wire_u32(&b, 0x12345);
	auth_wire_bytes(&b, "x", 1);
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_SASL_STEP);
	CHECK_INT(reply[8], AUTH_SASL_FAIL);

	/* PLAIN and LOGIN are not exchanges of the auth process. */
	auth_wire_begin(&b, AUTH_WIRE_SASL_BEGIN, 0, 14);
	auth_wire_str(&b, "PLAIN");
	auth_wire_str(&b, "192.0.2.9");
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_SASL_BEGIN);
	CHECK_INT((int8_t)reply[8], -1);
	/* Two steps of one SCRAM exchange at once: one goes on, the other
	 * fails (busy, or out of order). */
	auth_wire_begin(&b, AUTH_WIRE_SASL_BEGIN, 0, 15);
	auth_wire_str(&b, "SCRAM-SHA-256");
	auth_wire_str(&b, "192.0.2.9");
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_SASL_BEGIN);
	uint32_t id = (uint32_t)reply[9] | (uint32_t)reply[10] << 8 |
		      (uint32_t)reply[11] << 16 | (uint32_t)reply[12] << 24;
	CHECK(id != 0);
	const char first[] = "n,,n=" ALICE ",r=abcdefghijklmnop";
	struct auth_wire_buf b2;
	auth_wire_begin(&b, AUTH_WIRE_SASL_STEP, 0, 16);
	auth_wire_u32(&b, id);
	auth_wire_bytes(&b, first, sizeof(first) - 1);
	b2 = b;
	b2.data[4] = 17;
	send(fd, b.data, b.len, 0);
	send(fd, b2.data, b2.len, 0);
	int cont = 0, fail = 0;
	for (int i = 0; i < 2; i++) {
		struct pollfd p = {fd, POLLIN, 0};
		CHECK_INT(poll(&p, 1, 10000), 1);
		n = recv(fd, reply, sizeof(reply), 0);
		CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_SASL_STEP);
		if (reply[8] == AUTH_SASL_CONTINUE)
			cont++;
		else if (reply[8] == AUTH_SASL_FAIL)
			fail++;
	}
	CHECK_INT(cont, 1);
	CHECK_INT(fail, 1);
	/* A check before any step asked for one fails; the exchange is over
	 * then, and a further step finds nothing. */
	auth_wire_begin(&b, AUTH_WIRE_SASL_CHECK, 0, 18);
	auth_wire_u32(&b, id);
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_SASL_CHECK);
	CHECK_INT(reply[8], AUTH_SASL_FAIL);
	b.data[4] = 19;
	b2.data[4] = 20;
	n = raw_call(fd, b2.data, b2.len, reply, sizeof(reply));
	CHECK_INT(reply[8], AUTH_SASL_FAIL);
	/* The server is still there for well-formed requests. */
	auth_wire_begin(&b, AUTH_WIRE_DOMAIN, 0, 21);
	auth_wire_str(&b, DOMAIN);
	n = raw_call(fd, b.data, b.len, reply, sizeof(reply));
	CHECK_INT(raw_reply_type(reply, n), AUTH_WIRE_DOMAIN);
	CHECK_INT(reply[8], 1);
	close(fd);
	srv_kill(&s);
}

struct par {
	struct auth *c;
	int ok;
};

static void *par_main(void *p)
{
	struct par *x = p;
	for (int i = 0; i < 20; i++) {
		struct auth_user u;
		if (auth_lookup(x->c, ALICE, &u) == 1 &&
		    auth_verify(x->c, ALICE, PW, "192.0.2.1", &u) == AUTH_OK &&
		    auth_verify(x->c, ALICE, "bad", "192.0.2.1", &u) ==
			    AUTH_FAILED)
			x->ok++;
	}
	return NULL;
}

static void test_parallel(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	pthread_t th[8];
	struct par p[8];
	for (int i = 0; i < 8; i++) {
		p[i].c = c;
		p[i].ok = 0;
		pthread_create(&th[i], NULL, par_main, &p[i]);
	}
	int ok = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok += p[i].ok;
	}
	CHECK_INT(ok, 160);
	auth_close(&c);
	srv_kill(&s);
}

static void test_wire_roundtrip(void)
{
	/* What the client builds, the server parses back field by field. */
	struct auth_wire_buf b;
	struct auth_request req;
	uint32_t id;
	auth_wire_begin(&b, AUTH_WIRE_CHECK_PASSWORD, 0, 0x01020304);
	auth_wire_str(&b, ALICE);
	auth_wire_str(&b, "p\xc3\xa4ss word");
	CHECK_INT(auth_wire_parse_request(b.data, b.len, &req, &id), 0);
	CHECK_INT(id, 0x01020304);
	CHECK_STR(req.name, ALICE);
	CHECK_STR(req.password, "p\xc3\xa4ss word");
	/* Every strict prefix is refused. */
	for (size_t i = 0; i < b.len; i++)
		CHECK_INT(auth_wire_parse_request(b.data, i, &req, &id), -1);
	auth_wire_begin(&b, AUTH_WIRE_SASL_STEP, 0, 1);
	auth_wire_u32(&b, 5);
	auth_wire_bytes(&b, NULL, 0);
	CHECK_INT(auth_wire_parse_request(b.data, b.len, &req, &id), 0);
	CHECK(req.data == NULL);
	auth_wire_begin(&b, AUTH_WIRE_SASL_STEP, 0, 1);
	auth_wire_u32(&b, 5);
	auth_wire_bytes(&b, "", 0);
	CHECK_INT(auth_wire_parse_request(b.data, b.len, &req, &id), 0);
	CHECK(req.data != NULL && req.data_len == 0);
	/* "absent" with a length is malformed */
	b.data[b.len - 3] = 0;
	b.data[b.len - 2] = 1;
	CHECK_INT(auth_wire_parse_request(b.data, b.len, &req, &id), -1);
	/* SESSION_CREATE without a bound address must not carry one. */
	auth_wire_begin(&b, AUTH_WIRE_SESSION_CREATE, 0, 1);
	auth_wire_i64(&b, 1);
	auth_wire_u32(&b, 60);
	auth_wire_u32(&b, 0);
	auth_wire_u8(&b, 0);
	auth_wire_str(&b, "192.0.2.1");
	CHECK_INT(auth_wire_parse_request(b.data, b.len, &req, &id), -1);
	/* A bool is 0 or 1. */
	b.data[b.len - 12] = 2;
	CHECK_INT(auth_wire_parse_request(b.data, b.len, &req, &id), -1);
}

/* HTTP's calls: Bearer tokens and web sessions, through the client. */
static void test_tokens_sessions(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	char *token = NULL, *name = NULL, *err = NULL;
	CHECK_INT(auth_token_add(local, ALICE, "phone", 0, &token, &name, &err),
		  0);
	struct auth_user u;
	CHECK_INT(auth_token_verify(c, token, "192.0.2.1", &u), AUTH_OK);
	CHECK_STR(u.address, ALICE);
	token[10] ^= 1;
	CHECK_INT(auth_token_verify(c, token, "192.0.2.1", &u), AUTH_FAILED);
	/* A token also works as the account's password (an app password). */
	token[10] ^= 1;
	CHECK_INT(auth_verify(c, ALICE, token, "192.0.2.1", &u), AUTH_OK);

	struct auth_session_params params = {3600, 600, "192.0.2.7"};
	char id[AUTH_SESSION_ID_SIZE], csrf[AUTH_SESSION_ID_SIZE],
	     csrf2[AUTH_SESSION_ID_SIZE];
	CHECK_INT(auth_session_create(c, u.id, &params, id, csrf, &err), 0);
	CHECK(strlen(id) >= 16 && strlen(csrf) >= 16);
	CHECK_INT(auth_session_check(c, id, "192.0.2.7", &u, csrf2), AUTH_OK);
	CHECK_STR(csrf2, csrf);
	CHECK_STR(u.address, ALICE);
	/* Bound to its address: a stolen cookie from elsewhere fails. */
	CHECK_INT(auth_session_check(c, id, "192.0.2.8", &u, NULL),
		  AUTH_FAILED);
	CHECK_INT(auth_session_delete(c, id), 0);
	CHECK_INT(auth_session_check(c, id, "192.0.2.7", &u, NULL), AUTH_FAILED);
	free(token);
	free(name);
	auth_close(&c);
	srv_kill(&s);
}

struct names {
	char list[8][72];
	int n;
};

static void token_seen(void *ctx, const struct auth_token_info *info)
{
	struct names *x = ctx;
	if (x->n < 8)
		snprintf(x->list[x->n], sizeof(x->list[0]), "%s", info->name);
	x->n++;
	CHECK(info->created > 0);
}

/* The webmail's calls (src/jmap/jmap-loft.c): app passwords made, listed
 * and removed, and the password change, all through the client. */
static void test_webmail_calls(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	char *token = NULL, *name = NULL, *err = NULL;
	time_t later = time(NULL) + 86400;
	CHECK_INT(auth_token_add(c, ALICE, "laptop", later, &token, &name,
				 &err), 0);
	CHECK(auth_token_syntax(token));
	CHECK_STR(name, "laptop");
	struct auth_user u;
	CHECK_INT(auth_token_verify(local, token, NULL, &u), AUTH_OK);
	free(name);
	name = NULL;
	char *token2 = NULL;
	/* No name: the auth process picks one and says which. */
	CHECK_INT(auth_token_add(c, ALICE, NULL, 0, &token2, &name, &err), 0);
	CHECK(name != NULL && strncmp(name, "device-", 7) == 0);
	/* A name taken: refused with the auth process's reason. */
	char *token3 = NULL;
	CHECK_INT(auth_token_add(c, ALICE, "laptop", 0, &token3, NULL, &err),
		  -1);
	CHECK(token3 == NULL && err != NULL && strstr(err, "laptop") != NULL);
	free(err);
	err = NULL;
	CHECK_INT(auth_token_add(c, "nobody@" DOMAIN, "x", 0, &token3, NULL,
				 &err), -1);
	CHECK(err != NULL && strstr(err, "no user") != NULL);
	free(err);
	err = NULL;
	struct names seen = {.n = 0};
	CHECK_INT(auth_token_list(c, ALICE, token_seen, &seen, &err), 0);
	/* by name; "phone" is tokens_sessions' */
	CHECK_INT(seen.n, 3);
	CHECK_STR(seen.list[0], name);
	CHECK_STR(seen.list[1], "laptop");
	CHECK_STR(seen.list[2], "phone");
	CHECK_INT(auth_token_del(c, ALICE, "laptop", &err), 0);
	CHECK_INT(auth_token_verify(local, token, NULL, &u), AUTH_FAILED);
	CHECK_INT(auth_token_del(c, ALICE, "laptop", &err), -1);
	CHECK(err != NULL && strstr(err, "no token named") != NULL);
	free(err);
	err = NULL;

	/* The password change needs the current password, never an app
	 * password; a weak new one is refused with the reason. */
	CHECK_INT(auth_user_passwd_change(c, ALICE, "not-the-password-at-all",
					  "copper-kettle-meadow", &err),
		  AUTH_PASSWD_WRONG);
	CHECK(err == NULL);
	CHECK_INT(auth_user_passwd_change(c, ALICE, token2,
					  "copper-kettle-meadow", &err),
		  AUTH_PASSWD_WRONG);
	CHECK_INT(auth_user_passwd_change(c, ALICE, PW, "short", &err),
		  AUTH_PASSWD_REFUSED);
	CHECK(err != NULL && strstr(err, "weak") != NULL);
	free(err);
	err = NULL;
	CHECK_INT(auth_user_passwd_change(c, ALICE, PW, "copper-kettle-meadow",
					  &err), AUTH_PASSWD_CHANGED);
	CHECK_INT(auth_verify(local, ALICE, PW, NULL, &u), AUTH_FAILED);
	CHECK_INT(auth_verify(c, ALICE, "copper-kettle-meadow", NULL, &u),
		  AUTH_OK);
	/* The administration calls stay the auth process's own. */
	CHECK_INT(auth_user_passwd(c, ALICE, PW, false, &err), -1);
	free(err);
	err = NULL;
	CHECK_INT(auth_user_passwd_change(c, ALICE, "copper-kettle-meadow", PW,
					  &err), AUTH_PASSWD_CHANGED);
	CHECK_INT(auth_token_del(c, ALICE, name, &err), 0);
	free(token);
	free(token2);
	free(name);
	/* The auth process away: temporary, never "wrong". */
	srv_kill(&s);
	CHECK_INT(auth_user_passwd_change(c, ALICE, PW, "copper-kettle-meadow",
					  &err), AUTH_PASSWD_TEMPFAIL);
	free(err);
	err = NULL;
	struct names none = {.n = 0};
	CHECK_INT(auth_token_list(c, ALICE, token_seen, &none, &err), -1);
	free(err);
	auth_close(&c);
}

/* Shared mailboxes (auth-acl.c, src/imap/imap-acl.c): groups, the
 * reverse index of grants and ACL identifiers, through the client. */
/* enum store_acl_kind (store.h, outside this test's modules) */
enum { ACL_USER = 1, ACL_GROUP = 2 };

static void test_acl_calls(void)
{
	struct srv s;
	srv_start(&s);
	struct auth *c = client_for(&s);
	char *err = NULL;
	struct auth_user alice, bob;
	CHECK_INT(auth_lookup(local, ALICE, &alice), 1);
	CHECK_INT(auth_lookup(local, "bob@" DOMAIN, &bob), 1);
	CHECK_INT(auth_group_add(local, "team@" DOMAIN, &err), 0);
	CHECK_INT(auth_group_member(local, "team@" DOMAIN, ALICE, true, &err),
		  0);
	int64_t gid = 0;
	CHECK_INT(auth_group_lookup(c, "TEAM", DOMAIN, &gid), 1);
	CHECK(gid > 0);
	CHECK_INT(auth_group_lookup(c, "nobody", DOMAIN, &gid), 0);
	char name[128] = "";
	CHECK_INT(auth_group_name(c, gid, name, sizeof(name)), 1);
	CHECK_STR(name, "team@" DOMAIN);
	CHECK_INT(auth_group_name(c, gid + 1000, name, sizeof(name)), 0);
	int64_t *ids = NULL;
	size_t n = 0;
	CHECK_INT(auth_user_groups(c, alice.id, &ids, &n), 0);
	CHECK(n == 1 && ids[0] == gid);
	free(ids);
	CHECK_INT(auth_user_groups(c, bob.id, &ids, &n), 0);
	CHECK_INT((int)n, 0);
	free(ids);
	/* bob grants alice's group something: alice's LIST opens bob's */
	CHECK_INT(auth_acl_hint(c, bob.id, ACL_GROUP, gid), 0);
	CHECK_INT(auth_acl_owners(c, alice.id, &ids, &n), 0);
	CHECK(n == 1 && ids[0] == bob.id);
	free(ids);
	/* identifiers as IMAP's SETACL parses and GETACL prints them */
	int kind = 0;
	int64_t id = 0;
	bool neg = false;
	const char *why = NULL;
	CHECK_INT(auth_acl_identifier(c, "-$team", "bob@" DOMAIN, false, &kind,
				      &id, &neg, &why), 0);
	CHECK(kind == ACL_GROUP && id == gid && neg);
	CHECK_INT(auth_acl_identifier(c, ALICE, "bob@" DOMAIN, false, &kind,
				      &id, &neg, &why), 0);
	CHECK(kind == ACL_USER && id == alice.id);
	CHECK_INT(auth_acl_identifier(c, "$nope", "bob@" DOMAIN, false, &kind,
				      &id, &neg, &why), -1);
	CHECK(why != NULL && strstr(why, "NONEXISTENT") != NULL);
	CHECK_INT(auth_user_is_shared(c, alice.id), 0);
	CHECK_INT(auth_user_shared_admin(c, alice.id), 0);
	CHECK_INT(auth_user_set(local, ALICE, "shared_admin", "yes", &err), 0);
	CHECK_INT(auth_user_shared_admin(c, alice.id), 1);
	char *text = auth_acl_identifier_text(c, ACL_GROUP, gid, false,
					      "bob@" DOMAIN);
	CHECK_STR(text, "$team");
	free(text);
	/* the auth process away: an error, never an empty answer */
	srv_kill(&s);
	CHECK_INT(auth_user_groups(c, alice.id, &ids, &n), -1);
	CHECK(ids == NULL && n == 0);
	CHECK_INT(auth_acl_hint(c, bob.id, ACL_GROUP, gid), -1);
	CHECK_INT(auth_user_is_shared(c, alice.id), -1);
	CHECK_INT(auth_acl_identifier(c, "$team", "bob@" DOMAIN, false, &kind,
				      &id, &neg, &why), -1);
	CHECK(why != NULL && strstr(why, "UNAVAILABLE") != NULL);
	auth_close(&c);
}

static const struct test_case cases[] = {
	{"wire_roundtrip", test_wire_roundtrip},
	{"lookups", test_lookups},
	{"verify", test_verify},
	{"sasl", test_sasl},
	{"server_refuses", test_server_refuses},
	{"restart", test_restart},
	{"parallel", test_parallel},
	{"user_list_many", test_user_list_many},
	{"tokens_sessions", test_tokens_sessions},
	{"webmail_calls", test_webmail_calls},
	{"acl_calls", test_acl_calls},
	{NULL, NULL},
};

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	setup();
	int rc = test_main(cases);
	teardown();
	return rc;
}
