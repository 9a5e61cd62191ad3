/* See outconn.h. */
#include "outconn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static outconn_fn *broker_fn;
static void *broker_ctx;

void outconn_set_broker(outconn_fn *fn, void *ctx)
{
	__atomic_store_n(&broker_ctx, ctx, __ATOMIC_RELAXED);
	__atomic_store_n(&broker_fn, fn, __ATOMIC_RELEASE);
}

bool outconn_brokered(void)
{
	return __atomic_load_n(&broker_fn, __ATOMIC_ACQUIRE) != NULL;
}

int outconn_connect(const struct sockaddr *sa, socklen_t len,
		    unsigned timeout_ms, char **error_r)
{
	outconn_fn *fn = __atomic_load_n(&broker_fn, __ATOMIC_ACQUIRE);
	if (fn != NULL)
		return fn(__atomic_load_n(&broker_ctx, __ATOMIC_RELAXED), sa, len,
			  timeout_ms, error_r);
	return outconn_connect_here(sa, len, timeout_ms, error_r);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int outconn_connect_here(const struct sockaddr *sa, socklen_t len,
			 unsigned timeout_ms, char **error_r)
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
		*error_r = xstrdup("not an IP address");
		return -1;
	}
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC |
			SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = xstrdup(strerror(errno));
		return -1;
	}
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		*error_r = xstrdup(strerror(errno));
		close(fd);
		return -1;
	}
	long long deadline = now_ms() + timeout_ms;
	int err = 0, n;
	socklen_t el = sizeof(err);
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ||
	    err != 0) {
		*error_r = xstrdup(n == 0 ? "timed out"
				   : strerror(err ? err : errno));
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}
