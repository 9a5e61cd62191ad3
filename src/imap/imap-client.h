/*
 * An IMAP session and the command framework every command handler uses.
 *
 * A session is created when a connection is accepted (imap_proto.accept).
 * Its I/O thread feeds input to the parser (imap-parser.h); when a whole
 * command has been read, the command's handler runs on a worker
 * (net_conn_run) unless the table says IMAP_CMD_IO_THREAD. While it runs
 * the session reads nothing; the next pipelined command is parsed after
 * the handler returns. A handler gets a struct imap_cmd (the session, the
 * tag, the arguments) and must finish with exactly one of imap_cmd_ok /
 * _no / _bad (commands flagged IMAP_CMD_CONTINUES, such as IDLE and
 * AUTHENTICATE, finish later).
 *
 * Untagged updates from other sessions (EXISTS, EXPUNGE or VANISHED,
 * FETCH FLAGS) are sent by imap_cmd_ok/_no/_bad just before the tagged
 * line, where RFC 3501 7.4.1 / RFC 9051 7.5.1 allow them: never an
 * EXPUNGE while a command by sequence number (flag
 * IMAP_CMD_SEQ_NO_EXPUNGE) is answered.
 *
 * Output goes straight to the connection (net_conn_write), which blocks
 * the worker when the client reads slowly (bounded memory). Build big
 * responses in a struct buf and write them in pieces of a few KiB.
 */
#ifndef LOFT_IMAP_CLIENT_H
#define LOFT_IMAP_CLIENT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "imap-parser.h"
#include "imap-seqset.h"
#include "net.h"
#include "store.h"

struct imap_server;
struct imap_client;
struct imap_cmd;

/* A UID and the modseq its state was reported at. */
struct imap_told {
	uint32_t uid;
	uint64_t modseq;
};

enum imap_state {
	IMAP_STATE_NOT_AUTH,
	IMAP_STATE_AUTH,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* ENABLEd extensions (RFC 5161); SELECT (CONDSTORE), a FETCH ...
 * MODSEQ or a STORE (UNCHANGEDSINCE) also turns CONDSTORE on
 * (RFC 7162 3.1). */
enum imap_enabled {
	IMAP_ENABLED_CONDSTORE = 1 << 0,
	IMAP_ENABLED_QRESYNC = 1 << 1,
	IMAP_ENABLED_UTF8_ACCEPT = 1 << 2,
	IMAP_ENABLED_IMAP4REV2 = 1 << 3,
	IMAP_ENABLED_UIDONLY = 1 << 4,    /* RFC 9586 */
};

/* ---- commands ------------------------------------------------------- */

typedef void imap_cmd_fn(struct imap_cmd *cmd);

enum imap_cmd_flags {
	IMAP_CMD_NOT_AUTH = 1 << 0,   /* allowed before login */
	IMAP_CMD_AUTH = 1 << 1,       /* allowed when authenticated */
	IMAP_CMD_SELECTED = 1 << 2,   /* allowed with a mailbox selected */
	IMAP_CMD_ANY = IMAP_CMD_NOT_AUTH | IMAP_CMD_AUTH | IMAP_CMD_SELECTED,
	IMAP_CMD_POSTAUTH = IMAP_CMD_AUTH | IMAP_CMD_SELECTED,
	IMAP_CMD_UID = 1 << 3,        /* has a "UID <name>" form */
	/* The sequence-number form may not see EXPUNGEs (RFC 3501 7.4.1:
	 * FETCH, STORE, SEARCH; also COPY, SORT, THREAD). The UID form may. */
	IMAP_CMD_SEQ_NO_EXPUNGE = 1 << 4,
	IMAP_CMD_IO_THREAD = 1 << 5,  /* quick, runs on the I/O thread */
	IMAP_CMD_CONTINUES = 1 << 6,  /* may return before its tagged reply */
};

struct imap_command_def {
	const char *name;             /* upper case */
	imap_cmd_fn *fn;
	unsigned flags;
};

/* The table lookup (case-insensitive); NULL if unknown. */
const struct imap_command_def *imap_command_find(struct slice name);

/* Handlers of FETCH, SEARCH, SORT and THREAD (one cmd-<name>.c each). */
imap_cmd_fn cmd_fetch, cmd_search, cmd_sort, cmd_thread;

struct imap_cmd {
	struct imap_client *client;
	const char *tag;
	const char *name;             /* upper case, without "UID " */
	bool uid;                     /* "UID FETCH" etc. */
	const struct imap_arg *args;  /* after the name; EOL-terminated */
	const struct imap_command_def *def;
	bool replied;
	bool continues;               /* set by an IMAP_CMD_CONTINUES handler
					 that will reply later */
	unsigned enabled_before;      /* client->enabled when it started */
};

/* Tagged replies. text may start with a response code "[CODE] ...";
 * a BAD without one gets [CLIENTBUG] (RFC 5530). Before the tagged line,
 * pending untagged updates are sent (EXPUNGE only if the command allows
 * it). Exactly one per command. */
void imap_cmd_ok(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_cmd_no(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_cmd_bad(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* NO with the RFC 5530 code for err->kind and err->msg. Internal errors
 * are logged with the session id and shown as "[SERVERBUG] ... (id)". */
void imap_cmd_store_error(struct imap_cmd *cmd, const struct store_error *err);
/* The RFC 5530 code for a store error kind ("NONEXISTENT", ...). */
const char *imap_store_error_code(enum store_error_kind kind);

/* ---- the session ---------------------------------------------------- */

struct imap_client {
	struct imap_server *server;
	struct net_conn *conn;
	const char *sid;              /* for logs */
	enum imap_state state;
	unsigned enabled;             /* enum imap_enabled */
	bool tls, local;

	/* authenticated */
	struct auth_user user;
	struct store_user *store_user;

	/* selected */
	struct store_view *view;
	char *mailbox;                /* store name: UTF-8, "/" separated */
	bool readonly;                /* EXAMINE */
	/* SEARCHRES (RFC 5182): UIDs saved by SEARCH ... SAVE, sorted */
	uint32_t *searchres;
	size_t searchres_count;

	/* ---- private to imap-client.c and the core commands ---- */
	struct imap_parser *parser;
	struct imap_cmd cmd;          /* the running command */
	int input_mode;               /* enum in imap-client.c */
	bool task_running;            /* a worker task of ours is queued */
	bool compressed;
	bool logged_out;
	struct auth_sasl *sasl;
	char *sasl_tag;
	bool sasl_final;              /* sent server-final, awaiting "" */
	struct store_subscription *sub;
	atomic_bool change_pending;   /* set by the store hub callback */
	_Atomic uint64_t change_ns;   /* when it was set (push latency) */
	bool idling;
	char *idle_tag;
	bool counted;                 /* in the per-user connection count */
	_Atomic uint32_t selected_id; /* store mailbox id of the view, 0 */
	_Atomic int64_t selected_owner; /* the account it belongs to */
	/* APPEND literal streaming */
	struct store_blob_writer **writers;
	size_t writer_count;
	struct buf chunk;
	bool stream_binary;           /* the literal streamed now is ~{n} */
	struct store_error stream_err;
	bool stream_failed;
	/* What the running command told the client (FETCH FLAGS, STORE):
	 * the sync before its tagged reply leaves out a change of one of
	 * these UIDs that is no newer than what was told. */
	struct imap_told *told;
	size_t told_count, told_cap;
	bool told_sorted;
	/* The keywords of the last FLAGS response (RFC 9051 7.3.5): a
	 * FETCH that shows another is preceded by a new FLAGS. */
	char **keywords;
	size_t keyword_count;
	/* CONDSTORE (RFC 7162 3.1.2.1, 3.2): the HIGHESTMODSEQ the client
	 * was last told, and the highest it may be told: every change up
	 * to it has been reported (no expunge is held back). */
	uint64_t reported_modseq, safe_modseq;
	/* VANISHED collected during a sync (QRESYNC) */
	uint32_t *vanished;
	size_t vanished_count, vanished_cap;
	unsigned sync_reported;       /* untagged updates sent by a sync */
	/* RFC 5267 search/sort contexts with UPDATE (imap-context.c) */
	struct imap_context **contexts;
	size_t context_count;
	uint64_t context_modseq;      /* the view's modseq they were run at */
	uint32_t context_exists;
	struct buf out;               /* scratch for untagged lines */

	/* ---- shared mailboxes (imap-acl.c) ---- */
	/* The handle the selected mailbox is reached through: a viewer's
	 * (store_user_open_as) for another account's mailbox, NULL for
	 * one's own (imap_client_sel_user gives store_user then). */
	struct store_user *sel_user;
	/* the owner's changes, while another account's mailbox is selected */
	struct store_subscription *sel_sub;

	/* NOTIFY (imap-notify.c): made at login, read by the hub callback */
	struct imap_notify *notify;
};

/* Raw output; -1 once the connection is gone. */
int imap_client_write(struct imap_client *c, const void *data, size_t len);
/* "* " + formatted text + CRLF. */
int imap_client_untagged(struct imap_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The CAPABILITY list for the session's state, without "CAPABILITY". */
void imap_client_capabilities(struct imap_client *c, struct buf *out);

/* Sends untagged updates for what changed in the selected mailbox
 * (EXISTS/RECENT, FETCH FLAGS, and EXPUNGE or VANISHED if allow_expunge),
 * then, under CONDSTORE, "* OK [HIGHESTMODSEQ n]" when the client now
 * knows every change up to a higher n (RFC 7162 3.1.2.1, 3.2). Worker
 * only. */
int imap_client_sync(struct imap_client *c, bool allow_expunge);

/* The client was told message uid's flags as of modseq (a FETCH with
 * FLAGS, a STORE reply, or a .SILENT STORE whose outcome it knows): the
 * sync before this command's tagged reply leaves out a change of uid no
 * newer than that. Forgotten after the reply. */
void imap_client_told(struct imap_client *c, uint32_t uid, uint64_t modseq);

/* The FLAGS list of the selected mailbox: SELECT sets it and writes
 * "* FLAGS" and "* OK [PERMANENTFLAGS]" (takes the keywords). */
void imap_client_set_flags(struct imap_client *c, char **keywords,
			   size_t count);
/* Before a response that shows keywords (FETCH FLAGS): if any is not in
 * the session's FLAGS list yet, appends the new "* FLAGS" and
 * "* OK [PERMANENTFLAGS]" to out, so that the client learns of it first
 * (RFC 9051 7.3.5, RFC 3501 7.2.6). */
void imap_client_announce_keywords(struct imap_client *c,
				   const char *const *keywords, size_t count,
				   struct buf *out);
/* "* seq FETCH (" or, under UIDONLY (RFC 9586 3.3), "* uid UIDFETCH (". */
void imap_client_fetch_head(const struct imap_client *c, uint32_t seq,
			    uint32_t uid, struct buf *out);
/* Whether expunges go out as VANISHED (QRESYNC or UIDONLY). */
bool imap_client_vanished(const struct imap_client *c);
/* "* seq FETCH (UID u FLAGS (...) [MODSEQ (m)])\r\n" for msg into out,
 * announcing its keywords first and recording what was told. with_flags
 * false: only UID and MODSEQ. */
void imap_client_fetch_flags(struct imap_client *c, uint32_t seq,
			     const struct store_msg *msg, bool with_flags,
			     struct buf *out);

/* Whether the session gets UTF-8 mailbox names (UTF8=ACCEPT or
 * IMAP4rev2 enabled). */
bool imap_client_utf8(const struct imap_client *c);
/* Client mailbox name (modified UTF-7 or UTF-8, in the server's
 * namespace) -> store name (UTF-8, "/"). NULL with *error_r on an invalid
 * name. Caller frees. */
char *imap_client_mailbox_in(struct imap_client *c, const char *name,
			     size_t len, const char **error_r);
/* Store name -> the name the client sees, appended to out as an astring
 * (quoted or literal). */
int imap_client_mailbox_out(struct imap_client *c, const char *store_name,
			    struct buf *out);
/* The same, unquoted, as a new string (caller frees). */
char *imap_client_mailbox_name(struct imap_client *c, const char *store_name);
/* A name in the other users' or shared namespace (UTF-8, "/", as
 * imap_ns_format gives it) in the client's encoding, with no personal
 * namespace rewriting: as a new string, or appended as an astring. */
char *imap_client_ns_name(struct imap_client *c, const char *ns_name);
int imap_client_ns_out(struct imap_client *c, const char *ns_name,
		       struct buf *out);
char imap_client_separator(const struct imap_client *c);

/* Whether FLAGS of message seq carry \Recent: never under IMAP4rev2,
 * which dropped it (RFC 9051 E.1). */
bool imap_client_recent(const struct imap_client *c, uint32_t seq);

/* Replaces the SEARCHRES result (takes a copy). */
void imap_client_set_searchres(struct imap_client *c, const uint32_t *uids,
			       size_t count);
/* Before a UID command resolves its UIDs against the view: when it names
 * a UID above every one the view holds (uid), or "*" (uid 0), the client
 * may know of a message the session was not told of yet (APPENDUID on
 * another connection, UIDNEXT, another node's delivery). The view syncs
 * first, so the message is announced (EXISTS) and then acted on; a UID
 * command may carry EXPUNGE too (RFC 9051 7.5.1). Nothing for a
 * sequence-number command, or when the store can tell nothing changed. */
void imap_cmd_sync_uid(struct imap_cmd *cmd, uint32_t uid);
/* Resolves a sequence-set argument of cmd (atom) against the view,
 * honouring cmd->uid and "$" (after imap_cmd_sync_uid). Replies BAD
 * itself and returns -1 on error. */
int imap_cmd_seqset(struct imap_cmd *cmd, const struct imap_arg *arg,
		    struct store_uid_range **ranges_r, size_t *count_r);

/* ---- shared mailboxes (imap-acl.c) --------------------------------- */

/* A mailbox argument resolved in any namespace (imap-ns.h): the handle
 * its owner's mail is reached through (the session's own, or a viewer's
 * whose every call the store checks) and the owner's store name. */
struct imap_mbref {
	struct store_user *user;      /* a reference */
	char *name;                   /* store name in the owner's mail */
	bool shared;                  /* another account's */
	char *owner;                  /* shared: the owner's address */
	int64_t owner_id;
};
/* 0, or -1 with *error_r ("[CODE] text"; a hidden mailbox, a missing
 * one and one of an account that does not exist give the same). */
int imap_mbref_resolve(struct imap_client *c, const char *name, size_t len,
		       struct imap_mbref *ref, const char **error_r);
void imap_mbref_free(struct imap_mbref *ref);
/* The same for a command argument; replies and returns -1 on error. */
int imap_cmd_mailbox_ref(struct imap_cmd *cmd, const struct imap_arg *arg,
			 bool strip_sep, struct imap_mbref *ref);
/* NO for a store error on ref's mailbox (NOTFOUND of another account's
 * mailbox always in the same words). */
void imap_cmd_ref_error(struct imap_cmd *cmd, const struct imap_mbref *ref,
			const struct store_error *err);
/* The handle of the selected mailbox. */
struct store_user *imap_client_sel_user(struct imap_client *c);
/* A viewer's handle on an owner's mail (the own handle for oneself). */
int imap_acl_open_owner(struct imap_client *c, int64_t owner_id,
			const char *owner_address, struct store_user **user_r);
/* The same for any viewer (a URL's user, without a session): viewer's
 * groups, domain and shared_admin as the session's would be. */
int imap_acl_open_as(struct store *store, struct auth *auth,
		     bool cross_domain, const struct auth_user *viewer,
		     int64_t owner_id, const char *owner_address,
		     struct store_user **user_r);
/* LIST and LSUB of the other users' and shared namespaces. */
struct imap_list_others {
	/* whether a name as the client sees it matches the patterns */
	bool (*match)(void *ctx, const char *name);
	void *ctx;
	unsigned status_items;        /* LIST-STATUS (RFC 5819), or 0 */
	/* the user's subscriptions in these namespaces (their names as
	 * imap_acl_ns_canonical gives them) */
	char **subs;
	size_t sub_count;
	bool mark_subscribed;         /* RETURN (SUBSCRIBED) (RFC 5258) */
	bool only_subscribed;         /* SUBSCRIBED selection, or LSUB */
	bool lsub;
};
/* Writes the other users' mailboxes the user may see whose client names
 * match (and their STATUS with status_items); with only_subscribed, the
 * subscribed ones, and the subscribed names that are none (missing or
 * hidden alike) as \NonExistent. */
void imap_acl_list_others(struct imap_client *c,
			  const struct imap_list_others *q);
/* A name in the other users' or shared namespace (UTF-8) in the one form
 * imap_ns_format gives (owner in lower case, a shared INBOX as its
 * level): subscriptions are kept so. NULL for a personal or malformed
 * name. Caller frees. */
char *imap_acl_ns_canonical(struct imap_client *c, const char *name);
imap_cmd_fn cmd_getacl, cmd_setacl, cmd_deleteacl, cmd_listrights,
	cmd_myrights;
/* SELECT of another account's mailbox: the session keeps the viewer's
 * handle and follows the owner's changes; unselect drops both. */
void imap_acl_select(struct imap_client *c, struct imap_mbref *ref);
void imap_acl_unselect(struct imap_client *c);
/* RFC 4314 5.2: read-write with i, e or a right on a flag. */
bool imap_acl_writable(struct imap_client *c, const struct imap_mbref *ref);
/* A client's mailbox name in UTF-8, its transfer encoding undone (no
 * namespace rewriting; invalid bytes kept). Caller frees. */
char *imap_client_mailbox_in_raw(struct imap_client *c, const char *name,
				 size_t len);
/* Whether the selected mailbox of another account can no longer be
 * read (an ACL change, the owner gone): then "* BYE" was written and the
 * connection is closing (RFC 4314 has no way to unselect it). */
bool imap_acl_lost_read(struct imap_client *c);
/* The store hub's callback of a session (imap-client.c). */
void imap_client_store_changed(void *ctx, const struct store_change *change);

/* ---- output helpers ------------------------------------------------- */
/* A string as quoted "..." when it can be, else as a literal {n}.
 * utf8: 8-bit bytes may go in a quoted string (RFC 6855/9051). */
int imap_append_string(struct buf *out, const char *s, size_t len, bool utf8);
/* NIL for NULL. */
int imap_append_nstring(struct buf *out, const char *s, bool utf8);
/* An atom when it is one, else as imap_append_string. */
int imap_append_astring(struct buf *out, const char *s, bool utf8);
/* "(\Seen \Answered kw1)" */
int imap_append_flags(struct buf *out, unsigned flags,
		      const char *const *keywords, size_t keyword_count,
		      bool recent);
/* Parses a flag list argument (a list, or one flag atom) into flags and
 * keywords (pointers into the args, valid with them; caller frees the
 * array). \Recent and unknown system flags fail with *error_r. */
int imap_parse_flags(const struct imap_arg *arg, unsigned *flags_r,
		     const char ***keywords_r, size_t *count_r,
		     const char **error_r);

#endif
