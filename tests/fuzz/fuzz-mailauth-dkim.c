/*
 * Fuzz target for DKIM's parsers (src/mailauth): the DKIM-Signature
 * tag list, the key record, and a whole message through the streaming
 * verifier (header split, canonicalization, signature selection) fed in
 * two pieces, checked against a key record made of the input's tail.
 * Whatever the bytes: no crash, no leak, results well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct dkim_sig sig;
	struct dkim_key key;
	char why[128];

	if (dkim_sig_parse(s, size, &sig, why, sizeof(why)) == 0) {
		if (sig.header_count == 0 || sig.b_len == 0 ||
		    strlen(sig.domain) >= sizeof(sig.domain))
			abort();
	}
	dkim_sig_free(&sig);
	if (dkim_key_parse(s, size, &key, why, sizeof(why)) == 0 &&
	    !key.revoked && key.pub_len == 0)
		abort();
	dkim_key_free(&key);

	struct dkim_verifier *v = dkim_verifier_create();
	size_t half = size / 2;
	dkim_verifier_feed(v, s, half);
	dkim_verifier_feed(v, s + half, size - half);
	size_t n = dkim_verifier_end(v);
	char *rec = strndup(s + half, size - half);
	const char *recs[1] = {rec};
	for (size_t i = 0; i < n; i++)
		dkim_verifier_check_key(v, i, 0, recs, 1);
	struct dkim_result r[DKIM_MAX_SIGNATURES];
	size_t k = dkim_verifier_results(v, r, DKIM_MAX_SIGNATURES);
	if (k > DKIM_MAX_SIGNATURES)
		abort();
	free(rec);
	dkim_verifier_free(&v);
	return 0;
}
