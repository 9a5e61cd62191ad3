/*
 * loftctl, the admin tool: shared state and helpers for the verb groups.
 * Each group lives in its own cmd-<group>.c and exports a table of
 * struct loftctl_cmd ending with a {NULL} entry; loftctl.c lists the
 * tables in loftctl_groups[]. To add a group: write cmd-<group>.c with
 * `const struct loftctl_cmd loftctl_<group>_cmds[]`, declare it below and
 * add it to the list in loftctl.c.
 *
 * Conventions: exit status 0 on success, 1 on failure with one line
 * "loftctl: reason" on stderr (loftctl_fail), 2 for a usage error.
 * Passwords come from stdin only, never argv, and are never printed.
 */
#ifndef LOFTCTL_H
#define LOFTCTL_H

#include "auth.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>

/* Without --config: $LOFT_CONFIG, else this. */
#define LOFTCTL_DEFAULT_CONFIG "/etc/loft/loftd.conf"

struct config;

struct loftctl {
	const char *config_path;
	struct config *cfg;
	struct auth_settings set;
	struct store_settings store_set;
	struct auth *auth;
	struct store *store;           /* opened by loftctl_store() */
	struct loftctl_teller *teller; /* loftctl_tell_soon's thread */
	/* the `user` loftctl became (run as root), else "" */
	char became[64];
};

struct loftctl_cmd {
	const char *group;             /* "user", "check", ... */
	const char *verb;              /* "add"; NULL: the group is the verb */
	const char *usage;             /* arguments, for --help */
	/* argv[0] is the first argument after the verb. Returns the exit
	 * status. */
	int (*run)(struct loftctl *ctl, int argc, char **argv);
};

extern const struct loftctl_cmd loftctl_user_cmds[];
extern const struct loftctl_cmd loftctl_domain_cmds[];
extern const struct loftctl_cmd loftctl_alias_cmds[];
extern const struct loftctl_cmd loftctl_check_cmds[];
extern const struct loftctl_cmd loftctl_kick_cmds[];
extern const struct loftctl_cmd loftctl_status_cmds[];
extern const struct loftctl_cmd loftctl_token_cmds[];
extern const struct loftctl_cmd loftctl_dns_cmds[];
extern const struct loftctl_cmd loftctl_ban_cmds[];
extern const struct loftctl_cmd loftctl_retention_cmds[];
extern const struct loftctl_cmd loftctl_undelete_cmds[];
extern const struct loftctl_cmd loftctl_acl_cmds[];
extern const struct loftctl_cmd loftctl_group_cmds[];
extern const struct loftctl_cmd loftctl_shared_cmds[];
extern const struct loftctl_cmd loftctl_mailbox_cmds[];
extern const struct loftctl_cmd loftctl_migrate_store_cmds[];
/* cmd-acl.c: the ACL entries of u's mailboxes, one line each ("ADDRESS/
 * MAILBOX: IDENTIFIER RIGHTS"); how many. */
unsigned loftctl_acl_print_shared(struct loftctl *ctl,
				  const struct auth_user *u);
/* The ACL entries naming user_id in the mail of owners (from
 * auth_acl_owners, read before the account went) removed; how many. */
unsigned loftctl_acl_forget(struct loftctl *ctl, int64_t user_id,
			    const int64_t *owners, size_t owner_count);
#ifdef LOFTCTL_HAVE_MIGRATE
extern const struct loftctl_cmd loftctl_migrate_cmds[];
#endif
#ifdef LOFTCTL_HAVE_QUEUE
extern const struct loftctl_cmd loftctl_queue_cmds[];
extern const struct loftctl_cmd loftctl_sieve_cmds[];
/* The outbound queue, opened as `loftctl queue` opens it (not started);
 * NULL after printing why. */
struct queue *loftctl_open_queue(struct loftctl *ctl);
#endif
#ifdef LOFTCTL_HAVE_MAILAUTH
extern const struct loftctl_cmd loftctl_dkim_cmds[];
/* data_dir/dkim (caller frees). */
char *loftctl_dkim_dir(struct loftctl *ctl);
#endif
/* A TXT record in master-file syntax (RFC 1035 5.1): one line, the data
 * cut into quoted character-strings of at most 255 octets. */
void loftctl_print_txt(const char *owner, const char *data);

/* How long loftctl waits for loftd's answer on the control socket. */
#define LOFTCTL_CONTROL_TIMEOUT_MS 10000

#define LOFTCTL_EXIT_FAIL 1
#define LOFTCTL_EXIT_USAGE 2

/* Prints "loftctl: MESSAGE" on stderr; returns LOFTCTL_EXIT_FAIL. */
int loftctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "usage: loftctl --config FILE GROUP VERB USAGE"; returns 2. */
int loftctl_usage(const struct loftctl_cmd *cmd);
/* The store, opened on first use (data_dir from the config); NULL after
 * printing the reason. */
struct store *loftctl_store(struct loftctl *ctl);
/* Looks up an address (not an alias); prints the reason and returns -1
 * if there is no such user. */
int loftctl_lookup_user(struct loftctl *ctl, const char *address,
			struct auth_user *user_r);
/* Reads one line from stdin (the newline stripped) into buf: a password
 * or a {SCHEME}hash. On a terminal, prompts without echo (twice when
 * confirm). -1 after printing the reason. */
int loftctl_read_secret(const char *prompt, bool confirm, char *buf,
			size_t size);
/* Ends every session of the account in the running loftd (the control
 * socket's "kick" verb) and waits until they are gone. 0 when they are,
 * or when no loftd runs (*running_r false); -1 after printing why. */
int loftctl_kick(struct loftctl *ctl, const struct auth_user *user,
		 bool *running_r, unsigned *sessions_r);
/* Tells a running loftd that this process changed the account's mail
 * (control verb "changed"), so its IDLE/push sessions see it at once;
 * nothing when loftd does not run. */
void loftctl_tell_changed(struct loftctl *ctl, int64_t user_id);
/* The same from a thread, coalesced (at most one call per
 * LOFTCTL_TELL_EVERY_MS): for a command that commits again and again
 * (import, restore), so a running loftd's IDLE clients see each commit
 * within a second without the command waiting on the control socket.
 * loftctl_tell_stop (main, at the end) tells what is pending first. */
void loftctl_tell_soon(struct loftctl *ctl, int64_t user_id);
void loftctl_tell_stop(struct loftctl *ctl);
/* [sharing] cross_domain and max_acl_entries (cmd-acl.c). */
bool loftctl_cross_domain(struct loftctl *ctl);
unsigned loftctl_max_acl_entries(struct loftctl *ctl);
/* Whether path can be read (a file, or a tree: R_OK | X_OK on a
 * directory) or written in (W_OK: a directory to create files in). 0 if
 * so, or if it cannot be told here (the verb then reports its own error).
 * When loftctl became the service user (run as root) and that user is
 * refused, prints why and the way out (root can, `user` cannot) and
 * returns -1. what: "SOURCE", "DEST". */
int loftctl_user_can(struct loftctl *ctl, const char *path, bool write,
		     const char *what);
/* The directory cmd writes outside data_dir (backup's and export's DEST)
 * as its arguments name it (argc, argv as for run), else NULL. Run as
 * root with `user`, loftctl makes a missing one for the user (0700)
 * before it becomes the user (cmd-migrate.c). */
const char *loftctl_migrate_dest(const struct loftctl_cmd *cmd, int argc,
				 char **argv);
/* Removes "--flag" from argv if present; returns whether it was there. */
bool loftctl_take_flag(int *argc, char **argv, const char *flag);

#endif
