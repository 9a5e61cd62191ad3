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

/* Session internals shared by the core commands (imap-client.c). */
int imap_client_subscribe(struct imap_client *c);
/* Drops the user: view, subscription, store handle, connection count. */
void imap_client_logout_user(struct imap_client *c);
/* Aborts the blob writers of streamed APPEND literals. */
void imap_client_abort_streams(struct imap_client *c);
/* IDLE's "DONE" line / an AUTHENTICATE response line (I/O thread). */
void imap_client_idle_done(struct imap_client *c);
void imap_client_sasl_line(struct imap_client *c, const char *line,
			   size_t len);
/* Input modes (imap_client.input_mode). */
enum imap_input_mode {
	IMAP_MODE_COMMAND,
	IMAP_MODE_IDLE,
	IMAP_MODE_SASL,
	IMAP_MODE_LOGOUT,
};

#endif
