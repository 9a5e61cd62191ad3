/*
 * Fuzz target for the auth socketpair's messages (src/auth/auth-wire.c):
 * what the auth process accepts from the mail process, which it trusts no
 * more than a network client.
 *
 * A packet the request parser accepts must be the canonical encoding of
 * what it parsed: re-encoding the parsed request gives the same bytes, so
 * no field is skipped, truncated or read past. Every input is also fed to
 * the reply parser (the client's side) and, when it parses as a user list,
 * its rows are walked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth-wire.h"

static void encode(const struct auth_request *req, struct auth_wire_buf *b)
{
	auth_wire_begin(b, req->type, 0, req->id);
	switch (req->type) {
	case AUTH_WIRE_LOOKUP:
	case AUTH_WIRE_DOMAIN:
	case AUTH_WIRE_LOOKUP_POSTMASTER:
		auth_wire_str(b, req->name);
		break;
	case AUTH_WIRE_LOOKUP_ID:
	case AUTH_WIRE_POLICY:
	case AUTH_WIRE_SEND_ADDRESSES:
	case AUTH_WIRE_USER_GROUPS:
	case AUTH_WIRE_ACL_OWNERS:
	case AUTH_WIRE_GROUP_NAME:
	case AUTH_WIRE_USER_IS_SHARED:
	case AUTH_WIRE_USER_SHARED_ADMIN:
		auth_wire_i64(b, req->user_id);
		break;
	case AUTH_WIRE_ACL_HINT:
		auth_wire_i64(b, req->user_id);
		auth_wire_u8(b, req->kind);
		auth_wire_i64(b, req->id2);
		break;
	case AUTH_WIRE_GROUP_LOOKUP:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->domain);
		break;
	case AUTH_WIRE_USER_LIST:
		break;
	case AUTH_WIRE_CHECK_PASSWORD:
	case AUTH_WIRE_CHECK_CACHED:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->password);
		break;
	case AUTH_WIRE_SASL_BEGIN:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->remote);
		break;
	case AUTH_WIRE_SASL_STEP:
		auth_wire_u32(b, req->sasl_id);
		auth_wire_bytes(b, req->data, req->data_len);
		break;
	case AUTH_WIRE_SASL_FREE:
	case AUTH_WIRE_SASL_CHECK:
		auth_wire_u32(b, req->sasl_id);
		break;
	case AUTH_WIRE_TOKEN_VERIFY:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->remote);
		break;
	case AUTH_WIRE_SESSION_CREATE:
		auth_wire_i64(b, req->user_id);
		auth_wire_u32(b, req->lifetime_secs);
		auth_wire_u32(b, req->idle_secs);
		auth_wire_u8(b, req->has_name);
		auth_wire_str(b, req->remote);
		break;
	case AUTH_WIRE_SESSION_CHECK:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->remote);
		break;
	case AUTH_WIRE_SESSION_DELETE:
	case AUTH_WIRE_TOKEN_LIST:
		auth_wire_str(b, req->name);
		break;
	case AUTH_WIRE_PASSWD_CHANGE:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->password);
		auth_wire_str(b, req->new_password);
		break;
	case AUTH_WIRE_TOKEN_ADD:
		auth_wire_str(b, req->name);
		auth_wire_u8(b, req->has_name);
		auth_wire_str(b, req->token_name);
		auth_wire_i64(b, req->expires);
		break;
	case AUTH_WIRE_TOKEN_DEL:
		auth_wire_str(b, req->name);
		auth_wire_str(b, req->token_name);
		break;
	case AUTH_WIRE_THROTTLE_SYNC: {
		auth_wire_str(b, req->name);
		auth_wire_i64(b, req->batch);
		auth_wire_i64(b, req->cursor);
		auth_wire_u32(b, req->count);
		size_t pos = 0;
		struct auth_throttle_row row;
		while (auth_wire_throttle_next(req->data, req->data_len, &pos,
					       &row) == 1)
			auth_wire_throttle_row(b, &row);
		break;
	}
	default:
		abort();     /* the parser let an unknown type through */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct auth_request req;
	static struct auth_wire_buf b;
	uint32_t id;
	if (auth_wire_parse_request(data, size, &req, &id) == 0) {
		if (req.id != id || strlen(req.name) > AUTH_WIRE_NAME_MAX ||
		    strlen(req.password) > AUTH_WIRE_PASSWORD_MAX ||
		    strlen(req.new_password) > AUTH_WIRE_PASSWORD_MAX ||
		    strlen(req.token_name) > AUTH_WIRE_TOKEN_NAME_MAX ||
		    strlen(req.remote) > AUTH_WIRE_REMOTE_MAX ||
		    (req.type != AUTH_WIRE_THROTTLE_SYNC &&
		     req.data_len > AUTH_WIRE_SASL_MAX))
			abort();
		encode(&req, &b);
		if (b.overflow || b.len != size || memcmp(b.data, data, size) != 0)
			abort();
	}
	struct auth_reply rep;
	if (auth_wire_parse_reply(data, size, &rep) == 0 &&
	    rep.type == AUTH_WIRE_TOKEN_LIST) {
		size_t pos = 0;
		struct auth_token_info info;
		while (auth_wire_token_next(&rep, &pos, &info) == 1)
			if (pos > rep.data_len || info.created < 0)
				abort();
	}
	if (auth_wire_parse_reply(data, size, &rep) == 0 &&
	    rep.type == AUTH_WIRE_USER_LIST) {
		size_t pos = 0;
		char name[AUTH_WIRE_NAME_MAX + 1];
		bool disabled;
		while (auth_wire_list_next(&rep, &pos, name, &disabled) == 1)
			if (pos > rep.data_len)
				abort();
	}
	return 0;
}
