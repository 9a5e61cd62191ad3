/*
 * loftctl dns DOMAIN: the DNS records a domain hosted here needs, in
 * master-file syntax, from the configured listeners and hostname. Each
 * part is a function in dns_parts[]: client set-up (SRV records of RFC
 * 6186 and RFC 8314 for every client service, "0 0 0 ." for those not
 * offered, the autoconfig and autodiscover names) and the mail records
 * (MX, SPF, DKIM of every selector, DMARC, MTA-STS, TLS-RPT, the TLSA of
 * DANE) are the two parts.
 */
#include "loftctl.h"

#include "config.h"
#include "mailsvc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef LOFTCTL_HAVE_MAILAUTH
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "mailauth.h"
#endif

#define TTL 3600

typedef void dns_part_fn(struct loftctl *ctl, const char *domain,
			 const char *host);

static void client_records(struct loftctl *ctl, const char *domain,
			   const char *host)
{
	bool tls = config_get(ctl->cfg, "tls", "cert") != NULL;
	printf("; client set-up (RFC 6186, RFC 8314): what mail programs "
	       "find\n");
	for (const struct mailsvc *m = mailsvc_table; m->section; m++) {
		const char *listen = config_get(ctl->cfg, m->section, "listen");
		unsigned port = listen ? mailsvc_listen_port(listen) : 0;
		char name[300];
		snprintf(name, sizeof(name), "%s.%s.", m->srv, domain);
		/* A plain port without TLS is never advertised. */
		if (port == 0 || (!m->implicit_tls && !tls))
			printf("%-40s %d IN SRV 0 0 0 .\n", name, TTL);
		else
			printf("%-40s %d IN SRV %u 1 %u %s.\n", name, TTL,
			       m->srv_priority, port, host);
	}
	const char *https = config_get(ctl->cfg, "https", "listen");
	unsigned hport = https ? mailsvc_listen_port(https) : 0;
	char name[300];
	if (hport != 0) {
		printf("; Thunderbird autoconfig and Outlook Autodiscover over "
		       "HTTPS%s\n", hport != 443 ? " (clients look on port 443)" : "");
		snprintf(name, sizeof(name), "autoconfig.%s.", domain);
		printf("%-40s %d IN CNAME %s.\n", name, TTL, host);
		snprintf(name, sizeof(name), "autodiscover.%s.", domain);
		printf("%-40s %d IN CNAME %s.\n", name, TTL, host);
		snprintf(name, sizeof(name), "_autodiscover._tcp.%s.", domain);
		printf("%-40s %d IN SRV 0 1 %u %s.\n", name, TTL, hport, host);
	} else {
		printf("; no [https] listener: autoconfig and autodiscover "
		       "names are left out\n");
	}
}

#ifdef LOFTCTL_HAVE_MAILAUTH
/* The TLSA record of DANE (RFC 7672: 3 1 1, the SHA-256 of the
 * certificate's public key) for [tls] cert. */
static void tlsa_record(struct loftctl *ctl, const char *host)
{
	const char *cert = config_get(ctl->cfg, "tls", "cert");
	FILE *f = cert != NULL ? fopen(cert, "r") : NULL;
	X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned char *der = NULL, md[32];
	int n;

	if (f != NULL)
		fclose(f);
	if (x == NULL) {
		printf("; no [tls] cert to publish a TLSA record for\n");
		return;
	}
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n > 0 && SHA256(der, (size_t)n, md) != NULL) {
		char owner[300];
		snprintf(owner, sizeof(owner), "_25._tcp.%s.", host);
		printf("; DANE (RFC 7672), only in a DNSSEC-signed zone; publish "
		       "the next key's record before renewing the certificate "
		       "with a new key\n%-40s 3600 IN TLSA 3 1 1 ", owner);
		for (int i = 0; i < 32; i++)
			printf("%02x", md[i]);
		printf("\n");
	}
	OPENSSL_free(der);
	X509_free(x);
}

static bool any_key;

static void dkim_record(void *ctx, const struct dkim_key_info *info)
{
	char owner[400];

	(void)ctx;
	snprintf(owner, sizeof(owner), "%s._domainkey.%s.", info->selector,
		 info->domain);
	loftctl_print_txt(owner, info->record);
	any_key = true;
}

/* The records mail needs: MX, SPF, DKIM (every selector), DMARC,
 * MTA-STS, TLS-RPT, and the TLSA of DANE. */
static void mail_records(struct loftctl *ctl, const char *domain,
			 const char *host)
{
	char owner[300], txt[600];
	const char *smarthost = config_get(ctl->cfg, "queue", "smarthost");
	char *dir = loftctl_dkim_dir(ctl), *err = NULL;

	printf("; mail (RFC 5321 MX, RFC 7208 SPF, RFC 6376 DKIM, RFC 7489 "
	       "DMARC, RFC 8461 MTA-STS, RFC 8460 TLS-RPT)\n");
	snprintf(owner, sizeof(owner), "%s.", domain);
	printf("%-40s 3600 IN MX 10 %s.\n", owner, host);
	if (smarthost != NULL) {
		char relay[256];
		snprintf(relay, sizeof(relay), "%s", smarthost);
		char *colon = strrchr(relay, ':');
		if (colon != NULL)
			*colon = '\0';
		printf("; mail leaves through [queue] smarthost %s: its "
		       "addresses must be allowed\n", relay);
		if (strchr(relay, ':') != NULL || relay[0] == '[') {
			char *r = relay[0] == '[' ? relay + 1 : relay;
			r[strcspn(r, "]")] = '\0';
			snprintf(txt, sizeof(txt), "v=spf1 mx ip6:%s -all", r);
		} else if (strspn(relay, "0123456789.") == strlen(relay)) {
			snprintf(txt, sizeof(txt), "v=spf1 mx ip4:%s -all", relay);
		} else {
			snprintf(txt, sizeof(txt), "v=spf1 mx a:%s -all", relay);
		}
	} else {
		snprintf(txt, sizeof(txt), "v=spf1 mx -all");
	}
	loftctl_print_txt(owner, txt);
	any_key = false;
	if (dkim_key_list(dir, domain, dkim_record, NULL, &err) < 0) {
		printf("; DKIM keys: %s\n", err);
		free(err);
	}
	free(dir);
	if (!any_key)
		printf("; no DKIM key yet: loftctl dkim add %s\n", domain);
	snprintf(owner, sizeof(owner), "_dmarc.%s.", domain);
	snprintf(txt, sizeof(txt), "v=DMARC1; p=%s; rua=mailto:postmaster@%s",
		 any_key ? "quarantine" : "none", domain);
	if (!any_key)
		printf("; p=none until mail is DKIM-signed; then p=quarantine "
		       "or p=reject\n");
	loftctl_print_txt(owner, txt);
	time_t now = time(NULL);
	struct tm tm;
	char id[32];
	gmtime_r(&now, &tm);
	strftime(id, sizeof(id), "%Y%m%d%H%M", &tm);
	printf("; MTA-STS: the policy is served at https://mta-sts.%s/"
	       ".well-known/mta-sts.txt; a new id tells senders it changed\n",
	       domain);
	snprintf(owner, sizeof(owner), "mta-sts.%s.", domain);
	printf("%-40s 3600 IN CNAME %s.\n", owner, host);
	snprintf(owner, sizeof(owner), "_mta-sts.%s.", domain);
	snprintf(txt, sizeof(txt), "v=STSv1; id=%s", id);
	loftctl_print_txt(owner, txt);
	snprintf(owner, sizeof(owner), "_smtp._tls.%s.", domain);
	snprintf(txt, sizeof(txt), "v=TLSRPTv1; rua=mailto:postmaster@%s",
		 domain);
	loftctl_print_txt(owner, txt);
	tlsa_record(ctl, host);
}
#endif

static dns_part_fn *const dns_parts[] = {
#ifdef LOFTCTL_HAVE_MAILAUTH
	mail_records,
#endif
	client_records,
	NULL,
};

static int dns(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_dns_cmds[0]);
	char domain[256];
	snprintf(domain, sizeof(domain), "%s", argv[0]);
	size_t n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		domain[--n] = '\0';
	for (char *c = domain; *c; c++) {
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '.'))
			return loftctl_fail("'%s' is not a domain name", argv[0]);
	}
	if (n == 0 || strchr(domain, '.') == NULL)
		return loftctl_fail("'%s' is not a domain name", argv[0]);
	if (!auth_domain_exists(ctl->auth, domain))
		fprintf(stderr, "loftctl: warning: %s is not a domain of this "
			"server (loftctl domain add %s)\n", domain, domain);
	char hostbuf[256];
	const char *host = config_get(ctl->cfg, "", "hostname");
	if (host == NULL) {
		if (gethostname(hostbuf, sizeof(hostbuf)) != 0)
			snprintf(hostbuf, sizeof(hostbuf), "localhost");
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf;
		fprintf(stderr, "loftctl: warning: no hostname in %s; using "
			"%s\n", ctl->config_path, host);
	}
	if (strchr(host, '.') == NULL)
		fprintf(stderr, "loftctl: warning: hostname %s is not a fully "
			"qualified name\n", host);
	printf("; DNS records for %s, served by %s (from %s)\n", domain, host,
	       ctl->config_path);
	for (size_t i = 0; dns_parts[i] != NULL; i++)
		dns_parts[i](ctl, domain, host);
	return 0;
}

const struct loftctl_cmd loftctl_dns_cmds[] = {
	{"dns", NULL, "DOMAIN   (the DNS records DOMAIN needs, master-file "
	 "syntax)", dns},
	{NULL, NULL, NULL, NULL},
};
