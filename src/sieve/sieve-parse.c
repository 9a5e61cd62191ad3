/*
 * The Sieve compiler: RFC 5228 grammar (8.2) over the lexer's tokens,
 * each command and test checked against its signature (tags first, then
 * the positional arguments, RFC 5228 2.6) and the extensions required,
 * and emitted as a normalised node of the compiled form
 * (sieve-private.h). Nesting is bounded by max_nesting before the stack
 * could be; a syntax error ends the parse, a validation error is
 * recorded and the parse goes on (up to 20 errors).
 */
#include "sieve-private.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sieve-lex.h"

const char *const sv_ext_names[EXT_COUNT] = {
	[EXT_FILEINTO] = "fileinto", [EXT_REJECT] = "reject",
	[EXT_EREJECT] = "ereject", [EXT_ENVELOPE] = "envelope",
	[EXT_ENCODED] = "encoded-character", [EXT_IMAP4FLAGS] = "imap4flags",
	[EXT_BODY] = "body", [EXT_VARIABLES] = "variables",
	[EXT_VACATION] = "vacation",
	[EXT_VACATION_SECONDS] = "vacation-seconds",
	[EXT_RELATIONAL] = "relational",
	[EXT_NUMERIC] = "comparator-i;ascii-numeric",
	[EXT_SUBADDRESS] = "subaddress", [EXT_DATE] = "date",
	[EXT_INDEX] = "index", [EXT_COPY] = "copy", [EXT_MAILBOX] = "mailbox",
	[EXT_INCLUDE] = "include", [EXT_EDITHEADER] = "editheader",
	[EXT_DUPLICATE] = "duplicate", [EXT_SPAMTEST] = "spamtest",
	[EXT_SPAMTESTPLUS] = "spamtestplus", [EXT_VIRUSTEST] = "virustest",
	[EXT_ENVIRONMENT] = "environment",
};

void sieve_limits_default(struct sieve_limits *l)
{
	l->max_script_size = 1024 * 1024;
	l->max_actions = 32;
	l->max_redirects = 4;
	l->max_include_depth = 10;
	l->max_variable_size = 4096;
	l->max_nesting = 32;
	l->max_steps = 20000000;
	l->max_list_items = 100000;
}

/* ---- command and tag tables ---------------------------------------- */

struct cmd_spec {
	const char *name;
	enum sv_op op;
	int ext;            /* -1: core */
	bool test;
	const char *sig;    /* alternatives split by '|': s string, l list,
			       n number, t test, T test list, B block */
	const char *tags;   /* groups (C M A I Z B S) and tag names */
};

static const struct cmd_spec cmds[] = {
	{"require", OP_REQUIRE, -1, false, "l", ""},
	{"if", OP_IF, -1, false, "tB", ""},
	{"elsif", OP_ELSIF, -1, false, "tB", ""},
	{"else", OP_ELSE, -1, false, "B", ""},
	{"stop", OP_STOP, -1, false, "", ""},
	{"keep", OP_KEEP, -1, false, "", " :flags "},
	{"discard", OP_DISCARD, -1, false, "", ""},
	{"redirect", OP_REDIRECT, -1, false, "s", " :copy "},
	{"fileinto", OP_FILEINTO, EXT_FILEINTO, false, "s",
	 " :flags :copy :create "},
	{"reject", OP_REJECT, EXT_REJECT, false, "s", ""},
	{"ereject", OP_EREJECT, EXT_EREJECT, false, "s", ""},
	{"setflag", OP_SETFLAG, EXT_IMAP4FLAGS, false, "l|sl", ""},
	{"addflag", OP_ADDFLAG, EXT_IMAP4FLAGS, false, "l|sl", ""},
	{"removeflag", OP_REMOVEFLAG, EXT_IMAP4FLAGS, false, "l|sl", ""},
	{"set", OP_SET, EXT_VARIABLES, false, "ss",
	 " :lower :upper :lowerfirst :upperfirst :quotewildcard :length "},
	{"vacation", OP_VACATION, EXT_VACATION, false, "s",
	 " :days :seconds :subject :from :addresses :mime :handle "},
	{"include", OP_INCLUDE, EXT_INCLUDE, false, "s",
	 " :personal :global :once :optional "},
	{"return", OP_RETURN, EXT_INCLUDE, false, "", ""},
	{"global", OP_GLOBAL, EXT_INCLUDE, false, "l", ""},
	{"addheader", OP_ADDHEADER, EXT_EDITHEADER, false, "ss", " :last "},
	{"deleteheader", OP_DELETEHEADER, EXT_EDITHEADER, false, "s|sl",
	 "CMI"},
	{"true", OP_TRUE, -1, true, "", ""},
	{"false", OP_FALSE, -1, true, "", ""},
	{"not", OP_NOT, -1, true, "t", ""},
	{"anyof", OP_ANYOF, -1, true, "T", ""},
	{"allof", OP_ALLOF, -1, true, "T", ""},
	{"address", OP_ADDRESS, -1, true, "ll", "CMAI"},
	{"envelope", OP_ENVELOPE, EXT_ENVELOPE, true, "ll", "CMA"},
	{"header", OP_HEADER, -1, true, "ll", "CMI"},
	{"exists", OP_EXISTS, -1, true, "l", ""},
	{"size", OP_SIZE, -1, true, "n", "S"},
	{"body", OP_BODY, EXT_BODY, true, "l", "CMB"},
	{"hasflag", OP_HASFLAG, EXT_IMAP4FLAGS, true, "l|ll", "CM"},
	{"string", OP_STRING, EXT_VARIABLES, true, "ll", "CM"},
	{"date", OP_DATE, EXT_DATE, true, "ssl", "ZCMI"},
	{"currentdate", OP_CURRENTDATE, EXT_DATE, true, "sl", "ZCM"},
	{"mailboxexists", OP_MAILBOXEXISTS, EXT_MAILBOX, true, "l", ""},
	{"duplicate", OP_DUPLICATE, EXT_DUPLICATE, true, "",
	 " :handle :header :uniqueid :seconds :last "},
	{"spamtest", OP_SPAMTEST, EXT_SPAMTEST, true, "s", "CM :percent "},
	{"virustest", OP_VIRUSTEST, EXT_VIRUSTEST, true, "s", "CM"},
	{"environment", OP_ENVIRONMENT, EXT_ENVIRONMENT, true, "sl", "CM"},
};

enum tag_arg { TA_NONE, TA_STR, TA_LIST, TA_NUM };

struct tag_spec {
	const char *name;
	char group;         /* C M A I Z B S, or 0 for a tag of its own */
	int ext;
	enum tag_arg arg;
	uint32_t bit;       /* node.tags bit */
	int slot;           /* tag argument slot, -1 none */
	int value;          /* match/addrpart/body value */
};

static const struct tag_spec tags[] = {
	{"is", 'M', -1, TA_NONE, 0, -1, M_IS},
	{"contains", 'M', -1, TA_NONE, 0, -1, M_CONTAINS},
	{"matches", 'M', -1, TA_NONE, 0, -1, M_MATCHES},
	{"value", 'M', EXT_RELATIONAL, TA_STR, 0, -1, M_VALUE},
	{"count", 'M', EXT_RELATIONAL, TA_STR, 0, -1, M_COUNT},
	{"comparator", 'C', -1, TA_STR, 0, -1, 0},
	{"all", 'A', -1, TA_NONE, 0, -1, A_ALL},
	{"localpart", 'A', -1, TA_NONE, 0, -1, A_LOCAL},
	{"domain", 'A', -1, TA_NONE, 0, -1, A_DOMAIN},
	{"user", 'A', EXT_SUBADDRESS, TA_NONE, 0, -1, A_USER},
	{"detail", 'A', EXT_SUBADDRESS, TA_NONE, 0, -1, A_DETAIL},
	{"index", 'I', EXT_INDEX, TA_NUM, T_INDEX, -1, 0},
	{"last", 'I', EXT_INDEX, TA_NONE, T_LAST, -1, 0},
	{"zone", 'Z', EXT_DATE, TA_STR, T_ZONE, TS_ZONE, 0},
	{"originalzone", 'Z', EXT_DATE, TA_NONE, T_ORIGZONE, -1, 0},
	{"raw", 'B', EXT_BODY, TA_NONE, 0, -1, B_RAW},
	{"text", 'B', EXT_BODY, TA_NONE, 0, -1, B_TEXT},
	{"content", 'B', EXT_BODY, TA_LIST, 0, TS_CONTENT, B_CONTENT},
	{"over", 'S', -1, TA_NONE, T_OVER, -1, S_OVER},
	{"under", 'S', -1, TA_NONE, T_UNDER, -1, S_UNDER},
	{"flags", 0, EXT_IMAP4FLAGS, TA_LIST, 0, TS_FLAGS, 0},
	{"copy", 0, EXT_COPY, TA_NONE, T_COPY, -1, 0},
	{"create", 0, EXT_MAILBOX, TA_NONE, T_CREATE, -1, 0},
	{"days", 0, -1, TA_NUM, T_DAYS, -1, 0},
	{"seconds", 0, -1, TA_NUM, T_SECONDS, -1, 0},
	{"subject", 0, -1, TA_STR, 0, TS_SUBJECT, 0},
	{"from", 0, -1, TA_STR, 0, TS_FROM, 0},
	{"addresses", 0, -1, TA_LIST, 0, TS_ADDRESSES, 0},
	{"mime", 0, -1, TA_NONE, T_MIME, -1, 0},
	{"handle", 0, -1, TA_STR, 0, TS_HANDLE, 0},
	{"personal", 0, -1, TA_NONE, T_PERSONAL, -1, 0},
	{"global", 0, -1, TA_NONE, T_GLOBAL, -1, 0},
	{"once", 0, -1, TA_NONE, T_ONCE, -1, 0},
	{"optional", 0, -1, TA_NONE, T_OPTIONAL, -1, 0},
	{"lower", 0, -1, TA_NONE, T_LOWER, -1, 0},
	{"upper", 0, -1, TA_NONE, T_UPPER, -1, 0},
	{"lowerfirst", 0, -1, TA_NONE, T_LOWERFIRST, -1, 0},
	{"upperfirst", 0, -1, TA_NONE, T_UPPERFIRST, -1, 0},
	{"quotewildcard", 0, -1, TA_NONE, T_QUOTEWILD, -1, 0},
	{"length", 0, -1, TA_NONE, T_LENGTH, -1, 0},
	{"header", 0, -1, TA_STR, 0, TS_HEADER, 0},
	{"uniqueid", 0, -1, TA_STR, 0, TS_UNIQUEID, 0},
	{"percent", 0, EXT_SPAMTESTPLUS, TA_NONE, T_PERCENT, -1, 0},
};

/* ---- the compiler's state ------------------------------------------ */

#define MAX_ERRORS 20

struct parser {
	struct sv_lexer lx;
	const struct sieve_limits *lim;
	struct buf nodes, lists, strs, pool;
	struct sieve_errors *errs;
	uint32_t exts;
	bool fatal;
	bool seen_command;   /* a command other than require was seen */
};

static struct sv_node *N(struct parser *p, uint32_t i)
{
	return &((struct sv_node *)p->nodes.data)[i];
}
static const struct sv_str *S(struct parser *p, uint32_t i)
{
	return &((const struct sv_str *)p->strs.data)[i];
}
static const struct sv_list *L(struct parser *p, uint32_t i)
{
	return &((const struct sv_list *)p->lists.data)[i];
}

static void add_error(struct parser *p, unsigned line, unsigned col,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_error(struct parser *p, unsigned line, unsigned col,
		      const char *fmt, ...)
{
	if (p->errs->count >= MAX_ERRORS) {
		p->fatal = true;
		return;
	}
	p->errs->items = xrealloc(p->errs->items, (p->errs->count + 1) *
				  sizeof(*p->errs->items));
	struct sieve_error *e = &p->errs->items[p->errs->count++];
	e->line = line;
	e->column = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

static void syntax_error(struct parser *p, const struct sv_token *t,
			 const char *what)
{
	if (p->fatal)
		return;
	if (t->t == TK_ERROR)
		add_error(p, p->lx.err_line, p->lx.err_col, "%s", p->lx.error);
	else
		add_error(p, t->line, t->col, "%s", what);
	p->fatal = true;
}

static uint32_t new_node(struct parser *p, enum sv_op op,
			 const struct sv_token *t)
{
	struct sv_node n = {0};
	n.op = (uint16_t)op;
	n.line = t->line;
	n.col = t->col;
	n.cmp = C_CASEMAP;
	n.match = M_IS;
	uint32_t i = (uint32_t)(p->nodes.len / sizeof(n));
	buf_append(&p->nodes, &n, sizeof(n));
	return i;
}

static uint32_t new_list(struct parser *p, uint32_t first, uint32_t count)
{
	struct sv_list l = {first, count};
	uint32_t i = (uint32_t)(p->lists.len / sizeof(l));
	buf_append(&p->lists, &l, sizeof(l));
	return i;
}

/* ---- generic syntax ------------------------------------------------ */

enum garg_kind { G_TAG, G_NUM, G_STR, G_LIST };
struct garg {
	enum garg_kind kind;
	unsigned line, col;
	const char *name;   /* tag */
	size_t name_len;
	uint64_t num;
	uint32_t list;
};

struct gcmd {
	struct sv_token id;
	struct garg *args;
	size_t nargs, cap;
	uint32_t tests[1];   /* a single test (0: none) */
	uint32_t test_list;  /* first test of a (list), linked by next */
	bool has_test, has_list, has_block;
	uint32_t block;
};

static void garg_push(struct gcmd *g, struct garg a)
{
	if (g->nargs == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 4;
		g->args = xrealloc(g->args, g->cap * sizeof(*g->args));
	}
	g->args[g->nargs++] = a;
}

static uint32_t parse_test(struct parser *p, unsigned depth);
static uint32_t parse_block(struct parser *p, unsigned depth);

static bool parse_string_list(struct parser *p, struct garg *a)
{
	struct sv_token t = sv_lex_next(&p->lx);   /* '[' */
	uint32_t first = 0, count = 0;
	for (;;) {
		struct sv_token s = sv_lex_next(&p->lx);
		if (s.t != TK_STR) {
			syntax_error(p, &s, "expected a string in the list");
			return false;
		}
		if (count == 0)
			first = s.str;
		if (++count > p->lim->max_list_items) {
			add_error(p, t.line, t.col, "string list has more than "
				  "%zu items (max_list_items)",
				  p->lim->max_list_items);
			p->fatal = true;
			return false;
		}
		struct sv_token n = sv_lex_next(&p->lx);
		if (n.t == TK_RBRACKET)
			break;
		if (n.t != TK_COMMA) {
			syntax_error(p, &n, "expected ',' or ']' in the string list");
			return false;
		}
	}
	a->kind = G_LIST;
	a->list = new_list(p, first, count);
	return true;
}

static bool check_depth(struct parser *p, const struct sv_token *t,
			unsigned depth)
{
	if (depth <= p->lim->max_nesting)
		return true;
	if (!p->fatal)
		add_error(p, t->line, t->col, "nesting deeper than %u "
			  "(max_nesting)", p->lim->max_nesting);
	p->fatal = true;
	return false;
}

/* Arguments, then a test or test list (tests only nest in tests and in
 * if/elsif). */
static bool parse_arguments(struct parser *p, struct gcmd *g, unsigned depth)
{
	for (;;) {
		struct sv_token t = sv_lex_peek(&p->lx);
		struct garg a = {.line = t.line, .col = t.col};
		if (t.t == TK_TAG) {
			sv_lex_next(&p->lx);
			a.kind = G_TAG;
			a.name = t.p;
			a.name_len = t.len;
		} else if (t.t == TK_NUM) {
			sv_lex_next(&p->lx);
			a.kind = G_NUM;
			a.num = t.num;
		} else if (t.t == TK_STR) {
			sv_lex_next(&p->lx);
			a.kind = G_STR;
			a.list = new_list(p, t.str, 1);
		} else if (t.t == TK_LBRACKET) {
			if (!parse_string_list(p, &a))
				return false;
		} else if (t.t == TK_ERROR) {
			syntax_error(p, &t, "");
			return false;
		} else {
			break;
		}
		garg_push(g, a);
	}
	struct sv_token t = sv_lex_peek(&p->lx);
	if (t.t == TK_ID) {
		if (!check_depth(p, &t, depth + 1))
			return false;
		g->tests[0] = parse_test(p, depth + 1);
		g->has_test = true;
		return !p->fatal;
	}
	if (t.t == TK_LPAREN) {
		sv_lex_next(&p->lx);
		if (!check_depth(p, &t, depth + 1))
			return false;
		uint32_t last = 0;
		for (;;) {
			uint32_t n = parse_test(p, depth + 1);
			if (p->fatal)
				return false;
			if (last)
				N(p, last)->next = n;
			else
				g->test_list = n;
			last = n;
			struct sv_token c = sv_lex_next(&p->lx);
			if (c.t == TK_RPAREN)
				break;
			if (c.t != TK_COMMA) {
				syntax_error(p, &c, "expected ',' or ')' in the "
					     "test list");
				return false;
			}
		}
		g->has_list = true;
	}
	return true;
}

/* ---- validation ---------------------------------------------------- */

static const struct cmd_spec *find_cmd(const struct sv_token *t)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strlen(cmds[i].name) == t->len &&
		    strncasecmp(cmds[i].name, t->p, t->len) == 0)
			return &cmds[i];
	return NULL;
}

static const struct tag_spec *find_tag(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (strlen(tags[i].name) == len &&
		    strncasecmp(tags[i].name, name, len) == 0)
			return &tags[i];
	return NULL;
}

static bool tag_allowed(const struct cmd_spec *c, const struct tag_spec *t)
{
	if (t->group)
		for (const char *q = c->tags; *q && *q != ' '; q++)
			if (*q == t->group)
				return true;
	char key[40];
	snprintf(key, sizeof(key), " :%s ", t->name);
	return strstr(c->tags, key) != NULL;
}

static bool need_ext(struct parser *p, int ext, unsigned line, unsigned col,
		     const char *what)
{
	if (ext < 0 || (p->exts & (1u << ext)))
		return true;
	add_error(p, line, col, "%s requires the \"%s\" extension "
		  "(require \"%s\";)", what, sv_ext_names[ext],
		  sv_ext_names[ext]);
	return false;
}

/* The literal text of a one-string argument, or NULL if it holds
 * variables (known only at run time). */
static const char *literal(struct parser *p, uint32_t list, size_t *len_r)
{
	const struct sv_list *l = L(p, list);
	if (l->count != 1)
		return NULL;
	const struct sv_str *s = S(p, l->first);
	if (s->vars)
		return NULL;
	*len_r = s->len;
	return p->pool.data + s->off;
}

static bool lit_eq(struct parser *p, uint32_t list, const char *want)
{
	size_t n;
	const char *s = literal(p, list, &n);
	return s && n == strlen(want) && strncasecmp(s, want, n) == 0;
}

static void check_comparator(struct parser *p, struct sv_node *n,
			     const struct garg *a, uint32_t list)
{
	if (L(p, list)->count != 1) {
		add_error(p, a->line, a->col, ":comparator takes one string");
		return;
	}
	if (lit_eq(p, list, "i;ascii-casemap")) {
		n->cmp = C_CASEMAP;
	} else if (lit_eq(p, list, "i;octet")) {
		n->cmp = C_OCTET;
	} else if (lit_eq(p, list, "i;ascii-numeric")) {
		n->cmp = C_NUMERIC;
		need_ext(p, EXT_NUMERIC, a->line, a->col,
			 "comparator \"i;ascii-numeric\"");
	} else {
		size_t len = 0;
		const char *s = literal(p, list, &len);
		add_error(p, a->line, a->col, "unknown comparator \"%.*s\"",
			  s ? (int)(len > 60 ? 60 : len) : 0, s ? s : "");
	}
}

static void check_relation(struct parser *p, struct sv_node *n,
			   const struct garg *a, uint32_t list)
{
	static const char *const rel[] = {"", "gt", "ge", "lt", "le", "eq",
					  "ne"};
	for (int i = 1; i <= 6; i++)
		if (lit_eq(p, list, rel[i])) {
			n->rel = (uint8_t)i;
			return;
		}
	add_error(p, a->line, a->col, "relational match needs one of "
		  "\"gt\", \"ge\", \"lt\", \"le\", \"eq\", \"ne\"");
}

/* Handles the tags of g for command c into node n; returns the index of
 * the first positional argument. */
static size_t take_tags(struct parser *p, const struct cmd_spec *c,
			struct gcmd *g, struct sv_node *n)
{
	size_t i = 0;
	char groups_seen[8] = "";
	while (i < g->nargs && g->args[i].kind == G_TAG) {
		const struct garg *a = &g->args[i++];
		const struct tag_spec *t = find_tag(a->name, a->name_len);
		if (t == NULL || !tag_allowed(c, t)) {
			add_error(p, a->line, a->col, "unknown tag ':%.*s' for %s",
				  (int)(a->name_len > 40 ? 40 : a->name_len),
				  a->name, c->name);
			continue;
		}
		int ext = t->ext;
		/* :last outside index's tests and :seconds of duplicate come
		 * with their command's extension */
		if (t->bit == T_LAST && (c->op == OP_ADDHEADER ||
					 c->op == OP_DUPLICATE))
			ext = -1;
		if (t->bit == T_SECONDS && c->op == OP_VACATION)
			ext = EXT_VACATION_SECONDS;
		char what[64];
		snprintf(what, sizeof(what), "tag ':%s'", t->name);
		need_ext(p, ext, a->line, a->col, what);
		if (t->group && t->group != 'I') {
			if (strchr(groups_seen, t->group)) {
				add_error(p, a->line, a->col, "only one %s tag may "
					  "be given", t->group == 'M' ?
					  "match type" : t->group == 'C' ?
					  "comparator" : t->group == 'A' ?
					  "address part" : t->group == 'B' ?
					  "body transform" : t->group == 'Z' ?
					  "zone" : "size");
			} else {
				size_t gl = strlen(groups_seen);
				if (gl + 1 < sizeof(groups_seen)) {
					groups_seen[gl] = t->group;
					groups_seen[gl + 1] = '\0';
				}
			}
		} else if (t->bit && (n->tags & t->bit)) {
			add_error(p, a->line, a->col, "tag ':%s' given twice",
				  t->name);
		} else if (t->slot >= 0 && !t->group && n->targ[t->slot]) {
			add_error(p, a->line, a->col, "tag ':%s' given twice",
				  t->name);
		}
		n->tags |= t->bit;
		/* the tag's own argument */
		const struct garg *v = NULL;
		if (t->arg != TA_NONE) {
			if (i >= g->nargs || g->args[i].kind == G_TAG) {
				add_error(p, a->line, a->col, "tag ':%s' needs %s",
					  t->name, t->arg == TA_NUM ? "a number"
					  : t->arg == TA_STR ? "a string"
					  : "a string list");
				continue;
			}
			v = &g->args[i++];
			bool ok = t->arg == TA_NUM ? v->kind == G_NUM
				: t->arg == TA_STR ? v->kind == G_STR
				: (v->kind == G_STR || v->kind == G_LIST);
			if (!ok) {
				add_error(p, v->line, v->col, "tag ':%s' needs %s",
					  t->name, t->arg == TA_NUM ? "a number"
					  : t->arg == TA_STR ? "a string"
					  : "a string list");
				continue;
			}
		}
		switch (t->group) {
		case 'M':
			n->match = (uint8_t)t->value;
			if (v)
				check_relation(p, n, v, v->list);
			break;
		case 'C':
			check_comparator(p, n, v, v->list);
			break;
		case 'A':
		case 'B':
			n->part = (uint8_t)t->value;
			break;
		default:
			break;
		}
		if (t->bit == T_INDEX) {
			if (v->num == 0 || v->num > INT32_MAX)
				add_error(p, v->line, v->col, ":index must be at "
					  "least 1");
			n->index = v->num;
		}
		if (t->bit == T_DAYS || t->bit == T_SECONDS) {
			if ((n->tags & (T_DAYS | T_SECONDS)) == (T_DAYS | T_SECONDS))
				add_error(p, a->line, a->col, ":days and :seconds "
					  "cannot both be given");
			n->num = v->num;
		}
		if (t->slot >= 0 && v)
			n->targ[t->slot] = v->list;
	}
	return i;
}

static bool valid_var_name(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

static bool valid_field_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 ||
		    s[i] == ':')
			return false;
	return true;
}

static const char *const date_parts[] = {
	"year", "month", "day", "date", "julian", "hour", "minute", "second",
	"time", "iso8601", "std11", "zone", "weekday", NULL};

static void check_positional(struct parser *p, const struct cmd_spec *c,
			     struct gcmd *g, size_t first, struct sv_node *n,
			     const struct sv_token *id)
{
	size_t npos = g->nargs - first;
	const char *sig = c->sig;
	/* strip the test/block letters: those are checked apart */
	char want[16] = "";
	const char *alt = sig;
	bool found = false;
	while (alt) {
		const char *bar = strchr(alt, '|');
		size_t al = bar ? (size_t)(bar - alt) : strlen(alt);
		size_t k = 0;
		for (size_t j = 0; j < al && k + 1 < sizeof(want); j++)
			if (alt[j] == 's' || alt[j] == 'l' || alt[j] == 'n')
				want[k++] = alt[j];
		want[k] = '\0';
		if (k == npos) {
			found = true;
			break;
		}
		alt = bar ? bar + 1 : NULL;
	}
	if (!found) {
		add_error(p, id->line, id->col, "%s: wrong number of arguments "
			  "(%zu given)", c->name, npos);
		return;
	}
	for (size_t j = 0; j < npos; j++) {
		const struct garg *a = &g->args[first + j];
		bool ok = want[j] == 'n' ? a->kind == G_NUM
			: want[j] == 's' ? a->kind == G_STR
			: (a->kind == G_STR || a->kind == G_LIST);
		if (!ok) {
			add_error(p, a->line, a->col, "%s: argument %zu must be %s",
				  c->name, j + 1, want[j] == 'n' ? "a number"
				  : want[j] == 's' ? "a string" : "a string list");
			continue;
		}
		if (want[j] == 'n')
			n->num = a->num;
		else if (j < 4)
			n->arg[j] = a->list;
	}
	/* the forms with an optional leading variable name put it in arg 3 */
	if ((c->op == OP_SETFLAG || c->op == OP_ADDFLAG ||
	     c->op == OP_REMOVEFLAG || c->op == OP_HASFLAG ||
	     c->op == OP_DELETEHEADER) && npos == 2) {
		if (c->op == OP_DELETEHEADER) {
			/* deleteheader name values: arg0 name, arg1 values */
		} else {
			n->arg[3] = n->arg[0];
			n->arg[0] = n->arg[1];
			n->arg[1] = 0;
			need_ext(p, EXT_VARIABLES, id->line, id->col,
				 "a variable list");
		}
	}
}

static void check_command(struct parser *p, const struct cmd_spec *c,
			  struct sv_node *n, const struct sv_token *id);

/* Builds node for a parsed command or test. */
static uint32_t validate(struct parser *p, struct gcmd *g, bool as_test)
{
	const struct cmd_spec *c = find_cmd(&g->id);
	uint32_t idx = new_node(p, c ? c->op : OP_NONE, &g->id);
	if (c == NULL || c->test != as_test) {
		add_error(p, g->id.line, g->id.col, "unknown %s '%.*s'",
			  as_test ? "test" : "command",
			  (int)(g->id.len > 40 ? 40 : g->id.len), g->id.p);
		return idx;
	}
	need_ext(p, c->ext, g->id.line, g->id.col, c->name);
	struct sv_node n = *N(p, idx);
	size_t first = take_tags(p, c, g, &n);
	for (size_t j = first; j < g->nargs; j++)
		if (g->args[j].kind == G_TAG) {
			add_error(p, g->args[j].line, g->args[j].col, "tags must "
				  "come before the other arguments of %s",
				  c->name);
			first = g->nargs;
			break;
		}
	if (first <= g->nargs)
		check_positional(p, c, g, first, &n, &g->id);
	bool wants_test = strchr(c->sig, 't') != NULL;
	bool wants_list = strchr(c->sig, 'T') != NULL;
	if (wants_list && !g->has_list)
		add_error(p, g->id.line, g->id.col, "%s needs a test list "
			  "in ( )", c->name);
	else if (wants_test && !g->has_test)
		add_error(p, g->id.line, g->id.col, "%s needs a test", c->name);
	else if (!wants_test && g->has_test)
		add_error(p, g->id.line, g->id.col, "%s takes no test", c->name);
	else if (!wants_list && g->has_list)
		add_error(p, g->id.line, g->id.col, "%s takes no test list",
			  c->name);
	n.kid = g->has_test ? g->tests[0] : g->test_list;
	check_command(p, c, &n, &g->id);
	*N(p, idx) = n;
	return idx;
}

static void check_command(struct parser *p, const struct cmd_spec *c,
			  struct sv_node *n, const struct sv_token *id)
{
	size_t len;
	const char *s;
	if (n->cmp == C_NUMERIC && (n->match == M_CONTAINS ||
				    n->match == M_MATCHES))
		add_error(p, id->line, id->col, "comparator i;ascii-numeric "
			  "cannot do :contains or :matches");
	switch (c->op) {
	case OP_SIZE:
		if (!(n->tags & (T_OVER | T_UNDER)))
			add_error(p, id->line, id->col, "size needs :over or "
				  ":under");
		break;
	case OP_SET:
		if (n->arg[0] && (s = literal(p, n->arg[0], &len)) != NULL &&
		    !valid_var_name(s, len))
			add_error(p, id->line, id->col, "set: \"%.*s\" is not a "
				  "valid variable name", (int)(len > 40 ? 40 : len), s);
		else if (n->arg[0] && !literal(p, n->arg[0], &len))
			add_error(p, id->line, id->col, "set: the variable name "
				  "must be a constant");
		break;
	case OP_GLOBAL:
		if (n->arg[0]) {
			const struct sv_list *l = L(p, n->arg[0]);
			for (uint32_t k = 0; k < l->count; k++) {
				const struct sv_str *st = S(p, l->first + k);
				if (!valid_var_name(p->pool.data + st->off, st->len))
					add_error(p, id->line, id->col, "global: "
						  "invalid variable name");
			}
		}
		need_ext(p, EXT_VARIABLES, id->line, id->col, "global");
		break;
	case OP_ADDHEADER:
	case OP_DELETEHEADER:
		if (n->arg[0] && (s = literal(p, n->arg[0], &len)) != NULL) {
			if (!valid_field_name(s, len))
				add_error(p, id->line, id->col, "%s: \"%.*s\" is not "
					  "a valid header field name", c->name,
					  (int)(len > 40 ? 40 : len), s);
			else if ((len == 8 && strncasecmp(s, "received", 8) == 0) ||
				 (len == 14 &&
				  strncasecmp(s, "auto-submitted", 14) == 0))
				add_error(p, id->line, id->col, "%s: the %.*s field "
					  "cannot be changed (RFC 5293 6)",
					  c->name, (int)len, s);
		}
		break;
	case OP_DATE:
	case OP_CURRENTDATE: {
		uint32_t part = n->arg[c->op == OP_DATE ? 1 : 0];
		if (part && (s = literal(p, part, &len)) != NULL) {
			bool ok = false;
			for (int k = 0; date_parts[k]; k++)
				if (strlen(date_parts[k]) == len &&
				    strncasecmp(date_parts[k], s, len) == 0)
					ok = true;
			if (!ok)
				add_error(p, id->line, id->col, "unknown date part "
					  "\"%.*s\"", (int)(len > 40 ? 40 : len), s);
		}
		if (c->op == OP_CURRENTDATE && (n->tags & T_ORIGZONE))
			add_error(p, id->line, id->col, "currentdate takes no "
				  ":originalzone");
		if (n->targ[TS_ZONE] &&
		    (s = literal(p, n->targ[TS_ZONE], &len)) != NULL) {
			bool ok = len == 5 && (s[0] == '+' || s[0] == '-');
			for (size_t k = 1; ok && k < 5; k++)
				ok = isdigit((unsigned char)s[k]);
			if (!ok)
				add_error(p, id->line, id->col, ":zone must look "
					  "like \"+0100\"");
		}
		break;
	}
	case OP_INCLUDE:
		if ((n->tags & T_GLOBAL) && (n->tags & T_PERSONAL))
			add_error(p, id->line, id->col, "include: :global and "
				  ":personal cannot both be given");
		if (n->arg[0] && (s = literal(p, n->arg[0], &len)) != NULL &&
		    (len == 0 || memchr(s, '/', len)))
			add_error(p, id->line, id->col, "include: invalid script "
				  "name");
		break;
	case OP_DUPLICATE:
		if (n->targ[TS_HEADER] && n->targ[TS_UNIQUEID])
			add_error(p, id->line, id->col, "duplicate: :header and "
				  ":uniqueid cannot both be given");
		break;
	case OP_REDIRECT:
		if (n->arg[0] && (s = literal(p, n->arg[0], &len)) != NULL) {
			const char *at = memchr(s, '@', len);
			if (!at || at == s || at == s + len - 1 ||
			    memchr(s, ' ', len) || memchr(s, '\n', len))
				add_error(p, id->line, id->col, "redirect: \"%.*s\" "
					  "is not a valid address",
					  (int)(len > 60 ? 60 : len), s);
		}
		break;
	case OP_VACATION:
		if ((n->tags & (T_DAYS | T_SECONDS)) == 0)
			n->num = UINT64_MAX;   /* not given: the default */
		break;
	default:
		break;
	}
}

/* ---- grammar ------------------------------------------------------- */

static uint32_t parse_test(struct parser *p, unsigned depth)
{
	struct gcmd g = {0};
	g.id = sv_lex_next(&p->lx);
	if (g.id.t != TK_ID) {
		syntax_error(p, &g.id, "expected a test");
		return 0;
	}
	if (!parse_arguments(p, &g, depth)) {
		free(g.args);
		return 0;
	}
	uint32_t n = validate(p, &g, true);
	free(g.args);
	return n;
}

static void require_exts(struct parser *p, struct sv_node *n,
			 const struct sv_token *id)
{
	if (p->seen_command)
		add_error(p, id->line, id->col, "require must come before any "
			  "other command");
	if (!n->arg[0])
		return;
	const struct sv_list *l = L(p, n->arg[0]);
	for (uint32_t k = 0; k < l->count; k++) {
		const struct sv_str *st = S(p, l->first + k);
		const char *s = p->pool.data + st->off;
		bool ok = false;
		for (int e = 0; e < EXT_COUNT; e++)
			if (strlen(sv_ext_names[e]) == st->len &&
			    strncmp(sv_ext_names[e], s, st->len) == 0) {
				p->exts |= 1u << e;
				ok = true;
			}
		/* comparators named the RFC 4790 way are always there */
		if (!ok && ((st->len == 18 &&
			     strncmp(s, "comparator-i;octet", 18) == 0) ||
			    (st->len == 26 &&
			     strncmp(s, "comparator-i;ascii-casemap", 26) == 0)))
			ok = true;
		if (!ok)
			add_error(p, id->line, id->col, "unknown extension "
				  "\"%.*s\"", (int)(st->len > 60 ? 60 : st->len), s);
	}
	if (p->exts & (1u << EXT_VACATION_SECONDS))
		p->exts |= 1u << EXT_VACATION;
	if (p->exts & (1u << EXT_SPAMTESTPLUS))
		p->exts |= 1u << EXT_SPAMTEST;
	p->lx.encoded = (p->exts & (1u << EXT_ENCODED)) != 0;
	p->lx.variables = (p->exts & (1u << EXT_VARIABLES)) != 0;
}

static uint32_t parse_command(struct parser *p, unsigned depth)
{
	struct gcmd g = {0};
	g.id = sv_lex_next(&p->lx);
	if (g.id.t != TK_ID) {
		syntax_error(p, &g.id, g.id.t == TK_STR || g.id.t == TK_NUM ||
			     g.id.t == TK_TAG ? "expected a command name"
			     : "expected a command");
		return 0;
	}
	if (!parse_arguments(p, &g, depth))
		goto fail;
	struct sv_token t = sv_lex_peek(&p->lx);
	if (t.t == TK_LBRACE) {
		if (!check_depth(p, &t, depth + 1))
			goto fail;
		g.block = parse_block(p, depth + 1);
		if (p->fatal)
			goto fail;
		g.has_block = true;
	} else {
		t = sv_lex_next(&p->lx);
		if (t.t != TK_SEMI) {
			syntax_error(p, &t, "missing ';' after the command");
			goto fail;
		}
	}
	uint32_t n = validate(p, &g, false);
	const struct cmd_spec *c = find_cmd(&g.id);
	bool wants_block = c && strchr(c->sig, 'B');
	if (c && wants_block && !g.has_block)
		add_error(p, g.id.line, g.id.col, "%s needs a block { }", c->name);
	else if (c && !wants_block && g.has_block)
		add_error(p, g.id.line, g.id.col, "%s takes no block", c->name);
	N(p, n)->block = g.block;
	if (c && c->op == OP_REQUIRE)
		require_exts(p, N(p, n), &g.id);
	else
		p->seen_command = true;
	free(g.args);
	return n;
fail:
	free(g.args);
	return 0;
}

/* Commands until '}' (block) or the end (top level). Checks that elsif
 * and else follow an if. */
static uint32_t parse_commands(struct parser *p, unsigned depth, bool block)
{
	uint32_t first = 0, last = 0;
	enum sv_op prev = OP_NONE;
	for (;;) {
		struct sv_token t = sv_lex_peek(&p->lx);
		if (t.t == TK_EOF) {
			if (block)
				syntax_error(p, &t, "missing '}' at the end of "
					     "the script");
			break;
		}
		if (t.t == TK_RBRACE) {
			if (!block) {
				syntax_error(p, &t, "unexpected '}'");
				break;
			}
			sv_lex_next(&p->lx);
			break;
		}
		uint32_t n = parse_command(p, depth);
		if (p->fatal)
			return first;
		enum sv_op op = (enum sv_op)N(p, n)->op;
		if ((op == OP_ELSIF || op == OP_ELSE) && prev != OP_IF &&
		    prev != OP_ELSIF)
			add_error(p, t.line, t.col, "%s without a preceding if",
				  op == OP_ELSE ? "else" : "elsif");
		if (op == OP_REQUIRE && (block || depth > 0))
			add_error(p, t.line, t.col, "require is only allowed at "
				  "the top of the script");
		prev = op;
		if (last)
			N(p, last)->next = n;
		else
			first = n;
		last = n;
	}
	return first;
}

static uint32_t parse_block(struct parser *p, unsigned depth)
{
	sv_lex_next(&p->lx);   /* '{' */
	return parse_commands(p, depth, true);
}

/* ---- the image ----------------------------------------------------- */

struct sieve_script *sieve_compile(const char *text, size_t len,
				   const char *name,
				   const struct sieve_limits *limits,
				   struct sieve_errors *errors_r)
{
	struct sieve_limits deflim;
	if (limits == NULL) {
		sieve_limits_default(&deflim);
		limits = &deflim;
	}
	memset(errors_r, 0, sizeof(*errors_r));
	struct parser p = {.lim = limits, .errs = errors_r};
	if (len > limits->max_script_size) {
		add_error(&p, 1, 1, "script is %zu bytes, over the limit of %zu "
			  "(max_script_size)", len, limits->max_script_size);
		return NULL;
	}
	buf_init(&p.nodes, 0);
	buf_init(&p.lists, 0);
	buf_init(&p.strs, 0);
	buf_init(&p.pool, 0);
	sv_lex_init(&p.lx, text, len, &p.pool, &p.strs);
	struct sv_token t0 = {0};
	new_node(&p, OP_NONE, &t0);
	new_list(&p, 0, 0);
	uint32_t root = parse_commands(&p, 0, false);
	struct sieve_script *s = NULL;
	if (errors_r->count == 0) {
		struct sv_header h = {
			.magic = SV_MAGIC, .version = SV_VERSION,
			.node_count = (uint32_t)(p.nodes.len / sizeof(struct sv_node)),
			.list_count = (uint32_t)(p.lists.len / sizeof(struct sv_list)),
			.str_count = (uint32_t)(p.strs.len / sizeof(struct sv_str)),
			.pool_len = (uint32_t)p.pool.len,
			.root = root, .exts = p.exts,
		};
		struct buf img;
		buf_init(&img, 0);
		buf_append(&img, &h, sizeof(h));
		buf_append(&img, p.nodes.data, p.nodes.len);
		buf_append(&img, p.lists.data, p.lists.len);
		buf_append(&img, p.strs.data, p.strs.len);
		buf_append(&img, p.pool.data, p.pool.len);
		s = xcalloc(1, sizeof(*s));
		s->name = xstrdup(name ? name : "script");
		s->image = buf_steal(&img, &s->image_len);
		if (!sv_script_bind(s)) {
			/* cannot happen: the compiler wrote it */
			sieve_script_free(&s);
			add_error(&p, 1, 1, "internal error: compiled form invalid");
		}
	}
	buf_free(&p.nodes);
	buf_free(&p.lists);
	buf_free(&p.strs);
	buf_free(&p.pool);
	return s;
}
