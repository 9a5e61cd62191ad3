/*
 * mailauth internals: the tag-list parser DKIM and DMARC records share
 * (RFC 6376 3.2, RFC 7489 6.4), the DKIM verifier's state, and small
 * helpers.
 */
#ifndef LOFT_MAILAUTH_PRIVATE_H
#define LOFT_MAILAUTH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "mailauth.h"

/* ---- tag lists ---------------------------------------------------- */

/* tag-list = tag-spec *( ";" tag-spec ) [ ";" ], tag-spec = [FWS]
 * tag-name [FWS] "=" [FWS] tag-value [FWS]. */
#define MA_MAX_TAGS 32
struct ma_tag {
	struct slice name;
	struct slice value;           /* FWS around it removed */
};
/* 0, or -1 (syntax, a tag twice, too many tags). */
int ma_tags_parse(const char *s, size_t len, struct ma_tag *tags,
		  size_t *count_r);
const struct ma_tag *ma_tag_find(const struct ma_tag *tags, size_t count,
				 const char *name);
/* The value of a tag as a NUL-terminated copy into out; false if it does
 * not fit. */
bool ma_tag_copy(const struct ma_tag *t, char *out, size_t size);

/* ---- DKIM's signed data (dkim-canon.c) --------------------------- */

/* What a signature signs (RFC 6376 3.7): the fields named by headers
 * (each name's last unused instance, bottom up), canonicalized, then
 * sig_field (the DKIM-Signature field, raw) with its b= value emptied and
 * without its final CRLF. */
void dkim_signed_data(const struct ma_field *f, size_t n,
		      const char *const *headers, size_t count,
		      enum dkim_canon c, const char *sig_field,
		      size_t sig_len, struct buf *out);

/* ---- helpers ------------------------------------------------------ */

/* A syntactically valid domain name (labels of letters, digits, '-',
 * '_', UTF-8; at most 253 octets). */
bool ma_domain_valid(const char *d);
void ma_lower(char *s);

/* ---- the DKIM verifier (dkim-verify.c) ---------------------------- */

struct dkim_pending {
	struct dkim_sig sig;
	char *field;                  /* the DKIM-Signature field, raw */
	size_t field_len;
	struct dkim_body *body;
	struct dkim_result result;    /* status NONE until decided */
	uint8_t hash[64];             /* header hash, computed at end */
	size_t hash_len;
	size_t query;                 /* its index in the DNS batch */
};

struct dkim_verifier {
	struct buf head;              /* the header, until its end */
	bool in_body;
	bool too_big;                 /* header over the limit: no checks */
	struct dkim_pending sigs[DKIM_MAX_SIGNATURES];
	size_t count;
	bool ended;
};

struct dns_batch;
/* Adds the key lookups of v's signatures to b. */
void dkim_verifier_queries(struct dkim_verifier *v, struct dns_batch *b);
/* Checks each signature against the answers in b. */
void dkim_verifier_complete(struct dkim_verifier *v,
			    const struct dns_batch *b);
/* Checks signature i against the TXT records found for its key (status
 * an enum dns_status; tests give records directly). */
void dkim_verifier_check_key(struct dkim_verifier *v, size_t i, int status,
			     const char *const *txts, size_t n);
/* The results, one per signature (at most max). */
size_t dkim_verifier_results(const struct dkim_verifier *v,
			     struct dkim_result *out, size_t max);

/* ---- DMARC (dmarc.c) ---------------------------------------------- */

struct dns_answer;
/* The DMARC result for from given the TXT answers for _dmarc.<from> and
 * _dmarc.<its organizational domain> (NULL when the same) and SPF's and
 * DKIM's results. */
void dmarc_evaluate_answers(const char *from, const struct dns_answer *at_from,
			    const struct dns_answer *at_org,
			    const struct spf_result *spf,
			    const struct dkim_result *dkim, size_t dkim_count,
			    struct dmarc_result *r);

#endif
