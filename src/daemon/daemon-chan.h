/*
 * The channel between loftd's parent and each child: a SOCK_SEQPACKET
 * socketpair carrying fixed 8-byte messages (u32 type, u32 argument) and
 * at most one descriptor each. The parent is the privileged side: what a
 * child sends it is checked strictly (size, type, argument, no
 * descriptor) and anything else ends that child.
 *
 * RELOAD carries a memfd holding the new configuration text and, when the
 * certificate pair loaded, the PEM texts (daemon_reload_pack/unpack).
 */
#ifndef LOFT_DAEMON_CHAN_H
#define LOFT_DAEMON_CHAN_H

#include <stddef.h>
#include <stdint.h>

enum daemon_chan_type {
	DAEMON_CHAN_READY = 1,   /* mail -> parent: every listener accepts */
	DAEMON_CHAN_RELOAD,      /* parent -> child: fd = daemon_reload_pack */
	DAEMON_CHAN_RELOADED,    /* child -> parent: arg 0 done, 1 with
				    errors (logged by the child) */
	DAEMON_CHAN_AUTH_FD,     /* parent -> mail: fd = a new auth socket */
	DAEMON_CHAN_OUTBOUND_FD, /* parent -> mail: a new outbound socket */
	DAEMON_CHAN_TYPE_MAX = DAEMON_CHAN_OUTBOUND_FD,
};

struct daemon_chan_msg {
	uint32_t type;
	uint32_t arg;
	int fd;                  /* -1: none */
};

/* Sends one message (fd -1: none; the caller keeps its fd). 0 or -1. */
int daemon_chan_send(int chan, uint32_t type, uint32_t arg, int fd);
/* Receives one message: 1, 0 at EOF, -1 on a socket error or a malformed
 * message (a descriptor that came with it is closed). */
int daemon_chan_recv(int chan, struct daemon_chan_msg *m);

/* The RELOAD payload: a sealed memfd with the configuration text and the
 * PEM texts (cert/key NULL: keep the current pair). -1 on failure. */
int daemon_reload_pack(const char *cfg, size_t cfg_len, const char *cert,
		       size_t cert_len, const char *key, size_t key_len);
/* Reads it back (caller frees each, wiping the key). 0 or -1. */
int daemon_reload_unpack(int fd, char **cfg_r, size_t *cfg_len_r,
			 char **cert_r, size_t *cert_len_r, char **key_r,
			 size_t *key_len_r);

#endif
