/*
 * loftd's own control verbs (see control-verbs.c).
 */
#ifndef LOFT_DAEMON_CONTROL_VERBS_H
#define LOFT_DAEMON_CONTROL_VERBS_H

struct auth;
struct control;
struct store;

void daemon_verbs_register(struct control *ctl, struct store *store);
/* "ban list" and "ban del ADDRESS|ACCOUNT" for `loftctl ban`: the live
 * state of the login throttle. */
void daemon_ban_verbs_register(struct control *ctl, struct auth *auth);

#endif
