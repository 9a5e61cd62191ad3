/*
 * The command table: name, handler, and where the command is allowed
 * (RFC 9051 6: any state / not authenticated / authenticated / selected).
 */
#include "imap-commands.h"
#include "imap-context.h"

#include <strings.h>

#define ANY IMAP_CMD_ANY
#define PRE IMAP_CMD_NOT_AUTH
#define POST IMAP_CMD_POSTAUTH
#define SEL IMAP_CMD_SELECTED
#define UID IMAP_CMD_UID
#define NOEXP IMAP_CMD_SEQ_NO_EXPUNGE
#define IOT IMAP_CMD_IO_THREAD
#define CONT IMAP_CMD_CONTINUES

static const struct imap_command_def commands[] = {
	{"CAPABILITY", cmd_capability, ANY},
	{"NOOP", cmd_noop, ANY},
	{"LOGOUT", cmd_logout, ANY},
	{"ID", cmd_id, ANY},
	{"STARTTLS", cmd_starttls, PRE},
	{"LOGIN", cmd_login, PRE},
	{"AUTHENTICATE", cmd_authenticate, PRE | CONT},
	{"UNAUTHENTICATE", cmd_unauthenticate, POST},
	{"ENABLE", cmd_enable, POST},
	{"COMPRESS", cmd_compress, POST},
	{"NAMESPACE", cmd_namespace, POST},
	{"SETACL", cmd_setacl, POST},
	{"DELETEACL", cmd_deleteacl, POST},
	{"GETACL", cmd_getacl, POST},
	{"LISTRIGHTS", cmd_listrights, POST},
	{"MYRIGHTS", cmd_myrights, POST},
	{"SELECT", cmd_select, POST},
	{"EXAMINE", cmd_examine, POST},
	{"CREATE", cmd_create, POST},
	{"DELETE", cmd_delete, POST},
	{"RENAME", cmd_rename, POST},
	{"SUBSCRIBE", cmd_subscribe, POST},
	{"UNSUBSCRIBE", cmd_unsubscribe, POST},
	{"LIST", cmd_list, POST},
	{"LSUB", cmd_lsub, POST},
	{"STATUS", cmd_status, POST},
	{"APPEND", cmd_append, POST},
	{"IDLE", cmd_idle, POST | CONT},
	{"GETQUOTA", cmd_getquota, POST},
	{"GETQUOTAROOT", cmd_getquotaroot, POST},
	{"SETQUOTA", cmd_setquota, POST},
	{"GENURLAUTH", cmd_genurlauth, POST},
	{"URLFETCH", cmd_urlfetch, POST},
	{"RESETKEY", cmd_resetkey, POST},
	{"GETMETADATA", cmd_getmetadata, POST},
	{"SETMETADATA", cmd_setmetadata, POST},
	{"NOTIFY", cmd_notify, POST},
	{"CHECK", cmd_check, SEL},
	{"CLOSE", cmd_close, SEL},
	{"UNSELECT", cmd_unselect, SEL},
	{"EXPUNGE", cmd_expunge, SEL | UID},
	{"STORE", cmd_store, SEL | UID | NOEXP},
	{"COPY", cmd_copy, SEL | UID | NOEXP},
	{"MOVE", cmd_move, SEL | UID},
	{"REPLACE", cmd_replace, SEL | UID},
	{"FETCH", cmd_fetch, SEL | UID | NOEXP},
	{"SEARCH", cmd_search, SEL | UID | NOEXP},
	{"SORT", cmd_sort, SEL | UID | NOEXP},
	{"THREAD", cmd_thread, SEL | UID | NOEXP},
	{"CANCELUPDATE", cmd_cancelupdate, SEL},
#ifdef LOFT_TEST_COMMANDS
	/* Test builds only (cmd-xprobe.c): the confinement probe. */
	{"XPROBE", cmd_xprobe, POST},
#endif
};

const struct imap_command_def *imap_command_find(struct slice name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (slice_eq_ci(name, commands[i].name))
			return &commands[i];
	}
	return NULL;
}
