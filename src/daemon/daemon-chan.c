/*
 * The parent/child channel (see daemon-chan.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "daemon-chan.h"

#define RELOAD_PART_MAX (4u * 1024 * 1024)

int daemon_chan_send(int chan, uint32_t type, uint32_t arg, int fd)
{
	uint32_t body[2] = {type, arg};
	struct iovec iov = {body, sizeof(body)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	while ((n = sendmsg(chan, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == (ssize_t)sizeof(body) ? 0 : -1;
}

int daemon_chan_recv(int chan, struct daemon_chan_msg *m)
{
	uint32_t body[3];
	struct iovec iov = {body, sizeof(body)};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	ssize_t n;
	while ((n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	if (n == 0)
		return 0;
	m->fd = -1;
	int nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n > 0 && c != NULL;
	     c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds++ == 0)
				m->fd = fd;
			else
				close(fd);
		}
	}
	if (n != (ssize_t)(2 * sizeof(uint32_t)) || nfds > 1 ||
	    (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    body[0] == 0 || body[0] > DAEMON_CHAN_TYPE_MAX) {
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		return -1;
	}
	m->type = body[0];
	m->arg = body[1];
	return 1;
}

static int put_part(int fd, const char *p, size_t len)
{
	uint32_t n = p != NULL ? (uint32_t)len : UINT32_MAX;
	if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return -1;
	size_t done = 0;
	while (p != NULL && done < len) {
		ssize_t w = write(fd, p + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

int daemon_reload_pack(const char *cfg, size_t cfg_len, const char *cert,
		       size_t cert_len, const char *key, size_t key_len)
{
	int fd = memfd_create("loftd-reload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (put_part(fd, cfg, cfg_len) < 0 || put_part(fd, cert, cert_len) < 0 ||
	    put_part(fd, key, key_len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
		  F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int get_part(int fd, off_t *off, char **p_r, size_t *len_r)
{
	uint32_t n;
	*p_r = NULL;
	*len_r = 0;
	if (pread(fd, &n, sizeof(n), *off) != (ssize_t)sizeof(n))
		return -1;
	*off += (off_t)sizeof(n);
	if (n == UINT32_MAX)
		return 0;
	if (n > RELOAD_PART_MAX)
		return -1;
	char *p = xmalloc((size_t)n + 1);
	if (pread(fd, p, n, *off) != (ssize_t)n) {
		free(p);
		return -1;
	}
	p[n] = '\0';
	*off += (off_t)n;
	*p_r = p;
	*len_r = n;
	return 0;
}

int daemon_reload_unpack(int fd, char **cfg_r, size_t *cfg_len_r,
			 char **cert_r, size_t *cert_len_r, char **key_r,
			 size_t *key_len_r)
{
	off_t off = 0;
	*cfg_r = *cert_r = *key_r = NULL;
	if (get_part(fd, &off, cfg_r, cfg_len_r) == 0 && *cfg_r != NULL &&
	    get_part(fd, &off, cert_r, cert_len_r) == 0 &&
	    get_part(fd, &off, key_r, key_len_r) == 0)
		return 0;
	free(*cfg_r);
	free(*cert_r);
	if (*key_r != NULL)
		OPENSSL_cleanse(*key_r, *key_len_r);
	free(*key_r);
	*cfg_r = *cert_r = *key_r = NULL;
	return -1;
}
