/*
 * Fuzz target for SPF's parsers (src/mailauth/spf.c): a record's terms
 * and macro expansion (RFC 7208 7) with IPv4 and IPv6 client addresses,
 * in both the domain-spec and the explanation flavour. Output stays
 * bounded and nothing reads out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char why[80];
	struct buf out;

	(void)spf_record_check(s, size, why, sizeof(why));
	for (int v6 = 0; v6 < 2; v6++) {
		struct spf_macro_env e = {
			.sender = "user.name+tag@mail.example.com",
			.local = "user.name+tag",
			.sender_domain = "mail.example.com",
			.domain = "example.com",
			.ip = v6 ? "2001:db8::cb01" : "192.0.2.3",
			.ipv6 = v6 != 0, .helo = "mx.example.org",
			.receiver = "loft.example.test", .now = 1700000000,
		};
		for (int exp = 0; exp < 2; exp++) {
			buf_init(&out, 0);
			if (spf_macro_expand(s, size, &e, exp != 0, &out) == 0 &&
			    out.len > 8192 + 2048)
				abort();
			buf_free(&out);
		}
	}
	return 0;
}
