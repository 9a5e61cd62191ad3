/* Counted short-lived threads (offload.h). */
#include "offload.h"

#include <stdbool.h>
#include <stdlib.h>

#include "buf.h"

struct offload_job {
	struct offload *o;
	void (*fn)(void *arg);
	void *arg;
};

void offload_init(struct offload *o)
{
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->done, NULL);
	o->running = 0;
}

static void *offload_main(void *p)
{
	struct offload_job *job = p;
	struct offload *o = job->o;

	job->fn(job->arg);
	free(job);
	pthread_mutex_lock(&o->mu);
	o->running--;
	pthread_cond_broadcast(&o->done);
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

void offload_run(struct offload *o, void (*fn)(void *arg), void *arg)
{
	struct offload_job *job = xmalloc(sizeof(*job));
	pthread_attr_t attr;
	pthread_t th;
	bool started = false;

	job->o = o;
	job->fn = fn;
	job->arg = arg;
	pthread_mutex_lock(&o->mu);
	o->running++;
	pthread_mutex_unlock(&o->mu);
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&th, &attr, offload_main, job) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!started)
		offload_main(job);
}

void offload_finish(struct offload *o)
{
	pthread_mutex_lock(&o->mu);
	while (o->running > 0)
		pthread_cond_wait(&o->done, &o->mu);
	pthread_mutex_unlock(&o->mu);
	pthread_cond_destroy(&o->done);
	pthread_mutex_destroy(&o->mu);
}
