/*
 * Fuzz target for issue 15's parsers: the namespace mapping (imap-ns.c:
 * any name parses or fails cleanly, and a parsed name formats back to a
 * name that parses to the same owner and mailbox: there and back is the
 * identity), rights strings (parse/format round trip, unknown letters
 * refused) and the rights evaluation (negative entries never add a
 * right; the result stays within the defined bits), and identifiers
 * through SASLprep. The first byte picks the part.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap-ns.h"
#include "saslprep.h"
#include "store.h"

static void ns_roundtrip(const char *s, size_t n)
{
	static const struct imap_ns_settings ns = {"Other Users", "Shared"};
	struct imap_ns_name a, b;
	const char *error;
	int r = imap_ns_parse(&ns, "example.test", s, n, &a, &error);
	if (r <= 0)
		return;
	if (a.owner == NULL) {
		imap_ns_name_free(&a);
		return;
	}
	char *back = imap_ns_format(&ns, "example.test", a.kind, a.owner,
				    a.mailbox);
	int r2 = imap_ns_parse(&ns, "example.test", back, strlen(back), &b,
			       &error);
	if (r2 != 1 || b.kind != a.kind || strcmp(a.owner, b.owner) != 0 ||
	    (a.mailbox == NULL) != (b.mailbox == NULL) ||
	    (a.mailbox && strcmp(a.mailbox, b.mailbox) != 0))
		abort();
	imap_ns_name_free(&b);
	free(back);
	imap_ns_name_free(&a);
}

static void rights(const char *s, size_t n)
{
	unsigned r;
	if (store_rights_parse(s, n, &r) < 0) {
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '\0' || !strchr("lrswipkxteacd", s[i]))
				return;
		}
		abort();   /* only known letters, yet refused */
	}
	if (r & ~STORE_RIGHTS_ALL)
		abort();
	char out[16], out2[16];
	unsigned r2;
	store_rights_format(r, out);
	if (store_rights_parse(out, strlen(out), &r2) < 0)
		abort();
	store_rights_format(r2, out2);
	/* "d" adds t e x: formatting is stable from the second round */
	if (strcmp(out, out2) != 0 && (r2 & ~r) == 0)
		abort();
}

static void evaluate(const uint8_t *d, size_t n)
{
	struct store_acl_entry e[16];
	size_t k = 0;
	for (size_t i = 0; i + 4 <= n && k < 16; i += 4, k++) {
		e[k].kind = (enum store_acl_kind)(1 + d[i] % 4);
		e[k].id = d[i + 1] % 4;
		e[k].negative = d[i] & 0x80;
		e[k].rights = ((unsigned)d[i + 2] << 8 | d[i + 3]) &
			      STORE_RIGHTS_ALL;
	}
	int64_t groups[2] = {1, 2};
	struct store_viewer v = {.user_id = n % 3, .groups = groups,
				 .group_count = 2, .same_domain = n & 1};
	unsigned all = store_acl_evaluate(e, k, &v), pos = 0;
	for (size_t i = 0; i < k; i++) {
		if (!e[i].negative)
			pos |= e[i].rights;
	}
	if ((all & ~pos) != 0 || (all & ~STORE_RIGHTS_ALL) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	char *s = xmalloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		ns_roundtrip(s, size - 1);
		break;
	case 1:
		rights(s, size - 1);
		break;
	case 2:
		evaluate(data + 1, size - 1);
		break;
	default: {
		char *out;
		const char *why;
		if (saslprep(s, SASLPREP_QUERY, &out, &why) == 0)
			free(out);
	}
	}
	free(s);
	return 0;
}
