/*
 * For the IMAP fuzz targets whose parser takes an argument tree: the
 * fuzzer's bytes become the arguments of one command line ("t X " bytes
 * CRLF) read by the real command parser, so the trees are the ones a
 * client can produce. Literals are buffered.
 */
#ifndef LOFT_FUZZ_IMAP_ARGS_H
#define LOFT_FUZZ_IMAP_ARGS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap-parser.h"

/* The arguments of the first command in data, or NULL if the line does
 * not parse. Valid until the parser is destroyed. */
static inline const struct imap_arg *fuzz_imap_args(struct imap_parser *p,
						    const uint8_t *data,
						    size_t size)
{
	char *line = xmalloc(size + 6);
	size_t len = 0, pos = 0;
	memcpy(line, "t X ", 4);
	memcpy(line + 4, data, size);
	memcpy(line + 4 + size, "\r\n", 2);
	len = size + 6;
	while (pos < len) {
		size_t used;
		enum imap_parse_result r =
			imap_parser_feed(p, line + pos, len - pos, &used);
		pos += used;
		if (r == IMAP_PARSE_LITERAL) {
			imap_parser_literal_accept(p, IMAP_LITERAL_BUFFER);
		} else if (r == IMAP_PARSE_COMMAND) {
			free(line);
			return imap_parser_args(p, NULL);
		} else if (r != IMAP_PARSE_NEED_MORE) {
			break;
		}
	}
	free(line);
	return NULL;
}

#endif
