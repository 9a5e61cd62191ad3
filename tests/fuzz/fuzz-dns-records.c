/*
 * Fuzz target for the DNS record helpers (src/dns/dns-records.c): wire
 * names, MX and TXT rdata, reverse names. Whatever the bytes, the
 * parsers stay in bounds and their output is well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_mx mx;
	char name[256], rev[128], ip[64];
	size_t off = 0;
	char *txt;

	if (dns_parse_mx(data, size, &mx) == 0 &&
	    strlen(mx.host) >= sizeof(mx.host))
		abort();
	if (dns_wire_name(data, size, &off, name, sizeof(name)) == 0 &&
	    (off > size || strlen(name) > 253))
		abort();
	txt = dns_parse_txt(data, size);
	if (txt != NULL && strlen(txt) > size)
		abort();
	free(txt);
	size_t n = size < sizeof(ip) - 1 ? size : sizeof(ip) - 1;
	memcpy(ip, data, n);
	ip[n] = '\0';
	(void)dns_reverse_name(ip, rev, sizeof(rev));
	return 0;
}
