/*
 * Encoding and strict parsing of the auth socketpair's messages (see
 * auth-wire.h). Pure functions: no I/O, no allocation.
 */
#include "auth-wire.h"

#include <string.h>

_Static_assert(sizeof(((struct auth_token_info *)0)->name) ==
		       AUTH_WIRE_TOKEN_NAME_MAX + 1,
	       "a token's name crosses whole");

static const char *const type_names[AUTH_WIRE_TYPE_COUNT] = {
	[AUTH_WIRE_ERROR] = "error",
	[AUTH_WIRE_LOOKUP] = "lookup",
	[AUTH_WIRE_LOOKUP_ID] = "lookup-id",
	[AUTH_WIRE_POLICY] = "policy",
	[AUTH_WIRE_DOMAIN] = "domain",
	[AUTH_WIRE_USER_LIST] = "user-list",
	[AUTH_WIRE_CHECK_PASSWORD] = "check-password",
	[AUTH_WIRE_CHECK_CACHED] = "check-cached",
	[AUTH_WIRE_SASL_BEGIN] = "sasl-begin",
	[AUTH_WIRE_SASL_STEP] = "sasl-step",
	[AUTH_WIRE_SASL_FREE] = "sasl-free",
	[AUTH_WIRE_TOKEN_VERIFY] = "token-verify",
	[AUTH_WIRE_SESSION_CREATE] = "session-create",
	[AUTH_WIRE_SESSION_CHECK] = "session-check",
	[AUTH_WIRE_SESSION_DELETE] = "session-delete",
	[AUTH_WIRE_SASL_CHECK] = "sasl-check",
	[AUTH_WIRE_LOOKUP_POSTMASTER] = "lookup-postmaster",
	[AUTH_WIRE_SEND_ADDRESSES] = "send-addresses",
	[AUTH_WIRE_PASSWD_CHANGE] = "passwd-change",
	[AUTH_WIRE_TOKEN_ADD] = "token-add",
	[AUTH_WIRE_TOKEN_LIST] = "token-list",
	[AUTH_WIRE_TOKEN_DEL] = "token-del",
	[AUTH_WIRE_USER_GROUPS] = "user-groups",
	[AUTH_WIRE_ACL_OWNERS] = "acl-owners",
	[AUTH_WIRE_ACL_HINT] = "acl-hint",
	[AUTH_WIRE_GROUP_LOOKUP] = "group-lookup",
	[AUTH_WIRE_GROUP_NAME] = "group-name",
	[AUTH_WIRE_USER_IS_SHARED] = "user-is-shared",
	[AUTH_WIRE_USER_SHARED_ADMIN] = "user-shared-admin",
	[AUTH_WIRE_THROTTLE_SYNC] = "throttle-sync",
};

const char *auth_wire_type_name(unsigned type)
{
	return type < AUTH_WIRE_TYPE_COUNT ? type_names[type] : "unknown";
}

/* ---- building ------------------------------------------------------- */

static void put(struct auth_wire_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->overflow || n > sizeof(b->data) - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void auth_wire_u8(struct auth_wire_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_u16(struct auth_wire_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	put(b, x, 2);
}

void auth_wire_u32(struct auth_wire_buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, 4);
}

void auth_wire_i64(struct auth_wire_buf *b, int64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)((uint64_t)v >> (8 * i));
	put(b, x, 8);
}

void auth_wire_begin(struct auth_wire_buf *b, uint16_t type, uint16_t flags,
		     uint32_t id)
{
	b->len = 0;
	b->overflow = false;
	put_u16(b, type);
	put_u16(b, flags);
	auth_wire_u32(b, id);
}

void auth_wire_str(struct auth_wire_buf *b, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	if (n > UINT16_MAX) {
		b->overflow = true;
		return;
	}
	put_u16(b, (uint16_t)n);
	put(b, s, n);
}

void auth_wire_bytes(struct auth_wire_buf *b, const void *p, size_t len)
{
	if (len > UINT16_MAX) {
		b->overflow = true;
		return;
	}
	auth_wire_u8(b, p != NULL);
	put_u16(b, p != NULL ? (uint16_t)len : 0);
	if (p != NULL)
		put(b, p, len);
}

void auth_wire_user(struct auth_wire_buf *b, const struct auth_user *u)
{
	auth_wire_i64(b, u->id);
	auth_wire_str(b, u->address);
	auth_wire_u8(b, u->disabled);
}

/* The policy crosses as its struct's bytes: the two ends are the same
 * binary, so the layout agrees, and a key added to struct auth_policy
 * crosses without touching this file. auth_policy_defaults zeroes the
 * padding, so nothing of the auth process's memory goes with it. */
void auth_wire_policy(struct auth_wire_buf *b, const struct auth_policy *p)
{
	put_u16(b, (uint16_t)sizeof(*p));
	put(b, p, sizeof(*p));
}

/* ---- parsing -------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t get_u8(struct rd *r)
{
	const uint8_t *p = take(r, 1);
	return p != NULL ? p[0] : 0;
}

static bool get_bool(struct rd *r)
{
	uint8_t v = get_u8(r);
	if (v > 1)
		r->bad = true;
	return v == 1;
}

static uint16_t get_u16(struct rd *r)
{
	const uint8_t *p = take(r, 2);
	return p != NULL ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t get_u32(struct rd *r)
{
	const uint8_t *p = take(r, 4);
	uint32_t v = 0;
	for (int i = 0; p != NULL && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static int64_t get_i64(struct rd *r)
{
	const uint8_t *p = take(r, 8);
	uint64_t v = 0;
	for (int i = 0; p != NULL && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (int64_t)v;
}

/* A string of at most max bytes, no NUL, copied into out[max + 1]. */
static void get_str(struct rd *r, char *out, size_t max)
{
	out[0] = '\0';
	uint16_t n = get_u16(r);
	if (n > max) {
		r->bad = true;
		return;
	}
	const uint8_t *p = take(r, n);
	if (p == NULL || memchr(p, '\0', n) != NULL) {
		r->bad = true;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

static const uint8_t *get_bytes(struct rd *r, size_t max, size_t *len_r)
{
	bool present = get_bool(r);
	uint16_t n = get_u16(r);
	*len_r = 0;
	if (n > max || (!present && n != 0)) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = take(r, n);
	if (!present || p == NULL)
		return NULL;
	*len_r = n;
	/* A present, empty message still needs a non-NULL pointer. */
	return n > 0 ? p : (const uint8_t *)"";
}

static void get_user(struct rd *r, struct auth_user *u)
{
	memset(u, 0, sizeof(*u));
	u->id = get_i64(r);
	get_str(r, u->address, sizeof(u->address) - 1);
	u->disabled = get_bool(r);
}

static void get_policy(struct rd *r, struct auth_policy *p)
{
	uint16_t n = get_u16(r);
	const uint8_t *src = n == sizeof(*p) ? take(r, n) : NULL;
	if (src == NULL) {
		r->bad = true;
		auth_policy_defaults(p);
		return;
	}
	memcpy(p, src, sizeof(*p));
	/* the last value of enum auth_pop3_delete (test-auth-ipc covers it) */
	if ((unsigned)p->pop3_delete > AUTH_POP3_AUTO)
		r->bad = true;
}

static void get_header(struct rd *r, uint16_t *type, uint16_t *flags,
		       uint32_t *id)
{
	*type = get_u16(r);
	*flags = get_u16(r);
	*id = get_u32(r);
}

int auth_wire_parse_request(const uint8_t *pkt, size_t len,
			    struct auth_request *req, uint32_t *id_r)
{
	struct rd r = {pkt, len, false};
	uint16_t flags;
	memset(req, 0, sizeof(*req));
	*id_r = 0;
	if (len > AUTH_WIRE_MAX)
		return -1;
	get_header(&r, &req->type, &flags, &req->id);
	if (r.bad)
		return -1;
	*id_r = req->id;
	if (flags != 0 || req->type == AUTH_WIRE_ERROR ||
	    req->type >= AUTH_WIRE_TYPE_COUNT)
		return -1;
	switch (req->type) {
	case AUTH_WIRE_LOOKUP:
	case AUTH_WIRE_DOMAIN:
	case AUTH_WIRE_LOOKUP_POSTMASTER:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		break;
	case AUTH_WIRE_LOOKUP_ID:
	case AUTH_WIRE_POLICY:
	case AUTH_WIRE_SEND_ADDRESSES:
	case AUTH_WIRE_USER_GROUPS:
	case AUTH_WIRE_ACL_OWNERS:
	case AUTH_WIRE_GROUP_NAME:
	case AUTH_WIRE_USER_IS_SHARED:
	case AUTH_WIRE_USER_SHARED_ADMIN:
		req->user_id = get_i64(&r);
		break;
	case AUTH_WIRE_ACL_HINT:
		req->user_id = get_i64(&r);
		req->kind = get_u8(&r);
		req->id2 = get_i64(&r);
		break;
	case AUTH_WIRE_GROUP_LOOKUP:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		get_str(&r, req->domain, AUTH_WIRE_NAME_MAX);
		break;
	case AUTH_WIRE_USER_LIST:
		break;
	case AUTH_WIRE_CHECK_PASSWORD:
	case AUTH_WIRE_CHECK_CACHED:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		get_str(&r, req->password, AUTH_WIRE_PASSWORD_MAX);
		break;
	case AUTH_WIRE_SASL_BEGIN:
		get_str(&r, req->name, AUTH_WIRE_MECH_MAX);
		get_str(&r, req->remote, AUTH_WIRE_REMOTE_MAX);
		break;
	case AUTH_WIRE_SASL_STEP:
		req->sasl_id = get_u32(&r);
		req->data = get_bytes(&r, AUTH_WIRE_SASL_MAX, &req->data_len);
		break;
	case AUTH_WIRE_SASL_FREE:
	case AUTH_WIRE_SASL_CHECK:
		req->sasl_id = get_u32(&r);
		break;
	case AUTH_WIRE_TOKEN_VERIFY:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		get_str(&r, req->remote, AUTH_WIRE_REMOTE_MAX);
		break;
	case AUTH_WIRE_SESSION_CREATE:
		req->user_id = get_i64(&r);
		req->lifetime_secs = get_u32(&r);
		req->idle_secs = get_u32(&r);
		req->has_name = get_bool(&r);
		get_str(&r, req->remote, AUTH_WIRE_REMOTE_MAX);
		if (!req->has_name && req->remote[0] != '\0')
			r.bad = true;
		break;
	case AUTH_WIRE_SESSION_CHECK:
		get_str(&r, req->name, AUTH_WIRE_SESSION_MAX);
		get_str(&r, req->remote, AUTH_WIRE_REMOTE_MAX);
		break;
	case AUTH_WIRE_SESSION_DELETE:
		get_str(&r, req->name, AUTH_WIRE_SESSION_MAX);
		break;
	case AUTH_WIRE_PASSWD_CHANGE:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		get_str(&r, req->password, AUTH_WIRE_PASSWORD_MAX);
		get_str(&r, req->new_password, AUTH_WIRE_PASSWORD_MAX);
		break;
	case AUTH_WIRE_TOKEN_ADD:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		req->has_name = get_bool(&r);
		get_str(&r, req->token_name, AUTH_WIRE_TOKEN_NAME_MAX);
		req->expires = get_i64(&r);
		if ((!req->has_name && req->token_name[0] != '\0') ||
		    req->expires < 0)
			r.bad = true;
		break;
	case AUTH_WIRE_TOKEN_LIST:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		break;
	case AUTH_WIRE_TOKEN_DEL:
		get_str(&r, req->name, AUTH_WIRE_NAME_MAX);
		get_str(&r, req->token_name, AUTH_WIRE_TOKEN_NAME_MAX);
		break;
	case AUTH_WIRE_THROTTLE_SYNC: {
		get_str(&r, req->name, AUTH_WIRE_NODE_MAX);
		req->batch = get_i64(&r);
		req->cursor = get_i64(&r);
		req->count = get_u32(&r);
		if (r.bad || req->batch < 0 || req->cursor < 0 ||
		    req->name[0] == '\0' || (req->count > 0) != (req->batch > 0))
			return -1;
		for (const char *p = req->name; *p != '\0'; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
				return -1;
		/* every row well formed, exactly count of them */
		req->data = r.p;
		req->data_len = r.left;
		size_t pos = 0;
		uint32_t n = 0;
		struct auth_throttle_row row;
		int more;
		while ((more = auth_wire_throttle_next(r.p, r.left, &pos,
						       &row)) == 1) {
			if (row.seq != 0 || row.key[0] == '\0')
				return -1;
			n++;
		}
		if (more < 0 || n != req->count)
			return -1;
		take(&r, r.left);
		break;
	}
	default:
		return -1;
	}
	if (r.bad || r.left != 0)
		return -1;
	return 0;
}

int auth_wire_parse_reply(const uint8_t *pkt, size_t len,
			  struct auth_reply *rep)
{
	struct rd r = {pkt, len, false};
	memset(rep, 0, sizeof(*rep));
	if (len > AUTH_WIRE_MAX)
		return -1;
	get_header(&r, &rep->type, &rep->flags, &rep->id);
	if (r.bad || (rep->flags & AUTH_WIRE_REPLY) == 0 ||
	    (rep->flags & ~(AUTH_WIRE_REPLY | AUTH_WIRE_MORE)) != 0 ||
	    rep->type >= AUTH_WIRE_TYPE_COUNT)
		return -1;
	switch (rep->type) {
	case AUTH_WIRE_ERROR:
		break;
	case AUTH_WIRE_LOOKUP:
	case AUTH_WIRE_LOOKUP_ID:
	case AUTH_WIRE_LOOKUP_POSTMASTER:
		rep->rc = (int8_t)get_u8(&r);
		get_user(&r, &rep->user);
		break;
	case AUTH_WIRE_POLICY:
		rep->rc = (int8_t)get_u8(&r);
		get_policy(&r, &rep->policy);
		break;
	case AUTH_WIRE_DOMAIN:
		rep->rc = get_bool(&r);
		break;
	case AUTH_WIRE_USER_LIST:
	case AUTH_WIRE_SEND_ADDRESSES:
	case AUTH_WIRE_TOKEN_LIST:
	case AUTH_WIRE_USER_GROUPS:
	case AUTH_WIRE_ACL_OWNERS:
	case AUTH_WIRE_THROTTLE_SYNC:
		rep->rc = (int8_t)get_u8(&r);
		rep->list_count = get_u32(&r);
		rep->data = r.p;
		rep->data_len = r.left;
		take(&r, r.left);
		break;
	case AUTH_WIRE_CHECK_PASSWORD:
		rep->rc = get_u8(&r);
		get_user(&r, &rep->user);
		if (rep->rc > AUTH_TEMPFAIL)
			r.bad = true;
		break;
	case AUTH_WIRE_CHECK_CACHED:
		rep->rc = (int8_t)get_u8(&r);
		rep->result = get_u8(&r);
		get_user(&r, &rep->user);
		if (rep->rc < -1 || rep->rc > 1 || rep->result > AUTH_TEMPFAIL)
			r.bad = true;
		break;
	case AUTH_WIRE_SASL_BEGIN:
		rep->rc = (int8_t)get_u8(&r);
		rep->sasl_id = get_u32(&r);
		break;
	case AUTH_WIRE_SASL_STEP:
		rep->rc = get_u8(&r);
		rep->data = get_bytes(&r, AUTH_WIRE_MAX, &rep->data_len);
		get_user(&r, &rep->user);
		get_str(&r, rep->login, AUTH_WIRE_NAME_MAX);
		if (rep->rc > AUTH_SASL_CHECK)
			r.bad = true;
		break;
	case AUTH_WIRE_SASL_CHECK:
		rep->rc = get_u8(&r);
		rep->data = get_bytes(&r, AUTH_WIRE_MAX, &rep->data_len);
		rep->proof_ok = get_bool(&r);
		if (rep->rc > AUTH_SASL_TEMPFAIL)
			r.bad = true;
		break;
	case AUTH_WIRE_TOKEN_VERIFY:
		rep->rc = get_u8(&r);
		get_user(&r, &rep->user);
		if (rep->rc > AUTH_TEMPFAIL)
			r.bad = true;
		break;
	case AUTH_WIRE_SESSION_CREATE:
		rep->rc = (int8_t)get_u8(&r);
		get_str(&r, rep->session_id, AUTH_WIRE_SESSION_MAX);
		get_str(&r, rep->csrf, AUTH_WIRE_SESSION_MAX);
		break;
	case AUTH_WIRE_SESSION_CHECK:
		rep->rc = get_u8(&r);
		get_user(&r, &rep->user);
		get_str(&r, rep->csrf, AUTH_WIRE_SESSION_MAX);
		if (rep->rc > AUTH_TEMPFAIL)
			r.bad = true;
		break;
	case AUTH_WIRE_SESSION_DELETE:
		rep->rc = (int8_t)get_u8(&r);
		break;
	case AUTH_WIRE_PASSWD_CHANGE:
		rep->rc = get_u8(&r);
		get_str(&r, rep->error, AUTH_WIRE_ERROR_MAX);
		if (rep->rc > AUTH_PASSWD_TEMPFAIL)
			r.bad = true;
		break;
	case AUTH_WIRE_TOKEN_ADD:
		rep->rc = (int8_t)get_u8(&r);
		get_str(&r, rep->token, AUTH_WIRE_TOKEN_MAX);
		get_str(&r, rep->login, AUTH_WIRE_TOKEN_NAME_MAX);
		get_str(&r, rep->error, AUTH_WIRE_ERROR_MAX);
		if (rep->rc != 0 && rep->rc != -1)
			r.bad = true;
		break;
	case AUTH_WIRE_TOKEN_DEL:
		rep->rc = (int8_t)get_u8(&r);
		get_str(&r, rep->error, AUTH_WIRE_ERROR_MAX);
		if (rep->rc != 0 && rep->rc != -1)
			r.bad = true;
		break;
	case AUTH_WIRE_ACL_HINT:
		rep->rc = (int8_t)get_u8(&r);
		if (rep->rc != 0 && rep->rc != -1)
			r.bad = true;
		break;
	case AUTH_WIRE_USER_IS_SHARED:
	case AUTH_WIRE_USER_SHARED_ADMIN:
		rep->rc = (int8_t)get_u8(&r);
		if (rep->rc < -1 || rep->rc > 1)
			r.bad = true;
		break;
	case AUTH_WIRE_GROUP_LOOKUP:
		rep->rc = (int8_t)get_u8(&r);
		rep->group_id = get_i64(&r);
		if (rep->rc < -1 || rep->rc > 1)
			r.bad = true;
		break;
	case AUTH_WIRE_GROUP_NAME:
		rep->rc = (int8_t)get_u8(&r);
		get_str(&r, rep->login, AUTH_WIRE_NAME_MAX);
		if (rep->rc < -1 || rep->rc > 1)
			r.bad = true;
		break;
	default:
		return -1;     /* SASL_FREE has no reply */
	}
	if (r.bad || r.left != 0)
		return -1;
	return 0;
}

int auth_wire_list_next(const struct auth_reply *rep, size_t *pos,
			char name[AUTH_WIRE_NAME_MAX + 1], bool *disabled_r)
{
	if (*pos >= rep->data_len)
		return 0;
	struct rd r = {rep->data + *pos, rep->data_len - *pos, false};
	get_str(&r, name, AUTH_WIRE_NAME_MAX);
	*disabled_r = get_bool(&r);
	if (r.bad)
		return -1;
	*pos = rep->data_len - r.left;
	return 1;
}

void auth_wire_token_row(struct auth_wire_buf *b,
			 const struct auth_token_info *info)
{
	auth_wire_str(b, info->name);
	auth_wire_i64(b, (int64_t)info->created);
	auth_wire_i64(b, (int64_t)info->expires);
	auth_wire_i64(b, (int64_t)info->last_used);
}

int auth_wire_token_next(const struct auth_reply *rep, size_t *pos,
			 struct auth_token_info *info_r)
{
	if (*pos >= rep->data_len)
		return 0;
	struct rd r = {rep->data + *pos, rep->data_len - *pos, false};
	memset(info_r, 0, sizeof(*info_r));
	get_str(&r, info_r->name, AUTH_WIRE_TOKEN_NAME_MAX);
	int64_t t[3];
	for (int i = 0; i < 3; i++) {
		t[i] = get_i64(&r);
		if (t[i] < 0)
			r.bad = true;
	}
	if (r.bad)
		return -1;
	info_r->created = (time_t)t[0];
	info_r->expires = (time_t)t[1];
	info_r->last_used = (time_t)t[2];
	*pos = rep->data_len - r.left;
	return 1;
}

int auth_wire_id_next(const struct auth_reply *rep, size_t *pos,
		      int64_t *id_r)
{
	if (*pos >= rep->data_len)
		return 0;
	struct rd r = {rep->data + *pos, rep->data_len - *pos, false};
	*id_r = get_i64(&r);
	if (r.bad)
		return -1;
	*pos = rep->data_len - r.left;
	return 1;
}

void auth_wire_throttle_row(struct auth_wire_buf *b,
			    const struct auth_throttle_row *row)
{
	auth_wire_str(b, row->key);
	auth_wire_u8(b, row->flags);
	auth_wire_u32(b, row->failures);
	auth_wire_i64(b, row->last_fail_ms);
	auth_wire_i64(b, row->ban_until_ms);
	auth_wire_u32(b, row->bans);
	auth_wire_i64(b, row->good_ms);
	auth_wire_i64(b, row->seq);
}

int auth_wire_throttle_next(const uint8_t *data, size_t len, size_t *pos,
			    struct auth_throttle_row *row)
{
	if (*pos >= len)
		return 0;
	struct rd r = {data + *pos, len - *pos, false};
	memset(row, 0, sizeof(*row));
	get_str(&r, row->key, AUTH_WIRE_THROTTLE_KEY_MAX);
	row->flags = get_u8(&r);
	row->failures = get_u32(&r);
	row->last_fail_ms = get_i64(&r);
	row->ban_until_ms = get_i64(&r);
	row->bans = get_u32(&r);
	row->good_ms = get_i64(&r);
	row->seq = get_i64(&r);
	if (r.bad || row->flags > AUTH_WIRE_THROTTLE_FLAGS ||
	    row->last_fail_ms < 0 || row->ban_until_ms < 0 ||
	    row->good_ms < 0 || row->seq < 0)
		return -1;
	/* the clock row has no key; any other is KIND:NAME, printable */
	size_t n = strlen(row->key);
	if (n > 0 && (n < 3 || row->key[1] != ':' ||
		      (row->key[0] != 'a' && row->key[0] != 'u' &&
		       row->key[0] != 'p')))
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)row->key[i] < ' ' ||
		    (unsigned char)row->key[i] == 0x7f)
			return -1;
	*pos = len - r.left;
	return 1;
}
