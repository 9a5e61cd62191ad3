/*
 * The core command handlers (one cmd-<name>.c file each, grouped where
 * commands share most of their code). FETCH, SEARCH, SORT and THREAD are
 * declared in imap-client.h.
 */
#ifndef LOFT_IMAP_COMMANDS_H
#define LOFT_IMAP_COMMANDS_H

#include "imap-client.h"

imap_cmd_fn cmd_capability, cmd_noop, cmd_logout, cmd_id, cmd_enable,
	cmd_check, cmd_namespace;
imap_cmd_fn cmd_starttls, cmd_login, cmd_authenticate, cmd_unauthenticate;
imap_cmd_fn cmd_compress;
imap_cmd_fn cmd_select, cmd_examine, cmd_close, cmd_unselect;
imap_cmd_fn cmd_create, cmd_delete, cmd_rename, cmd_subscribe,
	cmd_unsubscribe;
imap_cmd_fn cmd_list, cmd_lsub;
imap_cmd_fn cmd_status;
imap_cmd_fn cmd_append;
imap_cmd_fn cmd_idle;
imap_cmd_fn cmd_expunge;
imap_cmd_fn cmd_store;
imap_cmd_fn cmd_copy, cmd_move;
imap_cmd_fn cmd_getquota, cmd_getquotaroot, cmd_setquota;
imap_cmd_fn cmd_replace;                                   /* RFC 8508 */
imap_cmd_fn cmd_genurlauth, cmd_urlfetch, cmd_resetkey;    /* RFC 4467 */
imap_cmd_fn cmd_getmetadata, cmd_setmetadata;              /* RFC 5464 */
imap_cmd_fn cmd_notify;                                    /* RFC 5465 */

/* CATENATE (RFC 4469) of a URL with a URLAUTH: checked as URLFETCH
 * would for the session's user (imap-urlauth.c). 0 with the octets
 * (caller frees), or -1 with why. */
struct imap_url;
int imap_urlauth_fetch_for(struct imap_client *c, const struct imap_url *u,
			   const char *url, char **data_r, size_t *len_r,
			   char *why, size_t whylen);
#ifdef LOFT_TEST_COMMANDS
imap_cmd_fn cmd_xprobe;
#endif

/* Session internals shared by the core commands (imap-client.c). */
int imap_client_subscribe(struct imap_client *c);
/* Drops the user: view, subscription, store handle, connection count. */
void imap_client_logout_user(struct imap_client *c);
/* Aborts the blob writers of streamed APPEND literals. */
void imap_client_abort_streams(struct imap_client *c);
/* IDLE's "DONE" line / an AUTHENTICATE response line (I/O thread). */
void imap_client_idle_line(struct imap_client *c, const char *line,
			   size_t len);
void imap_client_sasl_line(struct imap_client *c, const char *line,
			   size_t len);
/* A mailbox name argument as a store name (caller frees); replies and
 * returns NULL if it is not acceptable. */
char *imap_cmd_mailbox_arg(struct imap_cmd *cmd, const struct imap_arg *arg,
			   bool strip_sep);
/* \Sent \Trash ... for special-use bits, space-separated. */
void imap_append_special_use(struct buf *out, unsigned bits, bool *first);
/* STATUS items (cmd-status.c). */
enum imap_status_item {
	IMAP_STATUS_MESSAGES = 1 << 0,
	IMAP_STATUS_RECENT = 1 << 1,
	IMAP_STATUS_UIDNEXT = 1 << 2,
	IMAP_STATUS_UIDVALIDITY = 1 << 3,
	IMAP_STATUS_UNSEEN = 1 << 4,
	IMAP_STATUS_DELETED = 1 << 5,
	IMAP_STATUS_SIZE = 1 << 6,
	IMAP_STATUS_HIGHESTMODSEQ = 1 << 7,
	IMAP_STATUS_APPENDLIMIT = 1 << 8,
	IMAP_STATUS_MAILBOXID = 1 << 9,
};
/* Parses a STATUS item list; -1 (nothing replied) if invalid. */
int imap_status_parse_items(const struct imap_arg *list, unsigned *items_r);
/* "* STATUS name (...)" for info. ns_name: the name of a mailbox in
 * the other users' or shared namespace (UTF-8, "/"), written with no
 * personal namespace rewriting; NULL: info->name, a personal one. */
void imap_status_write(struct imap_client *c, const struct store_mailbox_info *info,
		       unsigned items, const char *ns_name);
/* Leaves the selected state without expunging (SELECT, UNSELECT). */
void imap_client_unselect(struct imap_client *c);
/* Parser limits and timeout for the session's state (after a command). */
void imap_client_after_command(struct imap_client *c);
/* Input modes (imap_client.input_mode). */
enum imap_input_mode {
	IMAP_MODE_COMMAND,
	IMAP_MODE_IDLE,
	IMAP_MODE_SASL,
	IMAP_MODE_LOGOUT,
};

#endif
