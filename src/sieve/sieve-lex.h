/*
 * The Sieve lexer (RFC 5228 8.1): identifiers, tags, numbers with K/M/G,
 * quoted strings and text: blocks (decoded into the compiler's pool,
 * checked as UTF-8), punctuation; comments skipped. Every token carries
 * its line and column.
 */
#ifndef LOFT_SIEVE_LEX_H
#define LOFT_SIEVE_LEX_H

#include "sieve-private.h"

enum sv_tok {
	TK_EOF, TK_ID, TK_TAG, TK_NUM, TK_STR,
	TK_LBRACKET, TK_RBRACKET, TK_LPAREN, TK_RPAREN,
	TK_LBRACE, TK_RBRACE, TK_SEMI, TK_COMMA, TK_ERROR
};

struct sv_token {
	enum sv_tok t;
	unsigned line, col;
	const char *p;        /* identifier / tag text (tag without ':') */
	size_t len;
	uint64_t num;
	uint32_t str;         /* TK_STR: index of the decoded string */
};

struct sv_lexer {
	const char *p, *end, *line_start;
	unsigned line;
	const char *col_at;          /* column cache (col_of) */
	unsigned col_val;
	struct buf *pool;            /* decoded strings go here */
	struct buf *strs;            /* struct sv_str array */
	bool encoded;                /* encoded-character is required */
	bool variables;              /* variables is required */
	char error[200];
	unsigned err_line, err_col;
	struct sv_token peeked;
	bool have_peek;
};

void sv_lex_init(struct sv_lexer *lx, const char *text, size_t len,
		 struct buf *pool, struct buf *strs);
/* The next token (TK_ERROR with lx->error set on bad input). */
struct sv_token sv_lex_next(struct sv_lexer *lx);
struct sv_token sv_lex_peek(struct sv_lexer *lx);

#endif
