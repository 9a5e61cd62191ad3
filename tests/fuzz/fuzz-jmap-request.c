/*
 * Fuzz target for JMAP request parsing (src/jmap/jmap-core.c): the input
 * is a request body as a client sends it: the Request object, method
 * calls, result references with JSON Pointers and '*', createdIds and
 * "#creation" ids. Methods run against a real store (fuzz-jmap-env.h);
 * writes are allowed, so the account changes as the fuzzer goes.
 */
#include "fuzz-jmap-env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_setup();
	if (size > 65536)
		return 0;
	fz_api((const char *)data, size);
	return 0;
}
