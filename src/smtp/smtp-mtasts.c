/*
 * The MTA-STS policy (RFC 8461 3.2) other servers fetch before they
 * send to us: GET /.well-known/mta-sts.txt on the HTTPS listener, which
 * `loftctl dns` tells the admin to reach as mta-sts.DOMAIN (a CNAME to
 * hostname; the certificate must cover that name). The policy names
 * hostname as the only MX; [smtp] mta_sts says the mode (enforce by
 * default: publish the _mta-sts record only with a certificate valid for
 * hostname; testing; none to withdraw a policy). loftd's HTTP server
 * answers with it (src/daemon/main.c).
 */
#include "smtp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define MTASTS_MAX_AGE 604800   /* a week */

int smtp_mtasts_policy(const struct config *cfg, char *out, size_t size,
		       struct buf *errors)
{
	const char *mode = config_get(cfg, "smtp", "mta_sts");
	const char *host = config_get(cfg, "", "hostname");
	char hostbuf[256];

	if (mode == NULL)
		mode = "enforce";
	if (strcmp(mode, "enforce") != 0 && strcmp(mode, "testing") != 0 &&
	    strcmp(mode, "none") != 0) {
		buf_printf(errors, "%s: [smtp] mta_sts: expected enforce, testing "
			   "or none\n", cfg->path ? cfg->path : "config");
		return -1;
	}
	if (host == NULL) {
		if (gethostname(hostbuf, sizeof(hostbuf) - 1) < 0)
			snprintf(hostbuf, sizeof(hostbuf), "localhost");
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf;
	}
	snprintf(out, size,
		 "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n",
		 mode, host, MTASTS_MAX_AGE);
	return 0;
}
