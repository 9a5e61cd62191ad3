/*
 * Fuzz target for the store's text search (src/store/sqlite/sq-search.c):
 * an IMAP client's SEARCH BODY/TEXT needle becomes a case-folded FTS5
 * trigram query (quotes doubled) whose candidates are then verified. The
 * store promises the exact answer, so: a message whose body holds a text
 * must be found by any piece of that text.
 *
 * Each input appends one message (text/plain, UTF-8, body = the text) to
 * a mailbox of a real store in a temp dir (fsync off; the mailbox is
 * dropped and made again every 256 inputs to keep it small), then
 * searches for a piece of the text, as BODY and as TEXT.
 *
 * Input: [offset][length][text]; CR, LF and NUL in the text become
 * spaces; text that is not UTF-8 is skipped.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "store.h"
#include "utf7.h"

static char dir[64];
static struct store *store;
static struct store_user *user;
static unsigned inputs;

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	store_user_unref(&user);
	store_close(&store);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, const struct store_error *err)
{
	fprintf(stderr, "fuzz-store-search: %s: %s\n", what, err->msg);
	abort();
}

static void setup(void)
{
	struct store_settings set;
	struct store_error err = {0};

	snprintf(dir, sizeof(dir), "/tmp/loft-fuzz-store-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	memset(&set, 0, sizeof(set));
	set.data_dir = dir;
	set.fsync = false;
	if (store_open(&set, &store, &err) < 0)
		die("store_open", &err);
	if (store_user_open(store, 1, &user, &err) < 0)
		die("store_user_open", &err);
	atexit(cleanup);
}

static bool found(const char *needle, enum store_text_where where,
		  uint32_t uid)
{
	struct store_error err = {0};
	uint32_t *uids;
	size_t count;
	if (store_search_text(user, "F", where, needle, NULL, 0, &uids, &count,
			      &err) < 0)
		die("store_search_text", &err);
	bool hit = false;
	for (size_t i = 0; i < count; i++) {
		if (i > 0 && uids[i] <= uids[i - 1])
			abort();   /* sorted, no duplicates */
		hit |= uids[i] == uid;
	}
	free(uids);
	return hit;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_error err = {0};

	if (store == NULL)
		setup();
	if (size < 3 || size > 4096)
		return 0;
	size_t n = size - 2;
	char *text = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		char c = (char)data[2 + i];
		text[i] = c == '\r' || c == '\n' || c == '\0' ? ' ' : c;
	}
	text[n] = '\0';
	if (!utf8_valid(text, n)) {
		free(text);
		return 0;
	}
	/* the needle: a piece of the text on code point boundaries */
	size_t off = data[0] % n, len = (size_t)data[1] % (n - off) + 1;
	while (off > 0 && (text[off] & 0xc0) == 0x80)
		off--;
	size_t end = off + len;
	while (end < n && (text[end] & 0xc0) == 0x80)
		end++;
	char *needle = xstrndup(text + off, end - off);

	if (inputs++ % 256 == 0) {
		(void)store_mailbox_delete(user, "F", &err);
		if (store_mailbox_create(user, "F", 0, &err) < 0)
			die("store_mailbox_create", &err);
	}
	char *msg = xasprintf("From: a@example.test\r\nSubject: fuzz\r\n"
			      "MIME-Version: 1.0\r\n"
			      "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
			      text);
	struct store_append_params params = {0};
	uint32_t uid;
	if (store_append(user, "F", msg, strlen(msg), &params, &uid, NULL,
			 &err) < 0)
		die("store_append", &err);
	if (!found(needle, STORE_TEXT_BODY, uid) ||
	    !found(needle, STORE_TEXT_ALL, uid)) {
		fprintf(stderr, "SEARCH BODY \"%s\" misses message %u with "
			"body \"%s\"\n", needle, uid, text);
		abort();
	}
	free(msg);
	free(needle);
	free(text);
	return 0;
}
