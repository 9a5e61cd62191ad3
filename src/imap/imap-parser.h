/*
 * The IMAP command parser: incremental and I/O-free. Feed it bytes as they
 * arrive; it returns an event: NEED_MORE, a whole COMMAND (tag, name,
 * arguments as a tree), a LITERAL announcement (the command decides what
 * happens to its bytes), LITERAL_DATA (bytes of a streamed literal, handed
 * through without copying) or ERROR (after which the parser skips to the
 * end of the line by itself, so the session goes on). Any split of the
 * input gives the same events.
 *
 * Grammar (RFC 9051 9, RFC 3501 9): tag SP command *(SP argument) CRLF,
 * where an argument is an atom, "NIL", a quoted string, a literal {n},
 * {n+} (LITERAL+, RFC 7888) or ~{n} (literal8, RFC 3516), or a
 * parenthesised list of those. A fetch attribute atom such as
 * BODY.PEEK[HEADER.FIELDS (From To)]<0.100> is kept as one atom: after
 * BODY, BODY.PEEK, BINARY, BINARY.PEEK or BINARY.SIZE a '[' opens a
 * section that runs to its ']' whatever it contains (quoted strings
 * inside are kept verbatim, literals are refused).
 *
 * Strings in the tree are slices into the parser's buffer; each is also
 * NUL-terminated there (a literal may contain NULs of its own: use len).
 * The tree stays valid until the next imap_parser_feed/reset call.
 */
#ifndef LOFT_IMAP_PARSER_H
#define LOFT_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct imap_parser;

enum imap_arg_type {
	IMAP_ARG_EOL = 0,   /* terminates every argument array */
	IMAP_ARG_ATOM,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
	IMAP_ARG_NIL,       /* the atom NIL (any case); str holds it as sent */
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal8;          /* ~{n} */
	bool streamed;          /* LITERAL whose bytes went to the command
				   (IMAP_LITERAL_STREAM): str is empty */
	uint32_t stream_index;  /* streamed literals of a command: 0, 1, ... */
	uint64_t literal_size;  /* LITERAL: the announced size */
	struct slice str;       /* ATOM, NIL, QUOTED, LITERAL contents */
	struct imap_arg *list;  /* LIST: children, list[list_count] is EOL */
	size_t list_count;
};

/* Limits: a tighter profile before login than after (imap_client picks).
 * Exceeding max_line / max_literal / max_command gives a TOOBIG error,
 * max_depth / max_args a LIMIT error. */
struct imap_parser_limits {
	size_t max_line;       /* command text outside literals, in bytes */
	size_t max_literal;    /* one literal kept in memory (IMAP_LITERAL_BUFFER) */
	size_t max_command;    /* text + buffered literals of one command */
	unsigned max_depth;    /* list nesting */
	unsigned max_args;     /* arguments in all lists together */
};
extern const struct imap_parser_limits imap_parser_limits_prelogin;
extern const struct imap_parser_limits imap_parser_limits_default;

enum imap_parse_result {
	IMAP_PARSE_ERROR = -1,
	IMAP_PARSE_NEED_MORE = 0,
	IMAP_PARSE_COMMAND = 1,       /* imap_parser_command() */
	IMAP_PARSE_LITERAL = 2,       /* imap_parser_literal(), then _literal_accept() */
	IMAP_PARSE_LITERAL_DATA = 3,  /* imap_parser_literal_data() */
};

enum imap_parse_error_code {
	IMAP_PERR_SYNTAX,    /* [CLIENTBUG] (RFC 5530) */
	IMAP_PERR_TOOBIG,    /* [TOOBIG] */
	IMAP_PERR_LIMIT,     /* [LIMIT] */
};

struct imap_parser *imap_parser_create(const struct imap_parser_limits *limits);
void imap_parser_destroy(struct imap_parser **p);
void imap_parser_set_limits(struct imap_parser *p,
			    const struct imap_parser_limits *limits);
/* Forgets everything, including a half-read line (after STARTTLS). */
void imap_parser_reset(struct imap_parser *p);
/* Bytes the parser holds on the heap besides its struct: the command
 * buffer and the node and argument arrays (an idle session's share). */
size_t imap_parser_heap_bytes(const struct imap_parser *p);
/* Whether no byte of a next command has been fed yet (between commands). */
bool imap_parser_between(const struct imap_parser *p);

/* Parses from data. *consumed_r says how much was used (the caller drops
 * it from its input); call again with the rest after handling the event.
 * After COMMAND or ERROR the next call starts a new command. */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
					const char *data, size_t len,
					size_t *consumed_r);

/* The tag and command name when they have been read (empty slices
 * otherwise). Valid until the next feed/reset. */
struct slice imap_parser_tag(const struct imap_parser *p);
struct slice imap_parser_name(const struct imap_parser *p);

/* ---- after IMAP_PARSE_COMMAND -------------------------------------- */
/* The arguments after the command name, terminated by IMAP_ARG_EOL. */
const struct imap_arg *imap_parser_args(const struct imap_parser *p,
					size_t *count_r);

/* Top-level argument n (0-based) while the command is still being read,
 * if it is complete and an atom ("REPLACE" of "UID REPLACE ...", the
 * "CATENATE" before a list); empty otherwise. */
struct slice imap_parser_top_arg(const struct imap_parser *p, unsigned n);

/* ---- after IMAP_PARSE_LITERAL -------------------------------------- */
struct imap_literal_info {
	uint64_t size;
	bool sync;          /* {n}: the client waits for "+" */
	bool literal8;
	unsigned depth;     /* 0: a top-level argument */
	unsigned arg_index; /* top-level arguments completed before it */
};
void imap_parser_literal(const struct imap_parser *p,
			 struct imap_literal_info *info_r);
enum imap_literal_action {
	IMAP_LITERAL_BUFFER,  /* keep it in the tree (fails TOOBIG past max_literal) */
	IMAP_LITERAL_STREAM,  /* hand the bytes out as LITERAL_DATA events */
	IMAP_LITERAL_REFUSE,  /* the caller replies (NO [TOOBIG] before "+");
				 a sync literal ends the command at once, a
				 non-sync one is read, discarded with the rest
				 of its line, and no event follows */
};
/* Must be called once after each LITERAL event. For BUFFER/STREAM of a
 * synchronising literal the caller writes "+ ..." itself. Returns -1 when
 * a BUFFER literal does not fit the limits (max_literal, or max_command
 * with what the command holds already): it was refused instead, and the
 * caller answers [TOOBIG]. */
int imap_parser_literal_accept(struct imap_parser *p,
			       enum imap_literal_action action);

/* ---- after IMAP_PARSE_LITERAL_DATA --------------------------------- */
/* A piece of the streamed literal, pointing into the data passed to
 * feed (copy it before feeding again). *last_r: the literal is complete;
 * *stream_index_r: which streamed literal of the command (0, 1, ...). */
struct slice imap_parser_literal_data(const struct imap_parser *p,
				      bool *last_r, uint32_t *stream_index_r);

/* ---- after IMAP_PARSE_ERROR ---------------------------------------- */
/* A message for the client; the parser skips the rest of the line (and a
 * non-synchronising literal at its end) before the next command. If the
 * tag was read, answer with a tagged BAD, else with "* BAD". */
const char *imap_parser_error(const struct imap_parser *p,
			      enum imap_parse_error_code *code_r);

/* ---- helpers for command handlers ---------------------------------- */
/* Atom, quoted or literal (RFC 9051 astring; NIL counts as the atom
 * "NIL"). */
bool imap_arg_is_astring(const struct imap_arg *arg);
/* Quoted or literal (string), or NIL when nil_ok (nstring). */
bool imap_arg_is_string(const struct imap_arg *arg);
bool imap_arg_is_atom(const struct imap_arg *arg);
/* The string of an astring/string/atom argument; NULL for lists. */
const char *imap_arg_str(const struct imap_arg *arg);
/* Whether a string holds a NUL byte (a literal may), which no IMAP
 * string may carry in most places. */
bool imap_arg_has_nul(const struct imap_arg *arg);
/* Atom equal to lit, case-insensitive. */
bool imap_arg_atom_eq(const struct imap_arg *arg, const char *lit);
/* Counts arguments up to EOL. */
size_t imap_args_count(const struct imap_arg *args);

#endif
