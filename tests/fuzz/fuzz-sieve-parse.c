/*
 * Fuzz target: the Sieve compiler. Any input compiles or fails with
 * errors that have a line and a column; a compiled script's image loads
 * back and runs on a small message within its step budget.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sieve.h"

static const char MSG[] = "From: a@example.com\r\nTo: b+x@example.org\r\n"
			  "Subject: hello\r\n\r\nbody\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.max_steps = 200000;
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile((const char *)data, size, "f",
					       &lim, &e);
	if (s == NULL) {
		if (e.count == 0)
			abort();
		for (size_t i = 0; i < e.count; i++)
			if (e.items[i].line == 0 || e.items[i].column == 0)
				abort();
	} else {
		size_t len;
		const void *img = sieve_script_image(s, &len);
		struct sieve_script *t = sieve_script_load(img, len, "g");
		if (t == NULL)
			abort();
		struct sieve_input in = {.env_from = "a@example.com",
					 .env_to = "b+x@example.org",
					 .data = MSG, .len = sizeof(MSG) - 1};
		struct sieve_result r;
		const struct sieve_script *list[] = {t};
		sieve_execute(list, 1, &in, &lim, &r);
		if (r.steps > lim.max_steps + 1000000)
			abort();
		sieve_result_free(&r);
		sieve_script_free(&t);
	}
	sieve_script_free(&s);
	sieve_errors_free(&e);
	return 0;
}
