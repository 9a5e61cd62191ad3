/*
 * Fuzz target for the IMAP and POP3 clients' response parsers (src/
 * migrate/imap-resp.c): imap_resp_parse over one response, every item
 * walked (lengths inside the input or the unescaped strings), numbers
 * read; and pop3_uidl_line over each line. The first byte picks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "migrate-parse.h"
#include "store.h"

static struct imap_resp *resp;

static void walk(const struct imap_item *it, int depth, size_t size)
{
	/* an atom and its [section] are two levels, one of nesting */
	if (depth > 2 * IMAP_RESP_DEPTH + 2)
		abort();
	for (; it != NULL; it = imap_resp_next(resp, it)) {
		const char *d = imap_item_data(resp, it);
		if (it->in_strings) {
			if (it->off + it->len > resp->strings.len)
				abort();
		} else if (it->off + it->len > size) {
			abort();
		}
		if (it->len > 0)
			(void)d[it->len - 1];
		uint64_t v;
		(void)imap_item_u64(resp, it, &v);
		(void)imap_item_is(resp, it, "FETCH");
		if (it->first != 0)
			walk(imap_resp_child(resp, it, 0), depth + 1, size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (resp == NULL) {
		resp = calloc(1, sizeof(*resp));
		buf_init(&resp->strings, 0);
	}
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] & 1) {
		char *copy = malloc(n + 1);
		if (n > 0)
			memcpy(copy, s, n);
		if (imap_resp_parse(copy, n, resp) == 0) {
			if (resp->count == 0 || resp->items[0].type != IMAP_LIST)
				abort();
			walk(imap_resp_child(resp, &resp->items[0], 0), 0, n);
			if (resp->text_len > n)
				abort();
		}
		/* the same bytes as a VANISHED UID set */
		struct store_uid_range *r;
		size_t nr;
		if (imap_uid_set_parse(copy, n, &r, &nr) == 0) {
			if (nr == 0 || nr > IMAP_UID_SET_MAX)
				abort();
			for (size_t i = 0; i < nr; i++)
				if (r[i].lo == 0 || r[i].lo > r[i].hi ||
				    !imap_uid_set_has(r, nr, r[i].hi))
					abort();
			free(r);
		}
		free(copy);
	} else {
		size_t i = 0;
		while (i < n) {
			const char *nl = memchr(s + i, '\n', n - i);
			size_t len = nl ? (size_t)(nl - (s + i)) + 1 : n - i;
			unsigned num;
			char uidl[71];
			if (pop3_uidl_line(s + i, len, &num, uidl) &&
			    (num == 0 || strlen(uidl) == 0 || strlen(uidl) > 70))
				abort();
			i += len;
		}
	}
	return 0;
}
