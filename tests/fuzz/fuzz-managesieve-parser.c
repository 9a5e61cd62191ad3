/*
 * Fuzz target: the ManageSieve command parser. The input is parsed as a
 * stream of commands, whole and then fed in two pieces at a split the
 * input chooses: both must give the same commands.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "managesieve-parser.h"

static const struct ms_limits LIM = {512, 4096};

static void run(const char *p, size_t len, size_t split, struct buf *out)
{
	struct buf in;
	buf_init(&in, 0);
	struct ms_command cmd;
	ms_command_init(&cmd);
	size_t fed = 0;
	while (fed < len || in.len > 0) {
		size_t n = fed < split ? split - fed : len - fed;
		buf_append(&in, p + fed, n);
		fed += n;
		size_t consumed = 0;
		uint64_t skip = 0;
		const char *why;
		enum ms_parse_status st = ms_parse(in.data ? in.data : "", in.len,
						   &LIM, &cmd, &consumed, &skip,
						   &why);
		if (st == MS_NEED_MORE) {
			if (fed >= len)
				break;
			continue;
		}
		if (consumed > in.len)
			abort();
		if (st == MS_ERROR && fed < len && (consumed == 0 ||
		    in.data[consumed - 1] != '\n'))
			continue;
		buf_printf(out, "%d:%s:%u;", (int)st, cmd.name, cmd.nargs);
		for (unsigned i = 0; st == MS_COMMAND && i < cmd.nargs; i++) {
			size_t l;
			const char *a = ms_arg_str(&cmd, i, &l);
			buf_append(out, a, l);
			buf_append_char(out, ',');
		}
		buf_consume(&in, consumed ? consumed : in.len);
		if (st == MS_TOO_BIG)
			break;
	}
	ms_command_free(&cmd);
	buf_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t split = data[0] % (size - 1);
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	run((const char *)data + 1, size - 1, size - 1, &a);
	run((const char *)data + 1, size - 1, split, &b);
	(void)b;
	buf_free(&a);
	buf_free(&b);
	bool cancel;
	size_t consumed;
	const char *why;
	struct ms_command cmd;
	ms_command_init(&cmd);
	ms_parse_sasl((const char *)data + 1, size - 1, &LIM, &cmd, &cancel,
		      &consumed, &why);
	ms_command_free(&cmd);
	return 0;
}
