/*
 * Work that must not run on an I/O thread, for the moment a connection
 * closes: letting go of a store handle can close a user's index (a
 * commit, an fsync), and net has no worker for a closed connection. An
 * offload runs such work on a short-lived detached thread and counts it,
 * so that the front-end's destroy can wait for every one before the store
 * goes away. POP3, LMTP and SMTP share it.
 */
#ifndef LOFT_OFFLOAD_H
#define LOFT_OFFLOAD_H

#include <pthread.h>

struct offload {
	pthread_mutex_t mu;
	pthread_cond_t done;
	unsigned running;
};

void offload_init(struct offload *o);
/* Runs fn(arg) on a new thread; where no thread can start, here (late
 * rather than leaked). */
void offload_run(struct offload *o, void (*fn)(void *arg), void *arg);
/* Waits until every fn started by offload_run has returned, then frees
 * what offload_init set up. */
void offload_finish(struct offload *o);

#endif
