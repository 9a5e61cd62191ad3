/*
 * Fuzz target for the DMARC record (src/mailauth/dmarc.c), the From:
 * domain list it is evaluated for, and the authserv-id check of
 * Authentication-Results fields (RFC 8601 5).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct dmarc_record r;
	char why[80], doms[8][256];

	if (dmarc_record_parse(s, size, &r, why, sizeof(why)) == 0 &&
	    (r.pct > 100 || r.p == DMARC_P_UNSET))
		abort();
	int n = ma_from_domains(s, size, doms, 8);
	if (n > 8)
		abort();
	for (int i = 0; i < n; i++)
		if (strlen(doms[i]) == 0 || strlen(doms[i]) > 255)
			abort();
	(void)mailauth_results_ours(s, size, "loft.example.test");
	return 0;
}
