/*
 * loftctl migrate-store (issue 18, "Moving between backends"): one
 * account from one side of a store with both backends to the other
 * (store-route.c), through the export stream and the import calls that
 * backup and restore use (store-migrate.c). See store.h
 * store_move_account for the order of things and what a kill leaves;
 * "two phases" below for the copy while the account is served on.
 */
#include "store-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "log.h"
#include "testpause.h"

#define BATCH_MESSAGES 64
#define BATCH_BYTES (8u << 20)
/* catch-up copies while served on, until one brings at most ENOUGH */
#define CATCHUP_ROUNDS 4
#define CATCHUP_ENOUGH 16

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Emails (their n) and their bodies' SHA-256: a copy in a second
 * mailbox is the same Email (imported without a body), and the check
 * compares the bytes by hash. */
struct email_map {
	int64_t *ids;
	unsigned char (*sha)[32];
	size_t cap, count;
};

static size_t em_slot(const struct email_map *m, int64_t id)
{
	size_t i = (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
	while (m->ids[i] != 0 && m->ids[i] != id)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static unsigned char *em_get(const struct email_map *m, int64_t id)
{
	if (m->cap == 0)
		return NULL;
	size_t i = em_slot(m, id);
	return m->ids[i] == id ? m->sha[i] : NULL;
}

static void em_put(struct email_map *m, int64_t id, const unsigned char *sha)
{
	if ((m->count + 1) * 2 > m->cap) {
		struct email_map n = {0};
		n.cap = m->cap ? m->cap * 2 : 1024;
		n.ids = xcalloc(n.cap, sizeof(*n.ids));
		n.sha = xcalloc(n.cap, sizeof(*n.sha));
		for (size_t i = 0; i < m->cap; i++) {
			if (m->ids[i] == 0)
				continue;
			size_t j = em_slot(&n, m->ids[i]);
			n.ids[j] = m->ids[i];
			memcpy(n.sha[j], m->sha[i], 32);
		}
		n.count = m->count;
		free(m->ids);
		free(m->sha);
		*m = n;
	}
	size_t i = em_slot(m, id);
	if (m->ids[i] == 0)
		m->count++;
	m->ids[i] = id;
	memcpy(m->sha[i], sha, 32);
}

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;
	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

/* ---- copy ------------------------------------------------------------ */

/* A folder's messages as appended (the modseq each got) and the
 * source's, and its expunge log: store_import_exact's input. */
struct folder_exact {
	struct store_import_exact_msg *msgs;
	size_t count, cap;
	struct store_expunged_range *expunged;
	size_t expunged_count;
	uint64_t horizon;
};

struct batch {
	struct store_import_item items[BATCH_MESSAGES];
	char *kw[BATCH_MESSAGES];     /* the keywords' storage */
	const char **kwv[BATCH_MESSAGES];
	struct folder_exact *fx;      /* the folder's, for item.modseq */
	size_t fx_index[BATCH_MESSAGES];
	size_t count, bytes;
};

static int batch_flush(struct store_user *dst, struct batch *b,
		       struct store_error *err)
{
	int ret = 0;
	if (b->count > 0)
		store_import_append_batch(dst, b->items, b->count);
	for (size_t i = 0; i < b->count; i++) {
		struct store_import_item *it = &b->items[i];
		if (it->ret < 0 && ret == 0) {
			*err = it->err;
			ret = -1;
		}
		if (it->ret == 0)
			b->fx->msgs[b->fx_index[i]].got = it->modseq;
		store_body_unref(&it->body);
		free((char *)it->mailbox);
		free((char *)it->p.pop3_uidl);
		free(b->kwv[i]);
		free(b->kw[i]);
	}
	b->count = 0;
	b->bytes = 0;
	return ret;
}

static int batch_add(struct store_user *dst, struct batch *b,
		     const char *mailbox, const struct store_export_msg *msg,
		     struct store_body *body, struct store_error *err)
{
	struct store_import_item *it = &b->items[b->count];
	memset(it, 0, sizeof(*it));
	it->mailbox = xstrdup(mailbox);
	it->body = body;
	/* keywords copied: the export's are valid until its next call */
	size_t total = 0;
	for (size_t k = 0; k < msg->keyword_count; k++)
		total += strlen(msg->keywords[k]) + 1;
	char *kw = xmalloc(total + 1);
	const char **kwv = xcalloc(msg->keyword_count + 1, sizeof(*kwv));
	char *p = kw;
	for (size_t k = 0; k < msg->keyword_count; k++) {
		size_t n = strlen(msg->keywords[k]) + 1;
		memcpy(p, msg->keywords[k], n);
		kwv[k] = p;
		p += n;
	}
	b->kw[b->count] = kw;
	b->kwv[b->count] = kwv;
	it->p.append.flags = msg->flags;
	it->p.append.keywords = kwv;
	it->p.append.keyword_count = msg->keyword_count;
	it->p.append.internaldate = msg->internaldate;
	it->p.uid = msg->uid;
	it->p.modseq = msg->modseq;
	it->p.email = msg->email;
	it->p.thread = msg->thread;
	it->p.savedate = msg->savedate;
	it->p.pop3_uidl = msg->pop3_uidl ? xstrdup(msg->pop3_uidl) : NULL;
	it->p.pop3_hidden = msg->pop3_hidden;
	it->p.pop3_first_retr = msg->pop3_first_retr;
	/* the target serves no one until the flip */
	it->p.modseq_below = true;
	struct folder_exact *fx = b->fx;
	if (fx->count == fx->cap) {
		fx->cap = fx->cap ? fx->cap * 2 : 64;
		fx->msgs = xrealloc(fx->msgs, fx->cap * sizeof(*fx->msgs));
	}
	fx->msgs[fx->count] = (struct store_import_exact_msg){
		msg->uid, 0, msg->modseq};
	b->fx_index[b->count] = fx->count++;
	b->count++;
	b->bytes += msg->size;
	if (b->count == BATCH_MESSAGES || b->bytes >= BATCH_BYTES)
		return batch_flush(dst, b, err);
	return 0;
}

/* A body on dst's side, its bytes exactly as the source keeps them. */
static int body_copy(struct store_user *dst, const struct store_blob *blob,
		     struct store_body **body_r, struct store_error *err)
{
	struct store *side = dst->store;
	struct store_body *b;
	if (side->vf->body_create(side, &b, err) < 0)
		return -1;
	if (side->vf->body_set_binary != NULL)
		side->vf->body_set_binary(b);
	if (side->vf->body_write(b, blob->data, blob->len, err) < 0 ||
	    side->vf->body_finish(b, err) < 0) {
		side->vf->body_unref(b);
		return -1;
	}
	*body_r = b;
	return 0;
}

static bool name_in(const char *name, char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static int seen_cmp(const void *a, const void *b)
{
	const struct store_export_seen *x = a, *y = b;
	if (x->viewer != y->viewer)
		return x->viewer < y->viewer ? -1 : 1;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* rows (sorted) set or cleared at the target, one call per reader. */
static int seen_apply(struct store_user *dst, const char *mailbox,
		      const struct store_export_seen *rows, size_t n,
		      bool seen, struct store_error *err)
{
	int ret = 0;
	struct store_uid_range *r = xcalloc(n + 1, sizeof(*r));
	for (size_t i = 0; i < n && ret == 0;) {
		size_t j = i, rc = 0;
		for (; j < n && rows[j].viewer == rows[i].viewer; j++) {
			if (rc > 0 && r[rc - 1].hi + 1 == rows[j].uid)
				r[rc - 1].hi = rows[j].uid;
			else
				r[rc++] = (struct store_uid_range){rows[j].uid,
								   rows[j].uid};
		}
		ret = store_import_seen_set(dst, mailbox, rows[i].viewer, r, rc,
					    seen, err);
		if (ret < 0 && err->kind == STORE_ERR_PERM)
			ret = 0;   /* a backend without per-user \Seen */
		i = j;
	}
	free(r);
	return ret;
}

/* A folder's readers' own \Seen in exp (sorted); *n_r 0 for b NULL. */
static int seen_rows(struct store_export *exp,
		     const struct store_mailbox_info *mb,
		     struct store_export_seen **rows_r, size_t *n_r,
		     struct store_error *err)
{
	*rows_r = NULL;
	*n_r = 0;
	if (mb == NULL)
		return 0;
	if (store_export_seen(exp, mb->id, rows_r, n_r, err) < 0)
		return -1;
	if (*n_r > 1)
		qsort(*rows_r, *n_r, sizeof(**rows_r), seen_cmp);
	return 0;
}

/* Readers' own \Seen of folder a (se) as the source has it at the
 * target, whose folder b (de) has what it has (b NULL: none yet): set
 * where the target lacks it, cleared where the source has none. A
 * reader's change moves no modseq of the owner's folder, so the delta
 * looks at every folder (one read of each side's rows). */
static int seen_sync(struct store_export *se, struct store_export *de,
		     struct store_user *dst, const struct store_mailbox_info *a,
		     const struct store_mailbox_info *b, uint64_t *changes,
		     struct store_error *err)
{
	struct store_export_seen *sa, *sb;
	size_t na, nb;
	if (seen_rows(se, a, &sa, &na, err) < 0)
		return -1;
	if (seen_rows(de, b, &sb, &nb, err) < 0) {
		free(sa);
		return -1;
	}
	struct store_export_seen *set = xcalloc(na + 1, sizeof(*set)),
				 *clr = xcalloc(nb + 1, sizeof(*clr));
	size_t ns = 0, nc = 0;
	for (size_t i = 0, j = 0; i < na || j < nb;) {
		int c = i == na ? 1 : j == nb ? -1 : seen_cmp(&sa[i], &sb[j]);
		if (c < 0)
			set[ns++] = sa[i++];
		else if (c > 0)
			clr[nc++] = sb[j++];
		else
			i++, j++;
	}
	int ret = seen_apply(dst, a->name, clr, nc, false, err);
	if (ret == 0)
		ret = seen_apply(dst, a->name, set, ns, true, err);
	if (changes != NULL)
		*changes += ns + nc;
	free(set);
	free(clr);
	free(sa);
	free(sb);
	return ret;
}

/* The last IMAP login (pop3_delete = auto hides while it is recent),
 * which the target would otherwise start without: POP3 DELE would trash
 * until the next IMAP login. Kept to the hour, as both backends keep
 * it; *changes (may be NULL) counts a write. */
static int copy_sync_login(struct store_user *src, struct store_user *dst,
			   uint64_t *changes, struct store_error *err)
{
	time_t a = 0, b = 0;
	if (store_last_sync_login(src, &a, err) < 0 ||
	    store_last_sync_login(dst, &b, err) < 0)
		return -1;
	if (a <= b)
		return 0;
	if (changes != NULL)
		(*changes)++;
	return store_note_sync_login(dst, a, err);
}

/* A folder's \Seen mode (loftctl mailbox set seen=) as the source's;
 * *changed_r when it was set. The setting raises every message's modseq
 * in the folder: the copy sets it while the folder is empty, the delta
 * before its exact step. */
static int copy_seen_mode(struct store_user *src, struct store_user *dst,
			  const char *name, bool *changed_r,
			  struct store_error *err)
{
	enum store_seen_mode a, b;
	*changed_r = false;
	if (store_mailbox_seen_mode(src, name, &a, err) < 0 ||
	    store_mailbox_seen_mode(dst, name, &b, err) < 0)
		return -1;
	if (a == b)
		return 0;
	*changed_r = true;
	return store_mailbox_set_seen_mode(dst, name, a, err);
}

/* The index of the selectable folder name in info (SIZE_MAX: none). */
static size_t mailbox_index(const struct store_export_info *info,
			    const char *name)
{
	for (size_t i = 0; info != NULL && i < info->mailbox_count; i++)
		if (!info->mailboxes[i].noselect &&
		    strcmp(info->mailboxes[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

/* Each folder's JMAP sortOrder (Mailbox/set) as the source's: the
 * source's folders whose order changed are marked in changed (may be
 * NULL), *changes counts them (may be NULL). */
static int sync_sort_order(struct store_user *src, struct store_user *dst,
			   const struct store_export_info *si, bool *changed,
			   uint64_t *changes, struct store_error *err)
{
	struct store_jmap_mailbox *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	if (store_jmap_mailboxes(src, &a, &na, err) < 0)
		return -1;
	if (store_jmap_mailboxes(dst, &b, &nb, err) < 0) {
		store_jmap_mailboxes_free(a, na);
		return -1;
	}
	int ret = 0;
	for (size_t j = 0; j < nb && ret == 0; j++) {
		for (size_t i = 0; i < na; i++) {
			if (strcmp(a[i].info.name, b[j].info.name) != 0)
				continue;
			if (a[i].sort_order != b[j].sort_order) {
				ret = store_jmap_mailbox_update(
					dst, b[j].info.id, &a[i].sort_order,
					NULL, err);
				size_t k = mailbox_index(si, a[i].info.name);
				if (k != SIZE_MAX && changed != NULL)
					changed[k] = true;
				if (changes != NULL)
					(*changes)++;
			}
			break;
		}
	}
	store_jmap_mailboxes_free(a, na);
	store_jmap_mailboxes_free(b, nb);
	return ret;
}

/* Each folder's role (SPECIAL-USE, JMAP role) as the source's: those
 * that lose theirs first, one mailbox per role. A folder the target made
 * with a role (an account's Archive, Sent, ...) keeps it when the source
 * moved the role elsewhere, which import_mailbox cannot undo. The
 * source's folders whose role changed are marked in changed (may be
 * NULL); *changes counts them. */
static int sync_roles(struct store_user *dst,
		      const struct store_export_info *si, bool *changed,
		      uint64_t *changes, struct store_error *err)
{
	struct store_mailbox_info *list = NULL;
	size_t n = 0;
	if (store_mailbox_list(dst, &list, &n, err) < 0)
		return -1;
	int ret = 0;
	for (int pass = 0; pass < 2 && ret == 0; pass++) {
		for (size_t i = 0; i < n && ret == 0; i++) {
			const struct store_mailbox_info *b = &list[i];
			if (b->noselect)
				continue;
			size_t k = mailbox_index(si, b->name);
			unsigned want = k != SIZE_MAX
				? si->mailboxes[k].special_use : 0;
			if (want == b->special_use ||
			    (pass == 0 && b->special_use == 0) ||
			    (pass == 1 && want == 0))
				continue;
			unsigned su = pass == 0 ? 0 : want;
			ret = store_jmap_mailbox_update(dst, b->id, NULL, &su,
							err);
			if (k != SIZE_MAX && changed != NULL)
				changed[k] = true;
			if (changes != NULL && (pass == 1 || want == 0))
				(*changes)++;
		}
	}
	store_mailbox_list_free(list, n);
	return ret;
}

static int copy_sieve(struct store_user *src, struct store_user *dst,
		      struct store_error *err)
{
	struct store_sieve_script *list = NULL;
	size_t n = 0;
	if (store_sieve_list(src, &list, &n, err) < 0)
		return -1;
	int ret = 0;
	const char *active = NULL;
	for (size_t i = 0; i < n && ret == 0; i++) {
		char *source = NULL;
		size_t len = 0, ilen = 0;
		void *image = NULL;
		ret = store_sieve_get(src, list[i].name, &source, &len, &image,
				      &ilen, NULL, err);
		if (ret == 0)
			ret = store_sieve_put(dst, list[i].name, source, len,
					      image, ilen, err);
		if (list[i].active)
			active = list[i].name;
		free(source);
		free(image);
	}
	if (ret == 0 && active != NULL)
		ret = store_sieve_activate(dst, active, err);
	store_sieve_list_free(list, n);
	return ret;
}

static int copy_acl(struct store_user *src, struct store_user *dst,
		    struct store_error *err)
{
	struct store_acl_row *rows = NULL;
	size_t n = 0;
	if (store_acl_all(src, &rows, &n, err) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = store_acl_set(dst, rows[i].mailbox, &rows[i].entry, 0, 0,
				    err);
	store_acl_all_free(rows, n);
	return ret;
}

/* The body of Email email made on dst's side, read from exp, its
 * SHA-256 kept for the check; *body_r NULL when the move made it already
 * (another copy of the same Email). */
static int body_once(struct store_export *exp, struct store_user *dst,
		     struct email_map *emails, int64_t email,
		     struct store_move_report *rep, struct store_body **body_r,
		     struct store_error *err)
{
	*body_r = NULL;
	if (em_get(emails, email) != NULL)
		return 0;
	struct store_blob blob;
	if (store_export_body(exp, email, &blob, err) < 0)
		return -1;
	unsigned char sha[32];
	sha256(blob.data, blob.len, sha);
	em_put(emails, email, sha);
	rep->bytes += blob.len;
	int ret = body_copy(dst, &blob, body_r, err);
	store_blob_close(&blob);
	return ret;
}

/* One of undelete's kept messages, with its removal time (the retention
 * period runs on), its Email and thread: a body the move copied already
 * (a live copy of the same Email) is named, not copied again. */
static int kept_put(struct store_export *exp, struct store_user *dst,
		    struct email_map *emails, struct store_move_report *rep,
		    const struct store_export_kept *k, bool force,
		    struct store_error *err)
{
	struct store_body *body = NULL;
	if (force) {
		/* the bytes given whether or not the target has the Email */
		struct store_blob blob;
		if (store_export_body(exp, k->email, &blob, err) < 0)
			return -1;
		unsigned char sha[32];
		sha256(blob.data, blob.len, sha);
		em_put(emails, k->email, sha);
		rep->bytes += blob.len;
		int r = body_copy(dst, &blob, &body, err);
		store_blob_close(&blob);
		if (r < 0)
			return -1;
	} else if (body_once(exp, dst, emails, k->email, rep, &body,
			     err) < 0) {
		return -1;
	}
	struct store_import_kept ik = {
		.mailbox = k->mailbox,
		.uid = k->uid,
		.flags = k->flags,
		.keywords = k->keywords,
		.internaldate = k->internaldate,
		.savedate = k->savedate,
		.deleted_at = k->deleted_at,
		.email = k->email,
		.thread = k->thread,
	};
	int ret = store_import_kept(dst, &ik, body, err);
	store_body_unref(&body);
	return ret;
}

static int copy_kept(struct store_export *exp, struct store_user *dst,
		     struct email_map *emails, struct store_move_report *rep,
		     struct store_error *err)
{
	struct store_export_kept *v = NULL;
	size_t n = 0;
	if (store_export_kept(exp, &v, &n, err) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = kept_put(exp, dst, emails, rep, &v[i], false, err);
	store_export_kept_free(v, n);
	return ret;
}

/* A folder's UIDNEXT as the source's: restore's last step for a folder,
 * before the counter and the modseqs (docs/backup.md). */
static int set_uidnext(struct store_user *dst,
		       const struct store_mailbox_info *mb,
		       struct store_error *err)
{
	struct store_import_mailbox after = {
		.name = mb->name,
		.uidvalidity = mb->uidvalidity,
		.uidnext = mb->uidnext,
	};
	return store_import_mailbox(dst, &after, NULL, err);
}

/* The account's extras (annotations, URLAUTH keys, Sieve's records, JMAP
 * objects) from exp into dst; *skipped counts those that found no folder
 * at the target. */
static int copy_extra(struct store_export *exp, struct store_user *dst,
		      size_t *skipped, struct store_error *err)
{
	struct store_account_extra x;
	int ret = store_export_extra(exp, &x, err);
	if (ret == 0)
		ret = store_import_extra(dst, &x, skipped, err);
	store_account_extra_free(&x);
	return ret;
}

static int copy_account(struct store_user *src, struct store_user *dst,
			struct email_map *emails,
			struct store_move_report *rep, uint64_t *modseq_r,
			struct store_error *err)
{
	struct store_export *exp;
	if (store_export_begin(src, &exp, err) < 0)
		return -1;
	const struct store_export_info *info = store_export_info(exp);
	*modseq_r = info->modseq;
	struct batch *b = xcalloc(1, sizeof(*b));
	struct folder_exact *fxs = xcalloc(info->mailbox_count + 1,
					   sizeof(*fxs));
	int ret = 0;
	for (size_t i = 0; i < info->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &info->mailboxes[i];
		if (mb->noselect)
			continue;
		struct store_import_mailbox spec = {
			.name = mb->name,
			.uidvalidity = mb->uidvalidity,
			.objectid = mb->objectid[0] ? mb->objectid : NULL,
			.special_use = mb->special_use,
			.subscribe = mb->subscribed ||
				     name_in(mb->name, info->subscriptions,
					     info->subscription_count),
		};
		struct store_mailbox_info have;
		if (store_import_mailbox(dst, &spec, &have, err) < 0) {
			ret = -1;
			break;
		}
		bool kept = have.uidvalidity == mb->uidvalidity;
		store_mailbox_info_free(&have);
		if (!kept) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: the target did not keep "
					      "UIDVALIDITY", mb->name);
			break;
		}
		bool mode;
		if (copy_seen_mode(src, dst, mb->name, &mode, err) < 0) {
			ret = -1;
			break;
		}
		rep->mailboxes++;
		b->fx = &fxs[i];
		if ((ret = store_export_expunged(exp, mb->id, &fxs[i].expunged,
						 &fxs[i].expunged_count,
						 &fxs[i].horizon, err)) < 0 ||
		    (ret = store_export_messages(exp, mb->id, err)) < 0)
			break;
		const struct store_export_msg *msg;
		int r;
		while (ret == 0 && (r = store_export_next(exp, &msg, err)) > 0) {
			struct store_body *body;
			if (body_once(exp, dst, emails, msg->email, rep, &body,
				      err) < 0) {
				ret = -1;
				break;
			}
			rep->messages++;
			ret = batch_add(dst, b, mb->name, msg, body, err);
		}
		if (ret == 0 && r < 0)
			ret = -1;
		if (batch_flush(dst, b, ret == 0 ? err : &(struct store_error){0})
		    < 0 && ret == 0)
			ret = -1;
		if (ret == 0)
			ret = seen_sync(exp, NULL, dst, mb, NULL, NULL, err);
	}
	free(b);
	/* subscriptions to names that do not exist (LSUB keeps them) */
	for (size_t i = 0; i < info->subscription_count && ret == 0; i++) {
		struct store_error e;
		(void)store_mailbox_subscribe(dst, info->subscriptions[i], true,
					      &e);
	}
	if (ret == 0)
		ret = copy_sieve(src, dst, err);
	if (ret == 0)
		ret = copy_acl(src, dst, err);
	if (ret == 0)
		ret = sync_roles(dst, info, NULL, NULL, err);
	if (ret == 0)
		ret = sync_sort_order(src, dst, info, NULL, NULL, err);
	if (ret == 0)
		ret = copy_sync_login(src, dst, NULL, err);
	/* restore's last steps (docs/backup.md): each folder's UIDNEXT, the
	 * counter at least the source's, then in one commit per folder the
	 * source's modseqs, expunge log and HIGHESTMODSEQ */
	for (size_t i = 0; i < info->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &info->mailboxes[i];
		if (!mb->noselect)
			ret = set_uidnext(dst, mb, err);
	}
	if (ret == 0)
		ret = store_modseq_raise(dst, info->modseq, err);
	if (ret == 0) {
		size_t skipped = 0;
		ret = copy_extra(exp, dst, &skipped, err);
		if (ret == 0 && skipped > 0)
			ret = store_set_error(err, STORE_ERR_INTERNAL, "%zu "
					      "annotations or keys found no "
					      "folder at the target", skipped);
	}
	if (ret == 0)
		ret = copy_kept(exp, dst, emails, rep, err);
	for (size_t i = 0; i < info->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &info->mailboxes[i];
		if (mb->noselect)
			continue;
		struct store_import_exact x = {
			.name = mb->name,
			.uidvalidity = mb->uidvalidity,
			.highestmodseq = mb->highestmodseq,
			.expunge_horizon = fxs[i].horizon,
			.jmap_horizon = info->modseq,
			.msgs = fxs[i].msgs,
			.msg_count = fxs[i].count,
			.expunged = fxs[i].expunged,
			.expunged_count = fxs[i].expunged_count,
		};
		ret = store_import_exact(dst, &x, err);
	}
	for (size_t i = 0; i < info->mailbox_count; i++) {
		free(fxs[i].msgs);
		free(fxs[i].expunged);
	}
	free(fxs);
	store_export_end(&exp);
	return ret;
}

/* ---- check ------------------------------------------------------------ */

struct msg_row {
	uint32_t uid;
	uint64_t modseq;
	unsigned flags;
	char *keywords;      /* sorted, space separated */
	time_t internaldate;
	uint64_t size;
	int64_t email, thread;
	bool pop3_hidden;
	time_t pop3_first_retr;
};

static int kwcmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *kw_join(const struct store_export_msg *m)
{
	const char **v = xcalloc(m->keyword_count + 1, sizeof(*v));
	if (m->keyword_count > 0) {
		memcpy(v, m->keywords, m->keyword_count * sizeof(*v));
		qsort(v, m->keyword_count, sizeof(*v), kwcmp);
	}
	struct buf out;
	buf_init(&out, 0);
	for (size_t i = 0; i < m->keyword_count; i++)
		buf_printf(&out, "%s%s", i ? " " : "", v[i]);
	free(v);
	buf_append_char(&out, '\0');
	return out.data;
}

static int read_rows(struct store_export *exp, uint32_t mailbox_id,
		     struct msg_row **rows_r, size_t *n_r,
		     struct store_error *err)
{
	*rows_r = NULL;
	*n_r = 0;
	if (store_export_messages(exp, mailbox_id, err) < 0)
		return -1;
	const struct store_export_msg *m;
	int r;
	size_t cap = 0;
	while ((r = store_export_next(exp, &m, err)) > 0) {
		if (*n_r == cap) {
			cap = cap ? cap * 2 : 256;
			*rows_r = xrealloc(*rows_r, cap * sizeof(**rows_r));
		}
		(*rows_r)[(*n_r)++] = (struct msg_row){
			m->uid, m->modseq, m->flags, kw_join(m),
			m->internaldate, m->size, m->email, m->thread,
			m->pop3_hidden, m->pop3_first_retr};
	}
	return r < 0 ? -1 : 0;
}

static void rows_free(struct msg_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].keywords);
	free(rows);
}

static const struct store_mailbox_info *
mailbox_named(const struct store_export_info *info, const char *name)
{
	for (size_t i = 0; i < info->mailbox_count; i++)
		if (!info->mailboxes[i].noselect &&
		    strcmp(info->mailboxes[i].name, name) == 0)
			return &info->mailboxes[i];
	return NULL;
}

/* One line per annotation, key, record and object, sorted: the same
 * account has the same lines whatever its mailboxes' ids. */
static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* 0 when the sorted lists la and lb hold the same lines, else -1 with
 * "WHAT differ at the target (na/nb; 'the first line that differs')",
 * that line cut at show bytes. Frees both lists. */
static int lines_same(char **la, size_t na, char **lb, size_t nb,
		      const char *what, int show, struct store_error *err)
{
	int ret = 0;
	for (size_t i = 0; i < na || i < nb; i++) {
		if (i < na && i < nb && strcmp(la[i], lb[i]) == 0)
			continue;
		ret = store_set_error(err, STORE_ERR_INTERNAL, "%s differ at "
				      "the target (%zu/%zu; '%.*s')", what, na,
				      nb, show, i < na ? la[i] : lb[i]);
		break;
	}
	lines_free(la, na);
	lines_free(lb, nb);
	return ret;
}

static char **extra_lines(const struct store_account_extra *x, size_t *n_r)
{
	size_t n = x->annotation_count + x->key_count + x->record_count +
		   x->object_count, k = 0;
	char **v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *a = &x->annotations[i];
		unsigned char h[32];
		sha256(a->value, a->value_len, h);
		v[k++] = xasprintf("a %s %" PRId64 " %s %02x%02x%02x%02x%02x"
				   "%02x%02x%02x %zu", a->mailbox ? a->mailbox
				   : "", a->viewer, a->name, h[0], h[1], h[2],
				   h[3], h[4], h[5], h[6], h[7], a->value_len);
	}
	for (size_t i = 0; i < x->key_count; i++) {
		const unsigned char *h = x->keys[i].key;
		v[k++] = xasprintf("k %s %" PRId64 " %02x%02x%02x%02x%02x%02x"
				   "%02x%02x", x->keys[i].mailbox,
				   x->keys[i].viewer, h[0], h[1], h[2], h[3],
				   h[4], h[5], h[6], h[7]);
	}
	for (size_t i = 0; i < x->record_count; i++)
		v[k++] = xasprintf("r %s %lld", x->records[i].key,
				   (long long)x->records[i].expires);
	for (size_t i = 0; i < x->object_count; i++)
		v[k++] = xasprintf("o %d %" PRId64 " %s", x->objects[i].kind,
				   x->objects[i].id, x->objects[i].data);
	qsort(v, n, sizeof(*v), line_cmp);
	*n_r = n;
	return v;
}

/* Annotations, URLAUTH keys, Sieve's records and JMAP objects. */
static int verify_extra(struct store_export *se, struct store_export *de,
			struct store_error *err)
{
	struct store_account_extra a, b;
	if (store_export_extra(se, &a, err) < 0)
		return -1;
	if (store_export_extra(de, &b, err) < 0) {
		store_account_extra_free(&a);
		return -1;
	}
	size_t na, nb;
	char **la = extra_lines(&a, &na), **lb = extra_lines(&b, &nb);
	int ret = lines_same(la, na, lb, nb, "annotations, URLAUTH keys, "
			     "Sieve records or JMAP objects", 60, err);
	store_account_extra_free(&a);
	store_account_extra_free(&b);
	return ret;
}

/* Undelete's kept messages, one sorted line each (folder, UID, flags,
 * keywords, dates, removal time, size, Email, thread, bytes' SHA-256):
 * loftctl undelete brings back the same messages either side. */
static char **kept_lines(struct store_export *exp,
			 const struct email_map *emails,
			 const struct email_map *fresh, size_t *n_r,
			 struct store_error *err)
{
	struct store_export_kept *v = NULL;
	size_t n = 0;
	if (store_export_kept(exp, &v, &n, err) < 0)
		return NULL;
	char **lines = xcalloc(n + 1, sizeof(*lines));
	size_t k = 0;
	for (; k < n; k++) {
		const struct store_export_kept *x = &v[k];
		unsigned char h[32];
		const unsigned char *known = fresh != NULL &&
			em_get(fresh, x->email) == NULL
			? em_get(emails, x->email) : NULL;
		if (known != NULL) {
			/* bytes never change: hashed when copied, checked
			 * at the target while live (verify_bodies) */
			memcpy(h, known, 32);
		} else {
			struct store_blob blob;
			if (store_export_body(exp, x->email, &blob, err) < 0)
				break;
			sha256(blob.data, blob.len, h);
			store_blob_close(&blob);
		}
		lines[k] = xasprintf("%s %u %u '%s' %lld %lld %lld %" PRIu64
				     " %" PRId64 " %" PRId64 " %02x%02x%02x"
				     "%02x%02x%02x%02x%02x", x->mailbox, x->uid,
				     x->flags, x->keywords,
				     (long long)x->internaldate,
				     (long long)x->savedate,
				     (long long)x->deleted_at, x->size,
				     x->email, x->thread, h[0], h[1], h[2],
				     h[3], h[4], h[5], h[6], h[7]);
	}
	store_export_kept_free(v, n);
	if (k < n) {
		lines_free(lines, k);
		return NULL;
	}
	qsort(lines, n, sizeof(*lines), line_cmp);
	*n_r = n;
	return lines;
}

static int verify_kept(struct store_export *se, struct store_export *de,
		       const struct email_map *emails,
		       const struct email_map *fresh, struct store_error *err)
{
	size_t na = 0, nb = 0;
	char **la = kept_lines(se, emails, fresh, &na, err);
	if (la == NULL)
		return -1;
	char **lb = kept_lines(de, emails, fresh, &nb, err);
	if (lb == NULL) {
		lines_free(la, na);
		return -1;
	}
	return lines_same(la, na, lb, nb, "undelete's kept messages", 80,
			  err);
}

/* Everything a client keeps must be the same: the folders, UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ, the expunge log, each message's UID, MODSEQ,
 * flags, keywords, internal date, size, EMAILID and THREADID and bytes
 * (by SHA-256; with fresh, only those of its Emails: the rest were
 * checked by verify_bodies); the account's counter may only be
 * higher. */
static int verify(struct store_user *src, struct store_user *dst,
		  const struct email_map *emails, const struct email_map *fresh,
		  struct store_move_report *rep, struct store_error *err)
{
	struct store_export *se = NULL, *de = NULL;
	if (store_export_begin(src, &se, err) < 0 ||
	    store_export_begin(dst, &de, err) < 0) {
		store_export_end(&se);
		return -1;
	}
	const struct store_export_info *si = store_export_info(se);
	const struct store_export_info *di = store_export_info(de);
	int ret = 0;
	rep->modseq_exact = 0;
	if (di->modseq < si->modseq)
		ret = store_set_error(err, STORE_ERR_INTERNAL, "the target's "
				      "change counter %" PRIu64 " is below the "
				      "source's %" PRIu64, di->modseq,
				      si->modseq);
	size_t selectable = 0, dsel = 0;
	for (size_t i = 0; i < di->mailbox_count; i++)
		dsel += !di->mailboxes[i].noselect;
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *a = &si->mailboxes[i];
		if (a->noselect)
			continue;
		selectable++;
		const struct store_mailbox_info *b = mailbox_named(di, a->name);
		if (b == NULL) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: missing at the target",
					      a->name);
			break;
		}
		if (a->uidvalidity != b->uidvalidity ||
		    a->uidnext != b->uidnext ||
		    a->highestmodseq != b->highestmodseq ||
		    a->special_use != b->special_use ||
		    strcmp(a->objectid, b->objectid) != 0) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: UIDVALIDITY %u/%u, UIDNEXT "
					      "%u/%u, HIGHESTMODSEQ %" PRIu64
					      "/%" PRIu64 ", role or MAILBOXID "
					      "differ", a->name, a->uidvalidity,
					      b->uidvalidity, a->uidnext,
					      b->uidnext, a->highestmodseq,
					      b->highestmodseq);
			break;
		}
		/* the expunge log: QRESYNC's VANISHED (EARLIER) */
		struct store_expunged_range *xa = NULL, *xb = NULL;
		size_t na = 0, nb = 0;
		uint64_t ha, hb;
		if (store_export_expunged(se, a->id, &xa, &na, &ha, err) < 0 ||
		    store_export_expunged(de, b->id, &xb, &nb, &hb, err) < 0) {
			free(xa);
			ret = -1;
			break;
		}
		bool same = na == nb && hb >= ha;
		for (size_t k = 0; same && k < na; k++)
			same = xa[k].first == xb[k].first &&
			       xa[k].last == xb[k].last &&
			       xa[k].modseq == xb[k].modseq;
		free(xa);
		free(xb);
		if (!same) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: the expunge log differs at "
					      "the target (%zu/%zu ranges)",
					      a->name, na, nb);
			break;
		}
		enum store_seen_mode ma, mb2;
		if (store_mailbox_seen_mode(src, a->name, &ma, err) < 0 ||
		    store_mailbox_seen_mode(dst, b->name, &mb2, err) < 0) {
			ret = -1;
			break;
		}
		if (ma != mb2) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: the \\Seen mode differs at "
					      "the target", a->name);
			break;
		}
		/* readers' own \Seen */
		struct store_export_seen *ra, *rb;
		size_t nra, nrb;
		if (seen_rows(se, a, &ra, &nra, err) < 0) {
			ret = -1;
			break;
		}
		if (seen_rows(de, b, &rb, &nrb, err) < 0) {
			free(ra);
			ret = -1;
			break;
		}
		same = nra == nrb;
		for (size_t k = 0; same && k < nra; k++)
			same = seen_cmp(&ra[k], &rb[k]) == 0;
		free(ra);
		free(rb);
		if (!same) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: readers' own \\Seen differ "
					      "at the target (%zu/%zu)",
					      a->name, nra, nrb);
			break;
		}
		struct msg_row *sr, *dr;
		size_t sn, dn;
		if (read_rows(se, a->id, &sr, &sn, err) < 0) {
			ret = -1;
			break;
		}
		if (read_rows(de, b->id, &dr, &dn, err) < 0) {
			rows_free(sr, sn);
			ret = -1;
			break;
		}
		if (sn != dn)
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: %zu messages, %zu at the "
					      "target", a->name, sn, dn);
		for (size_t k = 0; k < sn && ret == 0; k++) {
			const struct msg_row *x = &sr[k], *y = &dr[k];
			if (x->uid != y->uid || x->flags != y->flags ||
			    strcmp(x->keywords, y->keywords) != 0 ||
			    x->internaldate != y->internaldate ||
			    x->size != y->size || x->email != y->email ||
			    x->thread != y->thread || y->modseq != x->modseq ||
			    x->pop3_hidden != y->pop3_hidden ||
			    x->pop3_first_retr != y->pop3_first_retr) {
				ret = store_set_error(
					err, STORE_ERR_INTERNAL,
					"%s UID %u: differs at the target "
					"(UID %u, flags %u/%u, keywords "
					"'%s'/'%s', modseq %" PRIu64 "/%" PRIu64
					")", a->name, x->uid, y->uid, x->flags,
					y->flags, x->keywords, y->keywords,
					x->modseq, y->modseq);
				break;
			}
			rep->modseq_exact += x->modseq == y->modseq;
			const unsigned char *want = em_get(emails, x->email);
			struct store_blob blob;
			if (want == NULL) {
				ret = store_set_error(err, STORE_ERR_INTERNAL,
						      "%s UID %u: not copied",
						      a->name, x->uid);
			} else if (fresh != NULL &&
				   em_get(fresh, x->email) == NULL) {
				/* checked while live (verify_bodies) */
			} else if (store_export_body(de, y->email, &blob,
						     err) < 0) {
				ret = -1;
			} else {
				unsigned char got[32];
				sha256(blob.data, blob.len, got);
				store_blob_close(&blob);
				if (memcmp(got, want, 32) != 0)
					ret = store_set_error(
						err, STORE_ERR_INTERNAL,
						"%s UID %u: the bytes differ "
						"at the target", a->name,
						x->uid);
			}
		}
		rows_free(sr, sn);
		rows_free(dr, dn);
	}
	if (ret == 0 && selectable != dsel)
		ret = store_set_error(err, STORE_ERR_INTERNAL, "%zu folders, "
				      "%zu at the target", selectable, dsel);
	if (ret == 0)
		ret = verify_extra(se, de, err);
	if (ret == 0)
		ret = verify_kept(se, de, emails, fresh, err);
	store_export_end(&se);
	store_export_end(&de);
	return ret;
}

/* ---- two phases --------------------------------------------------------- */

/* The move copies the account while it is served on (phase one: a
 * snapshot, copy_account), then takes the lock and brings over only
 * what changed since that snapshot (phase two, copy_delta): folders
 * made, removed or made anew, messages delivered, flag changes and
 * expunges, Sieve scripts, ACLs and subscriptions. The lock lasts as
 * long as the delta and the check of every row (not of every body: the
 * bodies copied while live are checked while live, verify_bodies). */

/* The bytes of every message at the target against what was copied
 * (outside the lock). */
static int verify_bodies(struct store_user *dst, const struct email_map *emails,
			 struct store_error *err)
{
	struct store_export *de;
	if (store_export_begin(dst, &de, err) < 0)
		return -1;
	const struct store_export_info *di = store_export_info(de);
	struct email_map done = {0};
	int ret = 0;
	for (size_t i = 0; i < di->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &di->mailboxes[i];
		if (mb->noselect)
			continue;
		if (store_export_messages(de, mb->id, err) < 0) {
			ret = -1;
			break;
		}
		const struct store_export_msg *m;
		int r;
		while (ret == 0 && (r = store_export_next(de, &m, err)) > 0) {
			if (em_get(&done, m->email) != NULL)
				continue;
			const unsigned char *want = em_get(emails, m->email);
			struct store_blob blob;
			if (want == NULL)
				ret = store_set_error(err, STORE_ERR_INTERNAL,
						      "%s UID %u: not copied",
						      mb->name, m->uid);
			else if (store_export_body(de, m->email, &blob, err) < 0)
				ret = -1;
			else {
				unsigned char got[32];
				sha256(blob.data, blob.len, got);
				store_blob_close(&blob);
				if (memcmp(got, want, 32) != 0)
					ret = store_set_error(
						err, STORE_ERR_INTERNAL,
						"%s UID %u: the bytes differ "
						"at the target", mb->name,
						m->uid);
				em_put(&done, m->email, got);
			}
		}
		if (ret == 0 && r < 0)
			ret = -1;
	}
	/* and the bodies only undelete's kept messages name */
	struct store_export_kept *kv = NULL;
	size_t kn = 0;
	if (ret == 0 && store_export_kept(de, &kv, &kn, err) < 0)
		ret = -1;
	for (size_t i = 0; i < kn && ret == 0; i++) {
		const unsigned char *want = em_get(emails, kv[i].email);
		struct store_blob blob;
		if (em_get(&done, kv[i].email) != NULL)
			continue;
		if (want == NULL) {
			ret = store_set_error(err, STORE_ERR_INTERNAL, "kept "
					      "%s UID %u: not copied",
					      kv[i].mailbox, kv[i].uid);
		} else if (store_export_body(de, kv[i].email, &blob,
					     err) < 0) {
			ret = -1;
		} else {
			unsigned char got[32];
			sha256(blob.data, blob.len, got);
			store_blob_close(&blob);
			if (memcmp(got, want, 32) != 0)
				ret = store_set_error(err, STORE_ERR_INTERNAL,
						      "kept %s UID %u: the bytes"
						      " differ at the target",
						      kv[i].mailbox, kv[i].uid);
			em_put(&done, kv[i].email, got);
		}
	}
	store_export_kept_free(kv, kn);
	free(done.ids);
	free(done.sha);
	store_export_end(&de);
	return ret;
}

struct delta_expunge {
	const char *mailbox;      /* the source snapshot's */
	uint32_t uid;
	uint64_t modseq;          /* the source's (0: its log has none) */
};

struct delta_flags {
	const char *mailbox;
	uint32_t uid;
	unsigned flags;
	char *keywords;           /* sorted, space separated */
};

struct delta_folder {
	const struct store_mailbox_info *mb;   /* the source's */
	bool whole;               /* made (anew) at the target */
	bool changed;
	uint32_t *fresh;          /* UIDs the target lacks */
	size_t fresh_count;
};

struct delta {
	struct delta_expunge *x;
	size_t x_count, x_cap;
	struct delta_flags *f;
	size_t f_count, f_cap;
	struct delta_folder *folders;
	uint64_t changes, messages;
};

/* Sieve scripts as the source has them now: only what differs is
 * written (each write is a change at the target). */
static int copy_sieve_delta(struct store_user *src, struct store_user *dst,
			    struct store_error *err)
{
	struct store_sieve_script *sl = NULL, *dl = NULL;
	size_t sn = 0, dn = 0;
	if (store_sieve_list(src, &sl, &sn, err) < 0)
		return -1;
	if (store_sieve_list(dst, &dl, &dn, err) < 0) {
		store_sieve_list_free(sl, sn);
		return -1;
	}
	int ret = 0;
	const char *sactive = NULL, *dactive = NULL;
	for (size_t i = 0; i < sn; i++)
		if (sl[i].active)
			sactive = sl[i].name;
	for (size_t i = 0; i < dn; i++)
		if (dl[i].active)
			dactive = dl[i].name;
	if (dactive != NULL &&
	    (sactive == NULL || strcmp(sactive, dactive) != 0))
		ret = store_sieve_activate(dst, NULL, err);
	for (size_t i = 0; i < dn && ret == 0; i++) {
		bool there = false;
		for (size_t k = 0; k < sn && !there; k++)
			there = strcmp(sl[k].name, dl[i].name) == 0;
		if (!there)
			ret = store_sieve_delete(dst, dl[i].name, err);
	}
	for (size_t i = 0; i < sn && ret == 0; i++) {
		char *a = NULL, *b = NULL;
		size_t al = 0, bl = 0, ail = 0, bil = 0;
		void *ai = NULL, *bi = NULL;
		struct store_error e;
		ret = store_sieve_get(src, sl[i].name, &a, &al, &ai, &ail, NULL,
				      err);
		bool same = ret == 0 &&
			    store_sieve_get(dst, sl[i].name, &b, &bl, &bi, &bil,
					    NULL, &e) == 0 &&
			    al == bl && memcmp(a, b, al) == 0;
		if (ret == 0 && !same)
			ret = store_sieve_put(dst, sl[i].name, a, al, ai, ail,
					      err);
		free(a);
		free(b);
		free(ai);
		free(bi);
	}
	if (ret == 0 && sactive != NULL &&
	    (dactive == NULL || strcmp(sactive, dactive) != 0))
		ret = store_sieve_activate(dst, sactive, err);
	store_sieve_list_free(sl, sn);
	store_sieve_list_free(dl, dn);
	return ret;
}

static bool acl_same(const struct store_acl_row *x,
		     const struct store_acl_row *y)
{
	return strcmp(x->mailbox, y->mailbox) == 0 &&
	       x->entry.kind == y->entry.kind && x->entry.id == y->entry.id &&
	       x->entry.negative == y->entry.negative &&
	       x->entry.rights == y->entry.rights;
}

/* ACL entries as the source has them now; the folders whose ACL
 * changed are marked (their HIGHESTMODSEQ is made exact after). */
static int copy_acl_delta(struct store_user *src, struct store_user *dst,
			  const struct store_export_info *si,
			  struct delta *d, struct store_error *err)
{
	struct store_acl_row *sr = NULL, *dr = NULL;
	size_t sn = 0, dn = 0;
	if (store_acl_all(src, &sr, &sn, err) < 0)
		return -1;
	if (store_acl_all(dst, &dr, &dn, err) < 0) {
		store_acl_all_free(sr, sn);
		return -1;
	}
	int ret = 0;
	for (size_t i = 0; i < dn && ret == 0; i++) {
		bool keep = false;
		for (size_t k = 0; k < sn && !keep; k++)
			keep = strcmp(sr[k].mailbox, dr[i].mailbox) == 0 &&
			       sr[k].entry.kind == dr[i].entry.kind &&
			       sr[k].entry.id == dr[i].entry.id &&
			       sr[k].entry.negative == dr[i].entry.negative;
		if (keep)
			continue;
		ret = store_acl_delete(dst, dr[i].mailbox, dr[i].entry.kind,
				       dr[i].entry.id, dr[i].entry.negative,
				       err);
		for (size_t k = 0; k < si->mailbox_count; k++)
			if (strcmp(si->mailboxes[k].name, dr[i].mailbox) == 0)
				d->folders[k].changed = true;
		d->changes++;
	}
	for (size_t i = 0; i < sn && ret == 0; i++) {
		bool same = false;
		for (size_t k = 0; k < dn && !same; k++)
			same = acl_same(&sr[i], &dr[k]);
		if (same)
			continue;
		ret = store_acl_set(dst, sr[i].mailbox, &sr[i].entry, 0, 0,
				    err);
		for (size_t k = 0; k < si->mailbox_count; k++)
			if (strcmp(si->mailboxes[k].name, sr[i].mailbox) == 0)
				d->folders[k].changed = true;
		d->changes++;
	}
	store_acl_all_free(sr, sn);
	store_acl_all_free(dr, dn);
	return ret;
}

/* One folder's modseqs, expunge log and HIGHESTMODSEQ made the
 * source's (store_import_exact). */
static int exact_folder(struct store_export *se, struct store_export *de,
			struct store_user *dst,
			const struct store_mailbox_info *a,
			const struct store_mailbox_info *b, uint64_t modseq,
			uint64_t *changes, struct store_error *err)
{
	struct msg_row *sr = NULL, *dr = NULL;
	size_t sn = 0, dn = 0;
	if (read_rows(se, a->id, &sr, &sn, err) < 0)
		return -1;
	if (read_rows(de, b->id, &dr, &dn, err) < 0) {
		rows_free(sr, sn);
		return -1;
	}
	struct store_import_exact_msg *v = xcalloc(sn + 1, sizeof(*v));
	/* POP3's marks the target lacks: they move no modseq */
	struct store_import_pop3 *marks = xcalloc(sn + 1, sizeof(*marks));
	size_t n = 0, nm = 0;
	for (size_t i = 0, j = 0; i < sn; i++) {
		while (j < dn && dr[j].uid < sr[i].uid)
			j++;
		if (j == dn || dr[j].uid != sr[i].uid)
			continue;
		v[n++] = (struct store_import_exact_msg){
			sr[i].uid, dr[j].modseq, sr[i].modseq};
		bool hide = sr[i].pop3_hidden && !dr[j].pop3_hidden;
		bool retr = sr[i].pop3_first_retr != 0 &&
			    dr[j].pop3_first_retr == 0;
		if (hide || retr)
			marks[nm++] = (struct store_import_pop3){
				sr[i].uid, hide,
				retr ? sr[i].pop3_first_retr : 0};
	}
	*changes += nm;
	struct store_expunged_range *log = NULL;
	size_t log_n = 0;
	uint64_t horizon = 0;
	int ret = store_export_expunged(se, a->id, &log, &log_n, &horizon,
					err);
	if (ret == 0) {
		struct store_import_exact x = {
			.name = a->name,
			.uidvalidity = a->uidvalidity,
			.highestmodseq = a->highestmodseq,
			.expunge_horizon = horizon,
			.jmap_horizon = modseq,
			.msgs = v,
			.msg_count = n,
			.expunged = log,
			.expunged_count = log_n,
			.log_as_given = true,
			.pop3 = marks,
			.pop3_count = nm,
		};
		ret = store_import_exact(dst, &x, err);
	}
	free(log);
	free(marks);
	free(v);
	rows_free(sr, sn);
	rows_free(dr, dn);
	return ret;
}

static int dx_cmp(const void *a, const void *b)
{
	const struct delta_expunge *x = a, *y = b;
	/* a log entry of none goes last: it gets a new modseq */
	uint64_t mx = x->modseq ? x->modseq : UINT64_MAX;
	uint64_t my = y->modseq ? y->modseq : UINT64_MAX;
	if (mx != my)
		return mx < my ? -1 : 1;
	int c = strcmp(x->mailbox, y->mailbox);
	if (c != 0)
		return c;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int df_cmp(const void *a, const void *b)
{
	const struct delta_flags *x = a, *y = b;
	int c = strcmp(x->mailbox, y->mailbox);
	if (c == 0 && x->flags != y->flags)
		c = x->flags < y->flags ? -1 : 1;
	if (c == 0)
		c = strcmp(x->keywords, y->keywords);
	if (c == 0)
		c = x->uid < y->uid ? -1 : x->uid > y->uid;
	return c;
}

static uint64_t log_modseq(const struct store_expunged_range *v, size_t n,
			   uint32_t uid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].first <= uid && uid <= v[i].last)
			return v[i].modseq;
	return 0;
}

/* What one folder present on both sides lacks at the target: expunges
 * (with the source's modseq), flag changes, UIDs to append. */
static int diff_folder(struct store_export *se, struct store_export *de,
		       const struct store_mailbox_info *a,
		       const struct store_mailbox_info *b,
		       struct delta *d, struct delta_folder *df,
		       struct store_error *err)
{
	struct msg_row *dr;
	size_t dn;
	if (read_rows(de, b->id, &dr, &dn, err) < 0)
		return -1;
	struct store_expunged_range *log = NULL;
	size_t log_n = 0;
	uint64_t horizon;
	int ret = store_export_expunged(se, a->id, &log, &log_n, &horizon,
					err);
	if (ret == 0)
		ret = store_export_messages(se, a->id, err);
	size_t j = 0, fresh_cap = 0;
	const struct store_export_msg *m;
	int r = 0;
	while (ret == 0 && (r = store_export_next(se, &m, err)) > 0) {
		for (; j < dn && dr[j].uid < m->uid; j++) {
			if (d->x_count == d->x_cap) {
				d->x_cap = d->x_cap ? d->x_cap * 2 : 64;
				d->x = xrealloc(d->x, d->x_cap * sizeof(*d->x));
			}
			d->x[d->x_count++] = (struct delta_expunge){
				a->name, dr[j].uid,
				log_modseq(log, log_n, dr[j].uid)};
		}
		if (j < dn && dr[j].uid == m->uid) {
			char *kw = kw_join(m);
			if (m->flags != dr[j].flags ||
			    strcmp(kw, dr[j].keywords) != 0) {
				if (d->f_count == d->f_cap) {
					d->f_cap = d->f_cap ? d->f_cap * 2 : 64;
					d->f = xrealloc(d->f, d->f_cap *
							sizeof(*d->f));
				}
				d->f[d->f_count++] = (struct delta_flags){
					a->name, m->uid, m->flags, kw};
				kw = NULL;
			}
			free(kw);
			j++;
			continue;
		}
		if (df->fresh_count == fresh_cap) {
			fresh_cap = fresh_cap ? fresh_cap * 2 : 16;
			df->fresh = xrealloc(df->fresh,
					     fresh_cap * sizeof(*df->fresh));
		}
		df->fresh[df->fresh_count++] = m->uid;
	}
	if (ret == 0 && r < 0)
		ret = -1;
	for (; ret == 0 && j < dn; j++) {
		if (d->x_count == d->x_cap) {
			d->x_cap = d->x_cap ? d->x_cap * 2 : 64;
			d->x = xrealloc(d->x, d->x_cap * sizeof(*d->x));
		}
		d->x[d->x_count++] = (struct delta_expunge){
			a->name, dr[j].uid, log_modseq(log, log_n, dr[j].uid)};
	}
	free(log);
	rows_free(dr, dn);
	return ret;
}

static bool has_uid(const uint32_t *v, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v[mid] == uid)
			return true;
		if (v[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The messages of a folder the target lacks (all with whole), with
 * their bodies (a body the target has already is named by its Email;
 * one copied anyway is a blob no row names, collected later). */
static int append_fresh(struct store_export *se, struct store_user *dst,
			struct delta_folder *df, struct email_map *emails,
			struct email_map *fresh, struct store_move_report *rep,
			uint64_t *messages, struct store_error *err)
{
	const struct store_mailbox_info *mb = df->mb;
	struct batch *b = xcalloc(1, sizeof(*b));
	struct folder_exact fx = {0};
	b->fx = &fx;
	int ret = store_export_messages(se, mb->id, err), r = 0;
	const struct store_export_msg *msg;
	while (ret == 0 && (r = store_export_next(se, &msg, err)) > 0) {
		if (!df->whole && !has_uid(df->fresh, df->fresh_count,
					   msg->uid))
			continue;
		struct store_body *body = NULL;
		struct store_blob blob;
		if (store_export_body(se, msg->email, &blob, err) < 0) {
			ret = -1;
			break;
		}
		unsigned char sha[32];
		sha256(blob.data, blob.len, sha);
		if (em_get(emails, msg->email) == NULL)
			em_put(emails, msg->email, sha);
		em_put(fresh, msg->email, sha);
		rep->bytes += blob.len;
		r = body_copy(dst, &blob, &body, err);
		store_blob_close(&blob);
		if (r < 0) {
			ret = -1;
			break;
		}
		rep->messages++;
		(*messages)++;
		ret = batch_add(dst, b, mb->name, msg, body, err);
	}
	if (ret == 0 && r < 0)
		ret = -1;
	if (batch_flush(dst, b, ret == 0 ? err : &(struct store_error){0}) < 0
	    && ret == 0)
		ret = -1;
	free(fx.msgs);
	free(b);
	return ret;
}

/* Expunges, one call per folder and source modseq (the target logs its
 * own modseq: exact_folder puts the source's in its place). */
static int apply_expunges(struct store_user *dst, struct delta *d,
			  struct store_error *err)
{
	if (d->x_count == 0)
		return 0;
	qsort(d->x, d->x_count, sizeof(*d->x), dx_cmp);
	struct store_uid_range *r = xcalloc(d->x_count + 1, sizeof(*r));
	int ret = 0;
	for (size_t i = 0; i < d->x_count && ret == 0;) {
		size_t j = i, n = 0;
		for (; j < d->x_count && d->x[j].modseq == d->x[i].modseq &&
		       strcmp(d->x[j].mailbox, d->x[i].mailbox) == 0; j++) {
			if (n > 0 && r[n - 1].hi + 1 == d->x[j].uid)
				r[n - 1].hi = d->x[j].uid;
			else
				r[n++] = (struct store_uid_range){
					d->x[j].uid, d->x[j].uid};
		}
		uint32_t *uids = NULL;
		size_t count = 0;
		ret = store_expunge(dst, d->x[i].mailbox, r, n, true,
					    &uids, &count, err);
		free(uids);
		d->changes += j - i;
		i = j;
	}
	free(r);
	return ret;
}

static int apply_flags(struct store_user *dst, struct delta *d,
		       struct store_error *err)
{
	if (d->f_count == 0)
		return 0;
	qsort(d->f, d->f_count, sizeof(*d->f), df_cmp);
	struct store_uid_range *r = xcalloc(d->f_count + 1, sizeof(*r));
	int ret = 0;
	for (size_t i = 0; i < d->f_count && ret == 0;) {
		const struct delta_flags *g = &d->f[i];
		size_t j = i, n = 0;
		for (; j < d->f_count && d->f[j].flags == g->flags &&
		       strcmp(d->f[j].mailbox, g->mailbox) == 0 &&
		       strcmp(d->f[j].keywords, g->keywords) == 0; j++) {
			if (n > 0 && r[n - 1].hi + 1 == d->f[j].uid)
				r[n - 1].hi = d->f[j].uid;
			else
				r[n++] = (struct store_uid_range){
					d->f[j].uid, d->f[j].uid};
		}
		/* the keywords, split */
		char *kw = xstrdup(g->keywords);
		const char **kwv = xcalloc(strlen(kw) / 2 + 2, sizeof(*kwv));
		size_t kwc = 0;
		for (char *save = NULL, *t = strtok_r(kw, " ", &save);
		     t != NULL; t = strtok_r(NULL, " ", &save))
			kwv[kwc++] = t;
		struct store_flag_change ch = {
			.mode = STORE_FLAGS_REPLACE,
			.flags = g->flags,
			.keywords = kwv,
			.keyword_count = kwc,
		};
		uint32_t *changed = NULL, *modified = NULL;
		size_t nc = 0, nm = 0;
		ret = store_flags_update(dst, g->mailbox, r, n, &ch, &changed,
					 &nc, &modified, &nm, err);
		free(changed);
		free(modified);
		free(kwv);
		free(kw);
		d->changes += j - i;
		i = j;
	}
	free(r);
	return ret;
}

static void delta_free(struct delta *d, size_t folders)
{
	free(d->x);
	for (size_t i = 0; i < d->f_count; i++)
		free(d->f[i].keywords);
	free(d->f);
	for (size_t i = 0; d->folders != NULL && i < folders; i++)
		free(d->folders[i].fresh);
	free(d->folders);
}

/* ---- the delta's kept messages, extras and renames ------------------ */

/* A kept message as both sides can tell it (store_export_kept at the
 * source, store_deleted at the target): what undelete brings back. The
 * first line is what import_kept tells a row by (EXISTS). */
static char *kept_key(const char *mailbox, uint32_t uid, unsigned flags,
		      const char *keywords, time_t internaldate,
		      time_t savedate, time_t deleted_at, uint64_t size)
{
	return xasprintf("%s\n%u %lld %lld\n%u %lld %" PRIu64 " %s", mailbox,
			 uid, (long long)internaldate, (long long)deleted_at,
			 flags & 0x1f, (long long)savedate, size,
			 keywords != NULL ? keywords : "");
}

/* Whether keys a and b name the same row for import_kept. */
static bool kept_same_place(const char *a, const char *b)
{
	const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
	ea = ea != NULL ? strchr(ea + 1, '\n') : NULL;
	eb = eb != NULL ? strchr(eb + 1, '\n') : NULL;
	return ea != NULL && eb != NULL && ea - a == eb - b &&
	       memcmp(a, b, (size_t)(ea - a)) == 0;
}

struct kept_row {
	char *key;
	int64_t n;        /* the source's index, the target's id */
	bool done;        /* matched, or forgotten already */
};

struct kept_rows {
	struct kept_row *v;
	size_t count, cap;
};

static void kept_add(struct kept_rows *r, char *key, int64_t n)
{
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->count++] = (struct kept_row){key, n, false};
}

static bool kept_have(void *ctx, const struct store_deleted *d)
{
	kept_add(ctx, kept_key(d->mailbox, d->uid, d->flags, d->keywords,
			       d->internaldate, d->savedate, d->deleted_at,
			       d->size), d->id);
	return true;
}

static int kept_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kept_row *)a)->key,
		      ((const struct kept_row *)b)->key);
}

static void kept_rows_free(struct kept_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->v[i].key);
	free(r->v);
}

/* One kept message the target lacks. A row of the target in its place
 * (its own removal of the same message in this delta, within the same
 * second, with other flags): that one forgotten first, the bytes given
 * again (they may have gone with it). */
static int kept_add_one(struct store_export *se, struct store_user *dst,
			struct email_map *emails,
			struct store_move_report *rep,
			const struct store_export_kept *k, const char *key,
			struct kept_rows *have, uint64_t *changes,
			struct store_error *err)
{
	(*changes)++;
	if (kept_put(se, dst, emails, rep, k, false, err) == 0)
		return 0;
	if (err->kind != STORE_ERR_EXISTS)
		return -1;
	for (size_t j = 0; j < have->count; j++) {
		struct kept_row *h = &have->v[j];
		if (h->done || !kept_same_place(h->key, key))
			continue;
		if (store_deleted_forget(dst, &h->n, 1, err) < 0)
			return -1;
		h->done = true;
		(*changes)++;
	}
	return kept_put(se, dst, emails, rep, k, true, err);
}

/* Undelete's kept messages as the source has them: those the target
 * lacks added (an EXPUNGE or DELETE while copied), then those the source
 * no longer has forgotten (undeleted, purged, or kept by the target's
 * own removal in the delta, stamped with its own time). Added first: a
 * body the target names only through a kept row of its own stays. */
static int kept_sync(struct store_export *se, struct store_user *dst,
		     struct email_map *emails, struct email_map *fresh,
		     struct store_move_report *rep, uint64_t *changes,
		     struct store_error *err)
{
	struct store_export_kept *v = NULL;
	size_t n = 0;
	if (store_export_kept(se, &v, &n, err) < 0)
		return -1;
	struct kept_rows want = {0}, have = {0};
	for (size_t i = 0; i < n; i++)
		kept_add(&want, kept_key(v[i].mailbox, v[i].uid, v[i].flags,
					 v[i].keywords, v[i].internaldate,
					 v[i].savedate, v[i].deleted_at,
					 v[i].size), (int64_t)i);
	int ret = store_deleted_list(dst, NULL, kept_have, &have, err);
	if (want.count > 1)
		qsort(want.v, want.count, sizeof(*want.v), kept_cmp);
	if (have.count > 1)
		qsort(have.v, have.count, sizeof(*have.v), kept_cmp);
	for (size_t i = 0, j = 0; i < want.count && j < have.count;) {
		int c = strcmp(want.v[i].key, have.v[j].key);
		if (c == 0)
			want.v[i++].done = have.v[j++].done = true;
		else if (c < 0)
			i++;
		else
			j++;
	}
	for (size_t i = 0; i < want.count && ret == 0; i++) {
		if (want.v[i].done)
			continue;
		const struct store_export_kept *k = &v[want.v[i].n];
		ret = kept_add_one(se, dst, emails, rep, k, want.v[i].key,
				   &have, changes, err);
		/* the check under the lock reads its bytes again */
		const unsigned char *sha = em_get(emails, k->email);
		if (ret == 0 && sha != NULL) {
			unsigned char copy[32];
			memcpy(copy, sha, 32);
			em_put(fresh, k->email, copy);
		}
	}
	int64_t *gone = xcalloc(have.count + 1, sizeof(*gone));
	size_t ng = 0;
	for (size_t j = 0; j < have.count; j++)
		if (!have.v[j].done)
			gone[ng++] = have.v[j].n;
	if (ret == 0)
		ret = store_deleted_forget(dst, gone, ng, err);
	*changes += ng;
	free(gone);
	kept_rows_free(&want);
	kept_rows_free(&have);
	store_export_kept_free(v, n);
	return ret;
}

/* One row of the extras: its key (what store_import_extra_drop
 * removes by) and, after it, everything it holds. */
static char *extra_line(const struct store_account_extra *x, size_t i)
{
	char hex[65];
	if (i < x->annotation_count) {
		const struct store_extra_annotation *a = &x->annotations[i];
		unsigned char h[32];
		sha256(a->value, a->value_len, h);
		for (int k = 0; k < 32; k++)
			snprintf(hex + 2 * k, 3, "%02x", h[k]);
		return xasprintf("a\n%s\n%" PRId64 "\n%s\n%zu %s", a->mailbox ?
				 a->mailbox : "", a->viewer, a->name,
				 a->value_len, hex);
	}
	i -= x->annotation_count;
	if (i < x->key_count) {
		const struct store_extra_key *k = &x->keys[i];
		for (int j = 0; j < STORE_URLAUTH_KEY_LEN && j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", k->key[j]);
		return xasprintf("k\n%s\n%" PRId64 "\n%s", k->mailbox,
				 k->viewer, hex);
	}
	i -= x->key_count;
	if (i < x->record_count)
		return xasprintf("r\n%s\n%lld", x->records[i].key,
				 (long long)x->records[i].expires);
	i -= x->record_count;
	return xasprintf("o\n%d\n%" PRId64 "\n%s", x->objects[i].kind,
			 x->objects[i].id, x->objects[i].data);
}

static size_t extra_count(const struct store_account_extra *x)
{
	return x->annotation_count + x->key_count + x->record_count +
	       x->object_count;
}

/* Row i of from appended to to (a shallow copy: to's arrays only are
 * to's; from's must be allocated with room for all of from's rows). */
static void extra_take(struct store_account_extra *to,
		       const struct store_account_extra *from, size_t i)
{
	if (i < from->annotation_count) {
		to->annotations[to->annotation_count++] = from->annotations[i];
		return;
	}
	i -= from->annotation_count;
	if (i < from->key_count) {
		to->keys[to->key_count++] = from->keys[i];
		return;
	}
	i -= from->key_count;
	if (i < from->record_count) {
		to->records[to->record_count++] = from->records[i];
		return;
	}
	i -= from->record_count;
	to->objects[to->object_count++] = from->objects[i];
}

static void extra_room(struct store_account_extra *to,
		       const struct store_account_extra *like)
{
	memset(to, 0, sizeof(*to));
	to->annotations = xcalloc(like->annotation_count + 1,
				  sizeof(*to->annotations));
	to->keys = xcalloc(like->key_count + 1, sizeof(*to->keys));
	to->records = xcalloc(like->record_count + 1, sizeof(*to->records));
	to->objects = xcalloc(like->object_count + 1, sizeof(*to->objects));
}

static void extra_room_free(struct store_account_extra *x)
{
	free(x->annotations);
	free(x->keys);
	free(x->records);
	free(x->objects);
}

struct extra_row {
	char *line;
	size_t i;
};

static int extra_row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct extra_row *)a)->line,
		      ((const struct extra_row *)b)->line);
}

static struct extra_row *extra_rows(const struct store_account_extra *x)
{
	size_t n = extra_count(x);
	struct extra_row *v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = (struct extra_row){extra_line(x, i), i};
	if (n > 1)
		qsort(v, n, sizeof(*v), extra_row_cmp);
	return v;
}

/* Annotations, URLAUTH keys, Sieve's records and JMAP objects as the
 * source has them: the target's rows that differ removed, then the
 * source's written (a change is a removal and a write). */
static int extra_sync(struct store_export *se, struct store_export *de,
		      struct store_user *dst, uint64_t *changes,
		      struct store_error *err)
{
	struct store_account_extra a, b;
	if (store_export_extra(se, &a, err) < 0)
		return -1;
	if (store_export_extra(de, &b, err) < 0) {
		store_account_extra_free(&a);
		return -1;
	}
	size_t na = extra_count(&a), nb = extra_count(&b);
	struct extra_row *ra = extra_rows(&a), *rb = extra_rows(&b);
	struct store_account_extra put, gone;
	extra_room(&put, &a);
	extra_room(&gone, &b);
	for (size_t i = 0, j = 0; i < na || j < nb;) {
		int c = i == na ? 1 : j == nb ? -1
			: strcmp(ra[i].line, rb[j].line);
		if (c < 0)
			extra_take(&put, &a, ra[i++].i);
		else if (c > 0)
			extra_take(&gone, &b, rb[j++].i);
		else
			i++, j++;
	}
	*changes += extra_count(&put) + extra_count(&gone);
	size_t skipped = 0;
	int ret = store_import_extra_drop(dst, &gone, err);
	if (ret == 0)
		ret = store_import_extra(dst, &put, &skipped, err);
	for (size_t i = 0; i < na; i++)
		free(ra[i].line);
	for (size_t i = 0; i < nb; i++)
		free(rb[i].line);
	free(ra);
	free(rb);
	extra_room_free(&put);
	extra_room_free(&gone);
	store_account_extra_free(&a);
	store_account_extra_free(&b);
	return ret;
}

/* Folders renamed while copied: a source folder whose name the target
 * lacks, and a target folder of the same MAILBOXID and UIDVALIDITY whose
 * name the source lacks, are one folder; the target's is renamed (with
 * its children, as the source's were) instead of copied anew. */
static int rename_sync(struct store_user *dst,
		       const struct store_export_info *si, uint64_t *changes,
		       struct store_error *err)
{
	int ret = 0;
	for (size_t round = 0; round <= si->mailbox_count && ret == 0;
	     round++) {
		struct store_mailbox_info *list = NULL;
		size_t n = 0;
		if (store_mailbox_list(dst, &list, &n, err) < 0)
			return -1;
		const char *from = NULL, *to = NULL;
		for (size_t i = 0; i < si->mailbox_count && from == NULL;
		     i++) {
			const struct store_mailbox_info *a = &si->mailboxes[i];
			if (a->noselect || a->objectid[0] == '\0' ||
			    strcmp(a->name, "INBOX") == 0)
				continue;
			bool named = false;
			for (size_t k = 0; k < n && !named; k++)
				named = strcmp(list[k].name, a->name) == 0;
			for (size_t k = 0; k < n && !named && from == NULL;
			     k++) {
				const struct store_mailbox_info *b = &list[k];
				if (!b->noselect &&
				    b->uidvalidity == a->uidvalidity &&
				    strcmp(b->objectid, a->objectid) == 0 &&
				    strcmp(b->name, "INBOX") != 0 &&
				    mailbox_index(si, b->name) == SIZE_MAX) {
					from = b->name;
					to = a->name;
				}
			}
		}
		if (from != NULL) {
			ret = store_mailbox_rename(dst, from, to, err);
			(*changes)++;
		}
		store_mailbox_list_free(list, n);
		if (from == NULL)
			break;
	}
	return ret;
}

/* The target made equal to the source, as copy_account would have,
 * from what an earlier copy left there (phase one's catch-up rounds,
 * and under the lock the last delta): everything a session or an admin
 * can change while the account is served is carried here, so the lock
 * grows with the change, not with the account. */
static int copy_delta(struct store_user *src, struct store_user *dst,
		      struct email_map *emails, struct email_map *fresh,
		      struct store_move_report *rep, uint64_t *changes_r,
		      uint64_t *messages_r, struct store_error *err)
{
	struct store_export *se = NULL, *de = NULL;
	if (store_export_begin(src, &se, err) < 0)
		return -1;
	const struct store_export_info *si = store_export_info(se);
	struct delta d = {0};
	/* renames first: the folder is found by its new name below */
	if (rename_sync(dst, si, &d.changes, err) < 0 ||
	    store_export_begin(dst, &de, err) < 0) {
		store_export_end(&se);
		return -1;
	}
	const struct store_export_info *di = store_export_info(de);
	d.folders = xcalloc(si->mailbox_count + 1, sizeof(*d.folders));
	int ret = 0;
	/* what each folder lacks; folders gone, or made anew (another
	 * UIDVALIDITY), go at the target */
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *a = &si->mailboxes[i];
		struct delta_folder *df = &d.folders[i];
		df->mb = a;
		if (a->noselect)
			continue;
		const struct store_mailbox_info *b = mailbox_named(di, a->name);
		if (b == NULL || b->uidvalidity != a->uidvalidity) {
			df->whole = df->changed = true;
			continue;
		}
		if (a->uidnext == b->uidnext &&
		    a->highestmodseq == b->highestmodseq)
			continue;   /* nothing happened there */
		df->changed = true;
		ret = diff_folder(se, de, a, b, &d, df, err);
	}
	/* POP3's marks move no modseq: INBOX's exact step gives them */
	struct store_pop3_sum ps, pd;
	if (ret == 0 && (store_export_pop3_sum(se, &ps, err) < 0 ||
			 store_export_pop3_sum(de, &pd, err) < 0))
		ret = -1;
	size_t inbox = mailbox_index(si, "INBOX");
	if (ret == 0 && inbox != SIZE_MAX && memcmp(&ps, &pd, sizeof(ps)) != 0)
		d.folders[inbox].changed = true;
	/* the expunges first: the counter is still below their modseqs */
	if (ret == 0)
		ret = apply_expunges(dst, &d, err);
	for (size_t i = 0; i < di->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *b = &di->mailboxes[i];
		if (b->noselect)
			continue;
		const struct store_mailbox_info *a = mailbox_named(si, b->name);
		if (a != NULL && a->uidvalidity == b->uidvalidity)
			continue;
		ret = store_mailbox_delete(dst, b->name, err);
		d.changes++;
	}
	/* folders made (anew) since the snapshot, as copy_account does */
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &si->mailboxes[i];
		if (mb->noselect || !d.folders[i].whole)
			continue;
		struct store_import_mailbox spec = {
			.name = mb->name,
			.uidvalidity = mb->uidvalidity,
			.objectid = mb->objectid[0] ? mb->objectid : NULL,
			.special_use = mb->special_use,
			.subscribe = mb->subscribed,
		};
		struct store_mailbox_info have;
		if (store_import_mailbox(dst, &spec, &have, err) < 0) {
			ret = -1;
			break;
		}
		bool kept = have.uidvalidity == mb->uidvalidity;
		store_mailbox_info_free(&have);
		if (!kept)
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: the target did not keep "
					      "UIDVALIDITY", mb->name);
		d.changes++;
	}
	/* roles moved (JMAP Mailbox/set), and those of folders made anew */
	bool *roles = xcalloc(si->mailbox_count + 1, sizeof(*roles));
	if (ret == 0)
		ret = sync_roles(dst, si, roles, &d.changes, err);
	if (ret == 0)
		ret = sync_sort_order(src, dst, si, roles, &d.changes, err);
	for (size_t i = 0; i < si->mailbox_count; i++)
		d.folders[i].changed |= roles[i];
	free(roles);
	/* the \Seen mode an admin changed (it moves no modseq at the
	 * source that the diff above would see, but the target's) */
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &si->mailboxes[i];
		bool mode = false;
		if (mb->noselect)
			continue;
		ret = copy_seen_mode(src, dst, mb->name, &mode, err);
		if (mode) {
			d.folders[i].changed = true;
			d.changes++;
		}
	}
	if (ret == 0)
		ret = apply_flags(dst, &d, err);
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		struct delta_folder *df = &d.folders[i];
		if (df->mb->noselect || !df->changed ||
		    (!df->whole && df->fresh_count == 0))
			continue;
		ret = append_fresh(se, dst, df, emails, fresh, rep,
				   &d.messages, err);
	}
	if (ret == 0)
		ret = copy_acl_delta(src, dst, si, &d, err);
	/* subscriptions as the source has them */
	for (size_t i = 0; i < si->subscription_count && ret == 0; i++) {
		struct store_error e;
		(void)store_mailbox_subscribe(dst, si->subscriptions[i], true,
					      &e);
	}
	for (size_t i = 0; i < di->subscription_count && ret == 0; i++) {
		if (name_in(di->subscriptions[i], si->subscriptions,
			    si->subscription_count))
			continue;
		struct store_error e;
		(void)store_mailbox_subscribe(dst, di->subscriptions[i], false,
					      &e);
	}
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &si->mailboxes[i];
		if (mb->noselect)
			continue;
		if (d.folders[i].changed && !d.folders[i].whole &&
		    mb->subscribed)
			(void)store_mailbox_subscribe(dst, mb->name, true,
						      &(struct store_error){0});
		/* every folder: a reader's \Seen moves no modseq of it */
		ret = seen_sync(se, de, dst, mb, d.folders[i].whole ? NULL
				: mailbox_named(di, mb->name), &d.changes, err);
	}
	if (ret == 0)
		ret = copy_sieve_delta(src, dst, err);
	if (ret == 0)
		ret = copy_sync_login(src, dst, &d.changes, err);
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *mb = &si->mailboxes[i];
		if (!mb->noselect && d.folders[i].changed)
			ret = set_uidnext(dst, mb, err);
	}
	if (ret == 0)
		ret = store_modseq_raise(dst, si->modseq, err);
	if (ret == 0)
		ret = extra_sync(se, de, dst, &d.changes, err);
	if (ret == 0)
		ret = kept_sync(se, dst, emails, fresh, rep, &d.changes, err);
	store_export_end(&de);
	/* the source's modseqs on what changed, its log and HIGHESTMODSEQ:
	 * the target's rows as they are now are what the exact step
	 * changes (nothing else writes them: the account is locked) */
	if (ret == 0 && store_export_begin(dst, &de, err) < 0)
		ret = -1;
	di = de != NULL ? store_export_info(de) : NULL;
	for (size_t i = 0; i < si->mailbox_count && ret == 0; i++) {
		const struct store_mailbox_info *a = &si->mailboxes[i];
		if (a->noselect || !d.folders[i].changed)
			continue;
		const struct store_mailbox_info *b = mailbox_named(di, a->name);
		if (b == NULL) {
			ret = store_set_error(err, STORE_ERR_INTERNAL,
					      "%s: missing at the target",
					      a->name);
			break;
		}
		ret = exact_folder(se, de, dst, a, b, si->modseq, &d.changes,
				   err);
	}
	*changes_r = d.changes + d.messages;
	*messages_r = d.messages;
	delta_free(&d, si->mailbox_count);
	store_export_end(&de);
	store_export_end(&se);
	return ret;
}

/* ---- the move --------------------------------------------------------- */

/* mail_dir/.moving/<id>.copy, held (OFD lock) for the whole move: a
 * second loftctl moving the same account stops at once, while loftd
 * (which looks only at <id>, store-route.c) serves on during phase
 * one. The file stays (unlinking it would race a second mover). */
static int copy_lock(struct store *store, int64_t user_id, int *fd_r,
		     struct store_error *err)
{
	char *path = store->set.mail_dir != NULL
		? xasprintf("%s/.moving/%" PRId64 ".copy", store->set.mail_dir,
			    user_id)
		: xasprintf("%s/mail/.moving/%" PRId64 ".copy",
			    store->set.data_dir, user_id);
	char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	(void)mkdir(dir, 0755);
	free(dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		int r = store_set_error(err, STORE_ERR_TEMP, e == EAGAIN ||
					e == EACCES ? "The account is being "
					"moved by another process" : "%s: %s",
					path, strerror(e));
		free(path);
		return r;
	}
	free(path);
	*fd_r = fd;
	return 0;
}

/* Phase one: the target made from a snapshot while loftd serves the
 * account from the source, and its bytes checked. */
/* Removes user_id's files on a side that does not serve it (a leftover
 * target, the old source) once a running loftd has let go of its
 * handles there (hooks->release): loftd's sqlite threads open an account
 * in the background, and an index.db removed under one gave it
 * SQLITE_IOERR_FSTAT ("pragmas: disk I/O error"). */
static int remove_side(struct store *side, int64_t user_id,
		       const struct store_move_hooks *hooks,
		       struct store_error *err)
{
	if (hooks->release != NULL &&
	    hooks->release(hooks->ctx, user_id, err) < 0)
		return -1;
	return store_user_delete_backend(side, user_id, err);
}

static int copy_live(struct store *src_side, struct store *dst_side,
		     int64_t user_id, const struct store_move_hooks *hooks,
		     struct email_map *emails, struct email_map *fresh,
		     struct store_move_report *rep, struct store_error *err)
{
	/* what an interrupted move left at the target is no one's; with
	 * nothing there, nothing is removed */
	struct store_user *src = NULL, *dst = NULL;
	if (store_user_open_backend(dst_side, user_id, false, &dst, err) == 0) {
		store_user_unref(&dst);
		if (remove_side(dst_side, user_id, hooks, err) < 0)
			return -1;
	} else if (err->kind != STORE_ERR_NOTFOUND) {
		return -1;
	}
	int ret = -1;
	uint64_t modseq = 0;
	int r = store_user_open_backend(src_side, user_id, false, &src, err);
	if (r < 0 && err->kind != STORE_ERR_NOTFOUND)
		goto out;
	if (store_user_open_backend(dst_side, user_id, true, &dst, err) < 0)
		goto out;
	if (src != NULL &&
	    (copy_account(src, dst, emails, rep, &modseq, err) < 0 ||
	     verify_bodies(dst, emails, err) < 0))
		goto out;
	/* what arrived meanwhile, again while served on, until little is
	 * left for the lock (each round takes as long as what came during
	 * the one before); a round that fails leaves it to the locked one,
	 * which compares rows, not a log */
	for (int round = 0; src != NULL && round < CATCHUP_ROUNDS; round++) {
		uint64_t changes = 0, messages = 0;
		struct store_error e;
		int r2 = copy_delta(src, dst, emails, fresh, rep, &changes,
				    &messages, &e);
		rep->rounds++;
		if (r2 < 0 || changes <= CATCHUP_ENOUGH)
			break;
	}
	ret = 0;
out:
	store_user_unref(&src);
	store_user_unref(&dst);
	return ret;
}

/* Phase two, under the lock: the delta and the check; when either
 * fails (something the delta does not carry changed, say a folder's
 * role), the old way: the target made anew from the locked source. */
static int copy_locked(struct store *src_side, struct store *dst_side,
		       int64_t user_id, struct email_map *emails,
		       struct email_map *fresh, struct store_move_report *rep,
		       struct store_error *err)
{
	struct store_user *src = NULL, *dst = NULL;
	int ret = -1;
	int r = store_user_open_backend(src_side, user_id, false, &src, err);
	if (r < 0 && err->kind != STORE_ERR_NOTFOUND)
		goto out;
	if (store_user_open_backend(dst_side, user_id, true, &dst, err) < 0)
		goto out;
	if (src == NULL) {
		ret = 0;
		goto out;
	}
	if (copy_delta(src, dst, emails, fresh, rep, &rep->delta_changes,
		       &rep->delta_messages, err) == 0 &&
	    verify(src, dst, emails, fresh, rep, err) == 0) {
		ret = 0;
		goto out;
	}
	log_warn("store", NULL, "user %" PRId64 ": the changes made while it "
		 "was copied did not carry over (%s): copying it again, "
		 "locked", user_id, err->msg);
	rep->full_locked = true;
	snprintf(rep->full_reason, sizeof(rep->full_reason), "%s", err->msg);
	store_user_unref(&dst);
	if (store_user_delete_backend(dst_side, user_id, err) < 0 ||
	    store_user_open_backend(dst_side, user_id, true, &dst, err) < 0)
		goto out;
	free(emails->ids);
	free(emails->sha);
	memset(emails, 0, sizeof(*emails));
	uint64_t modseq;
	rep->messages = rep->bytes = 0;
	rep->mailboxes = 0;
	if (copy_account(src, dst, emails, rep, &modseq, err) < 0 ||
	    verify(src, dst, emails, NULL, rep, err) < 0)
		goto out;
	ret = 0;
out:
	store_user_unref(&src);
	store_user_unref(&dst);
	return ret;
}

int store_move_account(struct store *store, int64_t user_id,
		       enum store_backend to,
		       const struct store_move_hooks *hooks,
		       struct store_move_report *rep, struct store_error *err)
{
	memset(rep, 0, sizeof(*rep));
	if (store->pg == NULL)
		return store_set_error(err, STORE_ERR_INVALID, "Moving needs "
				       "[store] backend = sqlite with [store] "
				       "postgres set (docs/scale-out.md)");
	enum store_backend from;
	if (store_user_backend(store, user_id, &from, err) < 0)
		return -1;
	if (from == to) {
		rep->already = true;
		return 0;
	}
	struct store *src_side = from == STORE_BACKEND_POSTGRES ? store->pg
								: store;
	struct store *dst_side = to == STORE_BACKEND_POSTGRES ? store->pg
							      : store;
	int cfd = -1;
	if (copy_lock(store, user_id, &cfd, err) < 0)
		return -1;
	struct email_map emails = {0}, fresh = {0};
	int ret = -1, fd = -1;
	int64_t t0 = now_ms(), tl = 0;
	/* the target is the account's only while it moves: no quota */
	atomic_store(&store->moving, user_id);
	if (copy_live(src_side, dst_side, user_id, hooks, &emails, &fresh,
		      rep, err) < 0)
		goto out;
	/* tests (test_migrate_store): a kill, or mail, while copied live */
	test_pause("LOFT_TEST_MOVE_LIVE_PAUSE");
	if (store_lock_take_for_move(store, user_id, &fd, err) < 0) {
		fd = -1;
		goto out;
	}
	tl = now_ms();
	rep->live_ms = (uint64_t)(tl - t0);
	if (hooks->quiesce != NULL &&
	    hooks->quiesce(hooks->ctx, user_id, err) < 0)
		goto out;
	/* under the lock: did another move finish meanwhile? */
	if (store_user_backend(store, user_id, &from, err) < 0)
		goto out;
	if (from == to) {
		rep->already = true;
		ret = 0;
		goto out;
	}
	if (copy_locked(src_side, dst_side, user_id, &emails, &fresh, rep,
			err) < 0)
		goto out;
	/* tests (test_migrate_store): a kill while locked and copied,
	 * before the row changes */
	test_pause("LOFT_TEST_MOVE_PAUSE");
	if (hooks->flip(hooks->ctx, user_id, to, err) < 0)
		goto out;
	ret = 1;
out:
	if (ret < 0) {
		/* nothing changed: the copy goes, the source serves on */
		struct store_error e;
		if (remove_side(dst_side, user_id, hooks, &e) < 0)
			log_warn("store", NULL, "user %" PRId64 ": the partial "
				 "copy on %s stays (removed by the next move):"
				 " %s", user_id, store_backend_name(to), e.msg);
	}
	if (fd >= 0) {
		rep->locked_ms = (uint64_t)(now_ms() - tl);
		store_lock_drop_for_move(store, user_id, fd);
	}
	atomic_store(&store->moving, 0);
	close(cfd);
	free(emails.ids);
	free(emails.sha);
	free(fresh.ids);
	free(fresh.sha);
	if (ret == 1) {
		/* served from the target now: the source's copy goes */
		struct store_error e;
		if (remove_side(src_side, user_id, hooks, &e) < 0) {
			rep->source_kept = true;
			snprintf(rep->source_error, sizeof(rep->source_error),
				 "%s", e.msg);
		}
		ret = 0;
	}
	return ret;
}
