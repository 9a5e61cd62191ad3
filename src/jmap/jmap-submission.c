/*
 * EmailSubmission (RFC 8621 7): get, changes, query, queryChanges, set.
 * A create hands the Email's bytes (without Bcc) to the outbound queue
 * (queue.h) and succeeds only once the queue has them on disk; the
 * submission is kept as a stored object with the queue id, and its
 * deliveryStatus is read from the queue while the queue has the message.
 * onSuccessUpdateEmail / onSuccessDestroyEmail run as an implicit
 * Email/set after the submissions.
 */
#include "jmap-mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mail.h"
#include "queue.h"

void jmap_object_id(enum store_jmap_kind kind, int64_t n, char out[32]);
bool jmap_object_id_parse(enum store_jmap_kind kind, const char *s,
			  int64_t *n_r);
json_t *jmap_objects_load(struct jmap_req *req, enum store_jmap_kind kind,
			  struct store_error *err);
int jmap_object_save(struct jmap_req *req, enum store_jmap_kind kind,
		     int64_t n, json_t *obj, int64_t *id_r,
		     struct store_error *err);
json_t *jmap_identities(struct jmap_req *req, struct store_error *err);
bool jmap_may_send_as(struct jmap_req *req, const char *email);
json_t *jmap_email_set(struct jmap_req *req, json_t *args);

static const char *const sub_props[] = {
	"id", "identityId", "emailId", "threadId", "envelope", "sendAt",
	"undoStatus", "deliveryStatus", "dsnBlobIds", "mdnBlobIds", NULL,
};

/* The queue's view of a submission's recipients, when it still has it. */
static void refresh_status(struct jmap_req *req, json_t *o)
{
	const char *qid = json_string_value(json_object_get(o, "queueId"));
	struct queue_message_info *info = NULL;
	struct queue_error qerr;
	if (qid == NULL || qid[0] == '\0' || req->j->queue == NULL ||
	    queue_message_get(req->j->queue, qid, &info, &qerr) < 0)
		return;
	json_t *ds = json_object_get(o, "deliveryStatus");
	if (!json_is_object(ds)) {
		ds = json_object();
		json_object_set_new(o, "deliveryStatus", ds);
	}
	for (size_t i = 0; i < info->rcpt_count; i++) {
		const struct queue_rcpt_info *r = &info->rcpts[i];
		const char *delivered = r->status == QUEUE_RCPT_DELIVERED ? "yes"
					: r->status == QUEUE_RCPT_FAILED ? "no"
									 : "queued";
		char reply[320];
		if (r->code != 0)
			snprintf(reply, sizeof(reply), "%d %s", r->code,
				 r->last_error ? r->last_error : "");
		else
			snprintf(reply, sizeof(reply), "250 2.0.0 queued");
		json_object_set_new(ds, r->address,
				    json_pack("{s:s,s:s,s:s}", "smtpReply", reply,
					      "delivered", delivered,
					      "displayed", "unknown"));
	}
	queue_message_info_free(&info);
}

static json_t *public_json(json_t *o, json_t *props)
{
	json_t *r = json_object();
	for (const char *const *p = sub_props; *p; p++)
		if (jmap_want(props, *p) && json_object_get(o, *p) != NULL)
			json_object_set(r, *p, json_object_get(o, *p));
	json_object_set(r, "id", json_object_get(o, "id"));
	return r;
}

static json_t *sub_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", sub_props, NULL, &props, &e))
		return e;
	if (ids != NULL && json_array_size(ids) > req->j->set.max_objects_in_get)
		return jmap_error("requestTooLarge", NULL);
	json_t *state = jmap_state_json(req, STORE_JMAP_SUBMISSION);
	struct store_error err;
	json_t *all = jmap_objects_load(req, STORE_JMAP_SUBMISSION, &err);
	if (all == NULL) {
		json_decref(state);
		return jmap_store_error(req, &err);
	}
	json_t *list = json_array(), *nf = json_array();
	if (ids == NULL) {
		const char *k;
		json_t *v;
		json_object_foreach(all, k, v) {
			refresh_status(req, v);
			json_array_append_new(list, public_json(v, props));
		}
	} else {
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) {
			const char *id = jmap_resolve_id(req, json_string_value(x));
			json_t *v = id ? json_object_get(all, id) : NULL;
			if (v == NULL) {
				json_array_append(nf, x);
				continue;
			}
			refresh_status(req, v);
			json_array_append_new(list, public_json(v, props));
		}
	}
	json_decref(all);
	jmap_reply(req, "EmailSubmission/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *sub_changes(struct jmap_req *req, json_t *args)
{
	return jmap_changes(req, args, STORE_JMAP_SUBMISSION,
			    "EmailSubmission/changes");
}

/* ---- query ------------------------------------------------------------ */

static bool in_list(json_t *list, json_t *v)
{
	size_t i;
	json_t *x;
	json_array_foreach(list, i, x) if (json_equal(x, v)) return true;
	return false;
}

static int sub_match(json_t *o, json_t *f, int depth)
{
	if (f == NULL || json_is_null(f))
		return 1;
	if (!json_is_object(f) || depth > 50)
		return -1;
	const char *op = json_string_value(json_object_get(f, "operator"));
	if (op != NULL) {
		json_t *conds = json_object_get(f, "conditions");
		if (!json_is_array(conds))
			return -1;
		bool any = false, all = true;
		size_t i;
		json_t *c;
		json_array_foreach(conds, i, c) {
			int r = sub_match(o, c, depth + 1);
			if (r < 0)
				return -1;
			any |= r;
			all &= r;
		}
		return strcmp(op, "AND") == 0  ? all
		       : strcmp(op, "OR") == 0 ? any
		       : strcmp(op, "NOT") == 0 ? !any
						: -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach(f, k, v) {
		if (strcmp(k, "identityIds") == 0 || strcmp(k, "emailIds") == 0 ||
		    strcmp(k, "threadIds") == 0) {
			if (!json_is_array(v))
				return -1;
			const char *prop = k[0] == 'i' ? "identityId"
					   : k[0] == 'e' ? "emailId"
							 : "threadId";
			if (!in_list(v, json_object_get(o, prop)))
				return 0;
		} else if (strcmp(k, "undoStatus") == 0) {
			if (!json_is_string(v))
				return -1;
			if (!json_equal(v, json_object_get(o, "undoStatus")))
				return 0;
		} else if (strcmp(k, "before") == 0 || strcmp(k, "after") == 0) {
			time_t t, at;
			if (!jmap_utcdate_parse(json_string_value(v), &t))
				return -1;
			jmap_utcdate_parse(json_string_value(json_object_get(o,
									     "sendAt")),
					   &at);
			if (k[0] == 'b' ? at >= t : at < t)
				return 0;
		} else {
			return -1;
		}
	}
	return 1;
}

static json_t *sub_results(struct jmap_req *req, json_t *args, json_t **err_r)
{
	struct store_error err;
	json_t *all = jmap_objects_load(req, STORE_JMAP_SUBMISSION, &err);
	if (all == NULL) {
		*err_r = jmap_store_error(req, &err);
		return NULL;
	}
	json_t *sort = json_object_get(args, "sort");
	const char *prop = "sendAt";
	bool asc = true;
	if (json_is_array(sort) && json_array_size(sort) > 0) {
		json_t *c = json_array_get(sort, 0);
		prop = json_string_value(json_object_get(c, "property"));
		json_t *a = json_object_get(c, "isAscending");
		asc = a == NULL || json_is_true(a);
		if (prop == NULL || (strcmp(prop, "emailId") &&
				     strcmp(prop, "threadId") &&
				     strcmp(prop, "sentAt"))) {
			json_decref(all);
			*err_r = jmap_error("unsupportedSort", NULL);
			return NULL;
		}
		if (strcmp(prop, "sentAt") == 0)
			prop = "sendAt";
	}
	json_t *hits = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(all, k, v) {
		int r = sub_match(v, json_object_get(args, "filter"), 0);
		if (r < 0) {
			json_decref(all);
			json_decref(hits);
			*err_r = jmap_error("unsupportedFilter", NULL);
			return NULL;
		}
		if (r)
			json_array_append(hits, v);
	}
	/* insertion sort by the one key (few submissions are kept) */
	size_t n = json_array_size(hits);
	json_t **a = xcalloc(n ? n : 1, sizeof(json_t *));
	for (size_t i = 0; i < n; i++)
		a[i] = json_array_get(hits, i);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			const char *x = json_string_value(json_object_get(a[j - 1], prop));
			const char *y = json_string_value(json_object_get(a[j], prop));
			int c = strcmp(x ? x : "", y ? y : "");
			if (asc ? c <= 0 : c >= 0)
				break;
			json_t *t = a[j];
			a[j] = a[j - 1];
			a[j - 1] = t;
		}
	json_t *ids = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(ids, json_object_get(a[i], "id"));
	free(a);
	json_decref(hits);
	json_decref(all);
	return ids;
}

static json_t *sub_query(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	json_t *state = jmap_state_json(req, STORE_JMAP_SUBMISSION);
	json_t *ids = sub_results(req, args, &e);
	if (ids == NULL) {
		json_decref(state);
		return e;
	}
	json_t *r = json_pack("{s:O,s:o,s:b}", "accountId",
			      json_object_get(args, "accountId"), "queryState",
			      state, "canCalculateChanges", 1);
	e = jmap_query_window(args, ids, 10000, r);
	json_decref(ids);
	if (e != NULL) {
		json_decref(r);
		return e;
	}
	jmap_reply(req, "EmailSubmission/query", r);
	return NULL;
}

static json_t *sub_query_changes(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	const char *since = json_string_value(json_object_get(args,
							      "sinceQueryState"));
	struct store_jmap_cursor c;
	if (since == NULL)
		return jmap_error("invalidArguments", "sinceQueryState");
	if (!jmap_state_parse(since, &c))
		return jmap_error("cannotCalculateChanges", NULL);
	struct store_jmap_changes ch;
	struct store_error err;
	if (store_jmap_changes(req->user, STORE_JMAP_SUBMISSION, &c, 0, &ch,
			       &err) < 0)
		return jmap_store_error(req, &err);
	if (ch.too_old) {
		store_jmap_changes_free(&ch);
		return jmap_error("cannotCalculateChanges", NULL);
	}
	json_t *ids = sub_results(req, args, &e);
	if (ids == NULL) {
		store_jmap_changes_free(&ch);
		return e;
	}
	json_t *removed = json_array(), *added = json_array();
	struct store_jmap_change *lists[3] = {ch.created, ch.updated,
					      ch.destroyed};
	size_t counts[3] = {ch.created_count, ch.updated_count,
			    ch.destroyed_count};
	for (int l = 0; l < 3; l++)
		for (size_t i = 0; i < counts[l]; i++) {
			char id[32];
			jmap_object_id(STORE_JMAP_SUBMISSION, lists[l][i].id, id);
			json_array_append_new(removed, json_string(id));
			size_t k;
			json_t *x;
			json_array_foreach(ids, k, x)
				if (strcmp(json_string_value(x), id) == 0)
					json_array_append_new(
						added, json_pack("{s:s,s:I}", "id", id,
								 "index", (json_int_t)k));
		}
	char state[48];
	jmap_state_format(&ch.new_state, state);
	store_jmap_changes_free(&ch);
	json_decref(ids);
	jmap_reply(req, "EmailSubmission/queryChanges",
		   json_pack("{s:O,s:s,s:s,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "oldQueryState",
			     since, "newQueryState", state, "removed", removed,
			     "added", added));
	return NULL;
}

/* ---- set -------------------------------------------------------------- */

/* The message as sent: every Bcc field dropped (RFC 8621 7.5: "the Bcc
 * header field MUST NOT be sent"). */
static void without_bcc(const char *data, size_t len, struct buf *out)
{
	size_t hlen = mail_header_size(data, len);
	const char *p = data, *end = data + hlen;
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		e = e ? e + 1 : end;
		while (e < end && (*e == ' ' || *e == '\t')) {
			const char *e2 = memchr(e, '\n', (size_t)(end - e));
			e = e2 ? e2 + 1 : end;
		}
		if (!((size_t)(e - p) >= 4 && strncasecmp(p, "bcc:", 4) == 0))
			buf_append(out, p, (size_t)(e - p));
		p = e;
	}
	buf_append(out, data + hlen, len - hlen);
}

static void rcpts_from(json_t *list, json_t *out)
{
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		json_t *email = json_object_get(a, "email");
		if (!json_is_string(email))
			continue;
		bool dup = false;
		size_t k;
		json_t *x;
		json_array_foreach(out, k, x)
			dup |= strcasecmp(json_string_value(json_object_get(x, "email")),
					  json_string_value(email)) == 0;
		if (!dup)
			json_array_append_new(out, json_pack("{s:O,s:n}", "email",
							     email, "parameters"));
	}
}

static bool address_ok(const char *s)
{
	if (s == NULL || strlen(s) > 320 || strpbrk(s, " <>\r\n\t,;\""))
		return false;
	const char *at = strrchr(s, '@');
	return at != NULL && at != s && at[1] != '\0';
}

/* One submission: 0 queued (o filled), or a SetError. */
static json_t *submit(struct jmap_req *req, json_t *obj, json_t *identities,
		      json_t **o_r)
{
	const char *iid = jmap_resolve_id(req, json_string_value(
						  json_object_get(obj, "identityId")));
	const char *eid = jmap_resolve_id(req, json_string_value(
						  json_object_get(obj, "emailId")));
	json_t *ident = iid ? json_object_get(identities, iid) : NULL;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (strcmp(k, "identityId") && strcmp(k, "emailId") &&
		    strcmp(k, "envelope"))
			return jmap_set_error_props("invalidProperties",
						    "cannot be set", k);
	}
	if (ident == NULL)
		return jmap_set_error_props("invalidProperties", "no such identity",
					    "identityId");
	int64_t n = 0;
	if (eid == NULL || !jmap_email_id_parse(req, eid, &n))
		return jmap_set_error_props("invalidProperties", "no such Email",
					    "emailId");
	if (req->j->queue == NULL)
		return jmap_set_error("forbiddenToSend",
				      "this server has no outbound queue");
	struct store_blob b;
	struct store_email *em;
	struct store_error err;
	if (store_email_get(req->user, &n, 1, &em, &err) < 0)
		return jmap_set_error_store(&err);
	int64_t thread = em[0].thread;
	bool exists = em[0].id != 0;
	store_email_free(em, 1);
	if (!exists || store_email_open(req->user, n, &b, &err) < 0)
		return jmap_set_error_props("invalidProperties", "no such Email",
					    "emailId");
	size_t hlen = mail_header_size(b.data, b.len);
	/* the From must be an address of this account (RFC 8621 7.5
	 * forbiddenFrom) */
	json_t *from = jmime_header(b.data, hlen, "From", JMIME_ADDRESSES, false);
	json_t *se = NULL;
	if (!json_is_array(from) || json_array_size(from) == 0)
		se = jmap_set_error("invalidEmail", "the Email has no From");
	size_t i;
	json_t *x;
	json_array_foreach(from, i, x) {
		if (se == NULL &&
		    !jmap_may_send_as(req, json_string_value(json_object_get(x, "email"))))
			se = jmap_set_error("forbiddenFrom",
					    "the From is not an address of this"
					    " account");
	}
	json_decref(from);
	json_t *env = json_object_get(obj, "envelope");
	json_t *mail_from = NULL, *rcpts = NULL;
	if (se == NULL && env != NULL && !json_is_null(env)) {
		json_t *mf = json_object_get(env, "mailFrom");
		json_t *rt = json_object_get(env, "rcptTo");
		if (!json_is_object(env) || !json_is_object(mf) ||
		    !json_is_array(rt)) {
			se = jmap_set_error_props("invalidProperties", NULL,
						  "envelope");
		} else {
			mail_from = json_incref(mf);
			rcpts = json_incref(rt);
		}
	} else if (se == NULL) {
		mail_from = json_pack("{s:O,s:n}", "email",
				      json_object_get(ident, "email"), "parameters");
		rcpts = json_array();
		static const char *const f[] = {"To", "Cc", "Bcc"};
		for (int k2 = 0; k2 < 3; k2++) {
			json_t *l = jmime_header(b.data, hlen, f[k2],
						 JMIME_ADDRESSES, true);
			size_t a;
			json_t *y;
			json_array_foreach(l, a, y) rcpts_from(y, rcpts);
			json_decref(l);
		}
	}
	const char *sender = json_string_value(json_object_get(mail_from, "email"));
	if (se == NULL && (sender == NULL || (sender[0] != '\0' &&
					      !jmap_may_send_as(req, sender))))
		se = jmap_set_error("forbiddenMailFrom",
				    "the envelope sender is not an address of"
				    " this account");
	if (se == NULL && json_array_size(rcpts) == 0)
		se = jmap_set_error("noRecipients", NULL);
	json_t *bad = json_array();
	json_array_foreach(rcpts, i, x) {
		const char *a = json_string_value(json_object_get(x, "email"));
		if (!address_ok(a))
			json_array_append(bad, json_object_get(x, "email"));
	}
	if (se == NULL && json_array_size(bad) > 0) {
		se = jmap_set_error("invalidRecipients", NULL);
		json_object_set(se, "invalidRecipients", bad);
	}
	json_decref(bad);
	if (se == NULL && json_array_size(rcpts) > 1000)
		se = jmap_set_error("tooManyRecipients", NULL);
	if (se != NULL) {
		store_blob_close(&b);
		json_decref(mail_from);
		json_decref(rcpts);
		return se;
	}
	size_t nr = json_array_size(rcpts);
	struct queue_rcpt *qr = xcalloc(nr, sizeof(*qr));
	struct queue_rcpt_result *res = xcalloc(nr, sizeof(*res));
	for (i = 0; i < nr; i++)
		qr[i].address = json_string_value(
			json_object_get(json_array_get(rcpts, i), "email"));
	struct buf msg;
	buf_init(&msg, 0);
	without_bcc(b.data, b.len, &msg);
	store_blob_close(&b);
	bool eight = false;
	for (size_t k2 = 0; k2 < msg.len && !eight; k2++)
		eight = (unsigned char)msg.data[k2] >= 0x80;
	struct queue_envelope qe = {
		.sender = sender,
		.rcpts = qr,
		.rcpt_count = nr,
		.flags = QUEUE_F_SUBMISSION | QUEUE_F_SIGN |
			 (eight ? QUEUE_F_8BITMIME : 0),
		.user_id = req->who->user_id,
	};
	char qid[QUEUE_ID_SIZE] = "";
	struct queue_error qerr;
	int r = queue_enqueue(req->j->queue, &qe, msg.data ? msg.data : "",
			      msg.len, qid, res, &qerr);
	buf_free(&msg);
	if (r < 0) {
		free(qr);
		free(res);
		json_decref(mail_from);
		json_decref(rcpts);
		return qerr.kind == QUEUE_ERR_RATE
			       ? jmap_set_error("rateLimit", qerr.msg)
		       : qerr.kind == QUEUE_ERR_LIMIT
			       ? jmap_set_error("tooLarge", qerr.msg)
		       : qerr.kind == QUEUE_ERR_INVALID
			       ? jmap_set_error("invalidRecipients", qerr.msg)
			       : jmap_set_error("serverFail", qerr.msg);
	}
	json_t *ds = json_object();
	for (i = 0; i < nr; i++) {
		char reply[300];
		snprintf(reply, sizeof(reply), "%d %s%s%s",
			 res[i].code ? res[i].code : 250, res[i].enhanced,
			 res[i].enhanced[0] ? " " : "",
			 res[i].text[0] ? res[i].text : "queued");
		json_object_set_new(ds, qr[i].address,
				    json_pack("{s:s,s:s,s:s}", "smtpReply", reply,
					      "delivered",
					      res[i].status == QUEUE_RCPT_DELIVERED
						      ? "yes"
					      : res[i].status == QUEUE_RCPT_FAILED
						      ? "no"
						      : "queued",
					      "displayed", "unknown"));
	}
	free(qr);
	free(res);
	char now[32], tid[32];
	jmap_utcdate(time(NULL), now);
	jmap_thread_id(req, thread, tid);
	*o_r = json_pack("{s:s,s:s,s:s,s:{s:o,s:o},s:s,s:s,s:o,s:[],s:[],s:s}",
			 "identityId", iid, "emailId", eid, "threadId", tid,
			 "envelope", "mailFrom", mail_from, "rcptTo", rcpts,
			 "sendAt", now, "undoStatus", "final", "deliveryStatus",
			 ds, "dsnBlobIds", "mdnBlobIds", "queueId", qid);
	return NULL;
}

static json_t *sub_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *create = json_object_get(args, "create");
	json_t *update = json_object_get(args, "update");
	json_t *destroy = json_object_get(args, "destroy");
	json_t *on_update = json_object_get(args, "onSuccessUpdateEmail");
	json_t *on_destroy = json_object_get(args, "onSuccessDestroyEmail");
	if ((create && !json_is_null(create) && !json_is_object(create)) ||
	    (update && !json_is_null(update) && !json_is_object(update)) ||
	    (destroy && !json_is_null(destroy) && !json_is_array(destroy)) ||
	    (on_update && !json_is_null(on_update) && !json_is_object(on_update)) ||
	    (on_destroy && !json_is_null(on_destroy) && !json_is_array(on_destroy)))
		return jmap_error("invalidArguments", NULL);
	if (json_object_size(create) + json_object_size(update) +
		    json_array_size(destroy) >
	    req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", NULL);
	struct store_error err;
	json_t *old = jmap_state_json(req, STORE_JMAP_SUBMISSION);
	json_t *ifin = json_object_get(args, "ifInState");
	if (ifin != NULL && !json_is_null(ifin) && !json_equal(ifin, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	json_t *identities = jmap_identities(req, &err);
	json_t *all = jmap_objects_load(req, STORE_JMAP_SUBMISSION, &err);
	if (identities == NULL || all == NULL) {
		json_decref(identities);
		json_decref(all);
		json_decref(old);
		return jmap_store_error(req, &err);
	}
	json_t *created = json_object(), *updated = json_object(),
	       *destroyed = json_array(), *nc = json_object(),
	       *nu = json_object(), *nd = json_object();
	/* creation id -> the Email it sent, for onSuccess* "#id" refs */
	json_t *sent = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(create, k, v) {
		json_t *o = NULL;
		json_t *se = json_is_object(v) ? submit(req, v, identities, &o)
					       : jmap_set_error("invalidProperties",
								NULL);
		int64_t id = 0;
		if (se == NULL && jmap_object_save(req, STORE_JMAP_SUBMISSION, 0,
						   o, &id, &err) < 0)
			/* it is queued; keeping no record only loses its
			 * status, so say so rather than fail */
			id = 0;
		if (se != NULL) {
			json_object_set_new(nc, k, se);
			continue;
		}
		char sid[32] = "";
		if (id != 0)
			jmap_object_id(STORE_JMAP_SUBMISSION, id, sid);
		json_object_set_new(created, k,
				    json_pack("{s:s,s:O,s:O,s:s}", "id", sid,
					      "threadId", json_object_get(o, "threadId"),
					      "sendAt", json_object_get(o, "sendAt"),
					      "undoStatus", "final"));
		if (id != 0)
			jmap_add_created(req, k, sid);
		json_object_set(sent, k, json_object_get(o, "emailId"));
		json_decref(o);
	}
	json_object_foreach(update, k, v) {
		const char *id = jmap_resolve_id(req, k);
		json_t *cur = id ? json_object_get(all, id) : NULL;
		int64_t n = 0;
		json_t *se = NULL;
		if (cur == NULL || !jmap_object_id_parse(STORE_JMAP_SUBMISSION, id, &n))
			se = jmap_set_error("notFound", NULL);
		else if (!json_is_object(v) || json_object_size(v) != 1 ||
			 !json_is_string(json_object_get(v, "undoStatus")) ||
			 strcmp(json_string_value(json_object_get(v, "undoStatus")),
				"canceled") != 0)
			se = jmap_set_error_props("invalidProperties",
						  "only undoStatus: canceled",
						  "undoStatus");
		else {
			/* the queue must still have every recipient waiting */
			struct queue_error qerr;
			const char *qid = json_string_value(json_object_get(cur, "queueId"));
			struct queue_message_info *info = NULL;
			bool pending = qid != NULL && qid[0] != '\0' &&
				       req->j->queue != NULL &&
				       queue_message_get(req->j->queue, qid, &info,
							 &qerr) == 0;
			for (size_t r = 0; pending && r < info->rcpt_count; r++)
				pending = info->rcpts[r].status == QUEUE_RCPT_QUEUED &&
					  info->rcpts[r].attempts == 0;
			queue_message_info_free(&info);
			if (!pending || queue_delete(req->j->queue, qid, &qerr) < 0)
				se = jmap_set_error("cannotUnsend", NULL);
			else {
				json_object_set_new(cur, "undoStatus",
						    json_string("canceled"));
				if (jmap_object_save(req, STORE_JMAP_SUBMISSION,
						     n, cur, NULL, &err) < 0)
					se = jmap_set_error_store(&err);
			}
		}
		if (se != NULL)
			json_object_set_new(nu, k, se);
		else
			json_object_set_new(updated, k, json_null());
	}
	size_t i;
	json_array_foreach(destroy, i, v) {
		const char *raw = json_string_value(v);
		const char *id = jmap_resolve_id(req, raw);
		int64_t n = 0;
		if (raw == NULL)
			continue;
		if (id == NULL || !jmap_object_id_parse(STORE_JMAP_SUBMISSION, id, &n) ||
		    store_jobject_delete(req->user, STORE_JMAP_SUBMISSION, n,
					 &err) < 0)
			json_object_set_new(nd, raw, jmap_set_error("notFound", NULL));
		else
			json_array_append_new(destroyed, json_string(raw));
	}
	json_decref(identities);
	json_decref(all);
	jmap_reply(req, "EmailSubmission/set",
		   json_pack("{s:O,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			     "accountId", json_object_get(args, "accountId"),
			     "oldState", old, "newState",
			     jmap_state_json(req, STORE_JMAP_SUBMISSION),
			     "created", created, "updated", updated,
			     "destroyed", destroyed, "notCreated", nc,
			     "notUpdated", nu, "notDestroyed", nd));
	/* RFC 8621 7.5: the implicit Email/set, for what was sent */
	json_t *eupd = json_object(), *edel = json_array();
	json_object_foreach(on_update, k, v) {
		json_t *email = k[0] == '#' ? json_object_get(sent, k + 1) : NULL;
		if (k[0] == '#' && email != NULL)
			json_object_set(eupd, json_string_value(email), v);
		else if (k[0] != '#')
			json_object_set(eupd, k, v);
	}
	json_array_foreach(on_destroy, i, v) {
		const char *s = json_string_value(v);
		json_t *email = s && s[0] == '#' ? json_object_get(sent, s + 1) : NULL;
		if (email != NULL)
			json_array_append(edel, email);
		else if (s != NULL && s[0] != '#')
			json_array_append(edel, v);
	}
	if (json_object_size(eupd) > 0 || json_array_size(edel) > 0) {
		json_t *eargs = json_pack("{s:O,s:o,s:o}", "accountId",
					  json_object_get(args, "accountId"),
					  "update", eupd, "destroy", edel);
		json_t *ee = jmap_email_set(req, eargs);
		if (ee != NULL)
			json_array_append_new(req->responses,
					      json_pack("[s,o,s]", "error", ee,
							req->call_id));
		json_decref(eargs);
	} else {
		json_decref(eupd);
		json_decref(edel);
	}
	json_decref(sent);
	return NULL;
}

const struct jmap_method jmap_submission_methods[] = {
	{"EmailSubmission/get", JMAP_C_SUBMISSION, sub_get},
	{"EmailSubmission/changes", JMAP_C_SUBMISSION, sub_changes},
	{"EmailSubmission/query", JMAP_C_SUBMISSION, sub_query},
	{"EmailSubmission/queryChanges", JMAP_C_SUBMISSION, sub_query_changes},
	{"EmailSubmission/set", JMAP_C_SUBMISSION, sub_set},
	{NULL, 0, NULL},
};
