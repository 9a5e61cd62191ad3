/*
 * Fuzz target for src/imap/imap-search.c: the SEARCH/SORT/THREAD program
 * parser (imap_search_parse, over argument trees from the real command
 * parser), the search date parser, and the readers of a cached ENVELOPE
 * (imap_envelope_*; the cache is written by Loft, but from what a
 * message's sender chose, so a reader must survive anything).
 *
 * Input: [mode][bytes]. mode & 3: 0/1 a program (bit 0: RETURN allowed,
 * as for SEARCH; bit 2: a charset is required, as for SORT/THREAD),
 * 2 an ENVELOPE, 3 a date.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz-imap-args.h"
#include "imap-search.h"

static void fuzz_program(uint8_t mode, const uint8_t *data, size_t size)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	const struct imap_arg *args = fuzz_imap_args(p, data, size);
	struct imap_search_parse_params params = {
		.allow_return = mode & 1,
		.charset_required = (mode >> 2) & 1,
	};
	struct imap_search_program *prog = NULL;
	enum imap_search_parse_error kind;
	const char *error = NULL;

	if (args != NULL) {
		if (imap_search_parse(args, &params, &prog, &kind, &error) == 0) {
			if (prog == NULL || prog->root == NULL ||
			    prog->key_count > IMAP_SEARCH_MAX_KEYS ||
			    (prog->return_opts != 0 && !prog->esearch) ||
			    (prog->esearch && !params.allow_return))
				abort();
			imap_search_program_free(&prog);
		} else if (error == NULL || prog != NULL ||
			   (kind != IMAP_SEARCH_ERR_SYNTAX &&
			    kind != IMAP_SEARCH_ERR_BADCHARSET &&
			    kind != IMAP_SEARCH_ERR_LIMIT)) {
			abort();
		}
	}
	imap_parser_destroy(&p);
}

static void fuzz_envelope(const char *env)
{
	struct imap_envelope_address addr;
	struct buf out;

	buf_init(&out, 0);
	memset(&addr, 0, sizeof(addr));
	buf_init(&addr.name, 0);
	buf_init(&addr.adl, 0);
	buf_init(&addr.mailbox, 0);
	buf_init(&addr.host, 0);
	for (int f = IMAP_ENV_DATE; f <= IMAP_ENV_MESSAGE_ID; f++) {
		const char *p = imap_envelope_find(env, (enum imap_env_field)f);
		if (p == NULL)
			continue;
		if (p < env || p > env + strlen(env))
			abort();
		const char *v = p;
		bool nil;
		buf_reset(&out);
		(void)imap_envelope_value(&v, &out, &nil);
		v = p;
		bool in_list = false;
		/* a list holds fewer addresses than the text has bytes */
		for (size_t n = 0; imap_envelope_next_address(&v, &in_list, &addr) > 0; n++)
			if (n > strlen(env))
				abort();
		buf_reset(&out);
		imap_envelope_addresses_text(env, (enum imap_env_field)f, &out);
	}
	buf_free(&addr.name);
	buf_free(&addr.adl);
	buf_free(&addr.mailbox);
	buf_free(&addr.host);
	buf_free(&out);
}

static void fuzz_date(const char *s, size_t len)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};
	time_t day;
	struct tm tm;

	if (imap_search_parse_date(s, len, &day) < 0)
		return;
	/* the UTC midnight that starts the day, and the same day again
	 * when written as IMAP writes dates */
	if (day % 86400 != 0 || gmtime_r(&day, &tm) == NULL)
		abort();
	char again[32];
	int n = snprintf(again, sizeof(again), "%d-%s-%04d", tm.tm_mday,
			 months[tm.tm_mon], tm.tm_year + 1900);
	time_t day2;
	if (n < 0 || imap_search_parse_date(again, (size_t)n, &day2) < 0 ||
	    day2 != day)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	switch (mode & 3) {
	case 0:
	case 1:
		fuzz_program(mode, data, size);
		break;
	case 2: {
		char *env = xstrndup((const char *)data, size);
		fuzz_envelope(env);
		free(env);
		break;
	}
	default:
		fuzz_date((const char *)data, size);
		break;
	}
	return 0;
}
