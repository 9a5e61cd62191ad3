/*
 * loftd's own control verbs (see control-verbs.c).
 */
#ifndef LOFT_DAEMON_CONTROL_VERBS_H
#define LOFT_DAEMON_CONTROL_VERBS_H

struct control;
struct store;

void daemon_verbs_register(struct control *ctl, struct store *store);

#endif
