/*
 * Messages of the PostgreSQL backend: bodies (spooled, fsynced and named
 * by their SHA-256 in blob_dir before the row that names them commits),
 * reading them back (the SHA-256 checked on every read: a damaged file is
 * a temporary error, never wrong bytes), fetch, flags with modseq, copy
 * and move, expunge with its log, views, CONDSTORE/QRESYNC, search over
 * the folded text and POP3 marks.
 */
#include "pg-private.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mail.h"
#include "pg-rows.h"

#define MEM_MAX (128 * 1024)

/* ---- bodies ---------------------------------------------------------- */

struct store_body {
	struct store_object obj;
	struct store *store;
	struct buf mem;          /* the body while small, then a write buffer */
	char *tmp_path;          /* the spool file once it is big */
	int fd;
	uint64_t size, max;
	bool last_cr, failed, finished, binary;
	bool raw;                /* an upload: bytes as written, no analysis */
	EVP_MD_CTX *sha, *md5;   /* the name, and S3's Content-MD5 */
	char sha_hex[65];
	struct mail_result an;
	char *plain;             /* the body text unfolded (store_body_text) */
	size_t plain_len;
};

/* store_body_text keeps the unfolded text of bodies up to this much (a
 * bigger one: Sieve analyses the message itself), as sq-body.c does. */
#define PG_PLAIN_TEXT_MAX (1024 * 1024)

int pg_body_create(struct store *store, struct store_body **body_r,
		   struct store_error *err)
{
	(void)err;
	struct store_body *b = xcalloc(1, sizeof(*b));
	b->obj.vf = &store_postgres_vfuncs;
	b->store = store;
	b->fd = -1;
	b->max = store->set.max_message_size;
	buf_init(&b->mem, 0);
	b->sha = EVP_MD_CTX_new();
	b->md5 = EVP_MD_CTX_new();
	if (b->sha == NULL || EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1 ||
	    b->md5 == NULL || EVP_DigestInit_ex(b->md5, EVP_md5(), NULL) != 1)
		abort();
	*body_r = b;
	return 0;
}

static int body_error(struct store_body *b, int e, const char *what,
		      struct store_error *err)
{
	b->failed = true;
	if (e == ENOSPC || e == EDQUOT)
		return store_set_full(err);
	log_error("store", NULL, "%s %s: %s", what,
		  b->tmp_path ? b->tmp_path : "body", strerror(e));
	return store_set_error(err, STORE_ERR_TEMP,
			       "Cannot store the message now");
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int body_spill(struct store_body *b, struct store_error *err)
{
	struct pg_store *s = PGS(b->store);
	if (mkdir(s->spool_dir, 0700) < 0 && errno != EEXIST)
		return body_error(b, errno, "mkdir", err);
	b->tmp_path = xasprintf("%s/spool-XXXXXX", s->spool_dir);
	b->fd = mkstemp(b->tmp_path);
	if (b->fd < 0) {
		int e = errno;
		free(b->tmp_path);
		b->tmp_path = NULL;
		return body_error(b, e, "create", err);
	}
	if (write_all(b->fd, b->mem.data, b->mem.len) < 0)
		return body_error(b, errno, "write", err);
	buf_reset(&b->mem);
	return 0;
}

static int body_put(struct store_body *b, const char *p, size_t n,
		    struct store_error *err)
{
	b->size += n;
	if (b->max != 0 && b->size > b->max) {
		b->failed = true;
		return store_set_error(err, STORE_ERR_LIMIT,
				       "Message is too large");
	}
	EVP_DigestUpdate(b->sha, p, n);
	EVP_DigestUpdate(b->md5, p, n);
	uint64_t fail_at = atomic_load(&b->store->test_fail_write_after);
	if (fail_at != 0 && b->size >= fail_at)
		return body_error(b, ENOSPC, "write", err);
	buf_append(&b->mem, p, n);
	if (b->tmp_path == NULL && b->mem.len > MEM_MAX)
		return body_spill(b, err);
	if (b->tmp_path != NULL && b->mem.len >= 64 * 1024) {
		if (write_all(b->fd, b->mem.data, b->mem.len) < 0)
			return body_error(b, errno, "write", err);
		buf_reset(&b->mem);
	}
	return 0;
}

/* Bare LF becomes CRLF (binary bodies are kept as written). */
int pg_body_write(struct store_body *b, const void *data, size_t len,
		  struct store_error *err)
{
	if (b->failed || b->finished)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	if (b->binary)
		return body_put(b, data, len, err);
	const char *p = data, *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (chunk > 0) {
			if (body_put(b, p, chunk, err) < 0)
				return -1;
			b->last_cr = p[chunk - 1] == '\r';
			p += chunk;
		}
		if (nl == NULL)
			break;
		if (body_put(b, b->last_cr ? "\n" : "\r\n", b->last_cr ? 1 : 2,
			     err) < 0)
			return -1;
		b->last_cr = false;
		p++;
	}
	return 0;
}

uint64_t pg_body_size(const struct store_body *b)
{
	return b->size;
}

void pg_body_set_binary(struct store_body *b)
{
	b->binary = true;
}

void pg_body_set_raw(struct store_body *b, uint64_t max)
{
	b->binary = true;
	b->raw = true;
	b->max = max;
}

const char *pg_body_sha(const struct store_body *b)
{
	return b->finished ? b->sha_hex : NULL;
}

/* Spool then commit: the bytes are durable under their name before any
 * row names them. */
int pg_body_finish(struct store_body *b, struct store_error *err)
{
	if (b->finished)
		return 0;
	if (b->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	struct pg_store *s = PGS(b->store);
	unsigned char md[32], md5[16];
	unsigned mdlen = 0;
	EVP_DigestFinal_ex(b->sha, md, &mdlen);
	EVP_DigestFinal_ex(b->md5, md5, &mdlen);
	for (unsigned i = 0; i < 32; i++)
		snprintf(b->sha_hex + 2 * i, 3, "%02x", md[i]);
	if (b->tmp_path == NULL && body_spill(b, err) < 0)
		return -1;
	if (b->mem.len > 0 && write_all(b->fd, b->mem.data, b->mem.len) < 0)
		return body_error(b, errno, "write", err);
	buf_free(&b->mem);
	/* S3: the PUT's answer is the durability */
	if (s->fsync && s->s3 == NULL && fsync(b->fd) < 0)
		return body_error(b, errno, "fsync", err);
	if (pg_blobs_put(b->store, b->fd, b->tmp_path, b->sha_hex, md5,
			 b->size, err) < 0) {
		b->failed = true;
		return -1;
	}
	unlink(b->tmp_path);
	if (b->raw) {
		close(b->fd);
		b->fd = -1;
		b->finished = true;
		return 0;
	}
	void *map = b->size > 0 ? mmap(NULL, b->size, PROT_READ, MAP_SHARED,
				       b->fd, 0) : NULL;
	if (map == MAP_FAILED)
		return body_error(b, errno, "mmap", err);
	store_analyze_plain(map != NULL ? map : "", b->size, &b->an,
			    PG_PLAIN_TEXT_MAX, &b->plain, &b->plain_len);
	if (map != NULL)
		munmap(map, b->size);
	close(b->fd);
	b->fd = -1;
	b->finished = true;
	return 0;
}

void pg_body_unref(struct store_body *b)
{
	if (b->fd >= 0)
		close(b->fd);
	if (b->tmp_path != NULL && !b->finished)
		unlink(b->tmp_path);
	free(b->tmp_path);
	buf_free(&b->mem);
	EVP_MD_CTX_free(b->sha);
	EVP_MD_CTX_free(b->md5);
	if (b->finished && !b->raw)
		mail_result_free(&b->an);
	free(b->plain);
	free(b);
}

const char *pg_body_text(struct store_body *b, size_t *len_r)
{
	*len_r = b->finished ? b->plain_len : 0;
	return b->finished ? b->plain : NULL;
}

int pg_limits_get(struct store_user *user,
		  struct store_account_limits *limits, struct store_error *err)
{
	memset(limits, 0, sizeof(*limits));
	const struct store_settings *set = &user->store->set;
	if (set->limits != NULL &&
	    set->limits(set->limits_ctx, user->id, limits) < 0)
		return store_set_error(err, STORE_ERR_TEMP,
				       "Cannot read the account's quota");
	/* messages kept for undelete count when the policy says so */
	limits->kept_bytes = limits->kept_messages = 0;
	struct store_usage kept;
	if (limits->deleted_in_quota &&
	    (limits->quota_bytes != 0 || limits->quota_messages != 0)) {
		if (pg_deleted_usage(user, &kept, err) < 0)
			return -1;
		limits->kept_bytes = kept.bytes;
		limits->kept_messages = kept.messages;
	}
	return 0;
}

bool pg_over_quota(const struct pg_tx *tx,
		   const struct store_account_limits *l, uint64_t bytes,
		   uint64_t messages)
{
	/* kept_*: messages kept for undelete when they count */
	return (l->quota_bytes != 0 &&
		(uint64_t)tx->bytes + l->kept_bytes + bytes > l->quota_bytes) ||
	       (l->quota_messages != 0 &&
		(uint64_t)tx->messages + l->kept_messages + messages >
			l->quota_messages);
}

static char *keywords_join(const char *const *kw, size_t n)
{
	if (kw == NULL || n == 0)
		return NULL;
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcasecmp(kw[i], kw[j]) == 0;
		if (dup)
			continue;
		if (b.len > 0)
			buf_append_char(&b, ' ');
		buf_append_str(&b, kw[i]);
	}
	return buf_steal(&b, NULL);
}

static int keywords_register(struct pg_tx *tx, uint32_t mailbox,
			     const char *kw, struct store_error *err)
{
	if (kw == NULL || kw[0] == '\0')
		return 0;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mailbox);
	pg_p_str(&p, kw);
	return pg_run(tx->c, "INSERT INTO keyword SELECT $1, $2, k FROM"
		      " unnest(string_to_array($3, ' ')) k"
		      " ON CONFLICT DO NOTHING", &p, err);
}

static void p_text(struct pg_params *p, const char *s)
{
	pg_p_bin(p, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* Appends each "<id>" of s, as hex of its bytes, to a text[] literal. */
static void msgids_hex(const char *s, struct buf *arr)
{
	static const char hex[] = "0123456789abcdef";
	for (const char *p = s; p != NULL && (p = strchr(p, '<')) != NULL;) {
		const char *e = strchr(p, '>');
		if (e == NULL)
			break;
		if (arr->len > 1)
			buf_append_char(arr, ',');
		for (const char *q = p; q <= e; q++) {
			buf_append_char(arr, hex[(unsigned char)*q >> 4]);
			buf_append_char(arr, hex[(unsigned char)*q & 15]);
		}
		p = e + 1;
	}
}

static int thread_merge(struct pg_tx *tx, int64_t into, int64_t from,
			struct store_error *err);

/* A message's Message-IDs (its own, References, In-Reply-To), each as
 * hex of its bytes, as a text[] literal ("{}" for none). */
static void msgids_array(const struct mail_result *an, struct buf *arr)
{
	buf_append_char(arr, '{');
	msgids_hex(an->message_id, arr);
	msgids_hex(an->references, arr);
	msgids_hex(an->in_reply_to, arr);
	buf_append_char(arr, '}');
}

/* THREADID (RFC 8474): a message joins the thread of any message it
 * references, or of a reply that came before it and referenced it;
 * otherwise it starts its own, named after its blob. When it links
 * threads that were apart (a late reply), they become one: the biggest
 * stays (the lowest id among equals), the others' messages move into it
 * under new ids and UIDs (RFC 8621 3: an Email's threadId never changes;
 * thread_merge), and *merged_r says so. Before the blob row (id blob)
 * is inserted with its thread, *thread_r; threads: the account's threads
 * of its Message-IDs, biggest first, as the claim found them ("5,3", or
 * NULL). */
static int thread_pick(struct pg_tx *tx, const char *threads, int64_t blob,
		       int64_t given, int64_t *thread_r, bool *merged_r,
		       struct store_error *err)
{
	*merged_r = false;
	*thread_r = given > 0 ? given : blob;
	/* a thread given (an import keeping THREADID): no lookup, no merge */
	if (given > 0 || threads == NULL)
		return 0;
	const char *p = threads;
	char *end;
	int ret = 0;
	for (int i = 0; ret == 0 && *p != '\0'; i++) {
		long long t = strtoll(p, &end, 10);
		if (end == p)
			break;
		if (i == 0) {
			*thread_r = t;
		} else {
			ret = thread_merge(tx, *thread_r, t, err);
			*merged_r = true;
		}
		p = end + (*end == ',');
	}
	return ret;
}

/* A delivery whose COMMIT's answer was lost: is its row there? */
int pg_delivered(struct pg_conn *c, void *ctx)
{
	const struct pg_delivered *d = ctx;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, d->user_id);
	pg_p_int(&p, d->mailbox);
	pg_p_int(&p, d->uid);
	pg_p_int(&p, d->blob);
	PGresult *r = pg_exec(c, "SELECT 1 FROM msg WHERE user_id = $1 AND"
			      " mailbox = $2 AND uid = $3 AND blob = $4", &p, NULL);
	if (r == NULL)
		return -1;
	int found = PQntuples(r) == 1;
	PQclear(r);
	return found;
}

int pg_deliver_tx(struct pg_tx *tx, struct store_body *b, const char *mailbox,
		  const char *prefix, size_t prefix_len,
		  const struct store_append_params *params,
		  const struct store_account_limits *limits,
		  struct pg_delivered *d_r, uint32_t *uidvalidity_r,
		  struct store_error *err)
{
	return pg_deliver_tx_as(tx, b, mailbox, prefix, prefix_len, params,
				limits, NULL, d_r, uidvalidity_r, err);
}

/* The blob row of a body, under the id its claim took from the sequence
 * or the one an import keeps (the sequence then raised past it, so a
 * later delivery never takes it; other accounts may hold the same id),
 * with its thread, and its Message-IDs' thread_ref rows: one statement,
 * one row version (the search indexes see each body once). */
static const char blob_insert_sql[] =
	"WITH r AS (INSERT INTO thread_ref SELECT $1, x, $23 FROM"
	" unnest($24::text[]) x ON CONFLICT DO NOTHING)"
	" INSERT INTO blob (user_id, sha256,"
	" body_size, prefix, envelope, bodystructure,"
	" body, parts, preview, sort_subject, sort_from,"
	" sort_to, sort_cc, sort_display_from,"
	" sort_display_to, sent_date, message_id,"
	" in_reply_to, refs, header_text, body_text, id, thread)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
	" $10, $11, $12, $13, $14, $15, $16, $17, $18,"
	" $19, $20, $21, $22, $23)";

/* The blob row of body b (an: its analysis as this copy sees it behind
 * prefix), its bytes claimed, its Email's JMAP row and its thread
 * (*merged_r: a thread merge gave other messages new UIDs); want->blob
 * and want->thread as pg_deliver_tx_as takes them. No message row: a
 * delivery adds one, an import of undelete's kept messages a deleted
 * row (pg-undelete.c). */
static int pg_blob_row_add(struct pg_tx *tx, struct store_body *b,
			   const struct mail_result *an, const char *prefix,
			   size_t prefix_len,
			   const struct pg_deliver_want *want, int64_t *blob_r,
			   bool *merged_r, struct store_error *err)
{
	*merged_r = false;
	struct store_user *user = tx->user;
	int64_t blob = 0, thread = 0;
	struct buf arr;
	buf_init(&arr, 0);
	msgids_array(an, &arr);
	char *threads = NULL;
	int ret = pg_blob_claim(tx, b->sha_hex, &blob, want->thread == 0 &&
				arr.len > 2 ? arr.data : NULL, &threads, err);
	if (want->blob > 0)
		blob = want->blob;
	if (ret == 0)
		ret = thread_pick(tx, threads, blob, want->thread, &thread,
				  merged_r, err);
	free(threads);
	if (ret == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_str(&p, b->sha_hex);
		pg_p_int(&p, (int64_t)b->size);
		pg_p_bin(&p, prefix, prefix_len);
		p_text(&p, an->envelope);
		p_text(&p, an->bodystructure);
		p_text(&p, an->body);
		pg_p_bin(&p, an->parts, an->parts_len);
		p_text(&p, an->preview);
		p_text(&p, an->sort_subject);
		p_text(&p, an->sort_from);
		p_text(&p, an->sort_to);
		p_text(&p, an->sort_cc);
		p_text(&p, an->sort_display_from);
		p_text(&p, an->sort_display_to);
		pg_p_int(&p, (int64_t)an->sent_date);
		p_text(&p, an->message_id);
		p_text(&p, an->in_reply_to);
		p_text(&p, an->references);
		pg_p_bin(&p, an->header_text, an->header_text_len);
		pg_p_bin(&p, an->body_text, an->body_text_len);
		pg_p_int(&p, blob);
		pg_p_int(&p, thread);
		pg_p_str(&p, arr.data);
		ret = pg_run(tx->c, blob_insert_sql, &p, err);
	}
	buf_free(&arr);
	if (ret == 0 && want->blob > 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, want->blob);
		PGresult *r = pg_exec(tx->c, "SELECT setval('blob_id', $1)"
				      " FROM blob_id WHERE last_value < $1",
				      &p, err);
		ret = r != NULL ? 0 : -1;
		PQclear(r);
	}
	if (ret == 0)
		ret = pg_jmail_blob_added(tx, blob, an->bodystructure, err);
	*blob_r = blob;
	return ret;
}

int pg_blob_row_of(struct pg_tx *tx, struct store_body *b,
		   const struct pg_deliver_want *want, int64_t *blob_r,
		   uint64_t *size_r, struct store_error *err)
{
	if (!b->finished || b->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	bool merged;
	*size_r = b->size;
	return pg_blob_row_add(tx, b, &b->an, NULL, 0, want, blob_r, &merged,
			       err);
}

int pg_deliver_tx_as(struct pg_tx *tx, struct store_body *b,
		     const char *mailbox, const char *prefix, size_t prefix_len,
		     const struct store_append_params *params,
		     const struct store_account_limits *limits,
		     const struct pg_deliver_want *want,
		     struct pg_delivered *d_r, uint32_t *uidvalidity_r,
		     struct store_error *err)
{
	static const struct pg_deliver_want none;
	if (want == NULL)
		want = &none;
	struct store_user *user = tx->user;
	memset(d_r, 0, sizeof(*d_r));
	d_r->user_id = user->id;
	if (!b->finished || b->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	/* this copy's analysis: the body's, seen behind the prefix */
	struct mail_result an = b->an;
	struct buf parts, hdr;
	buf_init(&parts, 0);
	buf_init(&hdr, 0);
	if (prefix_len > 0) {
		if (an.parts != NULL &&
		    mail_parts_shift(an.parts, an.parts_len, prefix_len, &parts)) {
			an.parts = parts.data;
			an.parts_len = parts.len;
		}
		store_prefix_text(prefix, prefix_len, &hdr);
		buf_append(&hdr, an.header_text, an.header_text_len);
		an.header_text = hdr.data;
		an.header_text_len = hdr.len;
	}
	uint64_t size = prefix_len + b->size;
	time_t now = pg_now(user->store);
	unsigned flags = params != NULL ? params->flags & 0x1f : 0;
	char *kw = params != NULL ? keywords_join(params->keywords,
						  params->keyword_count) : NULL;
	time_t idate = params != NULL && params->internaldate != 0
			       ? params->internaldate : now;
	struct pg_mbox mb;
	int ret = pg_mbox_need(user, tx->c, mailbox, 0, &mb, err);
	if (ret == 0 && pg_over_quota(tx, limits, size, 1))
		ret = store_set_error(err, STORE_ERR_QUOTA, "Quota exceeded");
	if (ret == 0 && mb.uidnext == UINT32_MAX)
		ret = store_set_error(err, STORE_ERR_LIMIT,
				      "Mailbox is out of UIDs");
	int64_t blob = 0;
	bool merged = false;
	if (ret == 0)
		ret = pg_blob_row_add(tx, b, &an, prefix, prefix_len, want,
				      &blob, &merged, err);
	/* a merge gave the moved messages new UIDs, maybe here */
	if (ret == 0 && merged)
		ret = pg_mbox_need(user, tx->c, mailbox, 0, &mb, err);
	if (ret == 0 && merged && mb.uidnext == UINT32_MAX)
		ret = store_set_error(err, STORE_ERR_LIMIT,
				      "Mailbox is out of UIDs");
	if (ret == 0) {
		uint64_t modseq = pg_tx_modseq(tx);
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, mb.uidnext);
		pg_p_int(&p, blob);
		pg_p_int(&p, flags);
		pg_p_str(&p, kw);
		pg_p_int(&p, (int64_t)modseq);
		pg_p_int(&p, (int64_t)size);
		pg_p_int(&p, (int64_t)idate);
		pg_p_int(&p, (int64_t)(want->savedate != 0 ? want->savedate
							   : now));
		pg_p_str(&p, want->pop3_uidl);
		/* the mailbox's uidnext and highestmodseq in the same
		 * statement (pg_mbox_touch's update) */
		ret = pg_run(tx->c, "WITH t AS (UPDATE mailbox SET"
			     " highestmodseq = greatest(highestmodseq, $7),"
			     " uidnext = greatest(uidnext, $3::bigint + 1)"
			     " WHERE user_id = $1 AND id = $2)"
			     " INSERT INTO msg (user_id, mailbox, uid, blob,"
			     " flags, keywords, modseq, size, internaldate,"
			     " savedate, uidl) VALUES ($1, $2, $3, $4, $5, $6,"
			     " $7, $8, $9, $10, $11)", &p, err);
	}
	if (ret == 0)
		ret = keywords_register(tx, mb.id, kw, err);
	if (ret == 0) {
		tx->bytes += (int64_t)size;
		tx->messages++;
		tx->usage_dirty = true;
		pg_tx_change(tx, mb.id, STORE_CHANGE_APPEND);
		d_r->mailbox = mb.id;
		d_r->uid = mb.uidnext;
		d_r->blob = blob;
		if (uidvalidity_r != NULL)
			*uidvalidity_r = mb.uidvalidity;
	}
	free(kw);
	buf_free(&parts);
	buf_free(&hdr);
	return ret;
}

/* MULTIAPPEND: every body in one transaction, each under a savepoint of
 * its own (one that fails, over quota say, leaves the others); a lost
 * COMMIT's answer resolved by the first copy's row. */
static int bodies_deliver_once(struct store_body *const *bodies, size_t n,
			       struct store_user *user, const char *mailbox,
			       const struct store_append_params *params,
			       uint32_t *uids, uint32_t *uidvalidity_r,
			       struct store_error *err)
{
	memset(uids, 0, n * sizeof(*uids));
	struct store_account_limits limits;
	if (pg_limits_get(user, &limits, err) < 0)
		return -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_delivered first = {0};
	bool told = false;
	int ret = 0, failed = 0;
	uint32_t uidvalidity = 0;
	/* the savepoint of the next body made in the round trip that
	 * releases this one's; one rolled back to is there for the next */
	bool savepoint = false;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct store_error e = {0};
		struct pg_delivered d;
		if (!savepoint && pg_cmd(tx.c, "SAVEPOINT loft_body", err) < 0) {
			ret = -1;
			break;
		}
		savepoint = true;
		if (pg_deliver_tx(&tx, bodies[i], mailbox, NULL, 0,
				  params != NULL ? &params[i] : NULL, &limits,
				  &d, &uidvalidity, &e) == 0) {
			savepoint = i + 1 < n;
			ret = pg_cmd(tx.c, savepoint ? "RELEASE SAVEPOINT"
				     " loft_body; SAVEPOINT loft_body"
				     : "RELEASE SAVEPOINT loft_body", err);
			uids[i] = d.uid;
			if (first.uid == 0)
				first = d;
			continue;
		}
		if (!told) {
			*err = e;
			told = true;
		}
		failed++;
		/* the connection gone: the whole transaction with it */
		if (tx.c->broken ||
		    pg_cmd(tx.c, "ROLLBACK TO SAVEPOINT loft_body", err) < 0)
			ret = -1;
	}
	if (ret == 0 && first.uid == 0)
		ret = -1;   /* none stored: the first failure's error */
	int before = ret;
	struct store_error werr = {0};
	if (pg_wend_resolve(&tx, ret, pg_delivered, &first, &werr) < 0) {
		memset(uids, 0, n * sizeof(*uids));
		if (before == 0)
			*err = werr;   /* the COMMIT's failure */
		return -1;
	}
	/* committed: some copies may have failed, but the call is never
	 * run again (the others would be stored twice) */
	pg_retry_mark(false);
	if (uidvalidity_r != NULL)
		*uidvalidity_r = uidvalidity;
	return failed > 0 ? -1 : 0;
}

int pg_bodies_deliver(struct store_body *const *bodies, size_t n,
		      struct store_user *user, const char *mailbox,
		      const struct store_append_params *params,
		      uint32_t *uids, uint32_t *uidvalidity_r,
		      struct store_error *err)
{
	PG_RETRY(user->store, bodies_deliver_once(bodies, n, user, mailbox,
						  params, uids, uidvalidity_r,
						  err));
}

int pg_body_deliver(struct store_body *b, struct store_user *user,
		    const char *mailbox, const char *prefix, size_t prefix_len,
		    const struct store_append_params *params, uint32_t *uid_r,
		    uint32_t *uidvalidity_r, struct store_error *err)
{
	if (!b->finished || b->failed)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored");
	struct store_account_limits limits;
	if (pg_limits_get(user, &limits, err) < 0)
		return -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_delivered d;
	uint32_t uidvalidity = 0;
	int ret = pg_deliver_tx(&tx, b, mailbox, prefix, prefix_len, params,
				&limits, &d, &uidvalidity, err);
	if (pg_wend_resolve(&tx, ret, pg_delivered, &d, err) < 0)
		return -1;
	if (uid_r != NULL)
		*uid_r = d.uid;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = uidvalidity;
	return 0;
}

/* ---- reading a message ------------------------------------------------ */

struct pg_blob_priv {
	struct store_object obj;
	char *data;
};

int pg_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		 struct store_blob *blob_r, struct store_error *err)
{
	memset(blob_r, 0, sizeof(*blob_r));
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	PGresult *r = NULL;
	if (pg_mbox_need(user, c, mailbox, 0, &mb, err) == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, uid);
		r = pg_exec(c, "SELECT b.sha256, b.body_size, b.prefix FROM msg m"
			    " JOIN blob b ON b.user_id = m.user_id AND b.id = m.blob"
			    " WHERE m.user_id = $1 AND m.mailbox = $2 AND m.uid = $3",
			    &p, err);
	}
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	int ret = pg_blob_from_row(user, r, blob_r, err);
	PQclear(r);
	return ret;
}

int pg_blob_open_email(struct store_user *user, int64_t id,
		       struct store_blob *blob_r, struct store_error *err)
{
	memset(blob_r, 0, sizeof(*blob_r));
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, id);
	/* visible: a copy without \Deleted */
	PGresult *r = pg_exec(c, "SELECT b.sha256, b.body_size, b.prefix"
			      " FROM blob b WHERE b.user_id = $1 AND b.id = $2"
			      " AND EXISTS (SELECT 1 FROM msg m WHERE m.user_id = $1"
			      " AND m.blob = $2 AND (m.flags & 8) = 0)", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	int ret = pg_blob_from_row(user, r, blob_r, err);
	PQclear(r);
	return ret;
}

int pg_blob_from_row(struct store_user *user, const PGresult *r,
		     struct store_blob *blob_r, struct store_error *err)
{
	memset(blob_r, 0, sizeof(*blob_r));
	if (PQntuples(r) != 1)
		return store_set_error(err, STORE_ERR_NOTFOUND,
				       "No such message");
	size_t shalen, plen;
	const char *sha = pg_val(r, 0, 0, &shalen);
	uint64_t body_size = (uint64_t)pg_int(r, 0, 1);
	const char *prefix = pg_val(r, 0, 2, &plen);
	char shabuf[65];
	snprintf(shabuf, sizeof(shabuf), "%.*s", (int)(shalen < 64 ? shalen : 64),
		 sha);
	char *data = xmalloc(plen + body_size + 1);
	if (plen > 0)
		memcpy(data, prefix, plen);
	if (pg_blobs_read(user->store, user->id, shabuf, data + plen,
			  body_size, err) < 0) {
		free(data);
		return -1;
	}
	data[plen + body_size] = '\0';
	struct pg_blob_priv *priv = xcalloc(1, sizeof(*priv));
	priv->obj.vf = &store_postgres_vfuncs;
	priv->data = data;
	blob_r->data = data;
	blob_r->len = plen + body_size;
	blob_r->priv = priv;
	return 0;
}

void pg_blob_close(struct store_blob *blob)
{
	struct pg_blob_priv *priv = blob->priv;
	if (priv != NULL) {
		free(priv->data);
		free(priv);
	}
	memset(blob, 0, sizeof(*blob));
}

/* ---- fetch -------------------------------------------------------------- */

struct store_fetch {
	struct store_object obj;
	struct store_user *user;
	struct pg_conn *c;
	uint32_t mailbox_id;
	struct store_uid_range *ranges;
	size_t range_count, next_range;
	uint32_t last_uid;
	uint64_t since;
	bool join;
	PGresult *res;
	int row;
	struct store_msg msg;
	struct store_keyword_list kw;
};

#define FETCH_BLOB_FIELDS                                                    \
	(STORE_FETCH_ENVELOPE | STORE_FETCH_STRUCTURE | STORE_FETCH_PARTS |  \
	 STORE_FETCH_SORT | STORE_FETCH_PREVIEW | STORE_FETCH_OBJECTID)

static const char fetch_sql[] =
	"SELECT uid, modseq, flags, keywords, size, internaldate, savedate,"
	" pop3_hidden, pop3_first_retr, blob, uidl FROM msg"
	" WHERE user_id = $1 AND mailbox = $2 AND uid BETWEEN $3 AND $4"
	" AND modseq > $5 ORDER BY uid";
static const char fetch_join_sql[] =
	"SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internaldate,"
	" m.savedate, m.pop3_hidden, m.pop3_first_retr, m.blob, b.thread,"
	" b.envelope, b.bodystructure, b.body, b.parts, b.preview,"
	" b.sort_subject, b.sort_from, b.sort_to, b.sort_cc,"
	" b.sort_display_from, b.sort_display_to, b.sent_date,"
	" b.message_id, b.in_reply_to, b.refs, m.uidl"
	" FROM msg m JOIN blob b ON b.user_id = m.user_id AND b.id = m.blob"
	" WHERE m.user_id = $1 AND m.mailbox = $2 AND m.uid BETWEEN $3 AND $4"
	" AND m.modseq > $5 ORDER BY m.uid";

int pg_fetch_begin(struct store_user *user, const char *mailbox,
		   const struct store_uid_range *ranges, size_t range_count,
		   unsigned fields, uint64_t changedsince,
		   struct store_fetch **fetch_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	if (pg_mbox_need(user, c, mailbox, 0, &mb, err) < 0) {
		pg_rend(user, c);
		return -1;
	}
	struct store_fetch *f = xcalloc(1, sizeof(*f));
	f->obj.vf = &store_postgres_vfuncs;
	f->user = user;
	f->c = c;
	f->mailbox_id = mb.id;
	f->since = changedsince;
	f->join = (fields & FETCH_BLOB_FIELDS) != 0;
	if (ranges == NULL) {
		f->ranges = xmalloc(sizeof(*f->ranges));
		f->ranges[0].lo = 1;
		f->ranges[0].hi = UINT32_MAX;
		f->range_count = 1;
	} else {
		f->ranges = xcalloc(range_count ? range_count : 1,
				    sizeof(*f->ranges));
		memcpy(f->ranges, ranges, range_count * sizeof(*ranges));
		f->range_count = range_count;
	}
	*fetch_r = f;
	return 0;
}

static void fetch_keywords(struct store_fetch *f, const char *kw)
{
	f->msg.keyword_count = store_keywords_split(kw, &f->kw);
	f->msg.keywords = f->kw.list;
}

static void fetch_fill(struct store_fetch *f)
{
	const PGresult *r = f->res;
	int i = f->row;
	struct store_msg *m = &f->msg;
	memset(m, 0, sizeof(*m));
	m->uid = (uint32_t)pg_int(r, i, 0);
	m->modseq = (uint64_t)pg_int(r, i, 1);
	m->flags = (unsigned)pg_int(r, i, 2);
	fetch_keywords(f, pg_val(r, i, 3, NULL));
	m->size = (uint64_t)pg_int(r, i, 4);
	m->internaldate = (time_t)pg_int(r, i, 5);
	m->savedate = (time_t)pg_int(r, i, 6);
	m->pop3_hidden = pg_bool(r, i, 7);
	m->pop3_first_retr = (time_t)pg_int(r, i, 8);
	store_objectid_format(m->emailid, 'M', f->user->id, pg_int(r, i, 9));
	/* a UIDL kept from an import (NULL: from UID and UIDVALIDITY) */
	m->pop3_uidl = pg_val(r, i, f->join ? 26 : 10, NULL);
	if (!f->join)
		return;
	store_objectid_format(m->threadid, 'T', f->user->id, pg_int(r, i, 10));
	m->envelope = pg_val(r, i, 11, NULL);
	m->bodystructure = pg_val(r, i, 12, NULL);
	m->body = pg_val(r, i, 13, NULL);
	m->parts = pg_val(r, i, 14, &m->parts_len);
	if (m->parts_len == 0)
		m->parts = NULL;
	m->preview = pg_val(r, i, 15, NULL);
	m->sort_subject = pg_val(r, i, 16, NULL);
	m->sort_from = pg_val(r, i, 17, NULL);
	m->sort_to = pg_val(r, i, 18, NULL);
	m->sort_cc = pg_val(r, i, 19, NULL);
	m->sort_display_from = pg_val(r, i, 20, NULL);
	m->sort_display_to = pg_val(r, i, 21, NULL);
	m->sent_date = (time_t)pg_int(r, i, 22);
	if (m->sent_date == 0)
		m->sent_date = m->internaldate;
	m->message_id = pg_val(r, i, 23, NULL);
	m->in_reply_to = pg_val(r, i, 24, NULL);
	m->references = pg_val(r, i, 25, NULL);
}

int pg_fetch_next(struct store_fetch *f, const struct store_msg **msg_r,
		  struct store_error *err)
{
	for (;;) {
		if (f->res != NULL && f->row + 1 < PQntuples(f->res)) {
			f->row++;
			fetch_fill(f);
			f->last_uid = f->msg.uid;
			*msg_r = &f->msg;
			return 1;
		}
		PQclear(f->res);
		f->res = NULL;
		if (f->next_range == f->range_count)
			return 0;
		const struct store_uid_range *rg = &f->ranges[f->next_range++];
		/* overlapping ranges: never a UID twice */
		uint32_t lo = rg->lo > f->last_uid ? rg->lo : f->last_uid + 1;
		if (f->last_uid == UINT32_MAX || lo > rg->hi)
			continue;
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, f->user->id);
		pg_p_int(&p, f->mailbox_id);
		pg_p_int(&p, lo);
		pg_p_int(&p, rg->hi);
		pg_p_int(&p, (int64_t)f->since);
		f->res = pg_exec(f->c, f->join ? fetch_join_sql : fetch_sql, &p,
				 err);
		if (f->res == NULL)
			return -1;
		f->row = -1;
	}
}

void pg_fetch_end(struct store_fetch **fetchp)
{
	struct store_fetch *f = *fetchp;
	*fetchp = NULL;
	if (f == NULL)
		return;
	PQclear(f->res);
	pg_rend(f->user, f->c);
	free(f->ranges);
	store_keyword_list_free(&f->kw);
	free(f);
}

/* ---- rows of a write ------------------------------------------------------ */

struct row {
	uint32_t uid;
	uint64_t modseq;
	unsigned flags;
	char *keywords;
	int64_t blob;
	uint64_t size;
	int64_t internaldate, savedate, pop3_first_retr;
	bool pop3_hidden;
};

static void rows_free(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].keywords);
	free(rows);
}

/* The rows of ranges (NULL: all), UID order. */
static int rows_get(struct pg_tx *tx, uint32_t mailbox,
		    const struct store_uid_range *ranges, size_t range_count,
		    struct row **rows_r, size_t *n_r, struct store_error *err)
{
	struct store_uid_range all = {1, UINT32_MAX};
	if (ranges == NULL) {
		ranges = &all;
		range_count = 1;
	}
	struct row *rows = NULL;
	size_t n = 0, cap = 0;
	uint32_t last = 0;
	for (size_t k = 0; k < range_count; k++) {
		uint32_t lo = ranges[k].lo > last ? ranges[k].lo : last + 1;
		if ((n > 0 && last == UINT32_MAX) || lo > ranges[k].hi)
			continue;
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, mailbox);
		pg_p_int(&p, lo);
		pg_p_int(&p, ranges[k].hi);
		PGresult *r = pg_exec(tx->c, "SELECT uid, modseq, flags, keywords,"
				      " blob, size, internaldate, savedate,"
				      " pop3_first_retr, pop3_hidden FROM msg"
				      " WHERE user_id = $1 AND mailbox = $2 AND uid"
				      " BETWEEN $3 AND $4 ORDER BY uid", &p, err);
		if (r == NULL) {
			rows_free(rows, n);
			return -1;
		}
		for (int i = 0; i < PQntuples(r); i++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				rows = xrealloc(rows, cap * sizeof(*rows));
			}
			struct row *w = &rows[n++];
			w->uid = (uint32_t)pg_int(r, i, 0);
			w->modseq = (uint64_t)pg_int(r, i, 1);
			w->flags = (unsigned)pg_int(r, i, 2);
			w->keywords = pg_strdup(r, i, 3);
			if (w->keywords != NULL && w->keywords[0] == '\0') {
				free(w->keywords);
				w->keywords = NULL;
			}
			w->blob = pg_int(r, i, 4);
			w->size = (uint64_t)pg_int(r, i, 5);
			w->internaldate = pg_int(r, i, 6);
			w->savedate = pg_int(r, i, 7);
			w->pop3_first_retr = pg_int(r, i, 8);
			w->pop3_hidden = pg_bool(r, i, 9);
			last = w->uid;
		}
		PQclear(r);
	}
	*rows_r = rows;
	*n_r = n;
	return 0;
}

void pg_uid_array(struct buf *out, const uint32_t *uids, size_t n)
{
	buf_init(out, 0);
	buf_append_char(out, '{');
	for (size_t i = 0; i < n; i++)
		buf_printf(out, "%s%u", i ? "," : "", uids[i]);
	buf_append_char(out, '}');
}

int pg_expunge_uids(struct pg_tx *tx, uint32_t mailbox_id,
		    const uint32_t *uids, size_t n, unsigned how,
		    struct store_error *err)
{
	if (n == 0)
		return 0;
	struct buf arr;
	pg_uid_array(&arr, uids, n);
	uint64_t modseq = pg_tx_modseq(tx);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mailbox_id);
	pg_p_str(&p, arr.data);
	pg_p_int(&p, (int64_t)modseq);
	pg_p_int(&p, (int64_t)pg_now(tx->user->store));
	pg_p_str(&p, how & PG_GONE_LOG ? "t" : "f");
	pg_p_str(&p, how & PG_GONE_KEEP ? "t" : "f");
	/* the rows, their log entries and their kept copies for undelete
	 * (removed in the database's clock), then the blob rows nothing
	 * names */
	PGresult *r = pg_exec(tx->c,
		"WITH gone AS (DELETE FROM msg WHERE user_id = $1 AND mailbox = $2"
		" AND uid = ANY ($3::bigint[]) RETURNING uid, blob, size, flags,"
		" keywords, internaldate, savedate),"
		" logged AS (INSERT INTO expunged SELECT $1, $2, uid, $4, $5"
		" FROM gone WHERE $6::boolean ON CONFLICT (user_id, mailbox, uid)"
		" DO UPDATE SET modseq = excluded.modseq),"
		" kept AS (INSERT INTO deleted (user_id, mailbox, uid, blob,"
		" flags, keywords, internaldate, savedate, size, at)"
		" SELECT $1, m.name, g.uid, g.blob, g.flags, g.keywords,"
		" g.internaldate, g.savedate, g.size,"
		" extract(epoch FROM now())::bigint FROM gone g JOIN mailbox m"
		" ON m.user_id = $1 AND m.id = $2 WHERE $7::boolean)"
		" SELECT count(*), coalesce(sum(size), 0)::bigint,"
		" array_agg(DISTINCT blob)::text FROM gone", &p, err);
	buf_free(&arr);
	if (r == NULL)
		return -1;
	int64_t count = pg_int(r, 0, 0), bytes = pg_int(r, 0, 1);
	char *blobs = pg_strdup(r, 0, 2);
	PQclear(r);
	int ret = 0;
	if (blobs != NULL && !(how & PG_GONE_KEEP))
		ret = pg_blob_rows_drop(tx, blobs, err);
	free(blobs);
	if (ret == 0)
		ret = pg_mbox_touch(tx, mailbox_id, 0, err);
	tx->bytes -= bytes;
	tx->messages -= count;
	tx->usage_dirty = true;
	pg_tx_change(tx, mailbox_id, STORE_CHANGE_EXPUNGE);
	return ret;
}

int pg_blob_rows_drop(struct pg_tx *tx, const char *blobs,
		      struct store_error *err)
{
	struct pg_params q;
	pg_p_init(&q);
	pg_p_int(&q, tx->user->id);
	pg_p_str(&q, blobs);
	/* the body file stays for the collector (other rows, other
	 * accounts may name the same bytes) */
	return pg_run(tx->c, "DELETE FROM blob b WHERE b.user_id = $1"
		      " AND b.id = ANY ($2::bigint[]) AND NOT EXISTS"
		      " (SELECT 1 FROM msg m WHERE m.user_id = $1"
		      " AND m.blob = b.id) AND NOT EXISTS (SELECT 1 FROM"
		      " deleted d WHERE d.user_id = $1 AND d.blob = b.id)",
		      &q, err);
}

/* ---- flags --------------------------------------------------------------- */

int pg_flags_update(struct store_user *user, const char *mailbox,
		    const struct store_uid_range *ranges, size_t range_count,
		    const struct store_flag_change *ch,
		    uint32_t **changed_r, size_t *changed_count_r,
		    uint32_t **modified_r, size_t *modified_count_r,
		    struct store_error *err)
{
	uint32_t *changed = NULL, *modified = NULL;
	size_t nchanged = 0, nmodified = 0;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_mbox mb;
	struct row *rows = NULL;
	size_t n = 0;
	int ret = pg_mbox_need(user, tx.c, mailbox, 0, &mb, err);
	if (ret == 0)
		ret = rows_get(&tx, mb.id, ranges, range_count, &rows, &n, err);
	if (ret == 0) {
		changed = xcalloc(n ? n : 1, sizeof(uint32_t));
		modified = xcalloc(n ? n : 1, sizeof(uint32_t));
	}
	for (size_t i = 0; ret == 0 && i < n; i++) {
		struct row *m = &rows[i];
		/* RFC 7162 3.1.3: UNCHANGEDSINCE */
		if (ch->unchangedsince != 0 && m->modseq > ch->unchangedsince) {
			modified[nmodified++] = m->uid;
			continue;
		}
		unsigned nf = ch->mode == STORE_FLAGS_ADD ? m->flags | ch->flags
			    : ch->mode == STORE_FLAGS_REMOVE ? m->flags & ~ch->flags
			    : ch->flags;
		nf &= 0x1f;
		char *nk = store_keywords_apply(m->keywords, ch);
		bool same_kw = (nk == NULL && m->keywords == NULL) ||
			       (nk != NULL && m->keywords != NULL &&
				strcmp(nk, m->keywords) == 0);
		if (nf == m->flags && same_kw) {
			free(nk);
			continue;
		}
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, m->uid);
		pg_p_int(&p, nf);
		pg_p_str(&p, nk);
		pg_p_int(&p, (int64_t)pg_tx_modseq(&tx));
		ret = pg_run(tx.c, "UPDATE msg SET flags = $4, keywords = $5,"
			     " modseq = $6 WHERE user_id = $1 AND mailbox = $2"
			     " AND uid = $3", &p, err);
		if (ret == 0 && !same_kw)
			ret = keywords_register(&tx, mb.id, nk, err);
		free(nk);
		changed[nchanged++] = m->uid;
	}
	rows_free(rows, n);
	if (ret == 0 && nchanged > 0) {
		ret = pg_mbox_touch(&tx, mb.id, 0, err);
		pg_tx_change(&tx, mb.id, STORE_CHANGE_FLAGS);
	}
	uint64_t modseq = tx.took_modseq ? tx.modseq : 0;
	ret = pg_wend(&tx, ret, err);
	if (ret < 0) {
		free(changed);
		free(modified);
		changed = modified = NULL;
		nchanged = nmodified = 0;
	}
	if (ch->modseq_r != NULL)
		*ch->modseq_r = ret == 0 ? modseq : 0;
	if (changed_r != NULL)
		*changed_r = changed;
	else
		free(changed);
	if (changed_count_r != NULL)
		*changed_count_r = nchanged;
	if (modified_r != NULL)
		*modified_r = modified;
	else
		free(modified);
	if (modified_count_r != NULL)
		*modified_count_r = nmodified;
	return ret;
}

/* ---- copy, move, expunge ---------------------------------------------------- */

/* New rows in dst for rows (the same blobs), UIDs from dst's UIDNEXT
 * (into dst_uids), saved at savedate. */
static int copy_rows(struct pg_tx *tx, const struct pg_mbox *dst,
		     const struct row *rows, size_t n, time_t savedate,
		     uint32_t *dst_uids, struct store_error *err)
{
	uint64_t bytes = 0;
	int ret = 0;
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const struct row *m = &rows[i];
		dst_uids[i] = dst->uidnext + (uint32_t)i;
		bytes += m->size;
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, dst->id);
		pg_p_int(&p, dst_uids[i]);
		pg_p_int(&p, m->blob);
		pg_p_int(&p, m->flags);
		pg_p_str(&p, m->keywords);
		pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
		pg_p_int(&p, (int64_t)m->size);
		pg_p_int(&p, m->internaldate);
		pg_p_int(&p, (int64_t)savedate);
		pg_p_int(&p, m->pop3_first_retr);
		ret = pg_run(tx->c, "INSERT INTO msg (user_id, mailbox, uid, blob,"
			     " flags, keywords, modseq, size, internaldate,"
			     " savedate, pop3_first_retr) VALUES ($1, $2, $3, $4,"
			     " $5, $6, $7, $8, $9, $10, $11)", &p, err);
		if (ret == 0)
			ret = keywords_register(tx, dst->id, m->keywords, err);
	}
	if (ret == 0 && n > 0) {
		ret = pg_mbox_touch(tx, dst->id, dst->uidnext + (uint32_t)n, err);
		tx->bytes += (int64_t)bytes;
		tx->messages += (int64_t)n;
		tx->usage_dirty = true;
		pg_tx_change(tx, dst->id, STORE_CHANGE_APPEND);
	}
	return ret;
}

int pg_rows_restore(struct pg_tx *tx, const struct pg_mbox *dst,
		    const struct pg_kept *kept, size_t n, time_t savedate,
		    uint32_t *uids, struct store_error *err)
{
	return pg_rows_add(tx, dst, kept, n, savedate, STORE_FLAG_DELETED,
			   uids, err);
}

int pg_rows_add(struct pg_tx *tx, const struct pg_mbox *dst,
		const struct pg_kept *kept, size_t n, time_t savedate,
		unsigned drop_flags, uint32_t *uids, struct store_error *err)
{
	struct row *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		rows[i].blob = kept[i].blob;
		rows[i].flags = kept[i].flags & ~drop_flags;
		rows[i].keywords = kept[i].keywords;
		rows[i].internaldate = kept[i].internaldate;
		rows[i].size = kept[i].size;
	}
	int ret = copy_rows(tx, dst, rows, n, savedate, uids, err);
	free(rows);
	return ret;
}

/* The copy of blob row id under a new id in thread into (the same body,
 * named once more); every column but id
 * and thread, as schema_sql and step 4 have them. */
static int blob_copy(struct pg_tx *tx, int64_t id, int64_t into,
		     int64_t *new_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, id);
	pg_p_int(&p, into);
#define BLOB_COLS " sha256, body_size, prefix, envelope, bodystructure, body," \
	" parts, preview, sort_subject, sort_from, sort_to, sort_cc,"         \
	" sort_display_from, sort_display_to, sent_date, message_id,"         \
	" in_reply_to, refs, header_text, body_text"
	PGresult *r = pg_exec(tx->c, "INSERT INTO blob (user_id, thread,"
			      BLOB_COLS ") SELECT user_id, $3," BLOB_COLS
			      " FROM blob WHERE user_id = $1 AND id = $2"
			      " RETURNING id", &p, err);
#undef BLOB_COLS
	if (r == NULL)
		return -1;
	int ret = PQntuples(r) == 1 ? 0 : store_set_error(err,
		STORE_ERR_INTERNAL, "A message of the thread is missing");
	if (ret == 0)
		*new_r = pg_int(r, 0, 0);
	PQclear(r);
	if (ret == 0) {
		/* hasAttachment as the old row had it */
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, id);
		pg_p_int(&p, *new_r);
		ret = pg_run(tx->c, "UPDATE jemail SET attach = (SELECT attach"
			     " FROM jemail WHERE user_id = $1 AND id = $2)"
			     " WHERE user_id = $1 AND id = $3", &p, err);
	}
	return ret;
}

/* Thread from joins thread into: each of its messages is copied under a
 * new blob id in into, every copy of it gets a new UID on the new blob
 * (readers' own \Seen kept) and the old one is expunged; the old blob
 * row goes with its last copy, so JMAP sees the old Emails destroyed and
 * new ones created (sqlite/sq-jmap-tx.c sq_jmap_thread_merge). */
static int thread_merge(struct pg_tx *tx, int64_t into, int64_t from,
			struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, from);
	PGresult *r = pg_exec(tx->c, "SELECT b.id, m.mailbox, m.uid FROM blob b"
			      " JOIN msg m ON m.user_id = b.user_id AND"
			      " m.blob = b.id WHERE b.user_id = $1 AND"
			      " b.thread = $2 ORDER BY m.mailbox, b.id, m.uid",
			      &p, err);
	if (r == NULL)
		return -1;
	int n = PQntuples(r), ret = 0;
	/* the new blob of each old one */
	int64_t *olds = xcalloc((size_t)n + 1, sizeof(int64_t));
	int64_t *news = xcalloc((size_t)n + 1, sizeof(int64_t));
	size_t nb = 0;
	for (int i = 0; i < n && ret == 0; i++) {
		int64_t id = pg_int(r, i, 0);
		bool seen = false;
		for (size_t k = 0; k < nb && !seen; k++)
			seen = olds[k] == id;
		if (seen)
			continue;
		olds[nb] = id;
		ret = blob_copy(tx, id, into, &news[nb], err);
		nb++;
	}
	/* per mailbox: the copies on the new blobs, then the old ones go */
	for (int i = 0; i < n && ret == 0;) {
		uint32_t mailbox = (uint32_t)pg_int(r, i, 1);
		int k = i;
		while (k < n && (uint32_t)pg_int(r, k, 1) == mailbox)
			k++;
		size_t cnt = (size_t)(k - i);
		struct store_uid_range *ranges = xcalloc(cnt, sizeof(*ranges));
		for (size_t x = 0; x < cnt; x++)
			ranges[x].lo = ranges[x].hi =
				(uint32_t)pg_int(r, i + (int)x, 2);
		/* rows_get wants the ranges in UID order */
		for (size_t x = 1; x < cnt; x++)
			for (size_t y = x; y > 0 && ranges[y - 1].lo > ranges[y].lo;
			     y--) {
				struct store_uid_range t = ranges[y];
				ranges[y] = ranges[y - 1];
				ranges[y - 1] = t;
			}
		struct row *rows = NULL;
		size_t rn = 0;
		struct pg_mbox md;
		ret = pg_mbox_get(tx->user, tx->c, NULL, mailbox, &md, err) == 1
			      ? 0 : -1;
		if (ret == 0)
			ret = rows_get(tx, mailbox, ranges, cnt, &rows, &rn, err);
		uint32_t *su = xcalloc(rn ? rn : 1, sizeof(uint32_t));
		uint32_t *du = xcalloc(rn ? rn : 1, sizeof(uint32_t));
		for (size_t x = 0; x < rn; x++) {
			su[x] = rows[x].uid;
			for (size_t b = 0; b < nb; b++)
				if (rows[x].blob == olds[b])
					rows[x].blob = news[b];
		}
		if (ret == 0 && (uint64_t)md.uidnext + rn >= UINT32_MAX)
			ret = store_set_error(err, STORE_ERR_LIMIT,
					      "Mailbox is out of UIDs");
		if (ret == 0)
			ret = copy_rows(tx, &md, rows, rn, pg_now(tx->user->store), du,
					err);
		if (ret == 0)
			ret = pg_seen_move(tx, mailbox, su, mailbox, du, rn, err);
		if (ret == 0)
			ret = pg_expunge_uids(tx, mailbox, su, rn, PG_GONE_LOG,
					      err);
		rows_free(rows, rn);
		free(su);
		free(du);
		free(ranges);
		i = k;
	}
	PQclear(r);
	free(olds);
	free(news);
	if (ret == 0) {
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, from);
		pg_p_int(&p, into);
		ret = pg_run(tx->c, "UPDATE thread_ref SET thread = $3"
			     " WHERE user_id = $1 AND thread = $2", &p, err);
	}
	if (ret == 0)
		log_info("store", NULL, "user %lld: thread %lld joined thread"
			 " %lld (%zu messages moved)", (long long)tx->user->id,
			 (long long)from, (long long)into, nb);
	return ret;
}

int pg_copy_one(struct pg_tx *tx, uint32_t src_mailbox, uint32_t uid,
		uint32_t dst_mailbox, const struct store_account_limits *limits,
		struct store_error *err)
{
	struct pg_mbox md;
	struct row *rows = NULL;
	size_t n = 0;
	struct store_uid_range r = {uid, uid};
	int ret = pg_mbox_need(tx->user, tx->c, NULL, dst_mailbox, &md, err);
	if (ret == 0)
		ret = rows_get(tx, src_mailbox, &r, 1, &rows, &n, err);
	if (ret == 0 && n != 1)
		ret = store_set_error(err, STORE_ERR_NOTFOUND,
				      "No such message");
	if (ret == 0 && pg_over_quota(tx, limits, rows[0].size, 1))
		ret = store_set_error(err, STORE_ERR_QUOTA, "Quota exceeded");
	if (ret == 0 && md.uidnext == UINT32_MAX)
		ret = store_set_error(err, STORE_ERR_LIMIT,
				      "Mailbox is out of UIDs");
	uint32_t dst_uid;
	if (ret == 0)
		ret = copy_rows(tx, &md, rows, 1, pg_now(tx->user->store),
				&dst_uid, err);
	rows_free(rows, n);
	return ret;
}

int pg_row_flags_set(struct pg_tx *tx, uint32_t mailbox, uint32_t uid,
		     unsigned flags, const char *keywords,
		     struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mailbox);
	pg_p_int(&p, uid);
	pg_p_int(&p, flags & 0x1f);
	pg_p_str(&p, keywords);
	pg_p_int(&p, (int64_t)pg_tx_modseq(tx));
	int ret = pg_run(tx->c, "UPDATE msg SET flags = $4, keywords = $5,"
			 " modseq = $6 WHERE user_id = $1 AND mailbox = $2"
			 " AND uid = $3", &p, err);
	if (ret == 0)
		ret = keywords_register(tx, mailbox, keywords, err);
	if (ret == 0)
		ret = pg_mbox_touch(tx, mailbox, 0, err);
	pg_tx_change(tx, mailbox, STORE_CHANGE_FLAGS);
	return ret;
}

int pg_copy(struct store_user *user, const char *src,
	    const struct store_uid_range *ranges, size_t range_count,
	    const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	    uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	    struct store_error *err)
{
	struct store_account_limits limits;
	memset(&limits, 0, sizeof(limits));
	if (!move && pg_limits_get(user, &limits, err) < 0)
		return -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_mbox ms, md;
	struct row *rows = NULL;
	size_t n = 0;
	uint32_t *su = NULL, *du = NULL;
	int ret = pg_mbox_need(user, tx.c, src, 0, &ms, err);
	if (ret == 0)
		ret = pg_mbox_need(user, tx.c, dst, 0, &md, err);
	if (ret == 0)
		ret = rows_get(&tx, ms.id, ranges, range_count, &rows, &n, err);
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += rows[i].size;
	if (ret == 0 && !move && pg_over_quota(&tx, &limits, bytes, n))
		ret = store_set_error(err, STORE_ERR_QUOTA, "Quota exceeded");
	if (ret == 0 && n > 0 && (uint64_t)md.uidnext + n >= UINT32_MAX)
		ret = store_set_error(err, STORE_ERR_LIMIT,
				      "Mailbox is out of UIDs");
	su = xcalloc(n ? n : 1, sizeof(uint32_t));
	du = xcalloc(n ? n : 1, sizeof(uint32_t));
	for (size_t i = 0; i < n; i++)
		su[i] = rows[i].uid;
	if (ret == 0)
		ret = copy_rows(&tx, &md, rows, n, pg_now(user->store), du,
				err);
	/* MOVE keeps readers' own \Seen (before the sources go) */
	if (ret == 0 && move)
		ret = pg_seen_move(&tx, ms.id, su, md.id, du, n, err);
	if (ret == 0 && move)
		ret = pg_expunge_uids(&tx, ms.id, su, n, PG_GONE_LOG, err);
	rows_free(rows, n);
	ret = pg_wend(&tx, ret, err);
	if (ret < 0) {
		free(su);
		free(du);
		return -1;
	}
	if (dst_uidvalidity_r != NULL)
		*dst_uidvalidity_r = md.uidvalidity;
	if (src_uids_r != NULL)
		*src_uids_r = su;
	else
		free(su);
	if (dst_uids_r != NULL)
		*dst_uids_r = du;
	else
		free(du);
	if (count_r != NULL)
		*count_r = n;
	return 0;
}

int pg_expunge(struct store_user *user, const char *mailbox,
	       const struct store_uid_range *ranges, size_t range_count,
	       bool force, uint32_t **uids_r, size_t *count_r,
	       struct store_error *err)
{
	unsigned how = PG_GONE_LOG | (pg_deleted_keep(user) ? PG_GONE_KEEP : 0);
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct pg_mbox mb;
	struct row *rows = NULL;
	size_t n = 0, w = 0;
	uint32_t *uids = NULL;
	int ret = pg_mbox_need(user, tx.c, mailbox, 0, &mb, err);
	if (ret == 0)
		ret = rows_get(&tx, mb.id, ranges, range_count, &rows, &n, err);
	uids = xcalloc(n ? n : 1, sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		if (force || (rows[i].flags & STORE_FLAG_DELETED))
			uids[w++] = rows[i].uid;
	}
	rows_free(rows, n);
	if (ret == 0)
		ret = pg_expunge_uids(&tx, mb.id, uids, w, how, err);
	if (ret == 0 && w == 0)
		tx.change_count = 0;
	ret = pg_wend(&tx, ret, err);
	if (ret < 0) {
		free(uids);
		return -1;
	}
	if (uids_r != NULL)
		*uids_r = uids;
	else
		free(uids);
	if (count_r != NULL)
		*count_r = w;
	return 0;
}

/* ---- views, CONDSTORE, QRESYNC ------------------------------------------ */

static int uids_of(PGresult *r, int col, uint32_t **uids_r, size_t *n_r)
{
	size_t n = (size_t)PQntuples(r);
	uint32_t *uids = xcalloc(n ? n : 1, sizeof(uint32_t));
	for (size_t i = 0; i < n; i++)
		uids[i] = (uint32_t)pg_int(r, (int)i, col);
	*uids_r = uids;
	*n_r = n;
	return 0;
}

int pg_view_load(struct store_user *user, const char *mailbox,
		 uint32_t mailbox_id, struct store_mailbox_info *info_r,
		 uint32_t **uids_r, size_t *count_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	int ret = pg_mbox_need(user, c, mailbox, mailbox_id, &mb, err);
	/* a view counts its own \Recent */
	if (ret == 0)
		ret = pg_mbox_info(user, c, mb.id, info_r, true, err);
	PGresult *r = NULL;
	if (ret == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		r = pg_exec(c, "SELECT uid FROM msg WHERE user_id = $1"
			    " AND mailbox = $2 ORDER BY uid", &p, err);
		if (r == NULL) {
			store_mailbox_info_free(info_r);
			ret = -1;
		}
	}
	pg_rend(user, c);
	if (ret < 0)
		return -1;
	uids_of(r, 0, uids_r, count_r);
	PQclear(r);
	return 0;
}

static void split_keywords(char *kw, const char ***list_r, size_t *n_r)
{
	const char **list = xcalloc(kw ? strlen(kw) / 2 + 2 : 1, sizeof(char *));
	size_t n = 0;
	char *save = NULL;
	for (char *k = kw ? strtok_r(kw, " ", &save) : NULL; k != NULL;
	     k = strtok_r(NULL, " ", &save))
		list[n++] = k;
	*list_r = list;
	*n_r = n;
}

/* UIDs expunged after modseq; complete is false when the log does not
 * reach back that far. */
static int expunged_after(struct store_user *user, struct pg_conn *c,
			  uint32_t mailbox_id, uint64_t modseq,
			  uint32_t **uids_r, size_t *n_r, bool *complete_r,
			  struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	pg_p_int(&p, (int64_t)modseq);
	PGresult *r = pg_exec(c, "SELECT expunge_horizon FROM mailbox"
			      " WHERE user_id = $1 AND id = $2 AND $3::bigint >= 0",
			      &p, err);
	if (r == NULL)
		return -1;
	uint64_t horizon = PQntuples(r) ? (uint64_t)pg_int(r, 0, 0) : 0;
	PQclear(r);
	*complete_r = modseq >= horizon;
	r = pg_exec(c, "SELECT uid FROM expunged WHERE user_id = $1"
		    " AND mailbox = $2 AND modseq > $3 ORDER BY uid", &p, err);
	if (r == NULL)
		return -1;
	uids_of(r, 0, uids_r, n_r);
	PQclear(r);
	return 0;
}

int pg_view_delta(struct store_user *user, uint32_t mailbox_id, uint64_t since,
		  struct store_mailbox_info *info_r, uint32_t **expunged_r,
		  size_t *expunged_count_r, bool *complete_r,
		  void (*changed)(void *ctx, const struct store_msg *msg),
		  void *ctx, struct store_error *err)
{
	return pg_view_delta_as(user, mailbox_id, 0, since, info_r, expunged_r,
				expunged_count_r, complete_r, changed, ctx,
				err);
}

int pg_view_delta_as(struct store_user *user, uint32_t mailbox_id,
		     int64_t viewer, uint64_t since,
		     struct store_mailbox_info *info_r, uint32_t **expunged_r,
		     size_t *expunged_count_r, bool *complete_r,
		     void (*changed)(void *ctx, const struct store_msg *msg),
		     void *ctx, struct store_error *err)
{
	*expunged_r = NULL;
	*expunged_count_r = 0;
	*complete_r = true;
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	int ret = pg_mbox_need(user, c, NULL, mailbox_id, &mb, err);
	if (ret == 0)
		ret = pg_mbox_info(user, c, mb.id, info_r, true, err);
	if (ret == 0 && viewer > 0 &&
	    pg_seen_info_in(user, c, mb.id, viewer, info_r, err) < 0) {
		store_mailbox_info_free(info_r);
		ret = -1;
	}
	if (ret < 0 || since >= info_r->highestmodseq) {
		pg_rend(user, c);
		return ret;
	}
	PGresult *r = NULL;
	ret = expunged_after(user, c, mb.id, since, expunged_r,
			     expunged_count_r, complete_r, err);
	if (ret == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, (int64_t)since);
		if (viewer > 0) {
			/* the viewer's own \Seen, and its changes */
			pg_p_int(&p, viewer);
			r = pg_exec(c, "SELECT m.uid, greatest(m.modseq,"
				    " coalesce(p.modseq, 0)), (m.flags & ~1) |"
				    " CASE WHEN p.seen THEN 1 ELSE 0 END,"
				    " m.keywords, m.size, m.internaldate,"
				    " m.savedate, m.blob FROM msg m LEFT JOIN"
				    " seen_pvt p ON p.user_id = m.user_id AND"
				    " p.mailbox = m.mailbox AND p.uid = m.uid AND"
				    " p.viewer = $4 WHERE m.user_id = $1 AND"
				    " m.mailbox = $2 AND m.uid IN (SELECT uid"
				    " FROM msg WHERE user_id = $1 AND mailbox = $2"
				    " AND modseq > $3 UNION SELECT uid FROM"
				    " seen_pvt WHERE user_id = $1 AND viewer = $4"
				    " AND mailbox = $2 AND modseq > $3)"
				    " ORDER BY m.uid", &p, err);
		} else {
			r = pg_exec(c, "SELECT uid, modseq, flags, keywords,"
				    " size, internaldate, savedate, blob FROM msg"
				    " WHERE user_id = $1 AND mailbox = $2 AND"
				    " modseq > $3 ORDER BY uid", &p, err);
		}
		if (r == NULL)
			ret = -1;
	}
	pg_rend(user, c);
	if (ret < 0) {
		free(*expunged_r);
		*expunged_r = NULL;
		*expunged_count_r = 0;
		store_mailbox_info_free(info_r);
		return -1;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_msg m;
		memset(&m, 0, sizeof(m));
		m.uid = (uint32_t)pg_int(r, i, 0);
		m.modseq = (uint64_t)pg_int(r, i, 1);
		m.flags = (unsigned)pg_int(r, i, 2);
		char *kw = pg_strdup(r, i, 3);
		m.size = (uint64_t)pg_int(r, i, 4);
		m.internaldate = (time_t)pg_int(r, i, 5);
		m.savedate = (time_t)pg_int(r, i, 6);
		store_objectid_format(m.emailid, 'M', user->id, pg_int(r, i, 7));
		const char **list;
		split_keywords(kw, &list, &m.keyword_count);
		m.keywords = list;
		changed(ctx, &m);
		free(list);
		free(kw);
	}
	PQclear(r);
	return 0;
}

int pg_first_unseen(struct store_user *user, uint32_t mailbox_id,
		    uint32_t *uid_r, struct store_error *err)
{
	*uid_r = 0;
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, mailbox_id);
	PGresult *r = pg_exec(c, "SELECT min(uid) FROM msg WHERE user_id = $1"
			      " AND mailbox = $2 AND flags & 1 = 0", &p, err);
	pg_conn_put(user->store, c);
	if (r == NULL)
		return -1;
	*uid_r = (uint32_t)pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

static void keep_in_ranges(uint32_t *uids, size_t *n,
			   const struct store_uid_range *ranges,
			   size_t range_count)
{
	size_t w = 0;
	for (size_t i = 0; i < *n; i++) {
		if (store_ranges_contain(ranges, range_count, uids[i]))
			uids[w++] = uids[i];
	}
	*n = w;
}

int pg_changed_since(struct store_user *user, const char *mailbox,
		     uint64_t modseq, const struct store_uid_range *ranges,
		     size_t range_count, uint32_t **uids_r, size_t *count_r,
		     struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	PGresult *r = NULL;
	if (pg_mbox_need(user, c, mailbox, 0, &mb, err) == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_int(&p, (int64_t)modseq);
		r = pg_exec(c, "SELECT uid FROM msg WHERE user_id = $1"
			    " AND mailbox = $2 AND modseq > $3 ORDER BY uid",
			    &p, err);
	}
	pg_rend(user, c);
	if (r == NULL)
		return -1;
	uids_of(r, 0, uids_r, count_r);
	PQclear(r);
	keep_in_ranges(*uids_r, count_r, ranges, range_count);
	return 0;
}

int pg_expunged_since(struct store_user *user, const char *mailbox,
		      uint64_t modseq, const struct store_uid_range *ranges,
		      size_t range_count, uint32_t **uids_r, size_t *count_r,
		      bool *complete_r, struct store_error *err)
{
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL)
		return -1;
	struct pg_mbox mb;
	uint32_t *all = NULL;
	size_t n = 0;
	bool complete = true;
	int ret = pg_mbox_need(user, c, mailbox, 0, &mb, err);
	if (ret == 0)
		ret = expunged_after(user, c, mb.id, modseq, &all, &n,
				     &complete, err);
	if (ret == 0 && !complete) {
		/* every UID below UIDNEXT not in the mailbox may be gone */
		free(all);
		all = NULL;
		n = 0;
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		PGresult *r = pg_exec(c, "SELECT uid FROM msg WHERE user_id = $1"
				      " AND mailbox = $2 ORDER BY uid", &p, err);
		if (r == NULL) {
			ret = -1;
		} else {
			size_t cap = 0;
			uint32_t next = 1;
			int rows = PQntuples(r);
			for (int i = 0; i <= rows; i++) {
				uint32_t upto = i < rows ? (uint32_t)pg_int(r, i, 0)
							 : mb.uidnext;
				for (uint32_t x = next; x < upto; x++) {
					if (!store_ranges_contain(ranges,
							       range_count, x))
						continue;
					if (n == cap) {
						cap = cap ? cap * 2 : 64;
						all = xrealloc(all, cap * sizeof(*all));
					}
					all[n++] = x;
				}
				next = upto + 1;
			}
			PQclear(r);
		}
	} else if (ret == 0) {
		keep_in_ranges(all, &n, ranges, range_count);
	}
	pg_rend(user, c);
	if (ret < 0) {
		free(all);
		return -1;
	}
	*uids_r = all != NULL ? all : xcalloc(1, sizeof(uint32_t));
	*count_r = n;
	*complete_r = complete;
	return 0;
}

/* ---- search ------------------------------------------------------------ */

/* A LIKE pattern that finds the folded needle in loft_text() of a
 * stored text (schema step 4): the needle's bytes as encode(...,
 * 'escape') writes them (a zero byte or one with the high bit set as
 * \ooo, a backslash doubled), with LIKE's \, % and _ escaped, between
 * two %. Every text that holds the needle matches; a match is verified
 * on the bytes. */
static void like_pattern(const char *s, size_t len, struct buf *out)
{
	buf_init(out, 0);
	buf_append_char(out, '%');
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == 0 || ch >= 0x80)
			buf_printf(out, "\\\\%03o", ch);
		else if (ch == '\\')
			buf_append_str(out, "\\\\\\\\");
		else if (ch == '%' || ch == '_')
			buf_printf(out, "\\%c", ch);
		else
			buf_append_char(out, (char)ch);
	}
	buf_append_char(out, '%');
}

void pg_needle_prepare(const char *needle, struct buf *folded,
		       struct buf *like)
{
	/* folded as the stored text is (C0 controls but TAB and LF, and
	 * DEL, are spaces there) */
	buf_init(folded, 0);
	store_text_fold(folded, needle, strlen(needle));
	buf_append(folded, "", 0);   /* never NULL, even when empty */
	for (size_t i = 0; i < folded->len; i++) {
		unsigned char ch = (unsigned char)folded->data[i];
		if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
			folded->data[i] = ' ';
	}
	like_pattern(folded->data, folded->len, like);
}

int pg_search_text(struct store_user *user, const char *mailbox,
		   enum store_text_where where, const char *needle,
		   const struct store_uid_range *ranges, size_t range_count,
		   uint32_t **uids_r, size_t *count_r, struct store_error *err)
{
	struct buf folded, like;
	pg_needle_prepare(needle, &folded, &like);
	struct pg_conn *c = pg_rbegin(user, err);
	if (c == NULL) {
		buf_free(&folded);
		buf_free(&like);
		return -1;
	}
	struct pg_mbox mb;
	PGresult *r = NULL;
	/* planned for this needle: a generic plan of the prepared search
	 * walks the mailbox instead of the trigram index (bench/pgsearch.py) */
	if (pg_cmd(c, "SET LOCAL plan_cache_mode = force_custom_plan",
		   err) == 0 &&
	    pg_mbox_need(user, c, mailbox, 0, &mb, err) == 0) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, user->id);
		pg_p_int(&p, mb.id);
		pg_p_bin(&p, folded.data, folded.len);
		pg_p_str(&p, like.data);
		/* candidates from the trigram indexes (each account's own),
		 * then the exact substring test on the stored folded text */
#define SEARCH_FROM "SELECT m.uid FROM msg m JOIN blob b ON b.user_id ="  \
	" m.user_id AND b.id = m.blob WHERE m.user_id = $1 AND m.mailbox = $2"
#define SEARCH_BODY "(loft_text(b.body_text) LIKE $4 AND"                 \
	" position($3::bytea in b.body_text) > 0)"
#define SEARCH_HEADER "(loft_text(b.header_text) LIKE $4 AND"             \
	" position($3::bytea in b.header_text) > 0)"
		if (where == STORE_TEXT_BODY)
			r = pg_exec(c, SEARCH_FROM " AND " SEARCH_BODY
				    " ORDER BY m.uid", &p, err);
		else if (where == STORE_TEXT_HEADER)
			r = pg_exec(c, SEARCH_FROM " AND " SEARCH_HEADER
				    " ORDER BY m.uid", &p, err);
		else
			r = pg_exec(c, SEARCH_FROM " AND (" SEARCH_BODY " OR "
				    SEARCH_HEADER ") ORDER BY m.uid", &p, err);
#undef SEARCH_FROM
#undef SEARCH_BODY
#undef SEARCH_HEADER
	}
	pg_rend(user, c);
	buf_free(&folded);
	buf_free(&like);
	if (r == NULL)
		return -1;
	uids_of(r, 0, uids_r, count_r);
	PQclear(r);
	keep_in_ranges(*uids_r, count_r, ranges, range_count);
	return 0;
}

/* ---- POP3 ------------------------------------------------------------------- */

int pg_pop3_retrieved(struct store_user *user, uint32_t uid, time_t now,
		      struct store_error *err)
{
	now = pg_db_time(user->store, now);
	struct pg_conn *c = pg_conn_get(user->store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_int(&p, uid);
	pg_p_int(&p, (int64_t)now);
	int ret = pg_run(c, "UPDATE msg SET pop3_first_retr = $3"
			 " WHERE user_id = $1 AND uid = $2 AND pop3_first_retr = 0"
			 " AND mailbox = (SELECT id FROM mailbox WHERE user_id = $1"
			 " AND name = 'INBOX')", &p, err);
	pg_conn_put(user->store, c);
	return ret;
}

/* The hidden mark is read only by POP3: it takes no modseq. */
int pg_pop3_hide(struct store_user *user, const uint32_t *uids, size_t count,
		 size_t *hidden_r, struct store_error *err)
{
	if (hidden_r != NULL)
		*hidden_r = 0;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	struct buf arr;
	pg_uid_array(&arr, uids, count);
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user->id);
	pg_p_str(&p, arr.data);
	PGresult *r = pg_exec(tx.c, "UPDATE msg SET pop3_hidden = true"
			      " WHERE user_id = $1 AND uid = ANY ($2::bigint[])"
			      " AND NOT pop3_hidden AND mailbox = (SELECT id FROM"
			      " mailbox WHERE user_id = $1 AND name = 'INBOX')",
			      &p, err);
	buf_free(&arr);
	if (r != NULL && hidden_r != NULL)
		*hidden_r = (size_t)atoll(PQcmdTuples(r));
	int ret = r != NULL ? 0 : -1;
	PQclear(r);
	return pg_wend(&tx, ret, err);
}

/* ---- retention ------------------------------------------------------------ */

#define PG_EXPUNGE_LOG_DAYS 45

static int special_mbox(struct pg_tx *tx, unsigned special_use,
			struct pg_mbox *mb_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, special_use);
	PGresult *r = pg_exec(tx->c, "SELECT id FROM mailbox WHERE user_id = $1"
			      " AND special_use & $2 <> 0 AND NOT noselect"
			      " ORDER BY id LIMIT 1", &p, err);
	if (r == NULL)
		return -1;
	int found = PQntuples(r) == 1;
	uint32_t id = found ? (uint32_t)pg_int(r, 0, 0) : 0;
	PQclear(r);
	return found ? pg_mbox_get(tx->user, tx->c, NULL, id, mb_r, err) : 0;
}

/* Expunges the messages of a special mailbox saved before the cutoff. */
static int expire_special(struct pg_tx *tx, unsigned special_use,
			  uint32_t days, time_t now, unsigned how,
			  uint32_t *count_r, struct store_error *err)
{
	struct pg_mbox mb;
	if (days == 0)
		return 0;
	int r = special_mbox(tx, special_use, &mb, err);
	if (r <= 0)
		return r;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, mb.id);
	pg_p_int(&p, (int64_t)(now - (time_t)days * 86400));
	PGresult *res = pg_exec(tx->c, "SELECT uid FROM msg WHERE user_id = $1"
				" AND mailbox = $2 AND savedate < $3 ORDER BY uid",
				&p, err);
	if (res == NULL)
		return -1;
	uint32_t *uids;
	size_t n;
	uids_of(res, 0, &uids, &n);
	PQclear(res);
	int ret = pg_expunge_uids(tx, mb.id, uids, n, how, err);
	free(uids);
	*count_r += (uint32_t)n;
	return ret;
}

static int expire_pop3(struct pg_tx *tx,
		       const struct store_retention_policy *pol, time_t now,
		       unsigned how, struct store_retention_report *rep,
		       struct store_error *err)
{
	if (pol->pop3_retention_days == 0)
		return 0;
	struct pg_mbox inbox, trash;
	struct row *rows;
	size_t n, w = 0;
	if (pg_mbox_need(tx->user, tx->c, "INBOX", 0, &inbox, err) < 0 ||
	    rows_get(tx, inbox.id, NULL, 0, &rows, &n, err) < 0)
		return -1;
	time_t cutoff = now - (time_t)pol->pop3_retention_days * 86400;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].pop3_first_retr != 0 &&
		    rows[i].pop3_first_retr < cutoff && !rows[i].pop3_hidden) {
			struct row t = rows[w];
			rows[w++] = rows[i];
			rows[i] = t;
		}
	}
	int ret = 0, mode = pol->pop3_delete;
	if (w > 0 && mode == STORE_POP3_AUTO) {
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		PGresult *r = pg_exec(tx->c, "SELECT sync_login FROM account"
				      " WHERE user_id = $1", &p, err);
		if (r == NULL)
			ret = -1;
		else
			mode = store_sync_active((time_t)pg_int(r, 0, 0), now)
				       ? STORE_POP3_HIDE : STORE_POP3_TRASH;
		PQclear(r);
	}
	uint32_t *uids = xcalloc(w ? w : 1, sizeof(uint32_t));
	for (size_t i = 0; i < w; i++)
		uids[i] = rows[i].uid;
	if (ret < 0 || w == 0) {
		/* nothing, or the error is set */
	} else if (mode == STORE_POP3_HIDE) {
		struct buf arr;
		pg_uid_array(&arr, uids, w);
		struct pg_params p;
		pg_p_init(&p);
		pg_p_int(&p, tx->user->id);
		pg_p_int(&p, inbox.id);
		pg_p_str(&p, arr.data);
		ret = pg_run(tx->c, "UPDATE msg SET pop3_hidden = true WHERE"
			     " user_id = $1 AND mailbox = $2 AND"
			     " uid = ANY ($3::bigint[])", &p, err);
		buf_free(&arr);
	} else {
		int r = mode == STORE_POP3_TRASH
				? special_mbox(tx, STORE_SPECIAL_TRASH, &trash, err)
				: 0;
		if (r < 0)
			ret = -1;
		if (ret == 0 && r > 0 && trash.id != inbox.id) {
			uint32_t *dst = xcalloc(w, sizeof(uint32_t));
			ret = copy_rows(tx, &trash, rows, w, now, dst, err);
			free(dst);
			how = PG_GONE_LOG;   /* moved to Trash: nothing kept */
		}
		if (ret == 0)
			ret = pg_expunge_uids(tx, inbox.id, uids, w, how, err);
	}
	if (ret == 0)
		rep->pop3_removed += (uint32_t)w;
	free(uids);
	rows_free(rows, n);
	return ret;
}

/* Drops expunge log entries past their keeping time; the mailbox's
 * horizon says older resyncs can no longer be incremental. */
static int prune_expunge_log(struct pg_tx *tx, time_t now,
			     struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, tx->user->id);
	pg_p_int(&p, (int64_t)(now - (time_t)PG_EXPUNGE_LOG_DAYS * 86400));
	if (pg_run(tx->c, "UPDATE mailbox m SET expunge_horizon ="
		   " greatest(m.expunge_horizon, e.top) FROM (SELECT mailbox,"
		   " max(modseq) AS top FROM expunged WHERE user_id = $1"
		   " AND time < $2 GROUP BY mailbox) e WHERE m.user_id = $1"
		   " AND m.id = e.mailbox", &p, err) < 0)
		return -1;
	return pg_run(tx->c, "DELETE FROM expunged WHERE user_id = $1"
		      " AND time < $2", &p, err);
}

int pg_retention_run(struct store_user *user,
		     const struct store_retention_policy *pol, time_t now,
		     struct store_retention_report *report_r,
		     struct store_error *err)
{
	struct store_retention_report rep;
	memset(&rep, 0, sizeof(rep));
	memset(report_r, 0, sizeof(*report_r));
	/* in the database's clock: node clocks apart do not matter */
	now = pg_db_time(user->store, now);
	unsigned how = PG_GONE_LOG | (pg_deleted_keep(user) ? PG_GONE_KEEP : 0);
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0)
		return -1;
	int ret = expire_pop3(&tx, pol, now, how, &rep, err);
	if (ret == 0)
		ret = expire_special(&tx, STORE_SPECIAL_TRASH,
				     pol->trash_retention_days, now, how,
				     &rep.trash_expunged, err);
	if (ret == 0)
		ret = expire_special(&tx, STORE_SPECIAL_JUNK,
				     pol->junk_retention_days, now, how,
				     &rep.junk_expunged, err);
	/* kept for undelete past the period (0: none kept) */
	time_t before = pol->deleted_retention_days == 0 ? now + 1
		: now - (time_t)pol->deleted_retention_days * 86400;
	if (ret == 0)
		ret = pg_deleted_purge(&tx, before, &rep.deleted_purged, err);
	if (ret == 0)
		ret = prune_expunge_log(&tx, pg_now(user->store), err);
	if (pg_wend(&tx, ret, err) < 0)
		return -1;
	*report_r = rep;
	return 0;
}
