/*
 * The table of client mail services and listen-address ports (mailsvc.h).
 */
#include "mailsvc.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"

const struct mailsvc mailsvc_table[] = {
	{"imaps", MAILSVC_IMAP, true, "_imaps._tcp", 0},
	{"imap", MAILSVC_IMAP, false, "_imap._tcp", 10},
	{"pop3s", MAILSVC_POP3, true, "_pop3s._tcp", 0},
	{"pop3", MAILSVC_POP3, false, "_pop3._tcp", 10},
	{"submissions", MAILSVC_SMTP, true, "_submissions._tcp", 0},
	{"submission", MAILSVC_SMTP, false, "_submission._tcp", 10},
	{NULL, 0, false, NULL, 0},
};

const char *mailsvc_kind_name(enum mailsvc_kind kind)
{
	switch (kind) {
	case MAILSVC_IMAP: return "imap";
	case MAILSVC_POP3: return "pop3";
	case MAILSVC_SMTP: return "smtp";
	}
	return "?";
}

unsigned mailsvc_port(const char *addr, bool *loopback_r)
{
	*loopback_r = false;
	if (strncmp(addr, "unix:", 5) == 0)
		return 0;
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon[1] == '\0')
		return 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port == 0 || port > 65535)
		return 0;
	*loopback_r = strncmp(addr, "127.", 4) == 0 ||
		strncmp(addr, "[::1]:", 6) == 0 ||
		strncmp(addr, "localhost:", 10) == 0;
	return (unsigned)port;
}

unsigned mailsvc_listen_port(const char *listen)
{
	size_t n;
	char **addrs = config_split_list(listen, &n);
	unsigned first = 0, outside = 0;
	for (size_t i = 0; i < n; i++) {
		bool lo;
		unsigned p = mailsvc_port(addrs[i], &lo);
		if (p != 0 && first == 0)
			first = p;
		if (p != 0 && !lo && outside == 0)
			outside = p;
		free(addrs[i]);
	}
	free(addrs);
	return outside != 0 ? outside : first;
}
