/*
 * loftctl check on the PostgreSQL backend: every body a row names is in
 * blob_dir or the S3 bucket with its SHA-256; the account's quota usage,
 * each mailbox's UIDNEXT, HIGHESTMODSEQ and counts (messages, unseen,
 * deleted, size: schema step 10) and the account's change counter agree
 * with the rows; blob rows no message names are dropped. Counters are
 * repaired (raised, never lowered below what clients saw; the counts set
 * to the rows'); a missing or damaged body cannot be, and is named.
 */
#include "pg-private.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void report_f(store_report_fn *report, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report_f(store_report_fn *report, void *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (report != NULL)
		report(ctx, line);
}

int pg_check(struct store *store, int64_t user_id, bool repair,
	     store_report_fn *report, void *ctx, struct store_error *err)
{
	struct store_user *user;
	if (store_user_open_existing(store, user_id, &user, err) < 0)
		/* no mail yet is consistent, not a finding */
		return err != NULL && err->kind == STORE_ERR_NOTFOUND ? 0 : -1;
	struct pg_tx tx;
	if (pg_wbegin(user, &tx, err) < 0) {
		store_user_unref(&user);
		return -1;
	}
	int ret = 0, bad = 0;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, user_id);
	/* the bodies */
	PGresult *r = pg_exec(tx.c, "SELECT b.sha256, mb.name, m.uid,"
			      " b.body_size FROM blob b"
			      " JOIN msg m ON m.user_id = b.user_id AND m.blob = b.id"
			      " JOIN mailbox mb ON mb.user_id = m.user_id"
			      " AND mb.id = m.mailbox WHERE b.user_id = $1"
			      " ORDER BY mb.name, m.uid", &p, err);
	if (r == NULL)
		ret = -1;
	for (int i = 0; r != NULL && i < PQntuples(r); i++) {
		const char *sha = PQgetvalue(r, i, 0);
		char *path = pg_blobs_name(store, sha);
		int c = pg_blobs_verify(store, sha, (uint64_t)pg_int(r, i, 3));
		if (c < 0) {
			report_f(report, ctx, "%s UID %lld: body %s %s",
				 PQgetvalue(r, i, 1), (long long)pg_int(r, i, 2),
				 path, c == -1 ? "is missing" : "is damaged"
				 " (its SHA-256 does not match)");
			bad++;
		}
		free(path);
	}
	PQclear(r);
	/* blob rows no message (nor kept message) names (left by nothing
	 * that commits) */
	r = ret == 0 ? pg_exec(tx.c, "SELECT count(*) FROM blob b WHERE"
			       " b.user_id = $1 AND NOT EXISTS (SELECT 1 FROM msg m"
			       " WHERE m.user_id = $1 AND m.blob = b.id)"
			       " AND NOT EXISTS (SELECT 1 FROM deleted d"
			       " WHERE d.user_id = $1 AND d.blob = b.id)", &p, err)
		     : NULL;
	if (r != NULL && pg_int(r, 0, 0) > 0) {
		report_f(report, ctx, "%lld body rows no message names%s",
			 (long long)pg_int(r, 0, 0), repair ? ": removed" : "");
		if (repair)
			ret = pg_run(tx.c, "DELETE FROM blob b WHERE b.user_id = $1"
				     " AND NOT EXISTS (SELECT 1 FROM msg m WHERE"
				     " m.user_id = $1 AND m.blob = b.id) AND NOT"
				     " EXISTS (SELECT 1 FROM deleted d WHERE"
				     " d.user_id = $1 AND d.blob = b.id)", &p, err);
		else
			bad++;
	}
	PQclear(r);
	/* quota usage and the change counter */
	r = ret == 0 ? pg_exec(tx.c, "SELECT count(*),"
			       " coalesce(sum(size), 0)::bigint,"
			       " coalesce(max(modseq), 0) FROM msg WHERE user_id = $1",
			       &p, err) : NULL;
	if (r == NULL) {
		ret = -1;
	} else {
		int64_t n = pg_int(r, 0, 0), bytes = pg_int(r, 0, 1);
		uint64_t maxmod = (uint64_t)pg_int(r, 0, 2);
		if (n != tx.messages || bytes != tx.bytes) {
			report_f(report, ctx, "quota usage was %lld messages"
				 " %lld bytes, is %lld messages %lld bytes%s",
				 (long long)tx.messages, (long long)tx.bytes,
				 (long long)n, (long long)bytes,
				 repair ? ": repaired" : "");
			if (repair) {
				tx.messages = n;
				tx.bytes = bytes;
				tx.usage_dirty = true;
			} else {
				bad++;
			}
		}
		if (maxmod > tx.modseq) {
			report_f(report, ctx, "change counter %llu below a"
				 " message's modseq %llu%s",
				 (unsigned long long)tx.modseq,
				 (unsigned long long)maxmod,
				 repair ? ": raised" : "");
			if (repair) {
				tx.modseq = maxmod;
				tx.usage_dirty = true;
			} else {
				bad++;
			}
		}
	}
	PQclear(r);
	/* each mailbox's UIDNEXT and HIGHESTMODSEQ */
	r = ret == 0 ? pg_exec(tx.c, "SELECT mb.id, mb.name, mb.uidnext,"
			       " mb.highestmodseq, coalesce(max(m.uid), 0),"
			       " coalesce(max(m.modseq), 0) FROM mailbox mb"
			       " LEFT JOIN msg m ON m.user_id = mb.user_id AND"
			       " m.mailbox = mb.id WHERE mb.user_id = $1"
			       " GROUP BY mb.id, mb.name, mb.uidnext,"
			       " mb.highestmodseq", &p, err) : NULL;
	if (ret == 0 && r == NULL)
		ret = -1;
	for (int i = 0; r != NULL && ret == 0 && i < PQntuples(r); i++) {
		int64_t uidnext = pg_int(r, i, 2), hms = pg_int(r, i, 3);
		int64_t maxuid = pg_int(r, i, 4), maxmod = pg_int(r, i, 5);
		if (uidnext > maxuid && hms >= maxmod)
			continue;
		report_f(report, ctx, "%s: UIDNEXT %lld HIGHESTMODSEQ %lld"
			 " below its messages' (UID %lld, MODSEQ %lld)%s",
			 PQgetvalue(r, i, 1), (long long)uidnext, (long long)hms,
			 (long long)maxuid, (long long)maxmod,
			 repair ? ": raised" : "");
		if (!repair) {
			bad++;
			continue;
		}
		struct pg_params q;
		pg_p_init(&q);
		pg_p_int(&q, user_id);
		pg_p_int(&q, pg_int(r, i, 0));
		pg_p_int(&q, maxuid + 1);
		pg_p_int(&q, maxmod);
		ret = pg_run(tx.c, "UPDATE mailbox SET uidnext ="
			     " greatest(uidnext, $3), highestmodseq ="
			     " greatest(highestmodseq, $4) WHERE user_id = $1"
			     " AND id = $2", &q, err);
	}
	PQclear(r);
	/* each mailbox's counts (kept by the trigger mcount) */
	r = ret == 0 ? pg_exec(tx.c, "SELECT mb.name, mb.messages, mb.unseen,"
			       " mb.deleted, mb.size, s.n, s.u, s.d, s.z"
			       " FROM mailbox mb, LATERAL (SELECT count(*) n,"
			       " count(*) FILTER (WHERE (m.flags & 1) = 0) u,"
			       " count(*) FILTER (WHERE (m.flags & 8) <> 0) d,"
			       " coalesce(sum(m.size), 0)::bigint z FROM msg m"
			       " WHERE m.user_id = mb.user_id AND"
			       " m.mailbox = mb.id) s WHERE mb.user_id = $1"
			       " AND (mb.messages, mb.unseen, mb.deleted, mb.size)"
			       " <> (s.n, s.u, s.d, s.z)", &p, err) : NULL;
	if (ret == 0 && r == NULL)
		ret = -1;
	for (int i = 0; r != NULL && i < PQntuples(r); i++) {
		report_f(report, ctx, "%s: counts were %lld messages %lld unseen"
			 " %lld deleted %lld bytes, are %lld %lld %lld %lld%s",
			 PQgetvalue(r, i, 0), (long long)pg_int(r, i, 1),
			 (long long)pg_int(r, i, 2), (long long)pg_int(r, i, 3),
			 (long long)pg_int(r, i, 4), (long long)pg_int(r, i, 5),
			 (long long)pg_int(r, i, 6), (long long)pg_int(r, i, 7),
			 (long long)pg_int(r, i, 8), repair ? ": repaired" : "");
		if (!repair)
			bad++;
	}
	if (r != NULL && PQntuples(r) > 0 && repair)
		ret = pg_run(tx.c, "UPDATE mailbox mb SET messages = s.n,"
			     " unseen = s.u, deleted = s.d, size = s.z"
			     " FROM mailbox x, LATERAL (SELECT count(*) n,"
			     " count(*) FILTER (WHERE (m.flags & 1) = 0) u,"
			     " count(*) FILTER (WHERE (m.flags & 8) <> 0) d,"
			     " coalesce(sum(m.size), 0)::bigint z FROM msg m"
			     " WHERE m.user_id = x.user_id AND m.mailbox = x.id) s"
			     " WHERE x.user_id = $1 AND mb.user_id = x.user_id"
			     " AND mb.id = x.id", &p, err);
	PQclear(r);
	ret = pg_wend(&tx, ret, err);
	store_user_unref(&user);
	if (ret < 0)
		return -1;
	if (bad > 0)
		return store_set_error(err, STORE_ERR_INTERNAL,
				       "%d problems were not repaired", bad);
	return 0;
}
