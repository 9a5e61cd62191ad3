/*
 * loftctl dns DOMAIN: the DNS records a domain hosted here needs, in
 * master-file syntax, from the configured listeners and hostname. Each
 * part is a function in dns_parts[]: client set-up (SRV records of RFC
 * 6186 and RFC 8314 for every client service, "0 0 0 ." for those not
 * offered, the autoconfig and autodiscover names) is here; the mail
 * records (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT) join as another part.
 */
#include "loftctl.h"

#include "config.h"
#include "mailsvc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static dns_part_fn *const dns_parts[] = {
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
