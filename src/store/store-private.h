/*
 * Between the store API (store.c, store-view.c) and a backend. store.c
 * owns what every backend shares: the user handle cache, the change hub,
 * views (seq <-> uid maps built from backend deltas) and argument checks.
 * A backend fills struct store_backend_vfuncs; the embedded one lives in
 * sqlite/ and is the only code that sees SQLite or blob files.
 *
 * Front-ends never include this header.
 */
#ifndef LOFT_STORE_PRIVATE_H
#define LOFT_STORE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "mail.h"
#include "store.h"

struct store_hub;
struct store_retention_task;

struct store_copy_row;   /* JMAP on a viewer's handle, below */

/* What view_open (store-view.c <-> the backend) exchange. have() is
 * called once in the snapshot with the mailbox's id, UIDVALIDITY and own
 * HIGHESTMODSEQ, and says what the view layer holds of it:
 * STORE_VIEW_HAVE_NONE (every UID is read), _ALL (the list of that
 * state: none is read), _BASE (the list of the older state base_modseq,
 * highest UID base_last: only the UIDs above base_last and the UIDs
 * expunged after base_modseq are read, with from_base set, unless the
 * expunge log does not reach back: then every UID). */
enum { STORE_VIEW_HAVE_NONE, STORE_VIEW_HAVE_ALL, STORE_VIEW_HAVE_BASE };
struct store_view_want {
	int (*have)(struct store_view_want *want, uint32_t mailbox_id,
		    uint32_t uidvalidity, uint64_t modseq);
	uint64_t base_modseq;
	uint32_t base_last;
	/* out */
	uint64_t common_modseq;
	bool from_base;
	uint32_t *uids;            /* sorted; the caller frees */
	size_t count;
	uint32_t *gone;            /* sorted; from_base only */
	size_t gone_count;
	/* Optional, from the same snapshot (a SELECT's FLAGS and [UNSEEN]
	 * without a read of their own): the mailbox's keywords (sorted;
	 * the caller frees), and for the owner (viewer 0) the first UID
	 * without \Seen (0: none). */
	bool keywords_set, first_unseen_set;
	char **keywords;
	size_t keyword_count;
	uint32_t first_unseen;
};

struct store_backend_vfuncs {
	const char *name;
	int (*open)(struct store *store, struct store_error *err);
	/* stop: ends the backend's threads (first thing in store_close,
	 * while users may still be open); close frees the rest. */
	void (*stop)(struct store *store);
	void (*close)(struct store *store);
	void (*start_background)(struct store *store);

	int (*user_open)(struct store_user *user, struct store_error *err);
	bool (*user_exists)(struct store *store, int64_t user_id);
	void (*user_close)(struct store_user *user);
	int (*user_delete)(struct store *store, int64_t user_id,
			   struct store_error *err);
	int (*usage)(struct store_user *user, struct store_usage *usage_r,
		     struct store_error *err);
	int (*disk)(struct store_user *user, struct store_disk *disk_r,
		    struct store_error *err);

	int (*mailbox_list)(struct store_user *user,
			    struct store_mailbox_info **list_r, size_t *count_r,
			    struct store_error *err);
	int (*subscriptions)(struct store_user *user, char ***names_r,
			     size_t *count_r, struct store_error *err);
	/* name NULL: look up by id. */
	int (*mailbox_status)(struct store_user *user, const char *name,
			      uint32_t id, struct store_mailbox_info *info_r,
			      struct store_error *err);
	int (*mailbox_create)(struct store_user *user, const char *name,
			      unsigned special_use, struct store_error *err);
	int (*mailbox_delete)(struct store_user *user, const char *name,
			      struct store_error *err);
	int (*mailbox_rename)(struct store_user *user, const char *from,
			      const char *to, struct store_error *err);
	int (*mailbox_subscribe)(struct store_user *user, const char *name,
				 bool subscribe, struct store_error *err);
	char *(*mailbox_find_special)(struct store_user *user,
				      unsigned special_use);
	int (*mailbox_keywords)(struct store_user *user, const char *mailbox,
				char ***keywords_r, size_t *count_r,
				struct store_error *err);

	/* One body, several copies (store.h "delivery"). The body object
	 * begins with struct store_object. prefix is already CRLF. */
	int (*body_create)(struct store *store, struct store_body **body_r,
			   struct store_error *err);
	int (*body_write)(struct store_body *body, const void *data,
			  size_t len, struct store_error *err);
	uint64_t (*body_size)(const struct store_body *body);
	/* metadata and URLAUTH keys (store.h; optional: NULL is "not
	 * supported", LIMIT to the caller). user is the owner's handle;
	 * viewer 0 the owner, else the viewer's user id: its own /private
	 * entries and its own key (store.c checks its rights first) */
	int (*metadata_get)(struct store_user *user, int64_t viewer,
			    const char *mailbox, const char *const *names,
			    size_t name_count, int depth,
			    struct store_metadata **entries_r,
			    size_t *count_r, struct store_error *err);
	int (*metadata_set)(struct store_user *user, int64_t viewer,
			    const char *mailbox,
			    const struct store_metadata *entries, size_t count,
			    struct store_error *err);
	int (*urlauth_key)(struct store_user *user, int64_t viewer,
			   const char *mailbox, bool reset,
			   unsigned char *key_r, struct store_error *err);
	/* optional: keep line ends as written (NULL: not supported) */
	void (*body_set_binary)(struct store_body *body);
	int (*body_finish)(struct store_body *body, struct store_error *err);
	int (*body_deliver)(struct store_body *body, struct store_user *user,
			    const char *mailbox, const char *prefix,
			    size_t prefix_len,
			    const struct store_append_params *params,
			    uint32_t *uid_r, uint32_t *uidvalidity_r,
			    struct store_error *err);
	void (*body_unref)(struct store_body *body);
	/* optional (NULL: body_deliver for each): n bodies, no prefix, into
	 * one mailbox in one group commit (MULTIAPPEND); uids[i] 0 for each
	 * that failed, -1 with the first failure's error if any did */
	int (*bodies_deliver)(struct store_body *const *bodies, size_t n,
			      struct store_user *user, const char *mailbox,
			      const struct store_append_params *params,
			      uint32_t *uids, uint32_t *uidvalidity_r,
			      struct store_error *err);
	int (*blob_open)(struct store_user *user, const char *mailbox,
			 uint32_t uid, struct store_blob *blob_r,
			 struct store_error *err);
	void (*blob_close)(struct store_blob *blob);
	/* store_blob_open_head; optional (NULL: blob_open, the whole
	 * message) */
	int (*blob_open_head)(struct store_user *user, const char *mailbox,
			      uint32_t uid, struct store_blob *blob_r,
			      struct store_error *err);

	/* changedsince 0: every message in ranges */
	int (*fetch_begin)(struct store_user *user, const char *mailbox,
			   const struct store_uid_range *ranges,
			   size_t range_count, unsigned fields,
			   uint64_t changedsince, struct store_fetch **fetch_r,
			   struct store_error *err);
	int (*fetch_next)(struct store_fetch *fetch,
			  const struct store_msg **msg_r,
			  struct store_error *err);
	void (*fetch_end)(struct store_fetch **fetch);

	int (*flags_update)(struct store_user *user, const char *mailbox,
			    const struct store_uid_range *ranges,
			    size_t range_count,
			    const struct store_flag_change *change,
			    uint32_t **changed_r, size_t *changed_count_r,
			    uint32_t **modified_r, size_t *modified_count_r,
			    struct store_error *err);
	int (*copy)(struct store_user *user, const char *src,
		    const struct store_uid_range *ranges, size_t range_count,
		    const char *dst, bool move, uint32_t *dst_uidvalidity_r,
		    uint32_t **src_uids_r, uint32_t **dst_uids_r,
		    size_t *count_r, struct store_error *err);
	int (*expunge)(struct store_user *user, const char *mailbox,
		       const struct store_uid_range *ranges,
		       size_t range_count, bool force, uint32_t **uids_r,
		       size_t *count_r, struct store_error *err);

	/* Views. view_load: the mailbox's state and every UID, read in one
	 * snapshot. view_delta: in one snapshot, the state now, the UIDs
	 * expunged after since (from the log; *complete_r false if the log
	 * does not reach back) and every message with modseq > since (UID
	 * order, flags fields filled) through changed(). NOTFOUND if the
	 * mailbox (that id) is gone. */
	int (*view_load)(struct store_user *user, const char *mailbox,
			 uint32_t mailbox_id,
			 struct store_mailbox_info *info_r, uint32_t **uids_r,
			 size_t *count_r, struct store_error *err);
	int (*view_delta)(struct store_user *user, uint32_t mailbox_id,
			  uint64_t since, struct store_mailbox_info *info_r,
			  uint32_t **expunged_r, size_t *expunged_count_r,
			  bool *complete_r,
			  void (*changed)(void *ctx, const struct store_msg *msg),
			  void *ctx, struct store_error *err);
	/* Optional (NULL: never known): a value that changes whenever
	 * anyone, in any process, commits to the account's index, found
	 * without opening it; 0 when it cannot tell. An IDLE keepalive
	 * looks for another process's changes only when it moved
	 * (store_view_maybe_changed), so an idle account's index stays
	 * closed. */
	uint64_t (*change_stamp)(struct store_user *user);
	/* Optional (NULL: view_load, and for a viewer with its own \Seen
	 * a seen_view_delta from the common state): view_load as viewer
	 * sees the mailbox (0: as the owner; > 0: info with its unseen and
	 * HIGHESTMODSEQ, as seen_info) in one snapshot, reading only the
	 * UIDs the caller lacks (struct store_view_want). */
	int (*view_open)(struct store_user *user, const char *mailbox,
			 int64_t viewer, struct store_view_want *want,
			 struct store_mailbox_info *info_r,
			 struct store_error *err);
	/* The lowest UID without \Seen in a mailbox (0: none). */
	int (*first_unseen)(struct store_user *user, uint32_t mailbox_id,
			    uint32_t *uid_r, struct store_error *err);
	/* \Recent (RFC 3501 2.3.2): returns the first UID not yet taken by
	 * a session; unless peek, UIDs below upto are taken from now on. */
	uint32_t (*recent_claim)(struct store_user *user, uint32_t mailbox_id,
				 uint32_t upto, bool peek);

	int (*changed_since)(struct store_user *user, const char *mailbox,
			     uint64_t modseq,
			     const struct store_uid_range *ranges,
			     size_t range_count, uint32_t **uids_r,
			     size_t *count_r, struct store_error *err);
	int (*expunged_since)(struct store_user *user, const char *mailbox,
			      uint64_t modseq,
			      const struct store_uid_range *ranges,
			      size_t range_count, uint32_t **uids_r,
			      size_t *count_r, bool *complete_r,
			      struct store_error *err);
	int (*search_text)(struct store_user *user, const char *mailbox,
			   enum store_text_where where, const char *needle,
			   const struct store_uid_range *ranges,
			   size_t range_count, uint32_t **uids_r,
			   size_t *count_r, struct store_error *err);

	int (*pop3_retrieved)(struct store_user *user, uint32_t uid,
			      time_t now, struct store_error *err);
	int (*pop3_hide)(struct store_user *user, const uint32_t *uids,
			 size_t count, size_t *hidden_r,
			 struct store_error *err);
	int (*mailbox_roles_ensure)(struct store_user *user,
				    struct store_error *err);
	/* client activity (store_note_sync_login) */
	int (*note_sync_login)(struct store_user *user, time_t now,
			       struct store_error *err);
	int (*last_sync_login)(struct store_user *user, time_t *when_r,
			       struct store_error *err);
	/* loftctl check: the schema version the handle's open found */
	void (*user_index_version)(struct store_user *user, unsigned *found_r,
				   unsigned *known_r);
	int (*retention_run)(struct store_user *user,
			     const struct store_retention_policy *policy,
			     time_t now, struct store_retention_report *report_r,
			     struct store_error *err);
	int (*check)(struct store *store, int64_t user_id, bool repair,
		     store_report_fn *report, void *ctx,
		     struct store_error *err);
	int (*compact)(struct store *store, int64_t user_id,
		       struct store_compact_report *report_r,
		       struct store_error *err);
	int (*index_version)(struct store *store, int64_t user_id,
			     unsigned *found_r, unsigned *known_r,
			     struct store_error *err);
	/* Brings the search index up to date now (it normally catches up
	 * in the background; results are exact either way). */
	int (*index_flush)(struct store_user *user, struct store_error *err);
	/* optional (NULL: the backend indexes as it writes): the account's
	 * search index may lag, catch up in the background (issue 17:
	 * another process imported into it, store_index_elsewhere) */
	void (*index_kick)(struct store *store, int64_t user_id);

	/* JMAP (store.h "JMAP"): see there; the backend's sq-jmap*.c. */
	int (*jmap_states)(struct store_user *user,
			   struct store_jmap_cursor *states_r,
			   struct store_error *err);
	int (*jmap_changes)(struct store_user *user, enum store_jmap_kind kind,
			    const struct store_jmap_cursor *since, size_t max,
			    struct store_jmap_changes *changes_r,
			    struct store_error *err);
	int (*jmap_prune)(struct store_user *user, time_t now,
			  struct store_error *err);
	int (*jmap_mailboxes)(struct store_user *user,
			      struct store_jmap_mailbox **list_r,
			      size_t *count_r, struct store_error *err);
	int (*jmap_mailbox_update)(struct store_user *user, uint32_t mailbox_id,
				   const uint32_t *sort_order,
				   const unsigned *special_use,
				   struct store_error *err);
	int (*email_get)(struct store_user *user, const int64_t *ids,
			 size_t count, struct store_email *emails,
			 struct store_error *err);
	int (*email_open)(struct store_user *user, int64_t id,
			  struct store_blob *blob_r, struct store_error *err);
	int (*email_scan)(struct store_user *user, uint32_t mailbox_id,
			  bool newest_first, unsigned fields,
			  store_email_row_fn *cb, void *ctx,
			  struct store_error *err);
	int (*email_rank)(struct store_user *user, uint32_t mailbox_id,
			  int64_t id, uint64_t *rank_r,
			  struct store_error *err);
	int (*email_moved_since)(struct store_user *user, uint32_t mailbox_id,
				 const struct store_jmap_cursor *since,
				 int64_t **ids_r, size_t *count_r,
				 bool *too_old_r, struct store_error *err);
	int (*thread_emails)(struct store_user *user, int64_t thread,
			     int64_t **ids_r, size_t *count_r,
			     struct store_error *err);
	int (*email_search)(struct store_user *user,
			    enum store_text_where where, const char *field,
			    const char *needle, int64_t **ids_r,
			    size_t *count_r, struct store_error *err);
	/* The email transaction: ops are checked and kept by store.c. */
	int (*email_tx_commit)(struct store_user *user,
			       struct store_email_tx *tx,
			       struct store_error *err);
	int (*upload_begin)(struct store_user *user, uint64_t max_size,
			    struct store_upload **up_r,
			    struct store_error *err);
	int (*upload_write)(struct store_upload *up, const void *data,
			    size_t len, struct store_error *err);
	int (*upload_finish)(struct store_upload **up, const char *type,
			     time_t expires, int64_t *id_r, uint64_t *size_r,
			     struct store_error *err);
	void (*upload_abort)(struct store_upload **up);
	int (*upload_open)(struct store_user *user, int64_t id,
			   struct store_blob *blob_r, char **type_r,
			   struct store_error *err);
	int (*upload_touch)(struct store_user *user, int64_t id,
			    time_t expires, struct store_error *err);
	int (*jobject_list)(struct store_user *user, enum store_jmap_kind kind,
			    struct store_jobject **list_r, size_t *count_r,
			    struct store_error *err);
	int (*jobject_put)(struct store_user *user, enum store_jmap_kind kind,
			   int64_t id, const char *data, int64_t *id_r,
			   struct store_error *err);
	/* import and export (store.h "moving mail in and out") */
	int (*import_mailbox)(struct store_user *user,
			      const struct store_import_mailbox *spec,
			      struct store_mailbox_info *info_r,
			      struct store_error *err);
	/* messages in one commit (items whose ret is 0 on entry; names
	 * normalised); store_import_append is a batch of one */
	void (*import_append_batch)(struct store_user *user,
				    struct store_import_item *items,
				    size_t count);
	int (*import_mark_add)(struct store_user *user, const char *source,
			       const char *id, struct store_error *err);
	int (*import_marks)(struct store_user *user, const char *source,
			    char ***ids_r, size_t *count_r,
			    struct store_error *err);
	int (*modseq_raise)(struct store_user *user, uint64_t modseq,
			    struct store_error *err);
	int (*import_exact)(struct store_user *user,
			    const struct store_import_exact *x,
			    struct store_error *err);
	int (*export_begin)(struct store_user *user,
			    struct store_export **exp_r,
			    struct store_error *err);
	/* the export object begins with struct store_object */
	const struct store_export_info *(*export_info)(
		const struct store_export *exp);
	int (*export_messages)(struct store_export *exp, uint32_t mailbox_id,
			       struct store_error *err);
	int (*export_next)(struct store_export *exp,
			   const struct store_export_msg **msg_r,
			   struct store_error *err);
	int (*export_body)(struct store_export *exp, int64_t email,
			   struct store_blob *blob_r, struct store_error *err);
	void (*export_end)(struct store_export **exp);
	/* optional (NULL: no readers' \Seen to export) */
	int (*export_seen)(struct store_export *exp, uint32_t mailbox_id,
			   struct store_export_seen **rows_r,
			   size_t *count_r, struct store_error *err);
	/* optional (NULL: no expunge log to export) */
	int (*export_expunged)(struct store_export *exp, uint32_t mailbox_id,
			       struct store_expunged_range **ranges_r,
			       size_t *count_r, uint64_t *horizon_r,
			       struct store_error *err);
	/* optional (NULL: nothing beside the mail, store_export_extra) */
	int (*export_extra)(struct store_export *exp,
			    struct store_account_extra *x_r,
			    struct store_error *err);
	int (*import_extra)(struct store_user *user,
			    const struct store_account_extra *x,
			    size_t *skipped_r, struct store_error *err);
	/* optional (NULL: no kept messages, store_export_kept) */
	int (*export_kept)(struct store_export *exp,
			   struct store_export_kept **rows_r, size_t *count_r,
			   struct store_error *err);
	int (*import_kept)(struct store_user *user,
			   const struct store_import_kept *k,
			   struct store_body *body, struct store_error *err);
	/* a move's delta (NULL: nothing kept to forget or drop) */
	int (*deleted_forget)(struct store_user *user, const int64_t *ids,
			      size_t count, struct store_error *err);
	int (*drop_extra)(struct store_user *user,
			  const struct store_account_extra *x,
			  struct store_error *err);
	/* optional (NULL: zeros) */
	int (*export_pop3_sum)(struct store_export *exp,
			       struct store_pop3_sum *r,
			       struct store_error *err);
	/* undelete (store.h "undelete") */
	int (*deleted_list)(struct store_user *user,
			    const struct store_deleted_filter *filter,
			    store_deleted_fn *fn, void *ctx,
			    struct store_error *err);
	int (*deleted_usage)(struct store_user *user,
			     struct store_usage *usage_r,
			     struct store_error *err);
	int (*undelete)(struct store_user *user,
			const struct store_deleted_filter *filter,
			struct store_undelete_report *report_r,
			struct store_error *err);
	int (*jobject_delete)(struct store_user *user,
			      enum store_jmap_kind kind, int64_t id,
			      struct store_error *err);
	/* Sieve (store.h "Sieve"): scripts and records */
	int (*sieve_list)(struct store_user *user,
			  struct store_sieve_script **list_r, size_t *count_r,
			  struct store_error *err);
	int (*sieve_get)(struct store_user *user, const char *name,
			 bool active_only, char **name_r, char **source_r,
			 size_t *len_r, void **image_r, size_t *image_len_r,
			 bool *active_r, struct store_error *err);
	int (*sieve_put)(struct store_user *user, const char *name,
			 const char *source, size_t len, const void *image,
			 size_t image_len, struct store_error *err);
	int (*sieve_activate)(struct store_user *user, const char *name,
			      struct store_error *err);
	int (*sieve_delete)(struct store_user *user, const char *name,
			    struct store_error *err);
	int (*sieve_rename)(struct store_user *user, const char *from,
			    const char *to, struct store_error *err);
	int (*sieve_ids)(struct store_user *user, struct store_error *err);
	int (*sieve_record_seen)(struct store_user *user, const char *key,
				 time_t now, bool *seen_r,
				 struct store_error *err);
	int (*sieve_deliver)(struct store_user *user,
			     struct store_sieve_copy *copies, size_t count,
			     const struct store_sieve_record *records,
			     size_t record_count, struct store_error *err);
	/* store_sieve_version; optional (NULL: 0, no caching); and the
	 * change of what it covers that the backend does not see itself
	 * (a VacationResponse written through store_jobject_*) */
	uint64_t (*sieve_version)(struct store_user *user);
	void (*sieve_changed)(struct store_user *user);
	/* store_body_text; optional (NULL: none kept) */
	const char *(*body_text)(struct store_body *body, size_t *len_r);

	/* ACL (store.h "shared mailboxes"; sqlite/sq-acl.c). acl_read: in
	 * one snapshot the mailbox's id and entries (NOTFOUND if there is
	 * no such mailbox, \Noselect ones included). acl_update: mode as
	 * store_acl_set, or 2 to delete the entry. */
	int (*acl_read)(struct store_user *user, const char *mailbox,
			uint32_t *mailbox_id_r, struct store_acl_entry **entries_r,
			size_t *count_r, struct store_error *err);
	int (*acl_update)(struct store_user *user, const char *mailbox,
			  const struct store_acl_entry *entry, int mode,
			  unsigned max_entries, struct store_error *err);
	int (*acl_all)(struct store_user *user, struct store_acl_row **rows_r,
		       size_t *count_r, struct store_error *err);
	/* optional (NULL: no): the backend writes the reverse ACL index
	 * (auth's acl_hints) in each ACL change's own transaction, so
	 * store_settings.acl_hint is not called before it (pg-acl.c) */
	bool (*acl_index_kept)(struct store *store);

	/* Scale-out (docs/scale-out.md; pg/). Optional (NULL: this
	 * process's sessions only): store_end_sessions reaches the
	 * account's sessions on every other node too. */
	void (*end_sessions)(struct store *store, int64_t user_id);
	/* Optional (NULL: nothing to collect): store_blobs_collect. */
	int (*blobs_collect)(struct store *store, unsigned grace,
			     struct store_collect_report *report_r,
			     struct store_error *err);
	/* Optional (NULL: no object store): store_object_*. */
	bool (*objects)(struct store *store, unsigned *grace_r);
	int (*object_put)(struct store *store, int fd, const char *path,
			  uint64_t size, char sha_r[65],
			  struct store_error *err);
	int (*object_read)(struct store *store, const char *sha, char *out,
			   uint64_t size, struct store_error *err);
	void (*object_release)(struct store *store, const char *sha);
	/* Optional (NULL: one node, always taken): store_maildrop_lock. */
	int (*maildrop_lock)(struct store *store, int64_t user_id,
			     struct store_error *err);
	void (*maildrop_unlock)(struct store *store, int64_t user_id);
	/* Optional (NULL: always): store_reachable. */
	bool (*reachable)(struct store *store);
	/* Per-user \Seen (store.h; sqlite/sq-seen.c), optional: NULL and
	 * every viewer shares the owner's \Seen. viewer is a viewer's
	 * user id (> 0). seen_info: in one snapshot the mailbox's messages,
	 * its unseen for viewer and its HIGHESTMODSEQ with viewer's own
	 * changes (the rest of info is left). seen_rows: viewer's rows in
	 * ranges (UID order). seen_changed_since: UIDs whose common or own
	 * modseq is above modseq. seen_view_delta: view_delta as viewer
	 * sees it (flags with its \Seen, modseq the higher one, since
	 * compared with both). */
	int (*seen_mode)(struct store_user *user, const char *mailbox,
			 int *mode_r, struct store_error *err);
	int (*seen_set_mode)(struct store_user *user, const char *mailbox,
			     int mode, struct store_error *err);
	int (*seen_info)(struct store_user *user, uint32_t mailbox_id,
			 int64_t viewer, struct store_mailbox_info *info,
			 struct store_error *err);
	/* Optional (NULL: seen_mode and seen_info per mailbox): seen_info
	 * for every mailbox of list whose \Seen is per user (a mailbox
	 * without a mode of its own: per user unless default_shared), in
	 * one snapshot. */
	int (*seen_list)(struct store_user *user, int64_t viewer,
			 bool default_shared, struct store_mailbox_info *list,
			 size_t count, struct store_error *err);
	int (*seen_first_unseen)(struct store_user *user, uint32_t mailbox_id,
				 int64_t viewer, uint32_t *uid_r,
				 struct store_error *err);
	int (*seen_rows)(struct store_user *user, const char *mailbox,
			 int64_t viewer, const struct store_uid_range *ranges,
			 size_t range_count, struct store_seen_row **rows_r,
			 size_t *count_r, struct store_error *err);
	int (*seen_changed_since)(struct store_user *user, const char *mailbox,
				  int64_t viewer, uint64_t modseq,
				  const struct store_uid_range *ranges,
				  size_t range_count, uint32_t **uids_r,
				  size_t *count_r, struct store_error *err);
	int (*seen_update)(struct store_user *user, const char *mailbox,
			   int64_t viewer, const struct store_uid_range *ranges,
			   size_t range_count,
			   struct store_seen_change *change,
			   struct store_error *err);
	int (*seen_view_delta)(struct store_user *user, uint32_t mailbox_id,
			       int64_t viewer, uint64_t since,
			       struct store_mailbox_info *info_r,
			       uint32_t **expunged_r, size_t *expunged_count_r,
			       bool *complete_r,
			       void (*changed)(void *ctx,
					       const struct store_msg *msg),
			       void *ctx, struct store_error *err);
	/* JMAP on a viewer's handle (store.h; store-jshare.c; sqlite/
	 * sq-jshare.c), optional: NULL and JMAP refuses other accounts.
	 * email_copies: the copies without \Deleted of Emails ids, with
	 * viewer's own \Seen row (seen_pvt -1: none), by Email then
	 * mailbox, uid. seen_newest: the highest modseq of viewer's own
	 * \Seen changes (0: none). seen_emails_since: the Emails (distinct)
	 * whose viewer's own \Seen changed after modseq. */
	int (*email_copies)(struct store_user *user, const int64_t *ids,
			    size_t count, int64_t viewer,
			    struct store_copy_row **rows_r, size_t *count_r,
			    struct store_error *err);
	int (*seen_newest)(struct store_user *user, int64_t viewer,
			   uint64_t *modseq_r, struct store_error *err);
	int (*seen_emails_since)(struct store_user *user, int64_t viewer,
				 uint64_t modseq, int64_t **ids_r,
				 size_t *count_r, struct store_error *err);
};

/* A row of email_copies (JMAP on a viewer's handle). */
struct store_copy_row {
	int64_t email;
	uint32_t mailbox, uid;
	unsigned flags;
	int seen_pvt;                  /* viewer's own \Seen: 1, 0, -1 none */
};

/* The steps of a big body's way to disk that tests can make fail
 * (struct store's test_fail_body_step). */
enum store_test_fail_step {
	STORE_TEST_FAIL_SPILL_SYNC = 1,   /* fsync of the spill file */
	STORE_TEST_FAIL_LINK,             /* link into a user's blobs/ */
	STORE_TEST_FAIL_DIRSYNC,          /* fsync of the link's directory */
};

struct store {
	struct store_settings set;     /* strings owned (data_dir) */
	const struct store_backend_vfuncs *vf;
	void *be;

	pthread_mutex_t users_mu;
	pthread_cond_t users_cond;     /* a handle became ready (or failed) */
	struct store_user **users;     /* open handles, hashed by id */
	size_t users_size;
	/* Handles nobody holds stay open (their connections and statements
	 * warm) up to this many, so a delivery to a user with no session
	 * does not reopen the index each time; the least recently used goes
	 * first. */
	size_t idle_count, idle_max;
	uint64_t use_clock;

	struct store_hub *hub;
	struct store_retention_task *retention;   /* store-retention.c */
	/* Fault injection for tests: when > 0, the blob writer fails with
	 * ENOSPC once this many more bytes have been written. */
	_Atomic uint64_t test_fail_write_after;
	/* ... and when test_fail_body_errno is set, the next big body's
	 * step test_fail_body_step (STORE_TEST_FAIL_*) fails once with that
	 * errno (the embedded backend: sqlite/sq-body.c). */
	_Atomic int test_fail_body_step;
	_Atomic int test_fail_body_errno;
	/* store_index_elsewhere (issue 17): this process (loftctl) leaves
	 * the search indexing of what it writes to loftd */
	bool index_elsewhere;
	/* Both backends (store-route.c): with backend = sqlite and [store]
	 * postgres set, pg is the postgres side (its own handle table, the
	 * same hub) and each account is opened where its row says; front
	 * is the store a pg side belongs to (NULL on the front one). */
	struct store *pg, *front;
	/* store_move_account: the account this process moves (its own
	 * opens pass the lock), 0 none */
	_Atomic int64_t moving;
	/* the settings' limits callback, which both sides' now wrap */
	store_limits_fn *route_limits;
	void *route_limits_ctx;
};

struct store_user {
	struct store *store;
	int64_t id;
	int refcount;                  /* under store->users_mu */
	bool ready;                    /* opened (under users_mu); until
	                                  then others wait for it */
	uint64_t last_use;             /* store->use_clock at the last unref */
	struct store_user *next;       /* hash chain */
	void *be;
	/* The highest modseq this process has committed for the user: lets
	 * store_view_has_changes answer without touching the index. */
	_Atomic uint64_t last_modseq;
	/* Group commits of this process under way (sq-commit.c): raised
	 * before the transaction writes anything, lowered after
	 * last_modseq moved. A commit's changes become visible to readers
	 * before last_modseq moves, so a view that reads while one is under
	 * way cannot tell from last_modseq alone whether its read saw it
	 * (store-view.c: it reads again at its next sync). */
	_Atomic uint32_t commits_in_flight;
	/* UID lists shared by the user's views (store-view.c) */
	pthread_mutex_t views_mu;
	struct store_uidlist *uidlists;
	/* A viewer's handle (store_user_open_as, store-acl.c): the owner's
	 * ordinary handle it holds a reference on, and who looks. Such a
	 * handle is never in the users table and never reaches a backend:
	 * store.c checks the rights and passes the owner's handle on. */
	struct store_user *owner;
	struct store_viewer viewer;      /* groups owned (a copy) */
};

/* For tests: UID lists views have made (a view that shares another's
 * list makes none). */
extern _Atomic uint64_t store_uidlists_made;
/* Frees the UID lists a user's views left (store-view.c), at its end. */
void store_view_lists_free(struct store_user *user);


/* For background upkeep (a backend's idle trim): calls fn for every open
 * account with a reference held, without changing which idle handle is
 * closed first. */
void store_users_foreach(struct store *store,
			 void (*fn)(struct store_user *user, void *ctx),
			 void *ctx);

/* For tests and benchmarks: the search index caught up at once. */
int store_index_flush(struct store_user *user, struct store_error *err);

/* Called by a backend after every commit, on the committing thread. */
void store_publish(struct store *store, const struct store_change *change);

/* Fills err (may be NULL) and returns -1. */
int store_set_error(struct store_error *err, enum store_error_kind kind,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* STORE_ERR_TEMP with err->full: a write found no space (ENOSPC, EDQUOT,
 * SQLITE_FULL, PostgreSQL's disk_full). Returns -1. */
int store_set_full(struct store_error *err);

/* Mailbox names: checks and canonicalises (INBOX in any case becomes
 * "INBOX", also as the first component). Returns a malloced name or NULL
 * with INVALID. */
char *store_name_normalize(const char *name, struct store_error *err);

/* ---- rights checks of a viewer's handle (store-acl.c) -------------- */

/* On an ordinary handle: 0 at once (*rights_r every right). On a
 * viewer's: the viewer's rights on mailbox (a normalised store name)
 * must hold every right of need (0: the mailbox must merely be visible,
 * any right); then *user becomes the owner's handle for the backend
 * call. -1 with NOTFOUND (not visible: exactly as a missing mailbox) or
 * NOPERM. rights_r may be NULL. */
int store_acl_enter(struct store_user **user, const char *mailbox,
		    unsigned need, unsigned *rights_r, struct store_error *err);
/* Calls on the whole account: PERM on a viewer's handle. */
int store_acl_owner_only(struct store_user *user, struct store_error *err);
/* The owner's handle of a viewer's one (the handle itself otherwise). */
struct store_user *store_acl_backend_user(struct store_user *user);
/* CREATE: k on the nearest existing parent (NOPERM at the top). */
int store_acl_enter_parent(struct store_user **user, const char *name,
			   struct store_error *err);
/* RENAME: x on from, k on the nearest existing parent of to. */
int store_acl_enter_rename(struct store_user **user, const char *from,
			   const char *to, struct store_error *err);
/* The system flags rights let one change (s: \Seen, t: \Deleted, w: the
 * others). */
unsigned store_acl_flag_mask(unsigned rights);
/* store_flags_update on a viewer's handle. */
int store_acl_flags_update(struct store_user *viewer, const char *mailbox,
			   const struct store_uid_range *ranges,
			   size_t range_count,
			   const struct store_flag_change *change,
			   uint32_t **changed_r, size_t *changed_count_r,
			   uint32_t **modified_r, size_t *modified_count_r,
			   struct store_error *err);
/* Copies the ACL of the owner's INBOX to its mailbox name (best effort). */
void store_acl_inherit_inbox(struct store_user *owner, const char *name);
/* Frees a viewer's handle (its last unref). */
void store_acl_viewer_free(struct store_user *user);
/* The viewer's rights (rights_r[i]) on each mailbox of ids, from the
 * owner's ACL in one read. */
int store_acl_rights_many(struct store_user *viewer, const uint32_t *ids,
			  size_t count, unsigned *rights_r,
			  struct store_error *err);
/* store_mailbox_list on a viewer's handle: keeps what it may see. */
int store_acl_filter_list(struct store_user *viewer,
			  struct store_mailbox_info *list, size_t *count,
			  struct store_error *err);
/* ---- JMAP on a viewer's handle (store-jshare.c) --------------------
 * store-jmap.c hands each JMAP call made on a viewer's handle to these;
 * arguments and output as the store.h call of the same name (outputs
 * already cleared, emails allocated). */
int store_jshare_states(struct store_user *viewer,
			struct store_jmap_cursor *states_r,
			struct store_error *err);
int store_jshare_changes(struct store_user *viewer, enum store_jmap_kind kind,
			 const struct store_jmap_cursor *since, size_t max,
			 struct store_jmap_changes *changes_r,
			 struct store_error *err);
int store_jshare_mailboxes(struct store_user *viewer,
			   struct store_jmap_mailbox **list_r, size_t *count_r,
			   struct store_error *err);
int store_jshare_email_get(struct store_user *viewer, const int64_t *ids,
			   size_t count, struct store_email *emails,
			   struct store_error *err);
int store_jshare_email_open(struct store_user *viewer, int64_t id,
			    struct store_blob *blob_r, struct store_error *err);
int store_jshare_email_scan(struct store_user *viewer, uint32_t mailbox_id,
			    bool newest_first, unsigned fields,
			    store_email_row_fn *cb, void *ctx,
			    struct store_error *err);
int store_jshare_email_rank(struct store_user *viewer, uint32_t mailbox_id,
			    int64_t id, uint64_t *rank_r,
			    struct store_error *err);
int store_jshare_moved_since(struct store_user *viewer, uint32_t mailbox_id,
			     const struct store_jmap_cursor *since,
			     int64_t **ids_r, size_t *count_r, bool *too_old_r,
			     struct store_error *err);
int store_jshare_thread_emails(struct store_user *viewer, int64_t thread,
			       int64_t **ids_r, size_t *count_r,
			       struct store_error *err);
int store_jshare_email_search(struct store_user *viewer,
			      enum store_text_where where, const char *field,
			      const char *needle, int64_t **ids_r,
			      size_t *count_r, struct store_error *err);
int store_jshare_tx_commit(struct store_user *viewer,
			   struct store_email_tx *tx, struct store_error *err);

/* ---- per-user \Seen of a viewer's handle (store-seen.c) ------------ */

/* The viewer whose own \Seen applies on handle h to mailbox (a
 * normalised name), or 0: an ordinary handle, a delivery, a mailbox
 * whose \Seen is shared, a backend without it. */
int64_t store_seen_pvt(struct store_user *h, const char *mailbox);
/* info (of mailbox, read through h's owner) as h's viewer sees it:
 * unseen and HIGHESTMODSEQ. On failure info is freed. */
int store_seen_info(struct store_user *h, const char *mailbox,
		    struct store_mailbox_info *info, struct store_error *err);
/* The same for every entry of a list of h's owner's mailboxes. */
int store_seen_list(struct store_user *h, struct store_mailbox_info *list,
		    size_t count, struct store_error *err);
/* store_fetch_begin_since on the owner's handle for viewer pvt. */
int store_seen_fetch_begin(struct store_user *owner, int64_t pvt,
			   const char *mailbox,
			   const struct store_uid_range *ranges,
			   size_t range_count, unsigned fields,
			   uint64_t changedsince, struct store_fetch **fetch_r,
			   struct store_error *err);
int store_seen_changed_since(struct store_user *owner, int64_t pvt,
			     const char *mailbox, uint64_t modseq,
			     const struct store_uid_range *ranges,
			     size_t range_count, uint32_t **uids_r,
			     size_t *count_r, struct store_error *err);
int store_seen_update(struct store_user *owner, int64_t pvt,
		      const char *mailbox, const struct store_uid_range *ranges,
		      size_t range_count, struct store_seen_change *change,
		      struct store_error *err);

/* The text of a missing mailbox, the same for a hidden one. */
#define STORE_ACL_NOTFOUND "Mailbox doesn't exist: %s"

/* Shard of a user directory: data_dir/mail/<shard>/<user-id>. */
unsigned store_user_shard(int64_t user_id);

/* ---- the analysis of a message at write time ---------------------- */

/* What the store caches about a message: mail_analyze()'s result, with
 * header_text and body_text already case-folded for searching. Free it
 * with mail_result_free(). */
void store_analyze(const char *data, size_t len, struct mail_result *r);
/* What store_sieve_version covers changed (a VacationResponse). */
void store_sieve_changed(struct store_user *user);
/* The same, and the body text before folding handed to *plain_r
 * (malloced, *plain_len_r bytes; NULL when there is none or it is over
 * max bytes), for store_body_text. */
void store_analyze_plain(const char *data, size_t len, struct mail_result *r,
			 size_t max, char **plain_r, size_t *plain_len_r);
/* Case folding used for the search index and for needles: a text
 * contains a needle (IMAP SEARCH) iff fold(text) contains fold(needle). */
void store_text_fold(struct buf *out, const char *s, size_t len);

/* ---- logic both backends share (store-backend.c) -------------------- */

/* JMAP readings of the cached analysis (store-jparse.c): whether a
 * BODYSTRUCTURE (IMAP form, len bytes) has a part a client should offer
 * for download (Email hasAttachment, RFC 8621 4.1.4); whether the folded
 * header text t ("name: value\n" lines) holds needle in the value of a
 * field (folded name; NULL: anywhere). */
bool store_bodystructure_has_attachment(const char *bs, size_t len);
bool store_header_has(const char *t, size_t tlen, const char *field,
		      const char *needle, size_t nlen);
/* Email/set (store-jparse.c): a copy's keyword list (space-separated,
 * NULL for none) and flags after update up; the result malloced. */
char *store_email_keywords_update(const char *old,
				  const struct store_email_update *up);
unsigned store_email_flags_update(unsigned old,
				  const struct store_email_update *up);
/* The mailboxes an Email is to be in after update up (cur: it is in
 * them now), distinct, malloced, *count_r of them (0: none, refused). */
uint32_t *store_email_mailboxes_want(const uint32_t *cur, size_t ncur,
				     const struct store_email_update *up,
				     size_t *count_r);
/* Adds kw's space-separated keywords to e's, each once (any case). */
void store_email_keywords_split(struct store_email *e, const char *kw);

/* uid is in ranges (NULL: every UID). */
bool store_ranges_contain(const struct store_uid_range *ranges, size_t count,
			  uint32_t uid);
/* A message's new keyword list, as stored ("a b c", NULL: none), after
 * the change ch to the list old. Malloced. */
char *store_keywords_apply(const char *old, const struct store_flag_change *ch);
/* A stored keyword list as a NULL-terminated array (reused across calls;
 * store_keyword_list_free at the end). Returns the count. */
struct store_keyword_list {
	char *buf;
	const char **list;
	size_t cap;
};
size_t store_keywords_split(const char *kw, struct store_keyword_list *l);
void store_keyword_list_free(struct store_keyword_list *l);
/* The header search text of a copy's prefix, folded as a message's is. */
void store_prefix_text(const char *prefix, size_t len, struct buf *out);

/* Annotation rows (store.h "metadata"; sqlite/sq-metadata.c and
 * pg/pg-metadata.c keep them the same way). Whose row an entry is: a
 * /private entry is viewer's own (0: the owner's), a /shared one the
 * mailbox's (0). Names are lower case. */
int64_t store_metadata_row_viewer(const char *name, int64_t viewer);
/* found (flen bytes) is a descendant of a name of base_len bytes that
 * depth (1 or infinity) asks for. */
bool store_metadata_in_depth(const char *found, size_t flen, size_t base_len,
			     int depth);
/* The entries a get collects: once per name, sorted at the end. */
struct store_metadata_list {
	struct store_metadata *items;
	size_t count, cap;
};
void store_metadata_push(struct store_metadata_list *l, const char *name,
			 size_t name_len, const void *value, size_t len);
void store_metadata_sort(struct store_metadata_list *l);
/* LIMIT in err (-1) when one account's rows (of one viewer) are over
 * STORE_METADATA_MAX_ENTRIES or STORE_METADATA_MAX_TOTAL. */
int store_metadata_limits(int64_t entries, double total,
			  struct store_error *err);
/* len bytes from the kernel's random source (URLAUTH keys). */
void store_random(void *buf, size_t len);

/* Objects a backend hands out (blob writers, fetch iterators, the priv of
 * a struct store_blob) begin with this header, so store.c can dispatch
 * calls that get only the object. */
struct store_object {
	const struct store_backend_vfuncs *vf;
};
#define STORE_OBJ_VF(p) (((const struct store_object *)(const void *)(p))->vf)

/* ---- JMAP email transactions (store.c keeps them; a backend runs) -- */

enum store_email_op_kind { STORE_EMAIL_OP_CREATE, STORE_EMAIL_OP_UPDATE,
			   STORE_EMAIL_OP_DESTROY };
struct store_email_op {
	enum store_email_op_kind kind;
	int64_t id;                           /* update, destroy */
	struct store_body *body;              /* create */
	struct store_body *routed;            /* body's routed one (store-route.c) */
	uint32_t *mailboxes;                  /* create: owned */
	size_t mailbox_count;
	struct store_append_params params;    /* create: keywords owned */
	/* update: arrays owned (copied from the caller's) */
	struct store_email_update update;
	struct store_email_result result;
};
struct store_email_tx {
	struct store_user *user;
	struct store_email_op *ops;
	size_t count, cap;
};

extern const struct store_backend_vfuncs store_sqlite_vfuncs;
/* ---- both backends at once (store-route.c) --------------------------- */
/* Opens store->pg when the settings ask for both. */
int store_route_open(struct store *store, struct store_error *err);
/* The store (front or pg side) user_id's mail is served from: from the
 * account's row through the limits callback; -1 with UNAVAILABLE when
 * it cannot be read or the account is being moved (locked). */
int store_route(struct store *store, int64_t user_id, bool check_lock,
		struct store **store_r, struct store_error *err);
bool store_route_locked(struct store *store, int64_t user_id);
/* store_move_account's lock (store.h); a kill -9 frees it */
int store_lock_take_for_move(struct store *store, int64_t user_id, int *fd_r,
			     struct store_error *err);
void store_lock_drop_for_move(struct store *store, int64_t user_id, int fd);
/* A body made on a store with both sides: the bytes kept for either
 * (store_body_route gives the one for user's backend, made from them
 * when first needed). */
int store_route_body_create(struct store *store, struct store_body **body_r,
			    struct store_error *err);
/* The body to hand user's backend (*body itself when it is not a routed
 * one); -1 on error. The routed body keeps ownership. */
int store_body_route(struct store_body *body, struct store_user *user,
		     struct store_body **inner_r, struct store_error *err);
/* user_id's handles on one side (store or store->pg): the idle one
 * closed; how many are left. */
unsigned store_route_evict(struct store *store, int64_t user_id);
/* store_user_delete on one side only */
int store_user_delete_backend(struct store *store, int64_t user_id,
			      struct store_error *err);
/* Opens on that side (store or store->pg), past routing and the lock */
int store_user_open_backend(struct store *store, int64_t user_id,
			    bool create, struct store_user **user_r,
			    struct store_error *err);
/* Opens an existing account on that side only while that side serves
 * it (its row, no move: else -1 with NOTFOUND or UNAVAILABLE), checked
 * once the open is under way so that a move cannot slip in between:
 * for a process's own background work (the indexer, the sweep), which
 * must never hold a file migrate-store is about to remove. */
int store_user_open_served(struct store *store, int64_t user_id,
			   struct store_user **user_r,
			   struct store_error *err);
/* src/store/pg/ ([store] backend = postgres, docs/scale-out.md) */
extern const struct store_backend_vfuncs store_postgres_vfuncs;

#endif
