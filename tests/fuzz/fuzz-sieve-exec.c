/*
 * Fuzz target: the Sieve executor, script and message together. The
 * input is a script, a NUL byte, then a message. The script is compiled
 * (with every extension it may ask for) and run; a run ends within its
 * step budget, and the vacation checks and replies are made for it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sieve.h"

static bool exists(void *ctx, const char *m)
{
	(void)ctx;
	return m[0] != 'x';
}
static bool seen(void *ctx, const char *id)
{
	(void)ctx;
	return id[4] < '8';
}
static const struct sieve_script *self;
static const struct sieve_script *include(void *ctx, bool global,
					  const char *name)
{
	(void)ctx;
	(void)global;
	return name[0] == 's' ? self : NULL;
}
static const struct sieve_callbacks cb = {exists, seen, include};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nul = memchr(data, 0, size);
	if (nul == NULL)
		return 0;
	size_t slen = (size_t)(nul - (const char *)data);
	const char *msg = nul + 1;
	size_t mlen = size - slen - 1;
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.max_steps = 300000;
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile((const char *)data, slen, "f",
					       &lim, &e);
	sieve_errors_free(&e);
	if (s == NULL)
		return 0;
	self = s;
	struct sieve_input in = {.env_from = "a@example.com",
				 .env_to = "b+x@example.org",
				 .data = msg, .len = mlen, .now = 1700000000,
				 .spam_scanned = true, .spam_score = 3,
				 .spam_threshold = 5, .cb = &cb};
	struct sieve_result r;
	const struct sieve_script *list[] = {s, s};
	sieve_execute(list, 2, &in, &lim, &r);
	if (!r.error && r.steps > lim.max_steps)
		abort();
	const char *own[] = {"b@example.org"};
	for (size_t i = 0; i < r.count; i++) {
		struct buf out;
		buf_init(&out, 0);
		if (r.actions[i].kind == SIEVE_ACT_VACATION) {
			sieve_vacation_refusal(msg, mlen, "a@example.com", own, 1);
			sieve_vacation_compose(&r.actions[i], msg, mlen,
					       "a@example.com", "b@example.org",
					       "mx", 0, &out);
		} else if (r.actions[i].kind == SIEVE_ACT_REJECT) {
			sieve_reject_compose(r.actions[i].text, msg, mlen,
					     "a@example.com", "b@example.org",
					     "mx", 0, &out);
		}
		buf_free(&out);
	}
	sieve_result_free(&r);
	sieve_script_free(&s);
	return 0;
}
