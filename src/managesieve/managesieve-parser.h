/*
 * The ManageSieve command parser (RFC 5804 4): a command name, then
 * arguments (atoms, numbers, quoted strings, literals {n+} and {n}),
 * then CRLF (a bare LF is taken too). Pure and restartable: call it
 * with all the bytes buffered so far; it answers NEED_MORE until a whole
 * command is there, so any split of the input gives the same commands.
 */
#ifndef LOFT_MANAGESIEVE_PARSER_H
#define LOFT_MANAGESIEVE_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MS_MAX_ARGS 8

enum ms_arg_type { MS_ATOM, MS_NUMBER, MS_STRING };

struct ms_arg {
	enum ms_arg_type type;
	size_t off, len;      /* into the command's data */
	bool literal;
	uint64_t num;
};

struct ms_command {
	char name[24];        /* uppercased */
	struct ms_arg args[MS_MAX_ARGS];
	unsigned nargs;
	struct buf data;      /* decoded argument bytes */
};

enum ms_parse_status {
	MS_NEED_MORE = 0,
	MS_COMMAND = 1,
	MS_ERROR = -1,        /* a bad command: consumed covers its line */
	MS_TOO_BIG = 2,       /* a literal over max_literal: consumed covers
				 up to its first byte; skip_r more bytes,
				 then the rest of the line, are to be
				 dropped */
};

struct ms_limits {
	size_t max_line;      /* bytes outside literals; default 8 KiB */
	size_t max_literal;   /* bytes of one literal */
};

void ms_command_init(struct ms_command *cmd);
void ms_command_free(struct ms_command *cmd);
/* Parses one command from p/len. error_r: a short text for NO/BAD. */
enum ms_parse_status ms_parse(const char *p, size_t len,
			      const struct ms_limits *lim,
			      struct ms_command *cmd, size_t *consumed_r,
			      uint64_t *skip_r, const char **error_r);
/* Parses one line that answers a SASL challenge: a string (quoted or
 * literal), or "*" (cancel: *cancel_r). Same statuses. */
enum ms_parse_status ms_parse_sasl(const char *p, size_t len,
				   const struct ms_limits *lim,
				   struct ms_command *cmd, bool *cancel_r,
				   size_t *consumed_r, const char **error_r);
/* The bytes of argument i (NUL-terminated copy in the command's data). */
const char *ms_arg_str(const struct ms_command *cmd, unsigned i,
		       size_t *len_r);

#endif
