/*
 * Fuzz target: the Autodiscover POX request parser
 * (src/http/http-autodiscover.c, expat). Whatever the input, the parser
 * returns an address only when it succeeds, NUL-terminated within its
 * buffer, and nothing when it fails (proto tests check that DOCTYPE,
 * entities and deep nesting fail).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char email[330], schema[256];
	int rc = http_autodiscover_parse((const char *)data, size, email,
					 sizeof(email), schema, sizeof(schema));
	if (rc == 0 && (strlen(email) == 0 || strlen(email) >= sizeof(email) ||
			strlen(schema) >= sizeof(schema)))
		abort();
	if (rc < 0 && (email[0] != '\0' || schema[0] != '\0'))
		abort();
	return 0;
}
