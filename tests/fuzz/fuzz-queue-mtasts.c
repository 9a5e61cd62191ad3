/*
 * Fuzz target for MTA-STS (src/queue/queue-mtasts.c): the policy file
 * (RFC 8461 3.2) and the _mta-sts TXT record (3.1). A parsed policy has
 * its required fields and every mx pattern is matched against a host
 * name taken from the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct qsts_policy p;
	char why[100], id[QSTS_ID_MAX + 1];

	if (qsts_policy_parse(s, size, &p, why, sizeof(why)) == 0) {
		if (p.mode != QSTS_NONE && p.mx_count == 0)
			abort();
		char host[64];
		size_t n = size < sizeof(host) - 1 ? size : sizeof(host) - 1;
		memcpy(host, s, n);
		host[n] = '\0';
		(void)qsts_mx_matches(&p, host);
		(void)qsts_mx_matches(&p, "mx1.example.com");
		qsts_policy_free(&p);
	}
	if (qsts_txt_id(s, size, id) == 0 && strlen(id) > QSTS_ID_MAX)
		abort();
	return 0;
}
