/*
 * Fuzz target for FETCH attribute parsing (imap_fetch_parse in
 * src/imap/imap-fetch.c): macros, attribute lists, BODY[section]<partial>,
 * BINARY[part], BINARY.SIZE and the CHANGEDSINCE/VANISHED modifiers, over
 * argument trees from the real command parser (the arguments after the
 * sequence set).
 *
 * Input: [flags: bit 0 UID FETCH, bit 1 QRESYNC][arguments]
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-imap-args.h"
#include "imap-fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct imap_fetch_params params = {
		.uid = data[0] & 1,
		.qresync = (data[0] >> 1) & 1,
	};
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	const struct imap_arg *args = fuzz_imap_args(p, data + 1, size - 1);
	if (args != NULL) {
		struct imap_fetch_plan *plan = NULL;
		const char *error = NULL;
		const struct imap_arg *mods =
			args[0].type == IMAP_ARG_EOL ? &args[0] : &args[1];
		if (imap_fetch_parse(args, mods, &params, &plan, &error) == 0) {
			if (plan == NULL)
				abort();
			(void)imap_fetch_plan_condstore(plan);
			imap_fetch_plan_free(&plan);
		} else if (error == NULL || plan != NULL) {
			abort();
		}
	}
	imap_parser_destroy(&p);
	return 0;
}
