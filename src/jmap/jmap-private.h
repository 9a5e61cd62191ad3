/*
 * Inside the JMAP engine: the server object, one API request's context,
 * the method table, and helpers every data type's file uses (ids, states,
 * dates, patches, errors). Data types live one per file: jmap-mailbox.c,
 * jmap-email*.c, jmap-thread.c, jmap-identity.c, jmap-submission.c,
 * jmap-vacation.c, jmap-quota.c, jmap-blob.c, jmap-push.c.
 */
#ifndef LOFT_JMAP_PRIVATE_H
#define LOFT_JMAP_PRIVATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "buf.h"
#include "jmap.h"
#include "store.h"

struct auth;
struct queue;

#define JMAP_CAP_CORE "urn:ietf:params:jmap:core"
#define JMAP_CAP_MAIL "urn:ietf:params:jmap:mail"
#define JMAP_CAP_SUBMISSION "urn:ietf:params:jmap:submission"
#define JMAP_CAP_VACATION "urn:ietf:params:jmap:vacationresponse"
#define JMAP_CAP_QUOTA "urn:ietf:params:jmap:quota"
#define JMAP_CAP_LOFT "https://loft.example/jmap/webmail"
#define JMAP_CAP_SIEVE "urn:ietf:params:jmap:sieve"
#define JMAP_CAP_PRINCIPALS "urn:ietf:params:jmap:principals"
#define JMAP_CAP_PRINCIPALS_OWNER "urn:ietf:params:jmap:principals:owner"

enum jmap_cap {
	JMAP_C_CORE = 1 << 0,
	JMAP_C_MAIL = 1 << 1,
	JMAP_C_SUBMISSION = 1 << 2,
	JMAP_C_VACATION = 1 << 3,
	JMAP_C_QUOTA = 1 << 4,
	JMAP_C_LOFT = 1 << 5,
	JMAP_C_SIEVE = 1 << 6,
	JMAP_C_PRINCIPALS = 1 << 7,
};

struct jmap_user_slot {
	int64_t user_id;
	unsigned requests, uploads;
};

struct jmap {
	struct jmap_settings set;
	struct store *store;
	struct auth *auth;
	struct queue *queue;
	/* concurrent requests and uploads per user (maxConcurrent*) */
	pthread_mutex_t mu;
	struct jmap_user_slot *slots;
	size_t slot_count;
	/* push: EventSource connections and PushSubscriptions */
	struct jmap_push *push;
	/* VacationResponse is offered once Sieve runs it */
	bool vacation;
};

/* One API request (RFC 8620 3.3). */
struct jmap_req {
	struct jmap *j;
	const struct jmap_caller *who;
	unsigned using;              /* enum jmap_cap bits */
	json_t *responses;           /* methodResponses so far */
	json_t *created_ids;         /* creation id -> id, the whole request */
	const char *call_id;         /* of the method running */
	const struct jmap_method *method;   /* the method running */
	/* the account of the method running, opened lazily: the caller's
	 * own, or another's mail through a viewer's handle (shared
	 * mailboxes); account is its owner's id (ids of Emails, Threads,
	 * blobs are that account's) */
	struct store_user *user;
	int64_t account;
	bool read_only;              /* another's with no right to change */
};

/* A method: fills its response(s) with jmap_reply, or returns an error
 * object made by jmap_error (the core sends it as ["error", ...]). */
typedef json_t *jmap_method_fn(struct jmap_req *req, json_t *args);
struct jmap_method {
	const char *name;
	unsigned cap;                /* enum jmap_cap it needs in using */
	jmap_method_fn *fn;
};

/* Fills a store_error (the store's own setter is private to it). */
static inline int jmap_fail(struct store_error *err, enum store_error_kind k,
			    const char *msg)
{
	if (err != NULL) {
		err->kind = k;
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	}
	return -1;
}

/* ---- jmap-core.c -------------------------------------------------- */

void jmap_reply(struct jmap_req *req, const char *name, json_t *args);
/* A method-level error (RFC 8620 3.6.2): {"type", "description"?}. */
json_t *jmap_error(const char *type, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* serverFail for a store error, logged with the request. */
json_t *jmap_store_error(struct jmap_req *req, const struct store_error *err);
/* A SetError (RFC 8620 5.3): {"type", "description"?, "properties"?}. */
json_t *jmap_set_error(const char *type, const char *description);
json_t *jmap_set_error_props(const char *type, const char *description,
			     const char *prop);
/* SetError from a store error (overQuota, tooLarge, notFound, ...). */
json_t *jmap_set_error_store(const struct store_error *err);

/* The account the arguments name: the caller's, or an error object
 * (accountNotFound; another account's id is never its data). The one
 * rights check below the methods: shared accounts come here. */
json_t *jmap_account(struct jmap_req *req, json_t *args, bool write);
void jmap_account_id(int64_t user_id, char out[32]);
bool jmap_account_parse(const char *s, int64_t *id_r);
/* The caller's own account as req->user (methods with no accountId). */
json_t *jmap_account_own(struct jmap_req *req);
/* The mail of owner_id as who may reach it: who's own, or another
 * account showing who at least one mailbox (a viewer's handle from
 * auth_viewer_open, every call checked by the store). *read_only_r:
 * no right to change anything there; name_r: the owner's address. -1:
 * no such account for who (accountNotFound). */
int jmap_account_open(struct jmap *j, const struct jmap_caller *who,
		      int64_t owner_id, struct store_user **user_r,
		      bool *read_only_r, char *name_r, size_t name_size);
/* The other accounts whose mail who may read (RFC 8620 2 accounts with
 * isPersonal false): owners' ids, ascending (caller frees). */
int jmap_shared_accounts(struct jmap *j, const struct jmap_caller *who,
			 int64_t **ids_r, size_t *count_r);

/* Resolves "#creationId" through created_ids; other ids as they are.
 * NULL when a creation id is unknown. */
const char *jmap_resolve_id(struct jmap_req *req, const char *id);
void jmap_add_created(struct jmap_req *req, const char *creation_id,
		      const char *id);

/* RFC 8620 1.2: 1-255 of A-Za-z0-9_- */
bool jmap_id_valid(const char *s);

/* States: "<modseq>" or "<modseq>.<id>" for a position inside one. */
void jmap_state_format(const struct store_jmap_cursor *c, char out[48]);
bool jmap_state_parse(const char *s, struct store_jmap_cursor *c_r);
/* The current state of a kind, as a string (for /get). */
json_t *jmap_state_json(struct jmap_req *req, enum store_jmap_kind kind);

/* Dates: RFC 3339 "2014-10-30T14:12:00Z" (UTCDate) and with offset. */
void jmap_utcdate(time_t t, char out[32]);
void jmap_date_offset(time_t t, int offset_min, char out[40]);
bool jmap_utcdate_parse(const char *s, time_t *t_r);

/* Argument readers: each returns false after setting *err_r to an
 * invalidArguments error naming the argument. */
bool jmap_arg_uint(json_t *args, const char *name, uint64_t def,
		   uint64_t *v_r, json_t **err_r);
bool jmap_arg_int(json_t *args, const char *name, int64_t def, int64_t *v_r,
		  json_t **err_r);
bool jmap_arg_bool(json_t *args, const char *name, bool def, bool *v_r,
		   json_t **err_r);
/* ids: null or an array of Id strings (creation refs allowed). */
bool jmap_arg_ids(json_t *args, const char *name, json_t **ids_r,
		  json_t **err_r);
/* properties: null (all) or an array of names, each in known (NULL
 * terminated) or accepted by extra; unknown ones are invalidArguments. */
bool jmap_arg_props(json_t *args, const char *name,
		    const char *const *known,
		    bool (*extra)(const char *prop), json_t **props_r,
		    json_t **err_r);
/* Whether props (from jmap_arg_props; NULL: all) asks for p. */
bool jmap_want(json_t *props, const char *p);

/* A /query filter (RFC 8620 5.5): a FilterOperator (AND, OR, NOT over
 * "conditions") is evaluated here, each FilterCondition by cond (1
 * match, 0 not, -1 bad). 1, 0, or -1 for a bad filter. */
typedef int jmap_cond_fn(void *ctx, json_t *condition);
int jmap_filter_eval(json_t *f, jmap_cond_fn *cond, void *ctx);

/* /changes arguments and response in one (every type's /changes). */
json_t *jmap_changes(struct jmap_req *req, json_t *args,
		     enum store_jmap_kind kind, const char *name);

/* Per-user concurrency: kind 0 API requests, 1 uploads. */
bool jmap_slot_take(struct jmap *j, int64_t user_id, int kind);
void jmap_slot_give(struct jmap *j, int64_t user_id, int kind);

/* /query paging over the full result (ids: a JSON array of id strings):
 * position, anchor, anchorOffset, limit (at most max_limit: "limit" is
 * then in the response), calculateTotal; fills r. NULL, or an error. */
json_t *jmap_query_window(json_t *args, json_t *ids, size_t max_limit,
			  json_t *r);

/* ---- jmap-patch.c ------------------------------------------------- */

/* Applies a PatchObject (RFC 8620 5.3) to obj (a copy is made): keys
 * are JSON Pointers; null removes. Returns the patched object, or NULL
 * with *bad_r set to the offending path (invalidPatch: a pointer that
 * escapes, goes through a non-object or a missing parent). */
json_t *jmap_patch_apply(json_t *obj, json_t *patch, const char **bad_r);
/* Reads a JSON Pointer token (RFC 6901 ~0 ~1) into out; false on a bad
 * escape. */
bool jmap_pointer_token(const char *s, size_t len, struct buf *out);

/* ---- methods by file ---------------------------------------------- */

extern const struct jmap_method jmap_mailbox_methods[];
extern const struct jmap_method jmap_email_methods[];
extern const struct jmap_method jmap_thread_methods[];
extern const struct jmap_method jmap_identity_methods[];
extern const struct jmap_method jmap_submission_methods[];
extern const struct jmap_method jmap_vacation_methods[];
extern const struct jmap_method jmap_quota_methods[];
extern const struct jmap_method jmap_blob_methods[];
extern const struct jmap_method jmap_push_methods[];
extern const struct jmap_method jmap_loft_methods[];
extern const struct jmap_method jmap_sieve_methods[];
extern const struct jmap_method jmap_share_methods[];
extern const struct jmap_method jmap_deleted_methods[];

/* ---- jmap-share.c: sharing (RFC 9670) of the caller's mailboxes --- */

/* The account capabilities of RFC 9670 for the account of user_id. */
json_t *jmap_share_account_caps(int64_t user_id);
/* Mailbox.shareWith of one of the caller's mailboxes (null: shared with
 * no principal). */
json_t *jmap_share_with(struct jmap_req *req, const char *mailbox);
/* MailboxRights (with mayShare) of RFC 4314 rights. */
json_t *jmap_share_rights_json(unsigned rights);
/* Whether a Mailbox/set key is shareWith or a patch below it. */
bool jmap_share_key(const char *key);
/* Applies the shareWith keys of a Mailbox/set object (all checked
 * before any is made): NULL, or a SetError. */
json_t *jmap_share_update(struct jmap_req *req, const char *mailbox,
			  json_t *obj);

/* jmap-loft.c: the webmail's vendor capability and its message frame
 * route (GET /jmap/frame/). */
struct http_server;
json_t *jmap_loft_capability(void);
int jmap_loft_register(struct jmap *j, struct http_server *server);

/* jmap-mailbox.c: the caller's mailboxes (for Email's mailboxIds). */
struct jmap_mailboxes {
	struct store_jmap_mailbox *v;
	size_t n;
};
int jmap_mailboxes_load(struct jmap_req *req, struct jmap_mailboxes *m,
			struct store_error *err);
void jmap_mailboxes_free(struct jmap_mailboxes *m);
const struct store_jmap_mailbox *jmap_mailbox_by_oid(
	const struct jmap_mailboxes *m, const char *oid);
const struct store_jmap_mailbox *jmap_mailbox_by_id(
	const struct jmap_mailboxes *m, uint32_t id);
const struct store_jmap_mailbox *jmap_mailbox_by_role(
	const struct jmap_mailboxes *m, unsigned special_use);

/* jmap-email.c: ids of Emails, Threads, blobs. */
void jmap_email_id(struct jmap_req *req, int64_t n, char out[32]);
bool jmap_email_id_parse(struct jmap_req *req, const char *s, int64_t *n_r);
void jmap_thread_id(struct jmap_req *req, int64_t n, char out[32]);
bool jmap_thread_id_parse(struct jmap_req *req, const char *s, int64_t *n_r);
/* An Email's keywords object from IMAP flags and keywords (lower-cased). */
json_t *jmap_keywords_json(unsigned flags, char *const *kw, size_t n);

/* jmap-blob.c: blob ids. A blob is a whole Email ("B<user>-<n>"), a part
 * of one, decoded ("B<user>-<n>-<1>_<2>..."), or an upload
 * ("U<user>-<n>"). */
struct jmap_blob {
	struct store_blob raw;       /* what was opened */
	const char *data;            /* the blob's bytes */
	size_t len;
	struct buf decoded;          /* a part, decoded */
	char *type;                  /* upload / part Content-Type, or NULL */
	char *name;                  /* part file name, or NULL */
};
void jmap_blob_id_email(struct jmap_req *req, int64_t email, char out[32]);
/* Opens a blob of the caller's account: 0, or -1 with err (NOTFOUND
 * for any id that is not this account's). */
int jmap_blob_open(struct jmap *j, struct store_user *user,
		   const char *blob_id, struct jmap_blob *b,
		   struct store_error *err);
void jmap_blob_close(struct jmap_blob *b);

/* jmap-push.c */
struct jmap_push;
struct jmap_push *jmap_push_create(struct jmap *j);
void jmap_push_destroy(struct jmap_push **push);
/* The TypeState of the account: {"Email": "12", ...} for the types the
 * caller may see. */
json_t *jmap_type_states(struct jmap *j, struct store_user *user,
			 struct store_error *err);

/* jmap-vacation.c: whether VacationResponse is advertised (Sieve). */
bool jmap_vacation_available(struct jmap *j);

/* jmap-sieve.c: SieveScript (RFC 9661), offered when Sieve runs at
 * delivery; the account capability; a script's content as a blob ("Z"
 * ids, jmap-blob.c). */
bool jmap_sieve_available(struct jmap *j);
json_t *jmap_sieve_capability(struct jmap *j, int64_t user_id);
int jmap_sieve_blob_open(struct store_user *user, int64_t n,
			 struct jmap_blob *b, struct store_error *err);

/* jmap-push.c: a user's PushSubscriptions after a restart. */
void jmap_push_user_seen(struct jmap_req *req);

#endif
