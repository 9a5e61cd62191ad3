/*
 * The IMAP command parser (see imap-parser.h for the contract).
 *
 * A byte-at-a-time state machine: tokens are copied (quoted strings
 * unescaped) into one buffer per command, and a flat vector of nodes
 * records their type, nesting depth and offset. When the line ends the
 * vector becomes the argument tree in one allocation, so handlers see
 * stable pointers while the parser never holds pointers into a buffer
 * that may move. Literal bytes are either copied (BUFFER), handed out as
 * slices of the caller's input (STREAM, no copy) or counted away.
 */
#include "imap-parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Before login: room for the longest legal command, an RFC 2971 ID of
 * 30 fields with 1,024-octet values, every octet escaped in a quoted
 * string (about 62 KB), and little more. */
const struct imap_parser_limits imap_parser_limits_prelogin = {
	.max_line = 64 * 1024,
	.max_literal = 8 * 1024,
	.max_command = 96 * 1024,
	.max_depth = 4,
	.max_args = 64,
};

/* RFC 7162 3.1.1 asks clients to keep lines under 8192 octets but a
 * server to accept at least that; long UID sets from big mailboxes are the
 * common case, so the authenticated limit is generous. */
const struct imap_parser_limits imap_parser_limits_default = {
	.max_line = 1024 * 1024,
	.max_literal = 1024 * 1024,
	.max_command = 4 * 1024 * 1024,
	.max_depth = 64,
	.max_args = 100000,
};

enum pstate {
	S_TAG,
	S_NAME,
	S_ARGS,
	S_CR,           /* saw CR at the end of the command line */
	S_ATOM,
	S_SECTION,      /* inside BODY[...] */
	S_SECTION_Q,    /* quoted string inside a section */
	S_SECTION_QE,
	S_QUOTED,
	S_QUOTED_ESC,
	S_TILDE,        /* saw '~', want '{' */
	S_LITSIZE,
	S_LITPLUS,      /* saw '+', want '}' */
	S_LIT_CR,       /* after '}', want CRLF */
	S_LIT_LF,
	S_LIT_DECIDE,   /* LITERAL event returned, waiting for accept() */
	S_LIT_BUFFER,
	S_LIT_STREAM,
	S_LIT_DISCARD,  /* refused non-sync literal, then the line */
	S_SKIP_LINE,
};

struct pnode {
	enum imap_arg_type type;
	bool literal8, streamed;
	unsigned depth;
	uint32_t stream_index;
	size_t off, len;
	uint64_t literal_size;
};

struct imap_parser {
	struct imap_parser_limits limits;
	enum pstate state;
	bool fresh;               /* start a new command on the next byte */
	struct buf buf;           /* tag, name, token contents, NUL-separated */
	size_t tag_off, tag_len, name_off, name_len;
	bool have_tag, have_name;
	struct pnode *nodes;
	size_t node_count, node_cap;
	unsigned depth;
	bool need_sep;            /* an argument just ended */
	bool after_sp;            /* the last byte was a separating SP */
	size_t line_bytes;        /* text bytes of this command */
	unsigned top_args;        /* completed top-level arguments */
	uint32_t streams;         /* streamed literals so far */
	/* the literal being announced / read */
	uint64_t lit_size, lit_left;
	bool lit_sync, lit_plus, lit8;
	unsigned lit_digits;
	struct slice lit_data;
	bool lit_last;
	/* skipping a line: a {n+} seen at its end */
	int skip_lit;             /* 0 none, 1 in digits, 2 saw '+', 3 saw '}' */
	uint64_t skip_size;
	bool skip_plus;
	/* the result */
	struct imap_arg *args;
	size_t arg_count;
	const char *error;
	enum imap_parse_error_code error_code;
};

struct imap_parser *imap_parser_create(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	p->limits = *limits;
	buf_init(&p->buf, 0);
	p->fresh = true;
	return p;
}

void imap_parser_destroy(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;
	if (p == NULL)
		return;
	buf_free(&p->buf);
	free(p->nodes);
	free(p->args);
	free(p);
	*pp = NULL;
}

void imap_parser_set_limits(struct imap_parser *p,
			    const struct imap_parser_limits *limits)
{
	p->limits = *limits;
}

/* The command buffer's capacity a new command keeps (more is freed). */
#define PARSER_BUF_KEEP 256

static void start_command(struct imap_parser *p)
{
	/* An idle session (IDLE, or between commands) holds what its last
	 * command needed: the node array a command with arguments grew (16
	 * nodes, 640 bytes) goes with the command, and a long command's
	 * buffer too; a command with arguments allocates its nodes again. */
	if (p->buf.cap > PARSER_BUF_KEEP)
		buf_free(&p->buf);
	else
		buf_reset(&p->buf);
	free(p->nodes);
	p->nodes = NULL;
	p->node_cap = 0;
	p->tag_off = p->tag_len = p->name_off = p->name_len = 0;
	p->have_tag = p->have_name = false;
	p->node_count = 0;
	p->depth = 0;
	p->need_sep = false;
	p->after_sp = false;
	p->line_bytes = 0;
	p->top_args = 0;
	p->streams = 0;
	free(p->args);
	p->args = NULL;
	p->arg_count = 0;
	p->error = NULL;
	p->state = S_TAG;
	p->fresh = false;
	p->skip_lit = 0;
}

size_t imap_parser_heap_bytes(const struct imap_parser *p)
{
	return p->buf.cap + p->node_cap * sizeof(*p->nodes) +
	       (p->args != NULL ? (p->arg_count + 1) * sizeof(*p->args) : 0);
}

bool imap_parser_between(const struct imap_parser *p)
{
	return p->fresh;
}

void imap_parser_reset(struct imap_parser *p)
{
	start_command(p);
	p->fresh = true;
}

/* ---- small helpers -------------------------------------------------- */

static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c == 0x7f)
		return false;
	/* atom-specials except the ones atoms may carry in practice:
	 * list-wildcards (LIST patterns), resp-specials ']' (astring) and
	 * '\' (flags). 8-bit bytes are let through for UTF-8 names. */
	return c != '(' && c != ')' && c != '{' && c != '"';
}

static bool is_tag_char(unsigned char c)
{
	return is_atom_char(c) && c != '+' && c != '%' && c != '*' &&
	       c != '\\' && c < 0x80;
}

static enum imap_parse_result fail(struct imap_parser *p, const char *msg,
				   enum imap_parse_error_code code, bool at_eol)
{
	p->error = msg;
	p->error_code = code;
	p->skip_lit = 0;
	if (at_eol)
		p->fresh = true;
	else
		p->state = S_SKIP_LINE;
	return IMAP_PARSE_ERROR;
}

static int put_byte(struct imap_parser *p, char c)
{
	if (p->buf.len + 1 > p->limits.max_command)
		return -1;
	return buf_append_char(&p->buf, c);
}

static struct pnode *new_node(struct imap_parser *p, enum imap_arg_type type)
{
	if (p->node_count == p->node_cap) {
		p->node_cap = p->node_cap ? p->node_cap * 2 : 16;
		p->nodes = xrealloc(p->nodes, p->node_cap * sizeof(*p->nodes));
	}
	struct pnode *n = &p->nodes[p->node_count++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->depth = p->depth;
	n->off = p->buf.len;
	return n;
}

static struct pnode *last_node(struct imap_parser *p)
{
	return &p->nodes[p->node_count - 1];
}

/* Closes the token at the end of the buffer: NUL-terminates it. */
static int end_token(struct imap_parser *p)
{
	struct pnode *n = last_node(p);
	n->len = p->buf.len - n->off;
	if (put_byte(p, '\0') < 0)
		return -1;
	p->need_sep = true;
	if (p->depth == 0)
		p->top_args++;
	return 0;
}

static bool atom_opens_section(const struct imap_parser *p)
{
	const struct pnode *n = &p->nodes[p->node_count - 1];
	const char *s = p->buf.data + n->off;
	size_t len = p->buf.len - n->off;
	static const char *const names[] = {"BODY", "BODY.PEEK", "BINARY",
					    "BINARY.PEEK", "BINARY.SIZE"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == len && strncasecmp(s, names[i], len) == 0)
			return true;
	}
	return false;
}

/* ---- building the tree ---------------------------------------------- */

static void fill_arg(struct imap_parser *p, const struct pnode *n,
		     struct imap_arg *a)
{
	memset(a, 0, sizeof(*a));
	a->type = n->type;
	a->literal8 = n->literal8;
	a->streamed = n->streamed;
	a->stream_index = n->stream_index;
	a->literal_size = n->literal_size;
	if (n->type != IMAP_ARG_LIST)
		a->str = slice_make(p->buf.data + n->off, n->len);
	if (n->type == IMAP_ARG_ATOM && n->len == 3 &&
	    strncasecmp(a->str.ptr, "NIL", 3) == 0)
		a->type = IMAP_ARG_NIL;
}

/* Lays out the children of depth `depth` starting at node *i into slots
 * taken from *next; returns the array. */
static struct imap_arg *build_level(struct imap_parser *p, size_t *i,
				    unsigned depth, size_t *next,
				    size_t *count_r)
{
	size_t count = 0;
	for (size_t j = *i; j < p->node_count && p->nodes[j].depth >= depth; j++) {
		if (p->nodes[j].depth == depth)
			count++;
	}
	struct imap_arg *out = &p->args[*next];
	*next += count + 1;
	for (size_t k = 0; k < count; k++) {
		const struct pnode *n = &p->nodes[*i];
		fill_arg(p, n, &out[k]);
		(*i)++;
		if (n->type == IMAP_ARG_LIST) {
			out[k].list = build_level(p, i, depth + 1, next,
						  &out[k].list_count);
		}
	}
	memset(&out[count], 0, sizeof(out[count]));
	*count_r = count;
	return out;
}

static void build_tree(struct imap_parser *p)
{
	size_t lists = 0;
	for (size_t j = 0; j < p->node_count; j++) {
		if (p->nodes[j].type == IMAP_ARG_LIST)
			lists++;
	}
	p->args = xcalloc(p->node_count + lists + 1, sizeof(*p->args));
	size_t i = 0, next = 0;
	build_level(p, &i, 0, &next, &p->arg_count);
}

/* ---- the state machine ---------------------------------------------- */

static enum imap_parse_result end_of_line(struct imap_parser *p)
{
	if (!p->have_tag || p->tag_len == 0) {
		if (p->buf.len == 0) {
			/* An empty line: tolerated and ignored. */
			p->state = S_TAG;
			return IMAP_PARSE_NEED_MORE;
		}
		return fail(p, "Missing command", IMAP_PERR_SYNTAX, true);
	}
	if (!p->have_name)
		return fail(p, "Missing command name", IMAP_PERR_SYNTAX, true);
	if (p->depth > 0)
		return fail(p, "Missing ')'", IMAP_PERR_SYNTAX, true);
	build_tree(p);
	p->fresh = true;
	return IMAP_PARSE_COMMAND;
}

/* A byte in S_ARGS. Returns NEED_MORE to go on or an event. */
static enum imap_parse_result args_byte(struct imap_parser *p, unsigned char c)
{
	if (c == ' ') {
		/* RFC 9051 9: one SP between arguments; a second one would
		 * hide a missing (empty) argument, as in "LIST  *" */
		if (p->after_sp)
			return fail(p, "Double space", IMAP_PERR_SYNTAX, false);
		p->need_sep = false;
		p->after_sp = true;
		return IMAP_PARSE_NEED_MORE;
	}
	p->after_sp = false;
	if (c == '\r') {
		p->state = S_CR;
		return IMAP_PARSE_NEED_MORE;
	}
	if (c == '\n')
		return end_of_line(p);
	if (c == ')') {
		if (p->depth == 0)
			return fail(p, "Unexpected ')'", IMAP_PERR_SYNTAX, false);
		p->depth--;
		p->need_sep = true;
		if (p->depth == 0)
			p->top_args++;
		return IMAP_PARSE_NEED_MORE;
	}
	if (p->need_sep)
		return fail(p, "Missing space between arguments",
			    IMAP_PERR_SYNTAX, false);
	if (p->node_count >= p->limits.max_args)
		return fail(p, "Too many arguments", IMAP_PERR_LIMIT, false);
	switch (c) {
	case '(':
		if (p->depth >= p->limits.max_depth)
			return fail(p, "Lists nested too deeply",
				    IMAP_PERR_LIMIT, false);
		new_node(p, IMAP_ARG_LIST);
		p->depth++;
		return IMAP_PARSE_NEED_MORE;
	case '"':
		new_node(p, IMAP_ARG_QUOTED);
		p->state = S_QUOTED;
		return IMAP_PARSE_NEED_MORE;
	case '~':
		p->state = S_TILDE;
		return IMAP_PARSE_NEED_MORE;
	case '{':
		p->lit8 = false;
		goto literal;
	default:
		if (!is_atom_char(c))
			return fail(p, "Invalid character in atom",
				    IMAP_PERR_SYNTAX, false);
		new_node(p, IMAP_ARG_ATOM);
		if (put_byte(p, (char)c) < 0)
			return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
		p->state = S_ATOM;
		return IMAP_PARSE_NEED_MORE;
	}
literal:
	p->lit_size = 0;
	p->lit_digits = 0;
	p->lit_plus = false;
	p->state = S_LITSIZE;
	return IMAP_PARSE_NEED_MORE;
}

static enum imap_parse_result text_byte(struct imap_parser *p,
					 unsigned char c);

static enum imap_parse_result litsize_byte(struct imap_parser *p,
					   unsigned char c)
{
	if (p->state == S_TILDE) {
		if (c != '{') {
			/* '~' is an ATOM-CHAR (RFC 9051 9): only "~{" opens
			 * a literal8, "~peter/mail" is an atom */
			new_node(p, IMAP_ARG_ATOM);
			if (put_byte(p, '~') < 0)
				return fail(p, "Command too long",
					    IMAP_PERR_TOOBIG, false);
			p->state = S_ATOM;
			return text_byte(p, c);
		}
		p->lit8 = true;
		p->lit_size = 0;
		p->lit_digits = 0;
		p->lit_plus = false;
		p->state = S_LITSIZE;
		return IMAP_PARSE_NEED_MORE;
	}
	if (p->state == S_LITSIZE && c >= '0' && c <= '9') {
		if (__builtin_mul_overflow(p->lit_size, 10, &p->lit_size) ||
		    __builtin_add_overflow(p->lit_size, (uint64_t)(c - '0'),
					   &p->lit_size) ||
		    ++p->lit_digits > 19)
			return fail(p, "Literal size too large", IMAP_PERR_TOOBIG,
				    false);
		return IMAP_PARSE_NEED_MORE;
	}
	if (p->state == S_LITSIZE && c == '+' && p->lit_digits > 0) {
		p->lit_plus = true;
		p->state = S_LITPLUS;
		return IMAP_PARSE_NEED_MORE;
	}
	if (c == '}' && p->lit_digits > 0) {
		p->state = S_LIT_CR;
		return IMAP_PARSE_NEED_MORE;
	}
	return fail(p, "Invalid literal size", IMAP_PERR_SYNTAX, c == '\n');
}

static enum imap_parse_result announce_literal(struct imap_parser *p)
{
	p->lit_sync = !p->lit_plus;
	p->lit_left = p->lit_size;
	p->state = S_LIT_DECIDE;
	return IMAP_PARSE_LITERAL;
}

static enum imap_parse_result literal_done(struct imap_parser *p)
{
	if (end_token(p) < 0)
		return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
	p->state = S_ARGS;
	return IMAP_PARSE_NEED_MORE;
}

/* One byte in a text state (not literal data). */
static enum imap_parse_result text_byte(struct imap_parser *p, unsigned char c)
{
	switch (p->state) {
	case S_TAG:
		if (c == ' ' && p->buf.len > 0) {
			p->tag_len = p->buf.len;
			p->have_tag = true;
			if (put_byte(p, '\0') < 0)
				return fail(p, "Tag too long", IMAP_PERR_TOOBIG, false);
			p->name_off = p->buf.len;
			p->state = S_NAME;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '\r' && p->buf.len == 0)
			return IMAP_PARSE_NEED_MORE;
		if (c == '\n' || c == '\r') {
			if (p->buf.len > 0) {
				/* "a1" alone: a tag without a command */
				p->tag_len = p->buf.len;
				p->have_tag = true;
				if (put_byte(p, '\0') < 0)
					return fail(p, "Tag too long",
						    IMAP_PERR_TOOBIG, c == '\n');
			}
			if (c == '\r')
				return fail(p, "Missing command",
					    IMAP_PERR_SYNTAX, false);
			return end_of_line(p);
		}
		if (!is_tag_char(c))
			return fail(p, "Invalid tag", IMAP_PERR_SYNTAX, false);
		if (put_byte(p, (char)c) < 0)
			return fail(p, "Tag too long", IMAP_PERR_TOOBIG, false);
		return IMAP_PARSE_NEED_MORE;
	case S_NAME:
		if (c == ' ' || c == '\r' || c == '\n') {
			if (p->buf.len == p->name_off)
				return fail(p, "Missing command name",
					    IMAP_PERR_SYNTAX, c == '\n');
			p->name_len = p->buf.len - p->name_off;
			p->have_name = true;
			if (put_byte(p, '\0') < 0)
				return fail(p, "Command too long", IMAP_PERR_TOOBIG,
					    false);
			p->state = S_ARGS;
			return args_byte(p, c);
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return fail(p, "Invalid command name", IMAP_PERR_SYNTAX,
				    false);
		if (put_byte(p, (char)c) < 0)
			return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
		return IMAP_PARSE_NEED_MORE;
	case S_ARGS:
		return args_byte(p, c);
	case S_CR:
		if (c != '\n')
			return fail(p, "CR without LF", IMAP_PERR_SYNTAX, false);
		return end_of_line(p);
	case S_ATOM:
		if (c == '[' && atom_opens_section(p)) {
			if (put_byte(p, (char)c) < 0)
				return fail(p, "Command too long",
					    IMAP_PERR_TOOBIG, false);
			p->state = S_SECTION;
			return IMAP_PARSE_NEED_MORE;
		}
		if (is_atom_char(c)) {
			if (put_byte(p, (char)c) < 0)
				return fail(p, "Command too long",
					    IMAP_PERR_TOOBIG, false);
			return IMAP_PARSE_NEED_MORE;
		}
		if (end_token(p) < 0)
			return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
		p->state = S_ARGS;
		return args_byte(p, c);
	case S_SECTION:
	case S_SECTION_Q:
	case S_SECTION_QE:
		if (c == '\r' || c == '\n' || c == 0)
			return fail(p, "Unterminated section '['",
				    IMAP_PERR_SYNTAX, c == '\n');
		if (p->state == S_SECTION_QE)
			p->state = S_SECTION_Q;
		else if (p->state == S_SECTION_Q)
			p->state = c == '"' ? S_SECTION : c == '\\' ? S_SECTION_QE
								   : S_SECTION_Q;
		else if (c == '"')
			p->state = S_SECTION_Q;
		else if (c == ']')
			p->state = S_ATOM;
		else if (c == '{')
			return fail(p, "Literal inside a section",
				    IMAP_PERR_SYNTAX, false);
		if (put_byte(p, (char)c) < 0)
			return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
		return IMAP_PARSE_NEED_MORE;
	case S_QUOTED:
		if (c == '"') {
			if (end_token(p) < 0)
				return fail(p, "Command too long",
					    IMAP_PERR_TOOBIG, false);
			p->state = S_ARGS;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '\\') {
			p->state = S_QUOTED_ESC;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '\r' || c == '\n' || c == 0)
			return fail(p, "Unterminated quoted string",
				    IMAP_PERR_SYNTAX, c == '\n');
		if (put_byte(p, (char)c) < 0)
			return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
		return IMAP_PARSE_NEED_MORE;
	case S_QUOTED_ESC:
		if (c != '"' && c != '\\')
			return fail(p, "Invalid escape in quoted string",
				    IMAP_PERR_SYNTAX, c == '\n');
		p->state = S_QUOTED;
		if (put_byte(p, (char)c) < 0)
			return fail(p, "Command too long", IMAP_PERR_TOOBIG, false);
		return IMAP_PARSE_NEED_MORE;
	case S_TILDE:
	case S_LITSIZE:
	case S_LITPLUS:
		return litsize_byte(p, c);
	case S_LIT_CR:
		if (c == '\r') {
			p->state = S_LIT_LF;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '\n')
			return announce_literal(p);
		return fail(p, "A literal must end its line", IMAP_PERR_SYNTAX,
			    false);
	case S_LIT_LF:
		if (c != '\n')
			return fail(p, "CR without LF", IMAP_PERR_SYNTAX, false);
		return announce_literal(p);
	default:
		return IMAP_PARSE_NEED_MORE;
	}
}

/* While skipping a bad line: a {n+} at its end means n bytes of literal
 * follow that are part of the same command (RFC 7888), so they are
 * skipped too; after {n} the client waits for "+", which never comes. */
static void skip_byte(struct imap_parser *p, unsigned char c)
{
	if (c == '\n') {
		if (p->skip_lit == 3 && p->skip_plus && p->skip_size > 0) {
			p->lit_left = p->skip_size;
			p->state = S_LIT_DISCARD;
		} else if (p->skip_lit != 3 || !p->skip_plus) {
			p->fresh = true;
		}
		p->skip_lit = 0;
		return;
	}
	if (c == '\r' && p->skip_lit == 3)
		return;
	if (c == '{') {
		p->skip_lit = 1;
		p->skip_size = 0;
		p->skip_plus = false;
	} else if (p->skip_lit == 1 && c >= '0' && c <= '9') {
		if (p->skip_size < UINT64_MAX / 20)
			p->skip_size = p->skip_size * 10 + (uint64_t)(c - '0');
	} else if (p->skip_lit == 1 && c == '+') {
		p->skip_plus = true;
		p->skip_lit = 2;
	} else if ((p->skip_lit == 1 || p->skip_lit == 2) && c == '}') {
		p->skip_lit = 3;
	} else {
		p->skip_lit = 0;
	}
}

static bool text_state(enum pstate s)
{
	return s != S_LIT_BUFFER && s != S_LIT_STREAM && s != S_LIT_DISCARD &&
	       s != S_SKIP_LINE && s != S_LIT_DECIDE;
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p,
					const char *data, size_t len,
					size_t *consumed_r)
{
	size_t i = 0;
	enum imap_parse_result r = IMAP_PARSE_NEED_MORE;

	while (i < len) {
		if (p->fresh)
			start_command(p);
		if (p->state == S_LIT_DECIDE)
			break;   /* the caller has not called literal_accept */
		if (p->state == S_LIT_STREAM) {
			size_t n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			p->lit_data = slice_make(data + i, n);
			p->lit_left -= n;
			p->lit_last = p->lit_left == 0;
			i += n;
			if (p->lit_last) {
				r = literal_done(p);
				if (r != IMAP_PARSE_NEED_MORE)
					break;  /* cannot fail: stream has no bytes */
			}
			r = IMAP_PARSE_LITERAL_DATA;
			break;
		}
		if (p->state == S_LIT_BUFFER || p->state == S_LIT_DISCARD) {
			size_t n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (p->state == S_LIT_BUFFER &&
			    buf_append(&p->buf, data + i, n) < 0)
				abort();  /* reserved in literal_accept */
			p->lit_left -= n;
			i += n;
			if (p->lit_left == 0) {
				if (p->state == S_LIT_DISCARD) {
					p->state = S_SKIP_LINE;
					continue;
				}
				r = literal_done(p);
				if (r != IMAP_PARSE_NEED_MORE) {
					break;
				}
			}
			continue;
		}
		unsigned char c = (unsigned char)data[i++];
		if (p->state == S_SKIP_LINE) {
			skip_byte(p, c);
			continue;
		}
		if (text_state(p->state) && ++p->line_bytes > p->limits.max_line) {
			r = fail(p, "Command line too long", IMAP_PERR_TOOBIG,
				 c == '\n');
			break;
		}
		r = text_byte(p, c);
		if (r != IMAP_PARSE_NEED_MORE)
			break;
	}
	*consumed_r = i;
	return r;
}

struct slice imap_parser_tag(const struct imap_parser *p)
{
	if (!p->have_tag)
		return slice_make("", 0);
	return slice_make(p->buf.data + p->tag_off, p->tag_len);
}

struct slice imap_parser_name(const struct imap_parser *p)
{
	if (!p->have_name)
		return slice_make("", 0);
	return slice_make(p->buf.data + p->name_off, p->name_len);
}

const struct imap_arg *imap_parser_args(const struct imap_parser *p,
					size_t *count_r)
{
	static const struct imap_arg eol = {.type = IMAP_ARG_EOL};
	if (count_r != NULL)
		*count_r = p->arg_count;
	return p->args != NULL ? p->args : &eol;
}

struct slice imap_parser_top_arg(const struct imap_parser *p, unsigned n)
{
	unsigned k = 0;
	if (n >= p->top_args)
		return slice_make("", 0);
	for (size_t i = 0; i < p->node_count; i++) {
		if (p->nodes[i].depth != 0)
			continue;
		if (k++ < n)
			continue;
		if (p->nodes[i].type != IMAP_ARG_ATOM)
			break;
		return slice_make(p->buf.data + p->nodes[i].off, p->nodes[i].len);
	}
	return slice_make("", 0);
}

void imap_parser_literal(const struct imap_parser *p,
			 struct imap_literal_info *info_r)
{
	info_r->size = p->lit_size;
	info_r->sync = p->lit_sync;
	info_r->literal8 = p->lit8;
	info_r->depth = p->depth;
	info_r->arg_index = p->top_args;
}

int imap_parser_literal_accept(struct imap_parser *p,
			       enum imap_literal_action action)
{
	int ret = 0;
	if (p->state != S_LIT_DECIDE)
		return -1;
	if (action == IMAP_LITERAL_BUFFER &&
	    (p->lit_size > p->limits.max_literal ||
	     p->buf.len + p->lit_size + 1 > p->limits.max_command)) {
		action = IMAP_LITERAL_REFUSE;
		ret = -1;
	}
	if (action == IMAP_LITERAL_REFUSE) {
		if (p->lit_sync) {
			p->fresh = true;
		} else {
			p->state = p->lit_left > 0 ? S_LIT_DISCARD : S_SKIP_LINE;
		}
		return ret;
	}
	struct pnode *n = new_node(p, IMAP_ARG_LITERAL);
	n->literal8 = p->lit8;
	n->literal_size = p->lit_size;
	if (action == IMAP_LITERAL_STREAM) {
		n->streamed = true;
		n->stream_index = p->streams++;
		p->state = S_LIT_STREAM;
		/* An empty streamed literal has no LITERAL_DATA event. */
		if (p->lit_size == 0)
			literal_done(p);
		return 0;
	}
	p->state = S_LIT_BUFFER;
	if (p->lit_size == 0)
		literal_done(p);
	return 0;
}

struct slice imap_parser_literal_data(const struct imap_parser *p,
				      bool *last_r, uint32_t *stream_index_r)
{
	*last_r = p->lit_last;
	*stream_index_r = p->streams > 0 ? p->streams - 1 : 0;
	return p->lit_data;
}

const char *imap_parser_error(const struct imap_parser *p,
			      enum imap_parse_error_code *code_r)
{
	if (code_r != NULL)
		*code_r = p->error_code;
	return p->error != NULL ? p->error : "Syntax error";
}

/* ---- argument helpers ------------------------------------------------ */

bool imap_arg_is_astring(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_NIL ||
	       ((arg->type == IMAP_ARG_QUOTED || arg->type == IMAP_ARG_LITERAL) &&
		!arg->streamed);
}

bool imap_arg_is_string(const struct imap_arg *arg)
{
	return (arg->type == IMAP_ARG_QUOTED || arg->type == IMAP_ARG_LITERAL) &&
	       !arg->streamed;
}

bool imap_arg_is_atom(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_NIL;
}

const char *imap_arg_str(const struct imap_arg *arg)
{
	if (arg->type == IMAP_ARG_LIST || arg->type == IMAP_ARG_EOL ||
	    arg->streamed)
		return NULL;
	return arg->str.ptr;
}

bool imap_arg_has_nul(const struct imap_arg *arg)
{
	return arg->str.len > 0 && memchr(arg->str.ptr, 0, arg->str.len) != NULL;
}

bool imap_arg_atom_eq(const struct imap_arg *arg, const char *lit)
{
	return imap_arg_is_atom(arg) && slice_eq_ci(arg->str, lit);
}

size_t imap_args_count(const struct imap_arg *args)
{
	size_t n = 0;
	while (args[n].type != IMAP_ARG_EOL)
		n++;
	return n;
}
