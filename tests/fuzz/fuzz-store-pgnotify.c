/*
 * The postgres backend's change notifications between nodes
 * (src/store/pg/pg-hub.c): whatever arrives on the channel, the parser
 * never reads past the string, and what it accepts is within bounds (a
 * user id, at most max changes, a LOGOUT alone).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg-notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct store_change ch[16];
	size_t n = 0;
	uint64_t node = 0;
	if (pg_notify_parse(s, &node, ch, 16, &n) == 0) {
		if (n == 0 || n > 16)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (ch[i].user_id <= 0 ||
			    (ch[i].kind == STORE_CHANGE_LOGOUT &&
			     (n != 1 || ch[i].mailbox_id != 0)))
				abort();
		}
	}
	free(s);
	return 0;
}
