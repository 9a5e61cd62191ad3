/*
 * Fuzz target for SASLprep (src/lib/saslprep.c, RFC 4013), which every
 * password and SCRAM user name from the network goes through.
 *
 * Whatever it accepts comes out as non-empty valid UTF-8 without control
 * characters, and preparing that again changes nothing (the mapping and
 * NFKC are idempotent, so a stored password and the same password sent
 * again always match). A string accepted as "stored" is accepted as a
 * query too, with the same result.
 *
 * Input: [mode][bytes]; mode bit 0: stored (else query).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "saslprep.h"
#include "utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum saslprep_mode mode = data[0] & 1 ? SASLPREP_STORED
					       : SASLPREP_QUERY;
	char *in = xstrndup((const char *)data + 1, size - 1);
	char *out = NULL, *again = NULL, *query = NULL;
	const char *why = NULL;
	if (saslprep(in, mode, &out, &why) == 0) {
		size_t n = strlen(out);
		if (n == 0 || !utf8_valid(out, n))
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] < 0x20 ||
			    (unsigned char)out[i] == 0x7f)
				abort();
		if (saslprep(out, mode, &again, &why) != 0 ||
		    strcmp(again, out) != 0)
			abort();
		if (mode == SASLPREP_STORED &&
		    (saslprep(in, SASLPREP_QUERY, &query, &why) != 0 ||
		     strcmp(query, out) != 0))
			abort();
	} else if (why == NULL || out != NULL) {
		abort();
	}
	free(in);
	free(out);
	free(again);
	free(query);
	return 0;
}
