/*
 * The trigram indexes (text_hdr, text_body) are FTS5 tables with
 * detail=none: for each row they record only which trigrams occur, not
 * where or how often (search verifies candidates against the stored
 * text, sq-search.c). SQLite's trigram tokenizer hands FTS5 every
 * trigram of a document, one per character, and FTS5 looks each one up
 * in its pending-terms hash: for a text of n characters, n lookups where
 * a few thousand distinct trigrams are all the index keeps. That was most
 * of the indexer's time, and the indexer most of a delivery's CPU (perf
 * of MULTIAPPEND and the LMTP corpus bench).
 *
 * So every index connection registers its own "trigram" in front of
 * SQLite's (FTS5 finds the newest tokenizer of a name first): it runs
 * SQLite's own tokenizer with the same arguments and passes each trigram
 * of a document on once. With detail=none the index holds the same
 * trigrams for the same rows as with SQLite's tokenizer alone (only
 * FTS5's per-row token counts, kept for bm25 ranking that search does
 * not use, are smaller), so old indexes, and connections without this
 * (the sqlite3 shell), stay right. Queries pass through unchanged.
 */
#include "sq-private.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A document with more distinct trigrams than this passes the rest on
 * without looking (memory stays bounded; the index is the same). */
#define SEEN_MAX (1u << 20)

struct real_tok {
	fts5_tokenizer api;     /* SQLite's trigram */
	void *ctx;
};

struct dedup_tok {
	struct real_tok *real;
	Fts5Tokenizer *inner;
	bool exact;             /* case_sensitive 1: ASCII passes as is */
};

/* The trigrams of one document seen so far: open addressing over
 * (hash, key): key is the token (up to 12 bytes: three UTF-8
 * characters), zero-padded, its length in the last byte, so keys compare
 * as 16 bytes. */
struct seen_slot {
	uint32_t hash;          /* 0: empty */
	unsigned char key[16];
};

/* In front of the set, for the usual three-byte (ASCII) trigram: a
 * direct-mapped table of the last trigram seen in each slot. A slot
 * holding this trigram means seen; anything else asks the set. */
#define DIRECT_BITS 14

struct seen {
	uint32_t direct[1u << DIRECT_BITS];
	struct seen_slot *slots;
	uint32_t cap, count;
	void *ctx;
	int (*xToken)(void *, int, const char *, int, int, int);
};

static uint32_t key_hash(const unsigned char *key)
{
	uint64_t a, b;
	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
	return (uint32_t)(h >> 32) | 1u;
}

static void seen_grow(struct seen *s)
{
	uint32_t cap = s->cap ? s->cap * 2 : 4096;
	struct seen_slot *slots = calloc(cap, sizeof(*slots));
	if (slots == NULL) {
		/* no memory: pass everything on (the index is the same) */
		s->count = SEEN_MAX;
		return;
	}
	for (uint32_t i = 0; i < s->cap; i++) {
		struct seen_slot *o = &s->slots[i];
		if (o->hash == 0)
			continue;
		uint32_t k = o->hash & (cap - 1);
		while (slots[k].hash != 0)
			k = (k + 1) & (cap - 1);
		slots[k] = *o;
	}
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
}

/* 1 if the token was seen before in this document (and remembers it). */
static int seen_check(struct seen *s, const char *p, int n)
{
	if (n <= 0 || n > 12 || s->count >= SEEN_MAX)
		return 0;
	if ((s->count + 1) * 2 > s->cap) {
		seen_grow(s);
		if (s->count >= SEEN_MAX)
			return 0;
	}
	unsigned char key[16] = {0};
	memcpy(key, p, (size_t)n);
	key[15] = (unsigned char)n;
	uint32_t h = key_hash(key);
	uint32_t k = h & (s->cap - 1);
	for (;;) {
		struct seen_slot *sl = &s->slots[k];
		if (sl->hash == 0) {
			sl->hash = h;
			memcpy(sl->key, key, sizeof(key));
			s->count++;
			return 0;
		}
		if (sl->hash == h && memcmp(sl->key, key, sizeof(key)) == 0)
			return 1;
		k = (k + 1) & (s->cap - 1);
	}
}

static int dedup_token(void *ctx, int tflags, const char *p, int n,
		       int start, int end)
{
	struct seen *s = ctx;
	if (n == 3) {
		const unsigned char *u = (const unsigned char *)p;
		uint32_t v = (1u << 24) | u[0] | (uint32_t)u[1] << 8 |
			     (uint32_t)u[2] << 16;
		uint32_t *d = &s->direct[(v * 2654435761u) >> (32 - DIRECT_BITS)];
		if (*d == v)
			return SQLITE_OK;
		*d = v;
	}
	if (seen_check(s, p, n))
		return SQLITE_OK;
	return s->xToken(s->ctx, tflags, p, n, start, end);
}

/* Whether SQLite's tokenizer would see the text as three-byte trigrams
 * only: ASCII without NUL (it stops at a NUL). */
static bool ascii_text(const char *text, int n)
{
	const unsigned char *p = (const unsigned char *)text;
	unsigned char any = 0, nul = 1;
	for (int i = 0; i < n; i++) {
		any |= p[i];
		nul &= p[i] != 0;
	}
	return !(any & 0x80) && nul;
}

/* What SQLite's trigram tokenizer (case_sensitive 1, as the indexes are
 * made) hands on for such a
 * text: the three bytes at each offset, without its per-character
 * decoding and re-encoding (its UTF-8 work was a good part of the
 * indexer's time; test-store trigram_ascii compares the two). */
static int ascii_trigrams(struct seen *s, const char *text, int n)
{
	for (int i = 0; i + 3 <= n; i++) {
		int rc = dedup_token(s, 0, text + i, 3, i, i + 3);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int dedup_create(void *ctx, const char **argv, int argc,
			Fts5Tokenizer **out)
{
	struct real_tok *real = ctx;
	struct dedup_tok *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return SQLITE_NOMEM;
	int rc = real->api.xCreate(real->ctx, argv, argc, &t->inner);
	if (rc != SQLITE_OK) {
		free(t);
		return rc;
	}
	t->real = real;
	for (int i = 0; i + 1 < argc; i += 2)
		if (strcmp(argv[i], "case_sensitive") == 0)
			t->exact = strcmp(argv[i + 1], "1") == 0;
	*out = (Fts5Tokenizer *)t;
	return SQLITE_OK;
}

static void dedup_delete(Fts5Tokenizer *tok)
{
	struct dedup_tok *t = (struct dedup_tok *)tok;
	t->real->api.xDelete(t->inner);
	free(t);
}

static int dedup_tokenize(Fts5Tokenizer *tok, void *ctx, int flags,
			  const char *text, int n,
			  int (*xToken)(void *, int, const char *, int, int,
					int))
{
	struct dedup_tok *t = (struct dedup_tok *)tok;
	if (!(flags & FTS5_TOKENIZE_DOCUMENT))
		return t->real->api.xTokenize(t->inner, ctx, flags, text, n,
					      xToken);
	struct seen *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return t->real->api.xTokenize(t->inner, ctx, flags, text, n,
					      xToken);
	s->ctx = ctx;
	s->xToken = xToken;
	int rc = t->exact && ascii_text(text, n)
			 ? ascii_trigrams(s, text, n)
			 : t->real->api.xTokenize(t->inner, s, flags, text, n,
						  dedup_token);
	free(s->slots);
	free(s);
	return rc;
}

static void real_free(void *p)
{
	free(p);
}

void sq_trigram_register(sqlite3 *db)
{
	fts5_api *api = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) !=
	    SQLITE_OK)
		return;
	sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
	sqlite3_step(st);
	sqlite3_finalize(st);
	if (api == NULL || api->iVersion < 2)
		return;
	struct real_tok *real = calloc(1, sizeof(*real));
	if (real == NULL)
		return;
	if (api->xFindTokenizer(api, "trigram", &real->ctx, &real->api) !=
	    SQLITE_OK) {
		free(real);
		return;
	}
	static fts5_tokenizer dedup = {dedup_create, dedup_delete,
				       dedup_tokenize};
	if (api->xCreateTokenizer(api, "trigram", real, &dedup, real_free) !=
	    SQLITE_OK)
		free(real);
}
