/*
 * The messages between the mail process (auth-client.c) and the auth
 * process (auth-server.c), over a SOCK_SEQPACKET socketpair: one message
 * per packet, so the kernel keeps the boundaries and a short or long
 * packet is an error, never a resynchronisation problem.
 *
 *   header:  u16 type, u16 flags, u32 id        (little-endian)
 *   body:    the fields of the type, in order, and nothing after them
 *
 *   u8 / u32 / i64   fixed width, little-endian
 *   str              u16 length + bytes: no NUL, at most the field's max
 *   bytes            u8 present + u16 length + bytes (any octet), at most
 *                    the field's max; present 0 means NULL and has length 0
 *
 * Requests (mail -> auth) carry flags 0 and an id the client chose; a
 * reply carries the request's type and id with AUTH_WIRE_REPLY (and
 * AUTH_WIRE_MORE on every packet of a multi-packet reply but the last).
 * AUTH_WIRE_ERROR as the type of a reply: the request was refused
 * (malformed, or the auth process is out of room for it).
 *
 * The auth process trusts the mail process no more than a client: every
 * request goes through auth_wire_parse_request, which checks the type,
 * the flags, each field's length and content, and that nothing follows.
 * (fuzzed: tests/fuzz/fuzz-auth-wire.c). Replies come from the more
 * privileged side; the client still checks their shape.
 *
 * Adding a request (e.g. an HTTP token check): a type below, its fields in
 * struct auth_request / auth_reply and in the parse and build functions of
 * auth-wire.c, its handler in auth-server.c and the call in auth-client.c.
 */
#ifndef LOFT_AUTH_WIRE_H
#define LOFT_AUTH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"

#define AUTH_WIRE_MAX 16384          /* the largest packet either way */
#define AUTH_WIRE_HEADER 8
#define AUTH_WIRE_NAME_MAX 1024      /* login names, addresses, domains */
#define AUTH_WIRE_PASSWORD_MAX 1024  /* AUTH_PASSWORD_MAX */
#define AUTH_WIRE_REMOTE_MAX 64      /* an IP address as text */
#define AUTH_WIRE_MECH_MAX 32
#define AUTH_WIRE_SASL_MAX 4096      /* one decoded SASL message */
#define AUTH_WIRE_SESSION_MAX (AUTH_SESSION_ID_SIZE - 1)
#define AUTH_WIRE_TOKEN_NAME_MAX 71  /* struct auth_token_info's name */
#define AUTH_WIRE_TOKEN_MAX 64       /* "loft_" + 43 base64url */
#define AUTH_WIRE_ERROR_MAX 512      /* a message for the user */
#define AUTH_WIRE_NODE_MAX 32        /* THROTTLE_SYNC: a node's name */
/* a throttle key: "a:ADDR", "u:ACCOUNT", "p:ADDR ACCOUNT"
 * (AUTH_THROTTLE_KEY_MAX - 1) */
#define AUTH_WIRE_THROTTLE_KEY_MAX (64 + 319 + 3)
#define AUTH_WIRE_THROTTLE_FLAGS 3   /* AUTH_THROTTLE_ROW_RESET | _CLEAR */

#define AUTH_WIRE_REPLY 0x0001
#define AUTH_WIRE_MORE 0x0002

enum auth_wire_type {
	AUTH_WIRE_ERROR = 0,
	AUTH_WIRE_LOOKUP,        /* str address       -> u8 rc, user */
	AUTH_WIRE_LOOKUP_ID,     /* i64 id            -> u8 rc, user */
	AUTH_WIRE_POLICY,        /* i64 id            -> u8 rc, policy */
	AUTH_WIRE_DOMAIN,        /* str domain        -> u8 exists */
	AUTH_WIRE_USER_LIST,     /* -                 -> u8 rc, u32 n,
				    n x (str name, u8 disabled), MORE */
	AUTH_WIRE_CHECK_PASSWORD,/* str login, str password
				    -> u8 result, user   (argon2: slow) */
	AUTH_WIRE_CHECK_CACHED,  /* str login, str password
				    -> u8 rc (1 hit, 0 miss, -1), u8 result,
				    user                 (never hashes) */
	AUTH_WIRE_SASL_BEGIN,    /* str mech, str remote -> u8 rc, u32 sasl
				    (SCRAM-SHA-256 only: PLAIN and LOGIN
				    run in the mail process) */
	AUTH_WIRE_SASL_STEP,     /* u32 sasl, bytes in
				    -> u8 status, bytes out, user, str login */
	AUTH_WIRE_SASL_FREE,     /* u32 sasl          -> no reply */
	AUTH_WIRE_TOKEN_VERIFY,  /* str token, str remote -> u8 result, user */
	AUTH_WIRE_SESSION_CREATE,/* i64 user, u32 lifetime, u32 idle,
				    u8 has_bind, str bind
				    -> u8 rc, str id, str csrf */
	AUTH_WIRE_SESSION_CHECK, /* str id, str remote
				    -> u8 result, user, str csrf */
	AUTH_WIRE_SESSION_DELETE,/* str id            -> u8 rc */
	AUTH_WIRE_SASL_CHECK,    /* u32 sasl (after a step said CHECK)
				    -> u8 status, bytes out, u8 proof_ok */
	AUTH_WIRE_LOOKUP_POSTMASTER, /* str domain    -> u8 rc, user */
	AUTH_WIRE_SEND_ADDRESSES,/* i64 id            -> as USER_LIST,
				    n x (str address, u8 alias) */
	AUTH_WIRE_PASSWD_CHANGE, /* str address, str old, str new
				    -> u8 result (enum auth_passwd_change),
				    str error    (argon2: slow) */
	AUTH_WIRE_TOKEN_ADD,     /* str address, u8 has_name, str name,
				    i64 expires
				    -> u8 rc, str token, str name, str error */
	AUTH_WIRE_TOKEN_LIST,    /* str address       -> u8 rc, u32 n,
				    n x (str name, i64 created, i64 expires,
				    i64 last_used), MORE */
	AUTH_WIRE_TOKEN_DEL,     /* str address, str name
				    -> u8 rc, str error */
	/* shared mailboxes (auth-acl.c) */
	AUTH_WIRE_USER_GROUPS,   /* i64 user          -> u8 rc, u32 n,
				    n x i64 group, MORE */
	AUTH_WIRE_ACL_OWNERS,    /* i64 user          -> as USER_GROUPS,
				    n x i64 owner */
	AUTH_WIRE_ACL_HINT,      /* i64 owner, u8 kind, i64 id -> u8 rc */
	AUTH_WIRE_GROUP_LOOKUP,  /* str name, str domain -> u8 rc, i64 id */
	AUTH_WIRE_GROUP_NAME,    /* i64 id            -> u8 rc, str name */
	AUTH_WIRE_USER_IS_SHARED,/* i64 user          -> u8 rc */
	AUTH_WIRE_USER_SHARED_ADMIN, /* i64 user      -> u8 rc */
	/* the login throttle shared between nodes (auth-throttle-share.c):
	 * the mail process's changes since its last batch, and what changed
	 * in the database past seq cursor */
	AUTH_WIRE_THROTTLE_SYNC, /* str node, i64 batch, i64 cursor, u32 n,
				    n x throttle row (seq 0)
				    -> as USER_GROUPS, a clock row (key "",
				    last_fail_ms the database's time, seq 1
				    if rows past these are left), then
				    n x throttle row, MORE */
	AUTH_WIRE_TYPE_COUNT
};

/* A request as the auth process sees it after parsing. Strings are
 * NUL-terminated copies; data points into the packet. */
struct auth_request {
	uint16_t type;
	uint32_t id;
	char name[AUTH_WIRE_NAME_MAX + 1];      /* address, login, domain,
						   mech */
	bool has_name;                          /* SESSION_CREATE: bind given */
	char password[AUTH_WIRE_PASSWORD_MAX + 1];
	char new_password[AUTH_WIRE_PASSWORD_MAX + 1]; /* PASSWD_CHANGE */
	char token_name[AUTH_WIRE_TOKEN_NAME_MAX + 1];  /* TOKEN_ADD, _DEL */
	char remote[AUTH_WIRE_REMOTE_MAX + 1];
	int64_t user_id;
	int64_t expires;                        /* TOKEN_ADD */
	char domain[AUTH_WIRE_NAME_MAX + 1];    /* GROUP_LOOKUP */
	int64_t id2;                            /* ACL_HINT: the grantee */
	uint8_t kind;                           /* ACL_HINT */
	uint32_t sasl_id;
	uint32_t lifetime_secs;                 /* SESSION_CREATE */
	uint32_t idle_secs;
	const uint8_t *data;                    /* SASL_STEP: NULL = none;
						   THROTTLE_SYNC: the rows */
	size_t data_len;
	int64_t batch, cursor;                  /* THROTTLE_SYNC */
	uint32_t count;                         /* THROTTLE_SYNC: rows */
};

/* One row of THROTTLE_SYNC, either way: str key, u8 flags, u32 failures,
 * i64 last_fail_ms, i64 ban_until_ms, u32 bans, i64 good_ms, i64 seq. From
 * the mail process, failures are the ones since its last batch and flags
 * say how they apply; from the auth process, the database's row. */
#define AUTH_THROTTLE_ROW_RESET 1   /* the count restarts (a login) */
#define AUTH_THROTTLE_ROW_CLEAR 2   /* loftctl ban del: count and ban */
struct auth_throttle_row {
	char key[AUTH_WIRE_THROTTLE_KEY_MAX + 1];
	uint8_t flags;
	uint32_t failures;
	int64_t last_fail_ms, ban_until_ms;
	uint32_t bans;
	int64_t good_ms;
	int64_t seq;
};

/* A reply as the client sees it. */
struct auth_reply {
	uint16_t type;                          /* the request's, or ERROR */
	uint16_t flags;
	uint32_t id;
	int rc;                                 /* per type: 1/0/-1, result,
						   status */
	struct auth_user user;
	struct auth_policy policy;
	uint32_t sasl_id;
	const uint8_t *data;                    /* SASL out / list rows */
	size_t data_len;
	uint32_t list_count;
	char session_id[AUTH_SESSION_ID_SIZE];  /* SESSION_CREATE */
	char csrf[AUTH_SESSION_ID_SIZE];        /* SESSION_CREATE, _CHECK */
	char login[AUTH_WIRE_NAME_MAX + 1];     /* SASL_STEP; TOKEN_ADD: the
						   name given */
	char token[AUTH_WIRE_TOKEN_MAX + 1];    /* TOKEN_ADD */
	char error[AUTH_WIRE_ERROR_MAX + 1];    /* PASSWD_CHANGE, TOKEN_* */
	int64_t group_id;                       /* GROUP_LOOKUP */
	int result;                             /* CHECK_CACHED */
	bool proof_ok;                          /* SASL_CHECK */
};

struct auth_wire_buf {
	uint8_t data[AUTH_WIRE_MAX];
	size_t len;
	bool overflow;                          /* a field did not fit */
};

/* ---- building (both sides) ------------------------------------------ */

void auth_wire_begin(struct auth_wire_buf *b, uint16_t type, uint16_t flags,
		     uint32_t id);
void auth_wire_u8(struct auth_wire_buf *b, uint8_t v);
void auth_wire_u32(struct auth_wire_buf *b, uint32_t v);
void auth_wire_i64(struct auth_wire_buf *b, int64_t v);
void auth_wire_str(struct auth_wire_buf *b, const char *s);
void auth_wire_bytes(struct auth_wire_buf *b, const void *p, size_t len);
void auth_wire_user(struct auth_wire_buf *b, const struct auth_user *u);
void auth_wire_policy(struct auth_wire_buf *b, const struct auth_policy *p);

/* ---- parsing -------------------------------------------------------- */

/* Parses a request packet. 0, or -1 if anything about it is wrong (then
 * *id_r, when the header was readable, says which request to refuse;
 * else 0). */
int auth_wire_parse_request(const uint8_t *pkt, size_t len,
			    struct auth_request *req, uint32_t *id_r);
/* Parses a reply packet's header and the fields of its type. 0 or -1. */
int auth_wire_parse_reply(const uint8_t *pkt, size_t len,
			  struct auth_reply *rep);
/* USER_LIST rows: the next (name, disabled) from rep->data; 1 a row, 0 at
 * the end, -1 malformed. *pos starts at 0. */
int auth_wire_list_next(const struct auth_reply *rep, size_t *pos,
			char name[AUTH_WIRE_NAME_MAX + 1], bool *disabled_r);
/* TOKEN_LIST rows: the next token from rep->data; as auth_wire_list_next
 * (times are never negative). */
int auth_wire_token_next(const struct auth_reply *rep, size_t *pos,
			 struct auth_token_info *info_r);
/* USER_GROUPS and ACL_OWNERS rows: the next id; as auth_wire_list_next. */
int auth_wire_id_next(const struct auth_reply *rep, size_t *pos,
		      int64_t *id_r);
/* A TOKEN_LIST row, as the auth process writes it. */
void auth_wire_token_row(struct auth_wire_buf *b,
			 const struct auth_token_info *info);
/* A THROTTLE_SYNC row, either way. */
void auth_wire_throttle_row(struct auth_wire_buf *b,
			    const struct auth_throttle_row *row);
/* The next THROTTLE_SYNC row of data[*pos, len): 1 a row, 0 at the end,
 * -1 malformed (a key not "a:", "u:" or "p:" and printable, unknown flags,
 * a negative time). */
int auth_wire_throttle_next(const uint8_t *data, size_t len, size_t *pos,
			    struct auth_throttle_row *row);
/* The header's type, for messages ("lookup", "verify", ...). */
const char *auth_wire_type_name(unsigned type);

#endif
