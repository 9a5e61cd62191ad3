/*
 * Fuzz target for src/migrate's Maildir parsers: the first byte picks
 * dovecot-uidlist, dovecot-keywords, a file name or a folder name; the
 * rest is the input. Results are checked for what the importer relies
 * on: UIDs strictly ascending and below UIDNEXT, base names without
 * ':' or '/', keyword indexes in range, folder names valid UTF-8 that
 * round-trip through maildir_folder_dir when they can.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "migrate-parse.h"
#include "utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	char err[160];
	switch (data[0] % 4) {
	case 0: {
		struct maildir_uidlist ul;
		if (maildir_uidlist_parse(s, n, &ul, err, sizeof(err)) == 0) {
			uint32_t last = 0;
			for (size_t i = 0; i < ul.count; i++) {
				if (ul.recs[i].uid <= last ||
				    ul.recs[i].uid >= ul.uidnext ||
				    strpbrk(ul.recs[i].base, ":/") != NULL ||
				    ul.recs[i].base[0] == '\0')
					abort();
				last = ul.recs[i].uid;
			}
			maildir_uidlist_free(&ul);
		}
		break;
	}
	case 1: {
		struct maildir_keywords kw;
		if (maildir_keywords_parse(s, n, &kw, err, sizeof(err)) == 0) {
			for (int i = 0; i < MAILDIR_KEYWORDS; i++)
				if (kw.names[i] != NULL &&
				    !migrate_keyword_valid(kw.names[i],
							   strlen(kw.names[i])))
					abort();
			maildir_keywords_free(&kw);
		}
		break;
	}
	case 2: {
		struct maildir_name mn;
		if (maildir_name_parse(s, n, &mn, err, sizeof(err)) == 0) {
			if (mn.base_len == 0 || mn.base_len > n ||
			    memchr(s, ':', mn.base_len) != NULL)
				abort();
			struct buf b;
			buf_init(&b, 0);
			maildir_info_format(mn.flags, mn.forwarded, mn.keywords,
					    &b);
			struct maildir_name back;
			if (maildir_name_parse(b.data, b.len, &back, NULL, 0) < 0)
				; /* ":2,..." alone has no base: fine */
			buf_free(&b);
		}
		break;
	}
	default: {
		struct buf b, d;
		buf_init(&b, 0);
		buf_init(&d, 0);
		bool fs = n > 0 && s[0] != '.';
		if (maildir_folder_name(s, n, fs, &b) == 0) {
			if (!utf8_valid(b.data, b.len))
				abort();
			buf_append_char(&b, '\0');
			if (maildir_folder_dir(b.data, &d) == 0) {
				struct buf again;
				buf_init(&again, 0);
				if (maildir_folder_name(d.data, d.len, false,
							&again) < 0)
					abort();
				buf_append_char(&again, '\0');
				if (strcmp(again.data, b.data) != 0)
					abort();
				buf_free(&again);
			}
		}
		buf_free(&b);
		buf_free(&d);
		break;
	}
	}
	return 0;
}
