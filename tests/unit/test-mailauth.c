/*
 * src/mailauth without a network: canonicalization (RFC 6376 3.4.5's
 * example), DKIM signatures made with fresh RSA and Ed25519 keys checked
 * by the verifier fed in pieces at every split, tampering caught, the
 * record parsers' refusals, SPF macro expansion (RFC 7208 7.4's
 * examples), DMARC records, From: domains and Authentication-Results.
 */
#include "test.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "mailauth-private.h"

/* ---- canonicalization --------------------------------------------- */

static void body_canon(enum dkim_canon c, const char *in, const char *expect)
{
	/* the hash of the canonical form equals the hash of expect */
	uint8_t h1[64], h2[64];
	size_t l1 = 0, l2 = 0;
	struct dkim_body *b = dkim_body_create(c, false, false, 0);
	dkim_body_feed(b, in, strlen(in));
	dkim_body_final(b, h1, &l1);
	dkim_body_free(&b);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned n = 0;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, expect, strlen(expect));
	EVP_DigestFinal_ex(ctx, h2, &n);
	EVP_MD_CTX_free(ctx);
	l2 = n;
	CHECK_MEM(h1, l1, h2, l2);
}

static void test_canon(void)
{
	/* RFC 6376 3.4.5 */
	const char *hdr = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n";
	struct ma_field *f;
	size_t hlen, n = ma_header_split(hdr, strlen(hdr), &f, &hlen);
	CHECK_INT(n, 2);
	CHECK_INT(hlen, strlen(hdr));
	struct buf out;
	buf_init(&out, 0);
	for (size_t i = 0; i < n; i++)
		dkim_canon_header(DKIM_CANON_RELAXED, &f[i], &out);
	CHECK_STR(out.data, "a:X\r\nb:Y Z\r\n");
	buf_reset(&out);
	for (size_t i = 0; i < n; i++)
		dkim_canon_header(DKIM_CANON_SIMPLE, &f[i], &out);
	CHECK_STR(out.data, "A: X\r\nB : Y\t\r\n\tZ  \r\n");
	buf_free(&out);
	free(f);
	const char *body = " C \r\nD \t E\r\n\r\n\r\n";
	body_canon(DKIM_CANON_RELAXED, body, " C\r\nD E\r\n");
	body_canon(DKIM_CANON_SIMPLE, body, " C \r\nD \t E\r\n");
	/* empty bodies; a missing final CRLF; bare LF as a line end */
	body_canon(DKIM_CANON_SIMPLE, "", "\r\n");
	body_canon(DKIM_CANON_RELAXED, "", "");
	body_canon(DKIM_CANON_RELAXED, "\r\n\r\n", "");
	body_canon(DKIM_CANON_SIMPLE, "x", "x\r\n");
	body_canon(DKIM_CANON_SIMPLE, "a\nb\n\n", "a\r\nb\r\n");
	body_canon(DKIM_CANON_RELAXED, "a \t\r\n\t\r\nb\r", "a\r\n\r\nb\r\r\n");
}

/* ---- signing and verifying ---------------------------------------- */

static char *pem_of(EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
	long n = BIO_get_mem_data(bio, &p);
	char *copy = xstrndup(p, (size_t)n);
	BIO_free(bio);
	return copy;
}

char *dkim_key_record(EVP_PKEY *k);

static const char message[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n";

/* Verifies signed (fed in pieces of `step` bytes) against record. */
static enum ma_status verify(const char *signed_msg, size_t len, size_t step,
			     const char *record, struct dkim_result *res)
{
	struct dkim_verifier *v = dkim_verifier_create();
	for (size_t i = 0; i < len; i += step)
		dkim_verifier_feed(v, signed_msg + i,
				   len - i < step ? len - i : step);
	size_t n = dkim_verifier_end(v);
	CHECK_INT(n, 1);
	dkim_verifier_check_key(v, 0, 0 /* DNS_OK */, &record, 1);
	struct dkim_result r[DKIM_MAX_SIGNATURES];
	dkim_verifier_results(v, r, DKIM_MAX_SIGNATURES);
	*res = r[0];
	dkim_verifier_free(&v);
	return res->status;
}

static void sign_and_verify(const char *alg)
{
	EVP_PKEY *k = strcmp(alg, "rsa") == 0
			      ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
			      : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *pem = pem_of(k), *record = dkim_key_record(k), *err = NULL;
	struct buf sig, msg;
	struct dkim_result res;

	buf_init(&sig, 0);
	CHECK_INT(dkim_sign_with(pem, strlen(pem), "football.example.com",
				 "sel1", time(NULL), message, strlen(message),
				 &sig, &err), 0);
	CHECK(strstr(sig.data, strcmp(alg, "rsa") == 0 ? "a=rsa-sha256"
							: "a=ed25519-sha256"));
	CHECK(strstr(sig.data, "h=from:") != NULL);
	buf_init(&msg, 0);
	buf_append(&msg, sig.data, sig.len);
	buf_append_str(&msg, message);
	/* every split of the input gives the same result */
	for (size_t step = 1; step <= msg.len; step += step < 40 ? 1 : 97)
		CHECK_INT(verify(msg.data, msg.len, step, record, &res), MA_PASS);
	CHECK_STR(res.domain, "football.example.com");
	CHECK_STR(res.selector, "sel1");
	/* a changed body, a changed signed field, an added From: */
	char *bad = xstrdup(msg.data);
	char *p = strstr(bad, "hungry");
	p[0] = 'H';
	CHECK_INT(verify(bad, strlen(bad), 4096, record, &res), MA_FAIL);
	CHECK_STR(res.reason, "body hash did not verify");
	free(bad);
	bad = xstrdup(msg.data);
	p = strstr(bad, "dinner");
	p[0] = 'D';
	CHECK_INT(verify(bad, strlen(bad), 4096, record, &res), MA_FAIL);
	CHECK_STR(res.reason, "signature did not verify");
	free(bad);
	char *added = xasprintf("%sFrom: evil@attacker.example\r\n%s", sig.data,
				message);
	CHECK_INT(verify(added, strlen(added), 4096, record, &res), MA_FAIL);
	free(added);
	/* relaxed canonicalization survives re-folding and case */
	char *refolded = xasprintf("%s%s", sig.data,
				   "FROM:  Joe SixPack\r\n   <joe@football.example.com>\r\n"
				   "To: Suzie Q <suzie@shopping.example.net>\r\n"
				   "Subject: Is dinner  ready?\r\n"
				   "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
				   "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
				   "\r\nHi.\r\n\r\nWe lost the game.  Are you hungry yet?  \r\n"
				   "\r\nJoe.\r\n\r\n\r\n");
	CHECK_INT(verify(refolded, strlen(refolded), 4096, record, &res), MA_PASS);
	free(refolded);
	/* a revoked key, a key of the other type, no key */
	CHECK_INT(verify(msg.data, msg.len, 4096, "v=DKIM1; p=", &res),
		  MA_PERMERROR);
	CHECK_STR(res.reason, "key revoked");
	const char *other = strcmp(alg, "rsa") == 0
				    ? "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
				    : "v=DKIM1; k=rsa; p=AAAA";
	CHECK_INT(verify(msg.data, msg.len, 4096, other, &res), MA_PERMERROR);
	buf_free(&msg);
	buf_free(&sig);
	free(pem);
	free(record);
	EVP_PKEY_free(k);
}

static void test_dkim_sign_verify(void)
{
	sign_and_verify("rsa");
	sign_and_verify("ed25519");
}

static void test_dkim_records(void)
{
	struct dkim_sig sig;
	char why[128];
	const char *ok = "v=1; a=rsa-sha256; d=example.net; s=brisbane;\r\n"
			 "\tc=relaxed/simple; q=dns/txt; i=foo@eng.example.net;\r\n"
			 "\tt=1117574938; x=1118006938; l=200;\r\n"
			 "\th=from:to:subject:date; bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=;\r\n"
			 "\tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZ\r\n"
			 "\t VoG4ZHRNiYzR";
	CHECK_INT(dkim_sig_parse(ok, strlen(ok), &sig, why, sizeof(why)), 0);
	CHECK_STR(sig.domain, "example.net");
	CHECK_STR(sig.selector, "brisbane");
	CHECK_STR(sig.auid, "foo@eng.example.net");
	CHECK_INT(sig.hcanon, DKIM_CANON_RELAXED);
	CHECK_INT(sig.bcanon, DKIM_CANON_SIMPLE);
	CHECK_INT(sig.header_count, 4);
	CHECK_INT(sig.length, 200);
	CHECK_INT(sig.expire, 1118006938);
	CHECK_STR(sig.b_text, "dzdVyOfA");
	dkim_sig_free(&sig);
	static const char *const bad[] = {
		"v=1; a=rsa-sha256; d=example.net; s=x; h=to; bh=YQ==; b=YQ==",
		"v=2; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==; b=YQ==",
		"v=1; a=rsa-md5; d=example.net; s=x; h=from; bh=YQ==; b=YQ==",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==; b=YQ==; d=x.net",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==; b=YQ==; i=a@other.net",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=Y; b=YQ==",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==; b=YQ==; l=abc",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==; b=YQ==; q=http",
		"v=1; a=rsa-sha256; d=; s=x; h=from; bh=YQ==; b=YQ==",
		"v=1; a=rsa-sha256; d=example.net; s=x; h=from; bh=YQ==; b=YQ==; t=5; x=4",
		"v=1; a=rsa-sha256 d=example.net",
		"1v=1",
		NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++) {
		int rc = dkim_sig_parse(bad[i], strlen(bad[i]), &sig, why,
					sizeof(why));
		if (rc != -1)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_INT(rc, -1);
		dkim_sig_free(&sig);
	}
	struct dkim_key key;
	CHECK_INT(dkim_key_parse("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
				 66, &key, why, sizeof(why)), 0);
	CHECK_INT(key.type, DKIM_KEY_ED25519);
	CHECK_INT(key.pub_len, 32);
	dkim_key_free(&key);
	const char *t = "p=; t=y:s; h=sha1";
	CHECK_INT(dkim_key_parse(t, strlen(t), &key, why, sizeof(why)), 0);
	CHECK(key.revoked && key.testing && key.strict && !key.sha256);
	dkim_key_free(&key);
	static const char *const badkeys[] = {
		"k=rsa", "v=DKIM2; p=YQ==", "k=rsa; v=DKIM1; p=YQ==",
		"k=dsa; p=YQ==", "s=web; p=YQ==", "k=ed25519; p=YQ==",
		"p=!!", "p=YQ==; p=YQ==", NULL,
	};
	for (size_t i = 0; badkeys[i] != NULL; i++) {
		CHECK_INT(dkim_key_parse(badkeys[i], strlen(badkeys[i]), &key,
					 why, sizeof(why)), -1);
		dkim_key_free(&key);
	}
}

/* ---- SPF ---------------------------------------------------------- */

static void macro(const char *in, const char *ip, const char *expect)
{
	struct spf_macro_env e = {
		.sender = "strong-bad@email.example.com", .local = "strong-bad",
		.sender_domain = "email.example.com",
		.domain = "email.example.com", .ip = ip,
		.ipv6 = strchr(ip, ':') != NULL, .helo = "mx.example.org",
		.receiver = "loft.example.test", .now = 1,
	};
	struct buf b;
	buf_init(&b, 0);
	int rc = spf_macro_expand(in, strlen(in), &e, false, &b);
	if (expect == NULL) {
		CHECK_INT(rc, -1);
	} else {
		CHECK_INT(rc, 0);
		CHECK_STR(b.data ? b.data : "", expect);
	}
	buf_free(&b);
}

static void test_spf_macros(void)
{
	/* RFC 7208 7.4 */
	macro("%{s}", "192.0.2.3", "strong-bad@email.example.com");
	macro("%{o}", "192.0.2.3", "email.example.com");
	macro("%{d}", "192.0.2.3", "email.example.com");
	macro("%{d4}", "192.0.2.3", "email.example.com");
	macro("%{d3}", "192.0.2.3", "email.example.com");
	macro("%{d2}", "192.0.2.3", "example.com");
	macro("%{d1}", "192.0.2.3", "com");
	macro("%{dr}", "192.0.2.3", "com.example.email");
	macro("%{d2r}", "192.0.2.3", "example.email");
	macro("%{l}", "192.0.2.3", "strong-bad");
	macro("%{l-}", "192.0.2.3", "strong.bad");
	macro("%{lr}", "192.0.2.3", "strong-bad");
	macro("%{lr-}", "192.0.2.3", "bad.strong");
	macro("%{l1r-}", "192.0.2.3", "strong");
	macro("%{ir}.%{v}._spf.%{d2}", "192.0.2.3",
	      "3.2.0.192.in-addr._spf.example.com");
	macro("%{lr-}.lp._spf.%{d2}", "192.0.2.3", "bad.strong.lp._spf.example.com");
	macro("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "192.0.2.3",
	      "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	macro("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "192.0.2.3",
	      "3.2.0.192.in-addr.strong.lp._spf.example.com");
	macro("%{d2}.trusted-domains.example.net", "192.0.2.3",
	      "example.com.trusted-domains.example.net");
	macro("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01",
	      "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	      ".ip6._spf.example.com");
	macro("%%%_%-", "192.0.2.3", "% %20");
	macro("%{S}", "192.0.2.3", "strong-bad%40email.example.com");
	/* refused: unknown letter, zero digits, unclosed, exp-only letters,
	 * a lone % */
	macro("%{x}", "192.0.2.3", NULL);
	macro("%{d0}", "192.0.2.3", NULL);
	macro("%{d", "192.0.2.3", NULL);
	macro("%{c}", "192.0.2.3", NULL);
	macro("%{t}", "192.0.2.3", NULL);
	macro("a%", "192.0.2.3", NULL);
	macro("%x", "192.0.2.3", NULL);
	char why[80];
	static const char *const good[] = {
		"v=spf1 -all", "v=spf1", "V=SPF1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
		"v=spf1 a mx/24 a:%{d}/24//64 ptr exists:%{ir}.x.example include:a.example ?all",
		"v=spf1 redirect=_spf.example.com", "v=spf1 foo=bar -all", NULL,
	};
	for (size_t i = 0; good[i] != NULL; i++)
		CHECK_INT(spf_record_check(good[i], strlen(good[i]), why,
					   sizeof(why)), 0);
	static const char *const badr[] = {
		"v=spf10", "v=spf1 ip4:192.0.2.0/33", "v=spf1 ip4:300.1.1.1",
		"v=spf1 include", "v=spf1 bogus:x", "v=spf1 all:x",
		"v=spf1 redirect=a redirect=b", "v=spf1 a//129", "v=spf1 ip6:::1/129",
		"v=spf1 a:", NULL,
	};
	for (size_t i = 0; badr[i] != NULL; i++) {
		int rc = spf_record_check(badr[i], strlen(badr[i]), why, sizeof(why));
		if (rc != -1)
			fprintf(stderr, "accepted: %s\n", badr[i]);
		CHECK_INT(rc, -1);
	}
}

/* ---- DMARC, From:, Authentication-Results -------------------------- */

static void test_dmarc_records(void)
{
	struct dmarc_record r;
	char why[80];
	const char *t = "v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; rua=mailto:x@example.com";
	CHECK_INT(dmarc_record_parse(t, strlen(t), &r, why, sizeof(why)), 0);
	CHECK(r.p == DMARC_P_REJECT && r.sp == DMARC_P_QUARANTINE && r.pct == 50 &&
	      r.adkim_strict && !r.aspf_strict);
	t = "v=DMARC1; p=bogus; rua=mailto:x@example.com";
	CHECK_INT(dmarc_record_parse(t, strlen(t), &r, why, sizeof(why)), 0);
	CHECK_INT(r.p, DMARC_P_NONE);
	static const char *const bad[] = {
		"v=DMARC1", "v=DMARC1; p=bogus", "p=reject; v=DMARC1",
		"v=DMARC2; p=none", "v=DMARC1; p=none; p=reject", "", NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++)
		CHECK_INT(dmarc_record_parse(bad[i], strlen(bad[i]), &r, why,
					     sizeof(why)), -1);
	char doms[4][256];
	const char *from = " \"Doe, John\" <john@Example.COM.>, (c) jane@sub.example.org,"
			   " Group: a@g.example;";
	CHECK_INT(ma_from_domains(from, strlen(from), doms, 4), 3);
	CHECK_STR(doms[0], "example.com");
	CHECK_STR(doms[1], "sub.example.org");
	CHECK_STR(doms[2], "g.example");
	CHECK_INT(ma_from_domains("<unclosed@x", 11, doms, 4), -1);
	char org[256];
	ma_org_domain("mail.sub.example.co.uk", org, sizeof(org));
	CHECK_STR(org, "example.co.uk");
	ma_org_domain("example.com", org, sizeof(org));
	CHECK_STR(org, "example.com");

	struct mailauth_result res = {0};
	res.spf.status = MA_PASS;
	snprintf(res.spf.domain, sizeof(res.spf.domain), "example.com");
	res.dkim_count = 1;
	res.dkim[0].status = MA_FAIL;
	snprintf(res.dkim[0].domain, 256, "example.com");
	snprintf(res.dkim[0].selector, 256, "s1");
	snprintf(res.dkim[0].b, 12, "ab/cd+ef");
	snprintf(res.dkim[0].reason, 160, "body hash (bad) did not verify");
	res.dmarc.status = MA_PASS;
	res.dmarc.policy = DMARC_P_REJECT;
	res.dmarc.applied = DMARC_P_NONE;
	snprintf(res.dmarc.from_domain, 256, "example.com");
	struct buf b;
	buf_init(&b, 0);
	mailauth_results("loft.example.test", &res, &b);
	CHECK_STR(b.data, "Authentication-Results: loft.example.test;\r\n"
			  "\tspf=pass smtp.mailfrom=example.com;\r\n"
			  "\tdkim=fail (body hash  bad  did not verify) header.d=example.com"
			  " header.s=s1 header.b=\"ab/cd+ef\";\r\n"
			  "\tdmarc=pass (p=reject dis=none) header.from=example.com\r\n");
	const char *v = b.data + strlen("Authentication-Results:");
	CHECK(mailauth_results_ours(v, strlen(v), "LOFT.example.test"));
	CHECK(!mailauth_results_ours(v, strlen(v), "example.test"));
	CHECK(mailauth_results_ours(" (c) \"loft.example.test\"; x", 28,
				    "loft.example.test"));
	CHECK(!mailauth_results_ours(" loft.example.test.evil; x", 26,
				     "loft.example.test"));
	buf_free(&b);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"canon", test_canon},
		{"dkim_sign_verify", test_dkim_sign_verify},
		{"dkim_records", test_dkim_records},
		{"spf_macros", test_spf_macros},
		{"dmarc_records", test_dmarc_records},
		{NULL, NULL},
	};
	return test_main(cases);
}
