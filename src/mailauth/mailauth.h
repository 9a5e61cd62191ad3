/*
 * Sender authentication for mail that arrives (SPF, RFC 7208; DKIM,
 * RFC 6376 with RFC 8463's ed25519-sha256 and RFC 8301's rules; DMARC,
 * RFC 7489; Authentication-Results, RFC 8601) and DKIM signing of mail
 * that leaves, over OpenSSL, libpsl (organizational domains) and the
 * asynchronous resolver of src/dns. Every record parser here faces the
 * internet: each is a pure function of its input, fuzzed
 * (tests/fuzz/fuzz-mailauth-*.c).
 *
 * One message is checked in three steps so that its lookups run in
 * parallel and under one deadline ([dns] message_timeout): the caller
 * feeds the message to a DKIM verifier while it arrives, then
 * mailauth_check() runs SPF, the DKIM key lookups and DMARC, and
 * mailauth_results() writes the one Authentication-Results field.
 *
 * Threads: everything may block on DNS (never on an I/O thread). A
 * struct dkim_signer is shared and thread-safe; the rest belongs to one
 * message.
 */
#ifndef LOFT_MAILAUTH_H
#define LOFT_MAILAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;
struct dns;

/* ---- the raw header ---------------------------------------------- */

/* One header field as it is in the message: name (without the colon),
 * the value (after the colon, folding kept, without the final line
 * end) and the whole field with its line end. */
struct ma_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	const char *raw;
	size_t raw_len;
};

/* Splits the header of a message (up to the empty line; CRLF or bare LF
 * line ends). *header_len_r: bytes of the header including the empty
 * line (the body starts there), or len when there is no body. Lines that
 * are not fields (no colon) end the header. Caller frees *fields_r. */
size_t ma_header_split(const char *data, size_t len, struct ma_field **fields_r,
		       size_t *header_len_r);

/* The domains of the addresses in a From: value (RFC 5322 3.6.2,
 * lowercase, without a trailing dot), up to max. Returns how many; -1
 * when the value cannot be parsed. */
int ma_from_domains(const char *value, size_t len, char domains[][256],
		    size_t max);

/* The organizational domain (RFC 7489 3.2) of domain, from the public
 * suffix list (libpsl). */
void ma_org_domain(const char *domain, char *out, size_t size);

/* ---- DKIM records (pure; fuzzed) ---------------------------------- */

enum dkim_algo { DKIM_ALGO_RSA_SHA256, DKIM_ALGO_ED25519_SHA256,
		 DKIM_ALGO_RSA_SHA1 };
enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

#define DKIM_MAX_HEADERS 64

/* A parsed DKIM-Signature field value (RFC 6376 3.5). */
struct dkim_sig {
	enum dkim_algo algo;
	enum dkim_canon hcanon, bcanon;
	char domain[256];             /* d=, lowercase */
	char selector[256];           /* s=, lowercase */
	char auid[320];               /* i=, or "@" d= */
	char *headers[DKIM_MAX_HEADERS];   /* h=, lowercase */
	size_t header_count;
	uint8_t bh[64];
	size_t bh_len;
	uint8_t *b;
	size_t b_len;
	char b_text[12];              /* the first 8 characters of b= */
	bool has_length;
	uint64_t length;              /* l= */
	int64_t timestamp;            /* t=, -1 none */
	int64_t expire;               /* x=, -1 none */
};
/* 0, or -1 with a reason (why_r). sig must be freed either way. */
int dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig,
		   char *why_r, size_t why_size);
void dkim_sig_free(struct dkim_sig *sig);

enum dkim_key_type { DKIM_KEY_RSA, DKIM_KEY_ED25519 };

/* A parsed key record (RFC 6376 3.6.1). */
struct dkim_key {
	enum dkim_key_type type;
	bool revoked;                 /* p= empty */
	bool testing;                 /* t=y */
	bool strict;                  /* t=s: i= must be d= exactly */
	bool sha256;                  /* h= allows (or omits) sha256 */
	uint8_t *pub;                 /* decoded p= */
	size_t pub_len;
};
int dkim_key_parse(const char *txt, size_t len, struct dkim_key *key,
		   char *why_r, size_t why_size);
void dkim_key_free(struct dkim_key *key);

/* ---- DKIM canonicalization (RFC 6376 3.4) ------------------------- */

/* One header field canonicalized into out (with its CRLF). */
void dkim_canon_header(enum dkim_canon c, const struct ma_field *f,
		       struct buf *out);

/* A body canonicalizer that feeds a digest as the body streams by. */
struct dkim_body;
struct dkim_body *dkim_body_create(enum dkim_canon c, bool sha1,
				   bool has_limit, uint64_t limit);
void dkim_body_feed(struct dkim_body *b, const char *data, size_t len);
/* The body hash; -1 when l= is longer than the body. */
int dkim_body_final(struct dkim_body *b, uint8_t *hash_r, size_t *len_r);
void dkim_body_free(struct dkim_body **b);

/* ---- DKIM verification -------------------------------------------- */

enum ma_status {
	MA_NONE, MA_PASS, MA_FAIL, MA_SOFTFAIL, MA_NEUTRAL, MA_POLICY,
	MA_TEMPERROR, MA_PERMERROR,
};
/* "none", "pass", ... as RFC 8601 names them. */
const char *ma_status_name(enum ma_status s);

struct dkim_result {
	enum ma_status status;
	char domain[256];
	char selector[256];
	char auid[320];
	char b[12];                   /* header.b, the first 8 of b= */
	char reason[160];
	bool testing;                 /* the key said t=y */
};

#define DKIM_MAX_SIGNATURES 8

struct dkim_verifier;
struct dkim_verifier *dkim_verifier_create(void);
/* The message as it arrives, in any pieces. */
void dkim_verifier_feed(struct dkim_verifier *v, const char *data, size_t len);
/* Ends the message; returns how many signatures it has (each checked
 * against its key by mailauth_check). */
size_t dkim_verifier_end(struct dkim_verifier *v);
void dkim_verifier_free(struct dkim_verifier **v);

/* ---- SPF (RFC 7208) ----------------------------------------------- */

struct spf_result {
	enum ma_status status;        /* NONE NEUTRAL PASS FAIL SOFTFAIL
					 TEMPERROR PERMERROR */
	char domain[256];             /* the domain checked (MAIL FROM's or
					 HELO's) */
	bool helo;                    /* checked the HELO name (null sender) */
	char reason[160];
};

/* check_host() (RFC 7208 4) of ip for sender (MAIL FROM, "" for <>),
 * HELO name helo, by this receiver (the %{r} macro), within deadline (a
 * time from ma_deadline). */
struct ma_deadline {
	int64_t at_ms;               /* monotonic, ms */
};
struct ma_deadline ma_deadline_in(unsigned ms);
unsigned ma_deadline_left(const struct ma_deadline *d);

void spf_check(struct dns *dns, const struct ma_deadline *deadline,
	       const char *ip, const char *sender, const char *helo,
	       const char *receiver, struct spf_result *r);

/* SPF record parsing and macro expansion, pure (fuzzed): a record's
 * terms; -1 on a syntax error (permerror). */
struct spf_macro_env {
	const char *sender;          /* s */
	const char *local;           /* l */
	const char *sender_domain;   /* o */
	const char *domain;          /* d */
	const char *ip;              /* i, c (text form) */
	bool ipv6;
	const char *helo;            /* h */
	const char *receiver;        /* r */
	const char *validated;       /* p (we never validate: "unknown") */
	int64_t now;                 /* t */
};
/* Expands the macro-string (RFC 7208 7) into out; exp: the exp= text
 * (c, r, t allowed). -1 on a syntax error. */
int spf_macro_expand(const char *s, size_t len, const struct spf_macro_env *e,
		     bool exp, struct buf *out);
/* Whether txt is an SPF record (v=spf1) and its terms parse. */
int spf_record_check(const char *txt, size_t len, char *why_r, size_t why_size);

/* ---- DMARC (RFC 7489) --------------------------------------------- */

enum dmarc_policy { DMARC_P_UNSET, DMARC_P_NONE, DMARC_P_QUARANTINE,
		    DMARC_P_REJECT };

struct dmarc_record {
	enum dmarc_policy p, sp, np;
	bool adkim_strict, aspf_strict;
	unsigned pct;
	bool has_rua;
};
/* 0, or -1 (not a DMARC record, or p= is invalid). */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r,
		       char *why_r, size_t why_size);

const char *dmarc_policy_name(enum dmarc_policy p);

struct dmarc_result {
	enum ma_status status;        /* NONE PASS FAIL TEMPERROR PERMERROR */
	char from_domain[256];
	enum dmarc_policy policy;     /* the one that applies (p or sp) */
	enum dmarc_policy applied;    /* after pct=: what to do */
	char reason[160];
};

/* ---- one message -------------------------------------------------- */

struct mailauth_input {
	const char *ip;               /* the client's address */
	const char *helo;
	const char *sender;           /* MAIL FROM, "" for <> */
	const char *receiver;         /* our hostname */
	struct dkim_verifier *dkim;   /* fed and ended */
};

struct mailauth_result {
	struct spf_result spf;
	struct dkim_result dkim[DKIM_MAX_SIGNATURES];
	size_t dkim_count;
	struct dmarc_result dmarc;
};

/* SPF, the DKIM keys and DMARC of one message, every lookup within
 * deadline. Never fails: a lookup that does not answer in time is a
 * temperror. */
void mailauth_check(struct dns *dns, const struct ma_deadline *deadline,
		    const struct mailauth_input *in, struct mailauth_result *r);

/* The Authentication-Results field (RFC 8601) for r, with authserv_id,
 * folded, ending in CRLF, appended to out. */
void mailauth_results(const char *authserv_id,
		      const struct mailauth_result *r, struct buf *out);
/* Whether an Authentication-Results value names authserv_id (RFC 8601
 * 5: such a field arriving from outside is a forgery and is removed). */
bool mailauth_results_ours(const char *value, size_t len,
			   const char *authserv_id);

/* Copies the header (and whatever follows it in len) to out without
 * the Authentication-Results fields that claim authserv_id; returns how
 * many were removed. */
size_t mailauth_strip_results(const char *header, size_t len,
			      const char *authserv_id, struct buf *out);

/* ---- the spam scanner (rspamd's HTTP protocol) ------------------- */

struct rspamd_request {
	const char *ip, *helo, *sender, *hostname, *queue_id;
	const char *const *rcpts;
	size_t rcpt_count;
	/* the symbols rspamd's antivirus module gives an infected message
	 * ([smtp] rspamd_virus_symbols, e.g. CLAM_VIRUS); none: rspamd is
	 * not taken to scan for viruses */
	const char *const *virus_symbols;
	size_t virus_symbol_count;
};
struct rspamd_result {
	bool scanned;                 /* rspamd answered (false: skipped) */
	double score, required;
	char action[32];              /* "no action", "add header",
					 "rewrite subject", "greylist",
					 "soft reject", "reject" */
	char symbols[512];            /* the symbols that scored, for logs */
	/* RFC 5235 3.2 (Sieve's virustest): 0 not tested (no virus symbols
	 * named, or the scanner failed: SYMBOL_FAIL), 1 tested and clean,
	 * 5 a virus symbol fired */
	int virus_status;
	char virus[128];              /* the symbol's option (the virus's
					 name), when one fired */
};
/* POST url/checkv2 with the message; false (logged) when rspamd did not
 * answer in timeout_ms: the message goes on unscanned. */
bool rspamd_check(const char *url, unsigned timeout_ms,
		  const struct rspamd_request *req, const char *msg,
		  size_t len, struct rspamd_result *r);

/* ---- DKIM signing and keys ---------------------------------------- */

/* Keys live in DIR/<domain>/<selector>.pem (PKCS#8, mode 0600), DIR =
 * data_dir/dkim. A running loftd looks there at every message, so a new
 * key signs the next one. */
struct dkim_key_info {
	char domain[256];
	char selector[64];
	enum dkim_key_type type;
	unsigned bits;                /* RSA modulus size; 256 for ed25519 */
	time_t created;
	char *record;                 /* the TXT record data (v=DKIM1; ...) */
};
/* Creates a key (selector NULL: "<type>-<yyyymmdd>"; bits for RSA:
 * 1024..4096). -1 with a message (caller frees). */
int dkim_key_create(const char *dir, const char *domain, const char *selector,
		    enum dkim_key_type type, unsigned bits,
		    struct dkim_key_info *info_r, char **error_r);
typedef void dkim_key_list_fn(void *ctx, const struct dkim_key_info *info);
/* Every key (domain NULL) or a domain's, sorted. */
int dkim_key_list(const char *dir, const char *domain, dkim_key_list_fn *fn,
		  void *ctx, char **error_r);
int dkim_key_delete(const char *dir, const char *domain, const char *selector,
		    char **error_r);
/* Backup and restore: a key as PEM (caller frees), and a key written
 * back from one (mode 0600 as every key; created as its age). A selector
 * the domain has already is left alone (*existed_r). -1 with a message
 * (caller frees). */
int dkim_key_export(const char *dir, const char *domain, const char *selector,
		    char **pem_r, char **error_r);
int dkim_key_import(const char *dir, const char *domain, const char *selector,
		    const char *pem, time_t created, bool *existed_r,
		    char **error_r);
void dkim_key_info_free(struct dkim_key_info *info);
/* Whether every key file under dir loads (loftd --check). */
int dkim_keys_check(const char *dir, struct buf *errors);
/* Keys shared by several nodes (rows in PostgreSQL: auth.h
 * auth_dkim_keys): dir is made to hold a copy of each live one (a copy
 * of another key under its name replaced) and none of the deleted ones
 * (pem NULL). A key in dir that keys does not name at all is handed to
 * upload (it joins the shared keys). The number of copies made or
 * removed, or -1 with *error_r (caller frees). */
struct dkim_shared_key {
	const char *domain, *selector;
	const char *pem;              /* NULL: deleted */
	time_t created;
};
typedef int dkim_key_upload_fn(void *ctx, const char *domain,
			       const char *selector, const char *pem,
			       time_t created, char **error_r);
int dkim_keys_mirror(const char *dir, const struct dkim_shared_key *keys,
		     size_t count, dkim_key_upload_fn *upload, void *ctx,
		     char **error_r);

struct dkim_signer;
struct dkim_signer *dkim_signer_create(const char *dir);
void dkim_signer_destroy(struct dkim_signer **s);
/* Signs data for its From: domain with every key of that domain,
 * appending one DKIM-Signature field per key to out. 0 (also when the
 * domain has no key), -1 when a key could not sign (logged). */
int dkim_signer_sign(struct dkim_signer *s, const char *data, size_t len,
		     struct buf *out);
/* dkim_signer_sign in two halves, for a signer in another process (the
 * outbound process holds the keys): the body hash, which needs no key
 * (returns the length of the header, the empty line included), then
 * the signatures over that header with it. */
size_t dkim_sign_split(const char *data, size_t len, uint8_t bh[32],
		       size_t *bh_len_r);
int dkim_signer_sign_head(struct dkim_signer *s, const char *head,
			  size_t head_len, const uint8_t *bh, size_t bh_len,
			  struct buf *out);
/* The same with a given time (tests). */
int dkim_sign_with(const char *pem, size_t pem_len, const char *domain,
		   const char *selector, time_t now, const char *data,
		   size_t len, struct buf *out, char **error_r);

#endif
