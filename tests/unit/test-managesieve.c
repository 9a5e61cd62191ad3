/*
 * Unit tests for the ManageSieve parser: every command shape (atoms,
 * numbers, quoted strings with escapes, literals {n+} and {n}, bare LF),
 * errors with resynchronisation at the line end, a literal over the
 * limit, SASL answers, and every input split at every byte giving the
 * same commands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "managesieve-parser.h"
#include "test.h"

static const struct ms_limits LIM = {8192, 1024};

/* Parses all commands of s fed whole; returns them as one line each:
 * "NAME|arg|arg" or "ERR:why" or "BIG:n". */
static void parse_all(const char *s, size_t len, size_t split,
		      struct buf *out)
{
	struct buf in;
	buf_init(&in, 0);
	struct ms_command cmd;
	ms_command_init(&cmd);
	size_t fed = 0;
	for (;;) {
		/* feed up to split bytes at a time */
		if (fed < len) {
			size_t n = split && len - fed > split ? split : len - fed;
			buf_append(&in, s + fed, n);
			fed += n;
		}
		for (;;) {
			size_t consumed = 0;
			uint64_t skip = 0;
			const char *why = NULL;
			enum ms_parse_status st = ms_parse(in.data ? in.data : "",
							   in.len, &LIM, &cmd,
							   &consumed, &skip, &why);
			if (st == MS_NEED_MORE)
				break;
			if (st == MS_ERROR && consumed == in.len &&
			    (consumed == 0 || in.data[consumed - 1] != '\n') &&
			    fed < len)
				break;   /* an error without its line end yet */
			if (st == MS_COMMAND) {
				buf_append_str(out, cmd.name);
				for (unsigned i = 0; i < cmd.nargs; i++) {
					size_t l;
					const char *a = ms_arg_str(&cmd, i, &l);
					buf_append_char(out, '|');
					buf_append(out, a, l);
				}
			} else if (st == MS_ERROR) {
				buf_printf(out, "ERR:%s", why);
			} else {
				buf_printf(out, "BIG:%llu", (unsigned long long)skip);
			}
			buf_append_char(out, '\n');
			buf_consume(&in, consumed);
			if (st == MS_TOO_BIG) {
				/* drop the literal and the rest of the line */
				size_t drop = in.len < skip ? in.len : (size_t)skip;
				buf_consume(&in, drop);
				const char *lf = in.data ? memchr(in.data, '\n', in.len)
							 : NULL;
				if (lf)
					buf_consume(&in, (size_t)(lf - in.data) + 1);
			}
		}
		if (fed >= len)
			break;
	}
	ms_command_free(&cmd);
	buf_free(&in);
}

static const char INPUT[] =
	"CAPABILITY\r\n"
	"authenticate \"PLAIN\" \"AGEAYg==\"\r\n"
	"PUTSCRIPT \"my \\\"script\\\"\" {12+}\r\nkeep;\r\nstop;\r\n"
	"GETSCRIPT {3}\r\nabc\r\n"
	"HAVESPACE \"x\" 4096\n"
	"NOOP\r\n"
	"BAD\"x\r\n"
	"PUTSCRIPT \"big\" {5000+}\r\n";

static const char WANT[] =
	"CAPABILITY\n"
	"AUTHENTICATE|PLAIN|AGEAYg==\n"
	"PUTSCRIPT|my \"script\"|keep;\r\nstop;\n"
	"GETSCRIPT|abc\n"
	"HAVESPACE|x|4096\n"
	"NOOP\n"
	"ERR:Expected a space between arguments\n"
	"BIG:5000\n";

static void test_commands(void)
{
	struct buf out;
	buf_init(&out, 0);
	parse_all(INPUT, sizeof(INPUT) - 1, 0, &out);
	CHECK_STR(out.data, WANT);
	buf_free(&out);
}

static void test_splits(void)
{
	for (size_t split = 1; split < sizeof(INPUT); split++) {
		struct buf out;
		buf_init(&out, 0);
		parse_all(INPUT, sizeof(INPUT) - 1, split, &out);
		if (out.data == NULL || strcmp(out.data, WANT) != 0) {
			fprintf(stderr, "split %zu:\n%s", split,
				out.data ? out.data : "(none)");
			CHECK(0);
			buf_free(&out);
			return;
		}
		buf_free(&out);
	}
}

static void test_errors(void)
{
	struct buf out;
	buf_init(&out, 0);
	const char *bad = "\r\n"
			  "PUTSCRIPT \"unterminated\r\n"
			  "X {99999999999999999999999+}\r\n"
			  "GETSCRIPT \"a\\x\"\r\n"
			  "NOOP\r\n";
	parse_all(bad, strlen(bad), 0, &out);
	CHECK_STR(out.data, "ERR:Empty command\n"
		  "ERR:Unterminated quoted string\n"
		  "ERR:Literal size too large\n"
		  "ERR:Bad escape in a quoted string\n"
		  "NOOP\n");
	buf_reset(&out);
	/* a line of 10,000 bytes without its end */
	char *longl = malloc(10001);
	memset(longl, 'a', 10000);
	longl[10000] = '\0';
	struct ms_command cmd;
	ms_command_init(&cmd);
	size_t consumed;
	uint64_t skip;
	const char *why;
	CHECK_INT(ms_parse(longl, 10000, &LIM, &cmd, &consumed, &skip, &why),
		  MS_ERROR);
	CHECK_INT(consumed, 10000);
	free(longl);
	/* SASL answers */
	bool cancel;
	CHECK_INT(ms_parse_sasl("\"abc\"\r\n", 7, &LIM, &cmd, &cancel, &consumed,
				&why), MS_COMMAND);
	CHECK_STR(ms_arg_str(&cmd, 0, NULL), "abc");
	CHECK_INT(ms_parse_sasl("*\r\n", 3, &LIM, &cmd, &cancel, &consumed, &why),
		  MS_COMMAND);
	CHECK(cancel);
	CHECK_INT(ms_parse_sasl("{2+}\r\nab\r\n", 10, &LIM, &cmd, &cancel,
				&consumed, &why), MS_COMMAND);
	CHECK_STR(ms_arg_str(&cmd, 0, NULL), "ab");
	CHECK_INT(ms_parse_sasl("\"ab", 3, &LIM, &cmd, &cancel, &consumed, &why),
		  MS_NEED_MORE);
	CHECK_INT(ms_parse_sasl("abc\r\n", 5, &LIM, &cmd, &cancel, &consumed,
				&why), MS_ERROR);
	ms_command_free(&cmd);
	buf_free(&out);
}

static const struct test_case cases[] = {
	{"commands", test_commands},
	{"splits", test_splits},
	{"errors", test_errors},
	{NULL, NULL},
};

int main(void)
{
	return test_main(cases);
}
