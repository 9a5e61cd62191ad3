/*
 * Waits: a connection parked on a timer or on a job elsewhere, with no
 * thread held (net.h, "waiting without a thread"). A throttled login waits
 * here for its delay, and for its password hash, instead of sleeping on a
 * worker; a client that hangs up meanwhile cancels it.
 *
 * Everything that changes a wait happens on its connection's I/O thread:
 * linking it into conn->wait_list, arming its timer, firing it (fn becomes
 * the connection's next task) and cancelling it (the connection is being
 * destroyed). Other threads only post requests there. conn->waits counts
 * the live waits from the moment net_conn_wait returns, so the task that
 * created one ends without the connection reading commands again.
 *
 * References: the handle returned to the caller, the connection's list
 * while linked, and each post in flight hold one each; the wait holds one
 * on its connection.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "buf.h"
#include "log.h"
#include "net-private.h"

static void wait_ref(struct net_wait *w)
{
	atomic_fetch_add(&w->refs, 1);
}

void net_wait_unref(struct net_wait **wp)
{
	struct net_wait *w = *wp;
	*wp = NULL;
	if (w == NULL || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	net_conn_unref(&w->conn);
	free(w);
}

static void wait_post(struct net_wait *w, enum net_post_kind kind,
		      uint32_t delay_ms)
{
	struct net_post *p = xcalloc(1, sizeof(*p));
	p->kind = kind;
	p->conn = w->conn;
	net_conn_ref(w->conn);
	wait_ref(w);
	p->wait = w;
	p->delay_ms = delay_ms;
	net_thread_post(w->conn->th, p);
}

/* io: takes the wait off its connection; it is over. */
static void wait_end(struct net_wait *w)
{
	struct net_conn *conn = w->conn;
	w->done = true;
	if (w->timer != NULL) {
		event_free(w->timer);
		w->timer = NULL;
	}
	if (w->linked) {
		if (w->prev != NULL)
			w->prev->next = w->next;
		else
			conn->wait_list = w->next;
		if (w->next != NULL)
			w->next->prev = w->prev;
		w->linked = false;
	}
	atomic_fetch_sub(&conn->waits, 1);
}

/* io: fn becomes the connection's next task. */
static void wait_fire(struct net_wait *w)
{
	if (w->done)
		return;
	struct net_conn *conn = w->conn;
	bool was_linked = w->linked;
	/* Queue the task before the count drops, so input is never parsed
	 * in between. */
	int rc = conn->closed ? -1 : net_conn_run(conn, w->fn, w->arg);
	wait_end(w);
	if (rc < 0 && w->cancel != NULL)
		w->cancel(w->arg);
	if (was_linked)
		net_wait_unref(&w);
}

static void wait_timer_cb(evutil_socket_t fd, short what, void *ctx)
{
	wait_fire(ctx);
}

void net_wait_cancel_io(struct net_wait *w)
{
	if (w->done)
		return;
	bool was_linked = w->linked;
	wait_end(w);
	if (w->cancel != NULL)
		w->cancel(w->arg);
	if (was_linked)
		net_wait_unref(&w);
}

void net_wait_finish_io(struct net_wait *w, uint32_t after_ms)
{
	if (w->done || w->timer != NULL)
		return;
	if (!w->linked) {
		/* Its WAIT_ADD post is still queued behind us. */
		if (w->pending_ms < 0)
			w->pending_ms = after_ms;
		return;
	}
	w->timer = evtimer_new(w->conn->th->base, wait_timer_cb, w);
	if (w->timer == NULL) {
		wait_fire(w);
		return;
	}
	struct timeval tv = {(time_t)(after_ms / 1000),
			     (suseconds_t)(after_ms % 1000) * 1000};
	evtimer_add(w->timer, &tv);
}

void net_wait_add_io(struct net_wait *w)
{
	struct net_conn *conn = w->conn;
	if (w->done)
		return;
	if (conn->closed || atomic_load(&conn->closing)) {
		net_wait_cancel_io(w);
		return;
	}
	if (conn->eof && (w->flags & NET_WAIT_HANGUP_CANCELS)) {
		/* The client hung up before this wait got here. */
		net_wait_cancel_io(w);
		net_conn_close_io(conn);
		return;
	}
	wait_ref(w);                    /* the list's */
	w->linked = true;
	w->prev = NULL;
	w->next = conn->wait_list;
	if (conn->wait_list != NULL)
		conn->wait_list->prev = w;
	conn->wait_list = w;
	if (w->pending_ms >= 0)
		net_wait_finish_io(w, (uint32_t)w->pending_ms);
}

bool net_conn_hangup_closes(struct net_conn *conn)
{
	if (atomic_load(&conn->waits) == 0)
		return true;
	for (struct net_wait *w = conn->wait_list; w != NULL; w = w->next)
		if (w->flags & NET_WAIT_HANGUP_CANCELS)
			return true;
	return false;
}

void net_conn_cancel_waits(struct net_conn *conn)
{
	while (conn->wait_list != NULL)
		net_wait_cancel_io(conn->wait_list);
}

struct net_wait *net_conn_wait(struct net_conn *conn, unsigned flags,
			       net_task_fn *fn, void *arg,
			       net_cancel_fn *cancel)
{
	if (atomic_load(&conn->closing))
		return NULL;
	struct net_wait *w = xcalloc(1, sizeof(*w));
	net_conn_ref(conn);
	w->conn = conn;
	w->fn = fn;
	w->arg = arg;
	w->cancel = cancel;
	w->flags = flags;
	w->pending_ms = -1;
	atomic_init(&w->refs, 1);       /* the handle */
	atomic_fetch_add(&conn->waits, 1);
	if (net_on_thread(conn->th))
		net_wait_add_io(w);
	else
		wait_post(w, NET_POST_WAIT_ADD, 0);
	return w;
}

void net_wait_finish(struct net_wait *w, uint32_t after_ms)
{
	if (net_on_thread(w->conn->th))
		net_wait_finish_io(w, after_ms);
	else
		wait_post(w, NET_POST_WAIT_FINISH, after_ms);
}

int net_conn_run_after(struct net_conn *conn, uint32_t delay_ms,
		       unsigned flags, net_task_fn *fn, void *arg,
		       net_cancel_fn *cancel)
{
	struct net_wait *w = net_conn_wait(conn, flags, fn, arg, cancel);
	if (w == NULL)
		return -1;
	net_wait_finish(w, delay_ms);
	net_wait_unref(&w);
	return 0;
}
