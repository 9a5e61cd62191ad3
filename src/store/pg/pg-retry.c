/*
 * A store call whose transaction failed before its COMMIT (the
 * connection lost mid-transaction: a restart, a failover, a node cut off;
 * a serialization failure or a deadlock) is run again, on a fresh
 * connection, until it succeeds or [store] postgres_timeout has passed
 * since the call began; then its temporary error goes to the caller
 * (IMAP NO [UNAVAILABLE], LMTP 451 4.3.0, ...). Nothing it did is in the
 * database (the transaction rolled back), so running it again is safe.
 * A COMMIT whose answer was lost is retried only when it is known not to
 * have happened (pg_wend_resolve: the delivery's row is not there).
 *
 * pg-db.c's conn_error marks a failure as retryable (pg_retry_mark) on
 * the calling thread; the wrappers below are what the vtable points to.
 */
#include "pg-private.h"

#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg-rows.h"

static _Thread_local bool retry_ok;

void pg_retry_mark(bool ok)
{
	retry_ok = ok;
}

void pg_retry_begin(struct pg_retry *rt)
{
	clock_gettime(CLOCK_MONOTONIC, &rt->start);
	rt->delay_ms = 20;
	rt->tries = 0;
	retry_ok = false;
}

bool pg_retry_again(struct store *store, struct pg_retry *rt)
{
	if (!retry_ok)
		return false;
	retry_ok = false;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long elapsed = (now.tv_sec - rt->start.tv_sec) * 1000L +
		       (now.tv_nsec - rt->start.tv_nsec) / 1000000L;
	unsigned timeout_ms = PGS(store)->timeout * 1000u;
	if (elapsed + (long)rt->delay_ms >= (long)timeout_ms)
		return false;
	rt->tries++;
	if (rt->tries == 1)
		log_info("store", NULL, "postgres: a transaction failed before"
			 " its COMMIT; running it again");
	usleep(rt->delay_ms * 1000);
	rt->delay_ms = rt->delay_ms * 2 > 1000 ? 1000 : rt->delay_ms * 2;
	return true;
}

#define RETRY PG_RETRY

/* ---- the calls --------------------------------------------------------- */

int pg_r_mailbox_list(struct store_user *user,
		      struct store_mailbox_info **list_r, size_t *count_r,
		      struct store_error *err)
{
	RETRY(user->store, pg_mailbox_list(user, list_r, count_r, err));
}

int pg_r_mailbox_status(struct store_user *user, const char *name, uint32_t id,
			struct store_mailbox_info *info_r,
			struct store_error *err)
{
	RETRY(user->store, pg_mailbox_status(user, name, id, info_r, err));
}

int pg_r_mailbox_create(struct store_user *user, const char *name,
			unsigned special_use, struct store_error *err)
{
	RETRY(user->store, pg_mailbox_create(user, name, special_use, err));
}

int pg_r_mailbox_delete(struct store_user *user, const char *name,
			struct store_error *err)
{
	RETRY(user->store, pg_mailbox_delete(user, name, err));
}

int pg_r_mailbox_rename(struct store_user *user, const char *from,
			const char *to, struct store_error *err)
{
	RETRY(user->store, pg_mailbox_rename(user, from, to, err));
}

int pg_r_mailbox_subscribe(struct store_user *user, const char *name,
			   bool subscribe, struct store_error *err)
{
	RETRY(user->store, pg_mailbox_subscribe(user, name, subscribe, err));
}

int pg_r_body_deliver(struct store_body *body, struct store_user *user,
		      const char *mailbox, const char *prefix,
		      size_t prefix_len,
		      const struct store_append_params *params,
		      uint32_t *uid_r, uint32_t *uidvalidity_r,
		      struct store_error *err)
{
	RETRY(user->store, pg_body_deliver(body, user, mailbox, prefix,
					   prefix_len, params, uid_r,
					   uidvalidity_r, err));
}

int pg_r_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		   struct store_blob *blob_r, struct store_error *err)
{
	RETRY(user->store, pg_blob_open(user, mailbox, uid, blob_r, err));
}

int pg_r_fetch_begin(struct store_user *user, const char *mailbox,
		     const struct store_uid_range *ranges, size_t range_count,
		     unsigned fields, uint64_t changedsince,
		     struct store_fetch **fetch_r, struct store_error *err)
{
	RETRY(user->store, pg_fetch_begin(user, mailbox, ranges, range_count,
					  fields, changedsince, fetch_r, err));
}

int pg_r_flags_update(struct store_user *user, const char *mailbox,
		      const struct store_uid_range *ranges, size_t range_count,
		      const struct store_flag_change *change,
		      uint32_t **changed_r, size_t *changed_count_r,
		      uint32_t **modified_r, size_t *modified_count_r,
		      struct store_error *err)
{
	RETRY(user->store, pg_flags_update(user, mailbox, ranges, range_count,
					   change, changed_r, changed_count_r,
					   modified_r, modified_count_r, err));
}

int pg_r_copy(struct store_user *user, const char *src,
	      const struct store_uid_range *ranges, size_t range_count,
	      const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	      uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	      struct store_error *err)
{
	RETRY(user->store, pg_copy(user, src, ranges, range_count, dst, move,
				   dst_uidvalidity_r, src_uids_r, dst_uids_r,
				   count_r, err));
}

int pg_r_expunge(struct store_user *user, const char *mailbox,
		 const struct store_uid_range *ranges, size_t range_count,
		 bool force, uint32_t **uids_r, size_t *count_r,
		 struct store_error *err)
{
	RETRY(user->store, pg_expunge(user, mailbox, ranges, range_count,
				      force, uids_r, count_r, err));
}

int pg_r_view_load(struct store_user *user, const char *mailbox,
		   uint32_t mailbox_id, struct store_mailbox_info *info_r,
		   uint32_t **uids_r, size_t *count_r, struct store_error *err)
{
	RETRY(user->store, pg_view_load(user, mailbox, mailbox_id, info_r,
					uids_r, count_r, err));
}

int pg_r_changed_since(struct store_user *user, const char *mailbox,
		       uint64_t modseq, const struct store_uid_range *ranges,
		       size_t range_count, uint32_t **uids_r, size_t *count_r,
		       struct store_error *err)
{
	RETRY(user->store, pg_changed_since(user, mailbox, modseq, ranges,
					    range_count, uids_r, count_r,
					    err));
}

int pg_r_search_text(struct store_user *user, const char *mailbox,
		     enum store_text_where where, const char *needle,
		     const struct store_uid_range *ranges, size_t range_count,
		     uint32_t **uids_r, size_t *count_r,
		     struct store_error *err)
{
	RETRY(user->store, pg_search_text(user, mailbox, where, needle, ranges,
					  range_count, uids_r, count_r, err));
}

int pg_r_sieve_put(struct store_user *user, const char *name,
		   const char *source, size_t len, const void *image,
		   size_t image_len, struct store_error *err)
{
	RETRY(user->store, pg_sieve_put(user, name, source, len, image,
					image_len, err));
}

int pg_r_sieve_deliver(struct store_user *user,
		       struct store_sieve_copy *copies, size_t count,
		       const struct store_sieve_record *records,
		       size_t record_count, struct store_error *err)
{
	RETRY(user->store, pg_sieve_deliver(user, copies, count, records,
					    record_count, err));
}

int pg_r_acl_update(struct store_user *user, const char *mailbox,
		    const struct store_acl_entry *entry, int mode,
		    unsigned max_entries, struct store_error *err)
{
	RETRY(user->store, pg_acl_update(user, mailbox, entry, mode,
					 max_entries, err));
}

int pg_r_seen_update(struct store_user *user, const char *mailbox,
		     int64_t viewer, const struct store_uid_range *ranges,
		     size_t range_count, struct store_seen_change *change,
		     struct store_error *err)
{
	RETRY(user->store, pg_seen_update(user, mailbox, viewer, ranges,
					  range_count, change, err));
}

int pg_r_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		     int64_t id, const char *data, int64_t *id_r,
		     struct store_error *err)
{
	RETRY(user->store, pg_jobject_put(user, kind, id, data, id_r, err));
}

int pg_r_view_delta(struct store_user *user, uint32_t mailbox_id,
		    uint64_t since, struct store_mailbox_info *info_r,
		    uint32_t **expunged_r, size_t *expunged_count_r,
		    bool *complete_r,
		    void (*changed)(void *ctx, const struct store_msg *msg),
		    void *ctx, struct store_error *err)
{
	/* changed() runs only once every read succeeded: no row twice */
	RETRY(user->store, pg_view_delta(user, mailbox_id, since, info_r,
					 expunged_r, expunged_count_r,
					 complete_r, changed, ctx, err));
}

int pg_r_expunged_since(struct store_user *user, const char *mailbox,
			uint64_t modseq, const struct store_uid_range *ranges,
			size_t range_count, uint32_t **uids_r,
			size_t *count_r, bool *complete_r,
			struct store_error *err)
{
	RETRY(user->store, pg_expunged_since(user, mailbox, modseq, ranges,
					     range_count, uids_r, count_r,
					     complete_r, err));
}
