/*
 * The PostgreSQL backend's rows beyond mail (schema step 3 in pg-db.c):
 * Sieve (pg-sieve.c), JMAP (pg-jmap.c), ACLs (pg-acl.c), per-user \Seen
 * (pg-seen.c), METADATA (pg-metadata.c). The vtable in
 * pg-db.c points at these; sqlite/ is the reference for each.
 */
#ifndef LOFT_PG_ROWS_H
#define LOFT_PG_ROWS_H

#include <time.h>

#include "pg-private.h"

/* ---- Sieve (pg-sieve.c) ---------------------------------------------- */

int pg_sieve_list(struct store_user *user, struct store_sieve_script **list_r,
		  size_t *count_r, struct store_error *err);
int pg_sieve_get(struct store_user *user, const char *name, bool active_only,
		 char **name_r, char **source_r, size_t *len_r, void **image_r,
		 size_t *image_len_r, bool *active_r, struct store_error *err);
int pg_sieve_put(struct store_user *user, const char *name, const char *source,
		 size_t len, const void *image, size_t image_len,
		 struct store_error *err);
int pg_sieve_activate(struct store_user *user, const char *name,
		      struct store_error *err);
int pg_sieve_delete(struct store_user *user, const char *name,
		    struct store_error *err);
int pg_sieve_rename(struct store_user *user, const char *from, const char *to,
		    struct store_error *err);
int pg_sieve_ids(struct store_user *user, struct store_error *err);
int pg_sieve_record_seen(struct store_user *user, const char *key, time_t now,
			 bool *seen_r, struct store_error *err);
int pg_sieve_deliver(struct store_user *user, struct store_sieve_copy *copies,
		     size_t count, const struct store_sieve_record *records,
		     size_t record_count, struct store_error *err);

/* ---- JMAP (pg-jmap.c) ------------------------------------------------ */

int pg_jmap_states(struct store_user *user, struct store_jmap_cursor *states,
		   struct store_error *err);
int pg_jmap_changes(struct store_user *user, enum store_jmap_kind kind,
		    const struct store_jmap_cursor *since, size_t max,
		    struct store_jmap_changes *changes_r,
		    struct store_error *err);
int pg_jmap_prune(struct store_user *user, time_t now, struct store_error *err);

int pg_jobject_list(struct store_user *user, enum store_jmap_kind kind,
		    struct store_jobject **list_r, size_t *count_r,
		    struct store_error *err);
int pg_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		   int64_t id, const char *data, int64_t *id_r,
		   struct store_error *err);
int pg_jobject_delete(struct store_user *user, enum store_jmap_kind kind,
		      int64_t id, struct store_error *err);

/* ---- ACLs (pg-acl.c) ------------------------------------------------- */

int pg_acl_read(struct store_user *user, const char *mailbox, uint32_t *id_r,
		struct store_acl_entry **entries_r, size_t *count_r,
		struct store_error *err);
int pg_acl_update(struct store_user *user, const char *mailbox,
		  const struct store_acl_entry *entry, int mode,
		  unsigned max_entries, struct store_error *err);
int pg_acl_all(struct store_user *user, struct store_acl_row **rows_r,
	       size_t *count_r, struct store_error *err);
/* Whether the reverse index (loft_auth.acl_hints, the accounts' table
 * in the same database) is written by trigger in each ACL change's
 * transaction (store-private.h acl_index_kept). */
bool pg_acl_index_kept(struct store *store);
/* In tx: mailbox to's ACL becomes a copy of from's (INBOX renamed: its
 * messages keep the ACL they had, RFC 4314). */
int pg_acl_copy(struct pg_tx *tx, uint32_t from, uint32_t to,
		struct store_error *err);

/* ---- per-user \Seen (pg-seen.c) -------------------------------------- */

int pg_seen_mode(struct store_user *user, const char *mailbox, int *mode_r,
		 struct store_error *err);
int pg_seen_set_mode(struct store_user *user, const char *mailbox, int mode,
		     struct store_error *err);
int pg_seen_info(struct store_user *user, uint32_t mailbox_id, int64_t viewer,
		 struct store_mailbox_info *info, struct store_error *err);
/* The same in c's snapshot. */
int pg_seen_info_in(struct store_user *user, struct pg_conn *c,
		    uint32_t mailbox_id, int64_t viewer,
		    struct store_mailbox_info *info, struct store_error *err);
int pg_seen_first_unseen(struct store_user *user, uint32_t mailbox_id,
			 int64_t viewer, uint32_t *uid_r,
			 struct store_error *err);
int pg_seen_rows(struct store_user *user, const char *mailbox, int64_t viewer,
		 const struct store_uid_range *ranges, size_t range_count,
		 struct store_seen_row **rows_r, size_t *count_r,
		 struct store_error *err);
int pg_seen_changed_since(struct store_user *user, const char *mailbox,
			  int64_t viewer, uint64_t modseq,
			  const struct store_uid_range *ranges,
			  size_t range_count, uint32_t **uids_r,
			  size_t *count_r, struct store_error *err);
int pg_seen_update(struct store_user *user, const char *mailbox,
		   int64_t viewer, const struct store_uid_range *ranges,
		   size_t range_count, struct store_seen_change *change,
		   struct store_error *err);
int pg_seen_view_delta(struct store_user *user, uint32_t mailbox_id,
		       int64_t viewer, uint64_t since,
		       struct store_mailbox_info *info_r,
		       uint32_t **expunged_r, size_t *expunged_count_r,
		       bool *complete_r,
		       void (*changed)(void *ctx, const struct store_msg *msg),
		       void *ctx, struct store_error *err);
/* In a MOVE's transaction, before the sources go: the readers' rows of
 * src_uids[i] in src become theirs of dst_uids[i] in dst. */
int pg_seen_move(struct pg_tx *tx, uint32_t src, const uint32_t *src_uids,
		 uint32_t dst, const uint32_t *dst_uids, size_t count,
		 struct store_error *err);

/* ---- METADATA and URLAUTH keys (pg-metadata.c; run again as pg-retry.c
 * says) ------------------------------------------------------------- */

int pg_metadata_get(struct store_user *user, int64_t viewer,
		    const char *mailbox, const char *const *names,
		    size_t name_count, int depth,
		    struct store_metadata **entries_r, size_t *count_r,
		    struct store_error *err);
int pg_metadata_set(struct store_user *user, int64_t viewer,
		    const char *mailbox, const struct store_metadata *entries,
		    size_t count, struct store_error *err);
int pg_urlauth_key(struct store_user *user, int64_t viewer,
		   const char *mailbox, bool reset, unsigned char *key_r,
		   struct store_error *err);

/* ---- retry after a transaction lost before its COMMIT (pg-retry.c) ---- */

/* conn_error's verdict on the calling thread's last failure: whether the
 * call may run again (its transaction did not commit). */
void pg_retry_mark(bool ok);
/* The loop of a wrapper: PG_RETRY(store, call) returns call's result,
 * running it again while pg_retry_again says so. */
struct pg_retry {
	struct timespec start;
	unsigned delay_ms;
	unsigned tries;
};
void pg_retry_begin(struct pg_retry *rt);
/* After a failed call: whether to run it again (after a pause). */
bool pg_retry_again(struct store *store, struct pg_retry *rt);
#define PG_RETRY(store, call)                                              \
	do {                                                               \
		struct pg_retry rt_;                                       \
		pg_retry_begin(&rt_);                                      \
		int ret_;                                                  \
		do                                                         \
			ret_ = (call);                                     \
		while (ret_ < 0 && pg_retry_again((store), &rt_));         \
		return ret_;                                               \
	} while (0)
/* The vtable's entries for these calls: pg_<name> run again within
 * postgres_timeout while its failure is retryable. */
int pg_r_mailbox_list(struct store_user *user,
		      struct store_mailbox_info **list_r, size_t *count_r,
		      struct store_error *err);
int pg_r_mailbox_status(struct store_user *user, const char *name, uint32_t id,
			struct store_mailbox_info *info_r,
			struct store_error *err);
int pg_r_mailbox_create(struct store_user *user, const char *name,
			unsigned special_use, struct store_error *err);
int pg_r_mailbox_delete(struct store_user *user, const char *name,
			struct store_error *err);
int pg_r_mailbox_rename(struct store_user *user, const char *from,
			const char *to, struct store_error *err);
int pg_r_mailbox_subscribe(struct store_user *user, const char *name,
			   bool subscribe, struct store_error *err);
int pg_r_body_deliver(struct store_body *body, struct store_user *user,
		      const char *mailbox, const char *prefix,
		      size_t prefix_len,
		      const struct store_append_params *params,
		      uint32_t *uid_r, uint32_t *uidvalidity_r,
		      struct store_error *err);
int pg_r_blob_open(struct store_user *user, const char *mailbox, uint32_t uid,
		   struct store_blob *blob_r, struct store_error *err);
int pg_r_fetch_begin(struct store_user *user, const char *mailbox,
		     const struct store_uid_range *ranges, size_t range_count,
		     unsigned fields, uint64_t changedsince,
		     struct store_fetch **fetch_r, struct store_error *err);
int pg_r_flags_update(struct store_user *user, const char *mailbox,
		      const struct store_uid_range *ranges, size_t range_count,
		      const struct store_flag_change *change,
		      uint32_t **changed_r, size_t *changed_count_r,
		      uint32_t **modified_r, size_t *modified_count_r,
		      struct store_error *err);
int pg_r_copy(struct store_user *user, const char *src,
	      const struct store_uid_range *ranges, size_t range_count,
	      const char *dst, bool move, uint32_t *dst_uidvalidity_r,
	      uint32_t **src_uids_r, uint32_t **dst_uids_r, size_t *count_r,
	      struct store_error *err);
int pg_r_expunge(struct store_user *user, const char *mailbox,
		 const struct store_uid_range *ranges, size_t range_count,
		 bool force, uint32_t **uids_r, size_t *count_r,
		 struct store_error *err);
int pg_r_view_load(struct store_user *user, const char *mailbox,
		   uint32_t mailbox_id, struct store_mailbox_info *info_r,
		   uint32_t **uids_r, size_t *count_r, struct store_error *err);
int pg_r_changed_since(struct store_user *user, const char *mailbox,
		       uint64_t modseq, const struct store_uid_range *ranges,
		       size_t range_count, uint32_t **uids_r, size_t *count_r,
		       struct store_error *err);
int pg_r_search_text(struct store_user *user, const char *mailbox,
		     enum store_text_where where, const char *needle,
		     const struct store_uid_range *ranges, size_t range_count,
		     uint32_t **uids_r, size_t *count_r,
		     struct store_error *err);
int pg_r_sieve_put(struct store_user *user, const char *name,
		   const char *source, size_t len, const void *image,
		   size_t image_len, struct store_error *err);
int pg_r_sieve_deliver(struct store_user *user,
		       struct store_sieve_copy *copies, size_t count,
		       const struct store_sieve_record *records,
		       size_t record_count, struct store_error *err);
int pg_r_acl_update(struct store_user *user, const char *mailbox,
		    const struct store_acl_entry *entry, int mode,
		    unsigned max_entries, struct store_error *err);
int pg_r_seen_update(struct store_user *user, const char *mailbox,
		     int64_t viewer, const struct store_uid_range *ranges,
		     size_t range_count, struct store_seen_change *change,
		     struct store_error *err);
int pg_r_jobject_put(struct store_user *user, enum store_jmap_kind kind,
		     int64_t id, const char *data, int64_t *id_r,
		     struct store_error *err);
int pg_r_view_delta(struct store_user *user, uint32_t mailbox_id,
		    uint64_t since, struct store_mailbox_info *info_r,
		    uint32_t **expunged_r, size_t *expunged_count_r,
		    bool *complete_r,
		    void (*changed)(void *ctx, const struct store_msg *msg),
		    void *ctx, struct store_error *err);
int pg_r_expunged_since(struct store_user *user, const char *mailbox,
			uint64_t modseq, const struct store_uid_range *ranges,
			size_t range_count, uint32_t **uids_r,
			size_t *count_r, bool *complete_r,
			struct store_error *err);

#endif
