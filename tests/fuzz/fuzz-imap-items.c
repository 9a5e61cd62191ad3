/*
 * Fuzz target for the smaller IMAP argument parsers and the string
 * writers of src/imap: flag lists (imap_parse_flags, and what
 * imap_append_flags prints must parse back to the same flags), STATUS
 * items, SORT keys, THREAD algorithms, and imap_append_string /
 * imap_append_astring, whose output must read back through the command
 * parser as the same bytes.
 *
 * Input: [mode][bytes]. mode % 3: 0 flags, 1 STATUS/SORT/THREAD,
 * 2 a string to write (mode bit 2: UTF-8 allowed in quoted strings).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz-imap-args.h"
#include "imap-client.h"
#include "imap-commands.h"
#include "imap-sort.h"
#include "imap-thread.h"

static void fuzz_flags(const uint8_t *data, size_t size)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	const struct imap_arg *args = fuzz_imap_args(p, data, size);
	unsigned flags, flags2;
	const char **kw, **kw2;
	size_t n, n2;
	const char *error;

	if (args == NULL || args[0].type == IMAP_ARG_EOL ||
	    imap_parse_flags(&args[0], &flags, &kw, &n, &error) < 0) {
		imap_parser_destroy(&p);
		return;
	}
	struct buf out;
	buf_init(&out, 0);
	imap_append_flags(&out, flags, kw, n, false);
	struct imap_parser *p2 = imap_parser_create(&imap_parser_limits_default);
	const struct imap_arg *again =
		fuzz_imap_args(p2, (const uint8_t *)out.data, out.len);
	if (again == NULL ||
	    imap_parse_flags(&again[0], &flags2, &kw2, &n2, &error) < 0 ||
	    flags2 != flags || n2 != n)
		abort();
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(kw[i], kw2[i]) != 0)
			abort();
	free(kw);
	free(kw2);
	buf_free(&out);
	imap_parser_destroy(&p2);
	imap_parser_destroy(&p);
}

static void fuzz_items(const uint8_t *data, size_t size)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	const struct imap_arg *args = fuzz_imap_args(p, data, size);
	unsigned items;

	if (args != NULL && args[0].type != IMAP_ARG_EOL) {
		if (args[0].type == IMAP_ARG_LIST) {
			(void)imap_status_parse_items(args[0].list, &items);
			for (const struct imap_arg *a = args[0].list;
			     a->type != IMAP_ARG_EOL; a++) {
				enum imap_sort_key key;
				if (a->type != IMAP_ARG_LIST)
					(void)imap_sort_key_parse(a->str.ptr,
								  a->str.len, &key);
			}
		} else {
			enum imap_thread_algorithm alg;
			(void)imap_thread_algorithm_parse(args[0].str.ptr,
							  args[0].str.len, &alg);
		}
	}
	imap_parser_destroy(&p);
}

/* What the parser reads back from out as the first argument must be s. */
static void read_back(const struct buf *out, const char *s, size_t len)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	const struct imap_arg *args =
		fuzz_imap_args(p, (const uint8_t *)out->data, out->len);
	if (args == NULL || !imap_arg_is_astring(&args[0]) ||
	    args[1].type != IMAP_ARG_EOL || args[0].str.len != len ||
	    (len > 0 && memcmp(args[0].str.ptr, s, len) != 0))
		abort();
	imap_parser_destroy(&p);
}

static void fuzz_string(bool utf8, const char *s, size_t len)
{
	struct buf out;

	buf_init(&out, 0);
	if (imap_append_string(&out, s, len, utf8) < 0)
		abort();
	read_back(&out, s, len);
	/* astring takes a C string; an atom that opens a fetch section
	 * ("BODY[") is read as one by Loft's parser, by design */
	if (memchr(s, '\0', len) == NULL) {
		char *cs = xstrndup(s, len);
		buf_reset(&out);
		if (imap_append_astring(&out, cs, utf8) < 0)
			abort();
		if (memchr(out.data, '[', out.len) == NULL || out.data[0] == '"' ||
		    out.data[0] == '{')
			read_back(&out, s, len);
		free(cs);
	}
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_flags(data + 1, size - 1);
		break;
	case 1:
		fuzz_items(data + 1, size - 1);
		break;
	default:
		fuzz_string((data[0] >> 2) & 1, (const char *)data + 1, size - 1);
		break;
	}
	return 0;
}
