/*
 * The executor's state, shared by sieve-exec.c (commands, variables,
 * actions, the script sequence) and sieve-test.c (tests).
 */
#ifndef LOFT_SIEVE_RUN_H
#define LOFT_SIEVE_RUN_H

#include "sieve-private.h"

struct sv_var {
	char *name;          /* lowercased */
	struct buf val;
};
struct sv_vars {
	struct sv_var *v;
	size_t n;
};

/* One header field as tests see it (editheader may change the list).
 * Its decoded value and its addresses are made once per message, when a
 * test first asks (sv_field_decoded, sv_field_addresses), and shared by
 * every later test of every script of the run. */
struct mail_address;
struct sv_field {
	char *name;
	size_t name_len;
	char *value;         /* raw, folded as in the message */
	size_t value_len;
	char *dec;           /* RFC 5228 2.7 decoded, or NULL: not yet */
	size_t dec_len;
	struct mail_address *addrs;
	size_t naddrs;
	bool have_addrs;
};

struct slice sv_field_decoded(struct sv_field *f);
const struct mail_address *sv_field_addresses(struct sv_field *f,
					      size_t *count_r);
void sv_field_free(struct sv_field *f);
bool sv_field_is(const struct sv_field *f, const char *name, size_t len);

/* One running script (the top one or an included one). */
struct sv_frame {
	const struct sieve_script *s;
	struct sv_vars locals;
	char **globals;      /* names declared global here */
	size_t nglobals;
	struct sv_frame *up;
};

struct sv_run {
	const struct sieve_input *in;
	const struct sieve_limits *lim;
	struct sieve_result *r;
	struct sv_frame *frame;
	uint64_t steps;
	bool failed;         /* error set in r */
	bool stop;           /* stop: ends every script of the run */
	bool ret;            /* return: ends the current include */
	bool implicit_keep;
	bool explicit_keep;
	unsigned script_index;
	unsigned depth;      /* include depth */
	unsigned actions, redirects;
	/* header as the tests see it, and where the body starts */
	struct sv_field *hdr;
	size_t nhdr;
	bool hdr_edited;
	size_t body_off;
	/* variables shared by include/global, match variables, flags */
	struct sv_vars globals;
	struct buf match[SV_MAX_MATCH];
	unsigned nmatch;
	struct buf flags;    /* the internal flags variable: "a b c" */
	/* scripts included with :once, and the include chain */
	const struct sieve_script **once;
	size_t nonce;
	const struct sieve_script *chain[64];
	/* cached body text (body :text) */
	char *body_text;          /* made here (freed with the run) */
	const char *body_view;    /* the text body :text tests: body_text
				     or the caller's (sieve_input) */
	size_t body_text_len;
	bool have_body_text;
};

/* Records a run-time error at the node; the run unwinds. */
void sv_fail(struct sv_run *run, const struct sv_node *n, const char *fmt,
	     ...) __attribute__((format(printf, 3, 4)));
/* Charges the step budget; false (and a failure) when it is used up. */
bool sv_charge(struct sv_run *run, const struct sv_node *n, uint64_t steps);

/* The i-th string of list (index into the frame's script), expanded
 * (variables) into out; returns a slice valid until out changes. */
struct slice sv_string(struct sv_run *run, uint32_t list, uint32_t i,
		       struct buf *out);
uint32_t sv_list_count(struct sv_run *run, uint32_t list);
/* Sets match variables after a successful :matches. */
void sv_set_matches(struct sv_run *run, const struct sv_captures *caps);
/* A variable's value by name (NULL if unknown). */
struct buf *sv_var_lookup(struct sv_run *run, const char *name, size_t len,
			  bool create);

/* Tests (sieve-test.c). */
bool sv_test(struct sv_run *run, uint32_t node);

/* Key matching shared by the tests: does value match any key of the
 * node's key list (arg index keyarg)? Sets match variables. */
bool sv_match_keys(struct sv_run *run, const struct sv_node *n,
		   uint32_t keys, const char *v, size_t vlen);
/* :count: compares the number of values with the keys. */
bool sv_match_count(struct sv_run *run, const struct sv_node *n,
		    uint32_t keys, uint64_t count);

/* Flags: splits a space-separated list, dedups case-insensitively. */
void sv_flags_add(struct buf *flags, const char *s, size_t len);
void sv_flags_remove(struct buf *flags, const char *s, size_t len);

#endif
