/*
 * "Recover deleted messages" for the webmail (vendor capability
 * https://loft.example/jmap/webmail, docs/jmap.md), over the store's
 * undelete (store.h "undelete"): a removed message - expunged, destroyed,
 * deleted from Trash, purged by retention - is kept for the account's
 * deleted_retention_days, invisible to every protocol, until it is
 * brought back or the period ends.
 *
 *   LoftDeleted/get      {accountId, ids?, mailboxId?, since?, limit?}:
 *                        the kept messages, newest removal first, each
 *                        {id, mailbox (the folder's name), mailboxId (null
 *                        when that folder is gone), subject, from,
 *                        preview, receivedAt, deletedAt, size, keywords};
 *                        hasMore when limit cut the list.
 *   LoftDeleted/recover  {accountId, ids? | mailboxId?/since? | all}:
 *                        brings them back into their folder (made again
 *                        when it was deleted) as new mail, in one
 *                        transaction: {recovered, bytes, mailboxesMade}.
 *                        overQuota when they do not fit (nothing back).
 */
#include "jmap-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELETED_LIMIT_DEFAULT 500
#define DELETED_LIMIT_MAX 5000

static void deleted_id(int64_t n, char out[32])
{
	snprintf(out, 32, "D%" PRIx64, (uint64_t)n);
}

static bool deleted_id_parse(const char *s, int64_t *n_r)
{
	if (s == NULL || s[0] != 'D' || s[1] == '\0' || strlen(s) > 17)
		return false;
	char *end;
	unsigned long long v = strtoull(s + 1, &end, 16);
	if (*end != '\0' || v == 0 || v > INT64_MAX)
		return false;
	*n_r = (int64_t)v;
	return true;
}

/* The filter of a call: ids, a folder, a time; false with *err_r. */
struct dfilter {
	struct store_deleted_filter f;
	int64_t *ids;
	json_t *notfound;           /* ids that are no kept message's */
	struct jmap_mailboxes mbs;
	bool mbs_loaded;
};

static void dfilter_free(struct dfilter *d)
{
	free(d->ids);
	json_decref(d->notfound);
	if (d->mbs_loaded)
		jmap_mailboxes_free(&d->mbs);
}

static bool dfilter_read(struct jmap_req *req, json_t *args,
			 struct dfilter *d, json_t **err_r)
{
	memset(d, 0, sizeof(*d));
	d->notfound = json_array();
	struct store_error err;
	if (jmap_mailboxes_load(req, &d->mbs, &err) < 0) {
		*err_r = jmap_store_error(req, &err);
		return false;
	}
	d->mbs_loaded = true;
	json_t *ids;
	if (!jmap_arg_ids(args, "ids", &ids, err_r))
		return false;
	if (ids != NULL) {
		size_t n = json_array_size(ids);
		d->ids = xcalloc(n ? n : 1, sizeof(int64_t));
		size_t i;
		json_t *x;
		json_array_foreach(ids, i, x) {
			int64_t v;
			if (deleted_id_parse(json_string_value(x), &v))
				d->ids[d->f.id_count++] = v;
			else
				json_array_append(d->notfound, x);
		}
		d->f.ids = d->ids;
		if (d->f.id_count == 0) {
			/* none of them can be kept: a filter that takes none */
			static const int64_t nothing = 0;
			d->f.ids = &nothing;
			d->f.id_count = 1;
		}
	}
	json_t *mb = json_object_get(args, "mailboxId");
	if (mb != NULL && !json_is_null(mb)) {
		const char *oid = json_string_value(mb);
		const struct store_jmap_mailbox *m =
			oid != NULL ? jmap_mailbox_by_oid(&d->mbs, oid) : NULL;
		if (m == NULL) {
			*err_r = jmap_error("invalidArguments",
					    "mailboxId: no such mailbox");
			return false;
		}
		d->f.mailbox = m->info.name;
	}
	json_t *since = json_object_get(args, "since");
	if (since != NULL && !json_is_null(since) &&
	    !jmap_utcdate_parse(json_string_value(since), &d->f.since)) {
		*err_r = jmap_error("invalidArguments",
				    "since must be a UTCDate");
		return false;
	}
	return true;
}

static const struct store_jmap_mailbox *mailbox_by_name(
	const struct jmap_mailboxes *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].info.name, name) == 0)
			return &m->v[i];
	return NULL;
}

struct listing {
	const struct jmap_mailboxes *mbs;
	json_t *list;
	size_t limit;
	bool more;
};

static json_t *keywords_of(unsigned flags, const char *kw)
{
	char *copy = xstrdup(kw != NULL ? kw : ""), *save = NULL;
	char **v = NULL;
	size_t n = 0;
	for (char *k = strtok_r(copy, " ", &save); k != NULL;
	     k = strtok_r(NULL, " ", &save)) {
		v = xrealloc(v, (n + 1) * sizeof(char *));
		v[n++] = k;
	}
	json_t *o = jmap_keywords_json(flags, v, n);
	free(v);
	free(copy);
	return o;
}

static bool list_cb(void *ctx, const struct store_deleted *d)
{
	struct listing *l = ctx;
	if (json_array_size(l->list) >= l->limit) {
		l->more = true;
		return false;
	}
	char id[32], recv[32], gone[32];
	deleted_id(d->id, id);
	jmap_utcdate(d->internaldate, recv);
	jmap_utcdate(d->deleted_at, gone);
	const struct store_jmap_mailbox *m = mailbox_by_name(l->mbs,
							     d->mailbox);
	json_array_append_new(
		l->list,
		json_pack("{s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:s,s:I,s:o}", "id",
			  id, "mailbox", d->mailbox, "mailboxId",
			  m != NULL ? json_string(m->info.objectid)
				    : json_null(),
			  "subject", d->subject ? d->subject : "", "from",
			  d->from ? d->from : "", "preview",
			  d->preview ? d->preview : "", "receivedAt", recv,
			  "deletedAt", gone, "size", (json_int_t)d->size,
			  "keywords", keywords_of(d->flags, d->keywords)));
	return true;
}

static json_t *deleted_get(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, false);
	if (e != NULL)
		return e;
	uint64_t limit;
	if (!jmap_arg_uint(args, "limit", DELETED_LIMIT_DEFAULT, &limit, &e))
		return e;
	if (limit == 0 || limit > DELETED_LIMIT_MAX)
		limit = DELETED_LIMIT_MAX;
	struct dfilter d;
	if (!dfilter_read(req, args, &d, &e)) {
		dfilter_free(&d);
		return e;
	}
	struct listing l = {&d.mbs, json_array(), (size_t)limit, false};
	struct store_error err;
	if (store_deleted_list(req->user, &d.f, list_cb, &l, &err) < 0) {
		json_decref(l.list);
		dfilter_free(&d);
		return jmap_store_error(req, &err);
	}
	/* asked-for ids that are no (longer a) kept message */
	json_t *nf = json_incref(d.notfound);
	if (d.f.ids == d.ids && d.ids != NULL) {
		for (size_t i = 0; i < d.f.id_count; i++) {
			char id[32];
			deleted_id(d.ids[i], id);
			bool found = false;
			size_t k;
			json_t *x;
			json_array_foreach(l.list, k, x) {
				if (strcmp(json_string_value(json_object_get(
						   x, "id")), id) == 0) {
					found = true;
					break;
				}
			}
			if (!found && !l.more)
				json_array_append_new(nf, json_string(id));
		}
	}
	dfilter_free(&d);
	jmap_reply(req, "LoftDeleted/get",
		   json_pack("{s:O,s:o,s:o,s:b}", "accountId",
			     json_object_get(args, "accountId"), "list",
			     l.list, "notFound", nf, "hasMore", l.more));
	return NULL;
}

static json_t *deleted_recover(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	bool all;
	if (!jmap_arg_bool(args, "all", false, &all, &e))
		return e;
	json_t *mb = json_object_get(args, "mailboxId"),
	       *ids = json_object_get(args, "ids"),
	       *since = json_object_get(args, "since");
	bool narrowed = (mb != NULL && !json_is_null(mb)) ||
			(ids != NULL && !json_is_null(ids)) ||
			(since != NULL && !json_is_null(since));
	if (!narrowed && !all)
		return jmap_error("invalidArguments",
				  "give ids, mailboxId or since, or all: true");
	struct dfilter d;
	if (!dfilter_read(req, args, &d, &e)) {
		dfilter_free(&d);
		return e;
	}
	struct store_undelete_report rep;
	memset(&rep, 0, sizeof(rep));
	struct store_error err;
	int r = store_undelete(req->user, &d.f, &rep, &err);
	dfilter_free(&d);
	if (r < 0) {
		if (err.kind == STORE_ERR_QUOTA)
			return jmap_error("overQuota", "%s", err.msg);
		if (err.kind == STORE_ERR_NOPERM)
			return jmap_error("forbidden", "%s", err.msg);
		return jmap_store_error(req, &err);
	}
	jmap_reply(req, "LoftDeleted/recover",
		   json_pack("{s:O,s:I,s:I,s:I}", "accountId",
			     json_object_get(args, "accountId"), "recovered",
			     (json_int_t)rep.messages, "bytes",
			     (json_int_t)rep.bytes, "mailboxesMade",
			     (json_int_t)rep.mailboxes_made));
	return NULL;
}

const struct jmap_method jmap_deleted_methods[] = {
	{"LoftDeleted/get", JMAP_C_LOFT, deleted_get},
	{"LoftDeleted/recover", JMAP_C_LOFT, deleted_recover},
	{NULL, 0, NULL},
};
