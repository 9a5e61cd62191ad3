/*
 * The compiled form shared by the compiler (sieve-parse.c), the loader
 * (sieve-code.c) and the executor (sieve-exec.c, sieve-test.c).
 *
 * A compiled script is one byte image: a header, then four arrays
 * (nodes, lists, strings, pool), each addressed by index. Index 0 of
 * nodes and lists means "none". A node is one command or test with its
 * arguments already checked and normalised (match type, comparator,
 * tags); string arguments are lists of strings, a string being a range
 * of the pool, with encoded-character already decoded.
 */
#ifndef LOFT_SIEVE_PRIVATE_H
#define LOFT_SIEVE_PRIVATE_H

#include "sieve.h"

#define SV_MAGIC 0x4c535631u   /* "LSV1" */
#define SV_VERSION 1u

/* Extensions (bits of a script's require set). */
enum sv_ext {
	EXT_FILEINTO, EXT_REJECT, EXT_EREJECT, EXT_ENVELOPE, EXT_ENCODED,
	EXT_IMAP4FLAGS, EXT_BODY, EXT_VARIABLES, EXT_VACATION,
	EXT_VACATION_SECONDS, EXT_RELATIONAL, EXT_NUMERIC, EXT_SUBADDRESS,
	EXT_DATE, EXT_INDEX, EXT_COPY, EXT_MAILBOX, EXT_INCLUDE,
	EXT_EDITHEADER, EXT_DUPLICATE, EXT_SPAMTEST, EXT_SPAMTESTPLUS,
	EXT_VIRUSTEST, EXT_ENVIRONMENT, EXT_COUNT
};
extern const char *const sv_ext_names[EXT_COUNT];

/* Commands and tests. */
enum sv_op {
	OP_NONE,
	/* control */
	OP_REQUIRE, OP_IF, OP_ELSIF, OP_ELSE, OP_STOP,
	/* actions */
	OP_KEEP, OP_DISCARD, OP_REDIRECT, OP_FILEINTO, OP_REJECT, OP_EREJECT,
	OP_SETFLAG, OP_ADDFLAG, OP_REMOVEFLAG, OP_SET, OP_VACATION,
	OP_INCLUDE, OP_RETURN, OP_GLOBAL, OP_ADDHEADER, OP_DELETEHEADER,
	/* tests */
	OP_TRUE, OP_FALSE, OP_NOT, OP_ANYOF, OP_ALLOF, OP_ADDRESS,
	OP_ENVELOPE, OP_HEADER, OP_EXISTS, OP_SIZE, OP_BODY, OP_HASFLAG,
	OP_STRING, OP_DATE, OP_CURRENTDATE, OP_MAILBOXEXISTS, OP_DUPLICATE,
	OP_SPAMTEST, OP_VIRUSTEST, OP_ENVIRONMENT,
	OP_COUNT
};

enum sv_match { M_IS, M_CONTAINS, M_MATCHES, M_VALUE, M_COUNT };
enum sv_cmp { C_CASEMAP, C_OCTET, C_NUMERIC };
enum sv_rel { R_NONE, R_GT, R_GE, R_LT, R_LE, R_EQ, R_NE };
enum sv_addrpart { A_ALL, A_LOCAL, A_DOMAIN, A_USER, A_DETAIL };
enum sv_body { B_TEXT, B_RAW, B_CONTENT };
enum sv_size { S_NONE, S_OVER, S_UNDER };

/* Boolean tags (node.tags bits). */
enum sv_tagbit {
	T_COPY = 1u << 0, T_CREATE = 1u << 1, T_LAST = 1u << 2,
	T_MIME = 1u << 3, T_ONCE = 1u << 4, T_OPTIONAL = 1u << 5,
	T_GLOBAL = 1u << 6, T_PERSONAL = 1u << 7, T_PERCENT = 1u << 8,
	T_ORIGZONE = 1u << 9, T_SECONDS = 1u << 10, T_DAYS = 1u << 11,
	T_INDEX = 1u << 12,
	/* set modifiers (RFC 5229 4.1), applied by precedence */
	T_LOWER = 1u << 13, T_UPPER = 1u << 14, T_LOWERFIRST = 1u << 15,
	T_UPPERFIRST = 1u << 16, T_QUOTEWILD = 1u << 17, T_LENGTH = 1u << 18,
	T_ZONE = 1u << 19, T_OVER = 1u << 20, T_UNDER = 1u << 21,
};

/* Slots of tag arguments (node.targ). */
enum {
	TS_FLAGS = 0,      /* :flags (fileinto, keep) */
	TS_SUBJECT = 0, TS_FROM = 1, TS_ADDRESSES = 2, TS_HANDLE = 3,
	TS_ZONE = 0, TS_CONTENT = 0,
	TS_HEADER = 1, TS_UNIQUEID = 2,
};

struct sv_node {
	uint16_t op;
	uint8_t match, cmp, rel, part, pad1, pad2;
	uint32_t tags;
	uint32_t line, col;
	uint32_t next;        /* next command of a block, next test of a list */
	uint32_t kid;         /* if/elsif: its test; not/anyof/allof: first test */
	uint32_t block;       /* if/elsif/else: first command of the block */
	uint32_t targ[4];     /* tag arguments: list indexes */
	uint32_t arg[4];      /* positional arguments: list indexes */
	uint64_t num;         /* a number argument (size, :days/:seconds) */
	uint64_t index;       /* :index */
};

struct sv_list {
	uint32_t first, count;  /* range of strings */
};
struct sv_str {
	uint32_t off, len;      /* range of the pool */
	uint32_t vars;          /* 1: holds "${" and variables are on */
};

struct sv_header {
	uint32_t magic, version;
	uint32_t node_count, list_count, str_count, pool_len;
	uint32_t root;          /* first command */
	uint32_t exts;          /* required extensions */
};

struct sieve_script {
	char *name;
	void *image;            /* the whole image (owned) */
	size_t image_len;
	const struct sv_header *hdr;
	const struct sv_node *nodes;
	const struct sv_list *lists;
	const struct sv_str *strs;
	const char *pool;
};

/* Binds the arrays of an image; false when damaged. */
bool sv_script_bind(struct sieve_script *s);

/* The strings of list i (count 0 for list 0). */
static inline const struct sv_list *sv_list(const struct sieve_script *s,
					    uint32_t i)
{
	return &s->lists[i];
}

/* ---- matching (sieve-match.c) ---- */

/* Captures of :matches (RFC 5229 3.2): ${0} is the whole value, ${1}..
 * the wildcards in order. */
#define SV_MAX_MATCH 10
struct sv_captures {
	struct slice v[SV_MAX_MATCH];
	unsigned count;
};
/* Whether value matches key under the match type and comparator; steps
 * counts work done (the budget). :count and :value relational compares
 * are done by the caller with sv_relate. */
bool sv_match(enum sv_match m, enum sv_cmp c, const char *v, size_t vlen,
	      const char *k, size_t klen, struct sv_captures *caps,
	      uint64_t *steps);
/* i;ascii-numeric / octet / casemap ordering: <0, 0, >0. */
int sv_compare(enum sv_cmp c, const char *a, size_t alen, const char *b,
	       size_t blen);
bool sv_relate(enum sv_rel r, int order);
/* UTF-8 validity at a position: the length of the sequence, 0 if bad. */
size_t sv_utf8_seq(const unsigned char *p, size_t left);

#endif
