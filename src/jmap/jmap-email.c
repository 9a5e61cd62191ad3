/*
 * Email/get, Email/changes, Email/parse, Thread/get, Thread/changes (RFC
 * 8621 3, 4.2, 4.3, 4.9). An Email is the store's (every copy sharing an
 * EMAILID): mailboxIds, keywords, size, receivedAt, hasAttachment and
 * preview come from the index; headers and body parts from the message
 * bytes, read only when a property needs them (header-only properties
 * read only the header).
 */
#include "jmap-mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mail.h"

void jmap_email_id(struct jmap_req *req, int64_t n, char out[32])
{
	store_objectid_format(out, 'M', req->account, n);
}

bool jmap_email_id_parse(struct jmap_req *req, const char *s, int64_t *n_r)
{
	return store_objectid_parse(s, 'M', req->account, n_r);
}

void jmap_thread_id(struct jmap_req *req, int64_t n, char out[32])
{
	store_objectid_format(out, 'T', req->account, n);
}

bool jmap_thread_id_parse(struct jmap_req *req, const char *s, int64_t *n_r)
{
	return store_objectid_parse(s, 'T', req->account, n_r);
}

static const char *const email_props[] = {
	"id", "blobId", "threadId", "mailboxIds", "keywords", "size",
	"receivedAt", "messageId", "inReplyTo", "references", "sender", "from",
	"to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
	"preview", "bodyStructure", "bodyValues", "textBody", "htmlBody",
	"attachments", "headers", NULL,
};
static const char *const default_props[] = {
	"id", "blobId", "threadId", "mailboxIds", "keywords", "size",
	"receivedAt", "messageId", "inReplyTo", "references", "sender", "from",
	"to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
	"preview", "bodyValues", "textBody", "htmlBody", "attachments", NULL,
};
static const char *const body_props[] = {
	"partId", "blobId", "size", "headers", "name", "type", "charset",
	"disposition", "cid", "language", "location", "subParts", NULL,
};
static const char *const default_body_props[] = {
	"partId", "blobId", "size", "name", "type", "charset", "disposition",
	"cid", "language", "location", NULL,
};

static bool header_prop_ok(const char *p)
{
	char name[256];
	enum jmime_form f;
	bool all;
	return jmime_header_prop(p, name, sizeof(name), &f, &all);
}

static json_t *list_of(const char *const *v)
{
	json_t *a = json_array();
	for (; *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* The convenience properties: which field, in which form. */
static const struct {
	const char *prop, *field;
	enum jmime_form form;
} convenience[] = {
	{"messageId", "Message-ID", JMIME_MESSAGE_IDS},
	{"inReplyTo", "In-Reply-To", JMIME_MESSAGE_IDS},
	{"references", "References", JMIME_MESSAGE_IDS},
	{"sender", "Sender", JMIME_ADDRESSES},
	{"from", "From", JMIME_ADDRESSES},
	{"to", "To", JMIME_ADDRESSES},
	{"cc", "Cc", JMIME_ADDRESSES},
	{"bcc", "Bcc", JMIME_ADDRESSES},
	{"replyTo", "Reply-To", JMIME_ADDRESSES},
	{"subject", "Subject", JMIME_TEXT},
	{"sentAt", "Date", JMIME_DATE},
};

static bool needs_header(json_t *props)
{
	size_t i;
	json_t *x;
	json_array_foreach(props, i, x) {
		const char *p = json_string_value(x);
		if (strcmp(p, "headers") == 0 || strncmp(p, "header:", 7) == 0)
			return true;
		for (size_t k = 0; k < sizeof(convenience) / sizeof(*convenience); k++)
			if (strcmp(convenience[k].prop, p) == 0)
				return true;
	}
	return false;
}

static bool needs_body(json_t *props)
{
	static const char *const b[] = {"bodyStructure", "bodyValues",
					"textBody", "htmlBody", "attachments",
					NULL};
	for (const char *const *p = b; *p; p++)
		if (jmap_want(props, *p))
			return true;
	return false;
}

/* keywords: the IMAP flags as $seen..., keywords lowercased (JMAP
 * keywords are case-insensitive, RFC 8621 4.1.1) */
json_t *jmap_keywords_json(unsigned flags, char *const *kw, size_t n)
{
	json_t *k = json_object();
	if (flags & STORE_FLAG_SEEN)
		json_object_set_new(k, "$seen", json_true());
	if (flags & STORE_FLAG_FLAGGED)
		json_object_set_new(k, "$flagged", json_true());
	if (flags & STORE_FLAG_ANSWERED)
		json_object_set_new(k, "$answered", json_true());
	if (flags & STORE_FLAG_DRAFT)
		json_object_set_new(k, "$draft", json_true());
	for (size_t i = 0; i < n; i++) {
		char *low = xstrdup(kw[i]);
		for (char *p = low; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		json_object_set_new(k, low, json_true());
		free(low);
	}
	return k;
}

struct body_opts {
	json_t *body_props;
	bool text_values, html_values, all_values;
	uint64_t max_bytes;
};

static json_t *part_list(const struct jmime *m, const int *v, size_t n,
			 const struct body_opts *o, const char *base)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, jmime_part_json(m, v[i], o->body_props,
							 base, NULL, 0));
	return a;
}

static void add_value(json_t *values, const struct jmime *m, int idx,
		      const struct body_opts *o)
{
	char pid[256];
	jmime_part_id(&m->parts[idx], pid);
	if (json_object_get(values, pid) == NULL)
		json_object_set_new(values, pid,
				    jmime_body_value(m, idx, o->max_bytes));
}

/* The header and body properties of a message (bytes data/len), into o.
 * base: the blob id parts' blob ids grow from. */
void jmap_email_message_props(json_t *o, const char *data, size_t len,
			      json_t *props, const struct body_opts *bo,
			      const char *base)
{
	size_t hlen = mail_header_size(data, len);
	for (size_t k = 0; k < sizeof(convenience) / sizeof(*convenience); k++)
		if (jmap_want(props, convenience[k].prop))
			json_object_set_new(o, convenience[k].prop,
					    jmime_header(data, hlen,
							 convenience[k].field,
							 convenience[k].form,
							 false));
	if (jmap_want(props, "headers"))
		json_object_set_new(o, "headers", jmime_headers(data, hlen));
	size_t i;
	json_t *x;
	json_array_foreach(props, i, x) {
		char name[256];
		enum jmime_form f;
		bool all;
		if (jmime_header_prop(json_string_value(x), name, sizeof(name),
				      &f, &all))
			json_object_set_new(o, json_string_value(x),
					    jmime_header(data, hlen, name, f,
							 all));
	}
	if (!needs_body(props))
		return;
	struct jmime m;
	if (jmime_parse(&m, data, len) < 0) {
		jmime_free(&m);
		return;
	}
	int *text, *html, *att;
	size_t nt, nh, na;
	jmime_body_lists(&m, &text, &nt, &html, &nh, &att, &na);
	if (jmap_want(props, "bodyStructure")) {
		json_t *bp = json_deep_copy(bo->body_props);
		if (bp != NULL && !jmap_want(bp, "subParts"))
			json_array_append_new(bp, json_string("subParts"));
		json_object_set_new(o, "bodyStructure",
				    jmime_part_json(&m, 0, bp, base, NULL, 0));
		json_decref(bp);
	}
	if (jmap_want(props, "textBody"))
		json_object_set_new(o, "textBody", part_list(&m, text, nt, bo, base));
	if (jmap_want(props, "htmlBody"))
		json_object_set_new(o, "htmlBody", part_list(&m, html, nh, bo, base));
	if (jmap_want(props, "attachments"))
		json_object_set_new(o, "attachments",
				    part_list(&m, att, na, bo, base));
	if (jmap_want(props, "bodyValues")) {
		json_t *values = json_object();
		for (size_t k = 0; k < nt && (bo->text_values || bo->all_values); k++)
			add_value(values, &m, text[k], bo);
		for (size_t k = 0; k < nh && (bo->html_values || bo->all_values); k++)
			add_value(values, &m, html[k], bo);
		for (size_t k = 0; bo->all_values && k < m.count; k++)
			if (!m.parts[k].multipart &&
			    strncmp(m.parts[k].type, "text/", 5) == 0)
				add_value(values, &m, (int)k, bo);
		json_object_set_new(o, "bodyValues", values);
	}
	if (jmap_want(props, "hasAttachment") &&
	    json_object_get(o, "hasAttachment") == NULL) {
		bool has = false;
		for (size_t k = 0; k < na && !has; k++) {
			const char *d = m.parts[att[k]].disposition;
			has = d == NULL || strcasecmp(d, "inline") != 0;
		}
		json_object_set_new(o, "hasAttachment", json_boolean(has));
	}
	free(text);
	free(html);
	free(att);
	jmime_free(&m);
}

/* get's body options; false with *err_r on bad arguments */
static bool body_opts_read(json_t *args, struct body_opts *o, json_t **err_r)
{
	memset(o, 0, sizeof(*o));
	json_t *bp;
	if (!jmap_arg_props(args, "bodyProperties", body_props, header_prop_ok,
			    &bp, err_r) ||
	    !jmap_arg_bool(args, "fetchTextBodyValues", false, &o->text_values,
			   err_r) ||
	    !jmap_arg_bool(args, "fetchHTMLBodyValues", false, &o->html_values,
			   err_r) ||
	    !jmap_arg_bool(args, "fetchAllBodyValues", false, &o->all_values,
			   err_r) ||
	    !jmap_arg_uint(args, "maxBodyValueBytes", 0, &o->max_bytes, err_r))
		return false;
	if (json_object_get(args, "maxBodyValueBytes") != NULL &&
	    !json_is_null(json_object_get(args, "maxBodyValueBytes")) &&
	    o->max_bytes == 0) {
		*err_r = jmap_error("invalidArguments",
				    "maxBodyValueBytes must be positive");
		return false;
	}
	o->body_props = bp != NULL ? json_incref(bp) : list_of(default_body_props);
	return true;
}

static json_t *email_json(struct jmap_req *req, const struct store_email *e,
			  const struct jmap_mailboxes *mbs, json_t *props,
			  const struct body_opts *bo, bool *failed)
{
	char id[32], tid[32], blob[32];
	jmap_email_id(req, e->id, id);
	json_t *o = json_pack("{s:s}", "id", id);
	if (jmap_want(props, "blobId")) {
		jmap_blob_id_email(req, e->id, blob);
		json_object_set_new(o, "blobId", json_string(blob));
	}
	if (jmap_want(props, "threadId")) {
		jmap_thread_id(req, e->thread, tid);
		json_object_set_new(o, "threadId", json_string(tid));
	}
	if (jmap_want(props, "mailboxIds")) {
		json_t *m = json_object();
		for (size_t i = 0; i < e->mailbox_count; i++) {
			const struct store_jmap_mailbox *mb =
				jmap_mailbox_by_id(mbs, e->mailboxes[i]);
			if (mb != NULL)
				json_object_set_new(m, mb->info.objectid,
						    json_true());
		}
		json_object_set_new(o, "mailboxIds", m);
	}
	if (jmap_want(props, "keywords"))
		json_object_set_new(o, "keywords",
				    jmap_keywords_json(e->flags, e->keywords,
						  e->keyword_count));
	if (jmap_want(props, "size"))
		json_object_set_new(o, "size", json_integer((json_int_t)e->size));
	if (jmap_want(props, "receivedAt")) {
		char d[32];
		jmap_utcdate(e->received, d);
		json_object_set_new(o, "receivedAt", json_string(d));
	}
	if (jmap_want(props, "hasAttachment"))
		json_object_set_new(o, "hasAttachment",
				    json_boolean(e->has_attachment));
	if (jmap_want(props, "preview"))
		json_object_set_new(o, "preview",
				    jmime_string(e->preview, strlen(e->preview)));
	if (needs_header(props) || needs_body(props)) {
		struct store_blob b;
		struct store_error err;
		if (store_email_open(req->user, e->id, &b, &err) < 0) {
			*failed = true;
			return o;
		}
		jmap_blob_id_email(req, e->id, blob);
		jmap_email_message_props(o, b.data, b.len, props, bo, blob);
		store_blob_close(&b);
	}
	return o;
}

static json_t *email_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *ids, *props;
	struct body_opts bo;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", email_props, header_prop_ok,
			    &props, &e) ||
	    !body_opts_read(args, &bo, &e))
		return e;
	if (ids == NULL) {
		json_decref(bo.body_props);
		return jmap_error("requestTooLarge",
				  "ids must be given for Email/get");
	}
	if (json_array_size(ids) > req->j->set.max_objects_in_get) {
		json_decref(bo.body_props);
		return jmap_error("requestTooLarge", "more than %u ids",
				  req->j->set.max_objects_in_get);
	}
	json_t *own_props = props != NULL ? json_incref(props)
					  : list_of(default_props);
	json_t *state = jmap_state_json(req, STORE_JMAP_EMAIL);
	size_t n = json_array_size(ids);
	int64_t *nums = xcalloc(n ? n : 1, sizeof(int64_t));
	for (size_t i = 0; i < n; i++) {
		const char *id = jmap_resolve_id(req, json_string_value(
							      json_array_get(ids, i)));
		if (id == NULL || !jmap_email_id_parse(req, id, &nums[i]))
			nums[i] = 0;
	}
	struct store_email *emails = NULL;
	struct jmap_mailboxes mbs = {0};
	struct store_error err;
	if (state == NULL || store_email_get(req->user, nums, n, &emails, &err) < 0 ||
	    jmap_mailboxes_load(req, &mbs, &err) < 0) {
		store_email_free(emails, n);
		free(nums);
		json_decref(state);
		json_decref(own_props);
		json_decref(bo.body_props);
		return jmap_error("serverFail", NULL);
	}
	json_t *list = json_array(), *nf = json_array();
	bool failed = false;
	for (size_t i = 0; i < n; i++) {
		if (emails[i].id == 0) {
			json_array_append(nf, json_array_get(ids, i));
			continue;
		}
		json_array_append_new(list, email_json(req, &emails[i], &mbs,
						       own_props, &bo, &failed));
	}
	store_email_free(emails, n);
	jmap_mailboxes_free(&mbs);
	free(nums);
	json_decref(own_props);
	json_decref(bo.body_props);
	if (failed) {
		json_decref(list);
		json_decref(nf);
		json_decref(state);
		return jmap_error("serverFail", "a message cannot be read");
	}
	jmap_reply(req, "Email/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state", state,
			     "list", list, "notFound", nf));
	return NULL;
}

static json_t *email_changes(struct jmap_req *req, json_t *args)
{
	return jmap_changes(req, args, STORE_JMAP_EMAIL, "Email/changes");
}

/* Email/parse (RFC 8621 4.9): a blob read as a message. */
static json_t *email_parse(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false), *props;
	struct body_opts bo;
	json_t *blobs = json_object_get(args, "blobIds");
	if (e != NULL ||
	    !jmap_arg_props(args, "properties", email_props, header_prop_ok,
			    &props, &e) ||
	    !body_opts_read(args, &bo, &e))
		return e;
	if (!json_is_array(blobs)) {
		json_decref(bo.body_props);
		return jmap_error("invalidArguments", "blobIds");
	}
	if (json_array_size(blobs) > req->j->set.max_objects_in_get) {
		json_decref(bo.body_props);
		return jmap_error("requestTooLarge", NULL);
	}
	static const char *const parse_default[] = {
		"messageId", "inReplyTo", "references", "sender", "from", "to",
		"cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
		"preview", "bodyValues", "textBody", "htmlBody", "attachments",
		NULL,
	};
	json_t *own = props != NULL ? json_incref(props) : list_of(parse_default);
	json_t *parsed = json_object(), *nope = json_array(),
	       *nf = json_array();
	size_t i;
	json_t *x;
	json_array_foreach(blobs, i, x) {
		const char *id = jmap_resolve_id(req, json_string_value(x));
		struct jmap_blob b;
		struct store_error err;
		if (id == NULL || jmap_blob_open(req->j, req->user, id, &b,
						 &err) < 0) {
			json_array_append(nf, x);
			continue;
		}
		if (mail_header_size(b.data, b.len) == 0 && b.len > 0) {
			json_array_append(nope, x);
			jmap_blob_close(&b);
			continue;
		}
		json_t *o = json_object();
		/* an Email that is not stored has no id, mailboxes, etc. */
		static const char *const none[] = {"id", "threadId",
						   "mailboxIds", "keywords",
						   "receivedAt", NULL};
		for (const char *const *p = none; *p; p++)
			if (jmap_want(own, *p))
				json_object_set_new(o, *p, json_null());
		if (jmap_want(own, "blobId"))
			json_object_set_new(o, "blobId", json_string(id));
		if (jmap_want(own, "size"))
			json_object_set_new(o, "size",
					    json_integer((json_int_t)b.len));
		jmap_email_message_props(o, b.data, b.len, own, &bo, id);
		if (jmap_want(own, "preview") &&
		    json_object_get(o, "preview") == NULL) {
			struct mail_result an;
			struct mail_analyze_options ao = {NULL, NULL, NULL, false};
			mail_analyze(b.data, b.len, &ao, &an);
			json_object_set_new(o, "preview",
					    jmime_string(an.preview ? an.preview : "",
							 an.preview ? strlen(an.preview) : 0));
			mail_result_free(&an);
		}
		json_object_set_new(parsed, json_string_value(x), o);
		jmap_blob_close(&b);
	}
	json_decref(own);
	json_decref(bo.body_props);
	jmap_reply(req, "Email/parse",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "parsed",
			     parsed, "notParsable", nope, "notFound", nf));
	return NULL;
}

/* ---- Thread ----------------------------------------------------------- */

static json_t *thread_get(struct jmap_req *req, json_t *args)
{
	static const char *const props_known[] = {"id", "emailIds", NULL};
	json_t *e = jmap_account(req, args, false), *ids, *props;
	if (e != NULL || !jmap_arg_ids(args, "ids", &ids, &e) ||
	    !jmap_arg_props(args, "properties", props_known, NULL, &props, &e))
		return e;
	if (ids == NULL)
		return jmap_error("requestTooLarge",
				  "ids must be given for Thread/get");
	if (json_array_size(ids) > req->j->set.max_objects_in_get)
		return jmap_error("requestTooLarge", NULL);
	json_t *state = jmap_state_json(req, STORE_JMAP_THREAD);
	json_t *list = json_array(), *nf = json_array();
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		const char *id = jmap_resolve_id(req, json_string_value(x));
		int64_t t;
		int64_t *emails = NULL;
		size_t n = 0;
		struct store_error err;
		if (id == NULL || !jmap_thread_id_parse(req, id, &t) ||
		    store_thread_emails(req->user, t, &emails, &n, &err) < 0 ||
		    n == 0) {
			free(emails);
			json_array_append(nf, x);
			continue;
		}
		json_t *eids = json_array();
		for (size_t k = 0; k < n; k++) {
			char eid[32];
			jmap_email_id(req, emails[k], eid);
			json_array_append_new(eids, json_string(eid));
		}
		free(emails);
		json_t *o = json_pack("{s:s}", "id", id);
		if (jmap_want(props, "emailIds"))
			json_object_set_new(o, "emailIds", eids);
		else
			json_decref(eids);
		json_array_append_new(list, o);
	}
	jmap_reply(req, "Thread/get",
		   json_pack("{s:O,s:o,s:o,s:o}", "accountId",
			     json_object_get(args, "accountId"), "state",
			     state ? state : json_string("0"), "list", list,
			     "notFound", nf));
	return NULL;
}

static json_t *thread_changes(struct jmap_req *req, json_t *args)
{
	return jmap_changes(req, args, STORE_JMAP_THREAD, "Thread/changes");
}

json_t *jmap_email_query(struct jmap_req *req, json_t *args);
json_t *jmap_email_query_changes(struct jmap_req *req, json_t *args);
json_t *jmap_search_snippet_get(struct jmap_req *req, json_t *args);
json_t *jmap_email_set(struct jmap_req *req, json_t *args);
json_t *jmap_email_import(struct jmap_req *req, json_t *args);
json_t *jmap_email_copy(struct jmap_req *req, json_t *args);

const struct jmap_method jmap_email_methods[] = {
	{"Email/get", JMAP_C_MAIL, email_get},
	{"Email/changes", JMAP_C_MAIL, email_changes},
	{"Email/query", JMAP_C_MAIL, jmap_email_query},
	{"Email/queryChanges", JMAP_C_MAIL, jmap_email_query_changes},
	{"Email/set", JMAP_C_MAIL, jmap_email_set},
	{"Email/copy", JMAP_C_MAIL, jmap_email_copy},
	{"Email/import", JMAP_C_MAIL, jmap_email_import},
	{"Email/parse", JMAP_C_MAIL, email_parse},
	{"SearchSnippet/get", JMAP_C_MAIL, jmap_search_snippet_get},
	{NULL, 0, NULL},
};

const struct jmap_method jmap_thread_methods[] = {
	{"Thread/get", JMAP_C_MAIL, thread_get},
	{"Thread/changes", JMAP_C_MAIL, thread_changes},
	{NULL, 0, NULL},
};
