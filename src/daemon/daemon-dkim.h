/*
 * DKIM keys shared by the nodes of one database (docs/scale-out.md
 * "Accounts"): loftd's auth process and `loftctl dkim` make a node's
 * data_dir/dkim, where its signer reads, hold what the rows say.
 */
#ifndef LOFT_DAEMON_DKIM_H
#define LOFT_DAEMON_DKIM_H

#include "auth.h"

/* Seconds between two passes of loftd's auth process. */
#define DAEMON_DKIM_MIRROR_SECONDS 5

/* With the accounts in PostgreSQL (auth_dkim_shared), makes dir hold the
 * shared keys (a key found only in dir joins them): the copies made or
 * removed, or -1 with *error_r (caller frees). 0 when not shared. */
int daemon_dkim_mirror(struct auth *auth, const char *dir, char **error_r);

#endif
