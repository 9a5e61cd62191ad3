/*
 * Fuzz target for the small parsers of src/auth: base64 (what IMAP
 * AUTHENTICATE and POP3 AUTH decode before SASL sees it), login address
 * canonicalisation, and the reading of stored hash strings (scheme name,
 * argon2 parameters for the re-hash decision).
 *
 * base64: decode accepts only length % 4 == 0 with padding at the end;
 * whatever it accepts re-encodes to text of the same length that decodes
 * to the same bytes, and any bytes encode and decode back.
 *
 * Input: [mode][bytes]; mode % 4: 0 decode, 1 encode, 2 address, 3 hash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth-private.h"
#include "buf.h"
#include "base64.h"

/* base64.h's strict decoder into a fresh NUL-terminated array. */
static int b64dec(const char *in, size_t len, uint8_t **out_r, size_t *n_r)
{
	struct buf b;
	buf_init(&b, 0);
	if (base64_decode(in, len, BASE64_STRICT, &b) < 0) {
		buf_free(&b);
		return -1;
	}
	buf_append(&b, "", 0);
	*out_r = (uint8_t *)buf_steal(&b, n_r);
	return 0;
}


static void fuzz_decode(const char *s, size_t len)
{
	uint8_t *out, *again;
	size_t n, n2;
	if (b64dec(s, len, &out, &n) < 0)
		return;
	if (len % 4 != 0 || n > len / 4 * 3 || out[n] != '\0')
		abort();
	char *text = base64_encode(out, n);
	if (strlen(text) != len ||
	    b64dec(text, len, &again, &n2) < 0 || n2 != n ||
	    (n > 0 && memcmp(again, out, n) != 0))
		abort();
	free(again);
	free(text);
	free(out);
}

static void fuzz_encode(const char *s, size_t len)
{
	uint8_t *out;
	size_t n;
	char *text = base64_encode(s, len);
	if (strlen(text) != (len + 2) / 3 * 4 ||
	    b64dec(text, strlen(text), &out, &n) < 0 || n != len ||
	    (len > 0 && memcmp(out, s, len) != 0))
		abort();
	free(out);
	free(text);
}

static void fuzz_address(const char *s)
{
	char out[AUTH_ADDRESS_MAX + 1], again[AUTH_ADDRESS_MAX + 1];
	char *error = NULL;
	if (auth_address_canon(s, out, sizeof(out), &error) < 0) {
		if (error == NULL)
			abort();
		free(error);
		return;
	}
	/* canonical: lower case, one '@', and stable */
	if (strchr(out, '@') == NULL || strlen(out) != strlen(s))
		abort();
	for (const char *p = out; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	if (auth_address_canon(out, again, sizeof(again), &error) < 0 ||
	    strcmp(out, again) != 0)
		abort();
}

static void fuzz_hash(const char *s)
{
	struct auth_settings set;
	char scheme[32];
	auth_settings_defaults(&set);
	auth_hash_scheme(s, scheme, sizeof(scheme));
	(void)auth_hash_needs_rehash(&set, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	if (data[0] % 4 < 2) {
		if (data[0] % 4 == 0)
			fuzz_decode(s, len);
		else
			fuzz_encode(s, len);
		return 0;
	}
	char *cs = xstrndup(s, len);
	if (data[0] % 4 == 2)
		fuzz_address(cs);
	else
		fuzz_hash(cs);
	free(cs);
	return 0;
}
