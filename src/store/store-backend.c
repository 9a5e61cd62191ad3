/*
 * Helpers both backends (sqlite/, pg/) use for the same logic: keyword
 * lists as stored ("a b c"), a copy's prefix search text, UID ranges,
 * annotation rows.
 */
#include "store-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "buf.h"

bool store_ranges_contain(const struct store_uid_range *ranges, size_t count,
			  uint32_t uid)
{
	if (ranges == NULL)
		return true;
	for (size_t i = 0; i < count; i++) {
		if (uid >= ranges[i].lo && uid <= ranges[i].hi)
			return true;
	}
	return false;
}

static bool kw_in(const struct store_flag_change *ch, const char *k, size_t len)
{
	for (size_t i = 0; i < ch->keyword_count; i++) {
		if (strlen(ch->keywords[i]) == len &&
		    strncasecmp(ch->keywords[i], k, len) == 0)
			return true;
	}
	return false;
}

char *store_keywords_apply(const char *old, const struct store_flag_change *ch)
{
	struct buf b;
	buf_init(&b, 0);
	if (ch->mode != STORE_FLAGS_REPLACE && old != NULL) {
		for (const char *p = old; *p;) {
			const char *e = strchr(p, ' ');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			bool drop = ch->mode == STORE_FLAGS_REMOVE &&
				    kw_in(ch, p, len);
			if (!drop) {
				if (b.len > 0)
					buf_append_char(&b, ' ');
				buf_append(&b, p, len);
			}
			p += len + (e != NULL);
		}
	}
	if (ch->mode != STORE_FLAGS_REMOVE) {
		for (size_t i = 0; i < ch->keyword_count; i++) {
			const char *k = ch->keywords[i];
			size_t len = strlen(k);
			bool have = false;
			for (const char *p = b.data; p != NULL && *p && !have;) {
				const char *e = strchr(p, ' ');
				size_t l = e ? (size_t)(e - p) : strlen(p);
				have = l == len && strncasecmp(p, k, len) == 0;
				p += l + (e != NULL);
			}
			if (!have) {
				if (b.len > 0)
					buf_append_char(&b, ' ');
				buf_append(&b, k, len);
			}
		}
	}
	return b.len > 0 ? buf_steal(&b, NULL) : (buf_free(&b), NULL);
}

size_t store_keywords_split(const char *kw, struct store_keyword_list *l)
{
	free(l->buf);
	l->buf = NULL;
	size_t n = 0;
	if (kw != NULL && kw[0] != '\0') {
		l->buf = xstrdup(kw);
		for (char *p = l->buf; p != NULL; p = strchr(p, ' ')) {
			if (n + 2 > l->cap) {
				l->cap = l->cap ? l->cap * 2 : 8;
				l->list = xrealloc(l->list, l->cap * sizeof(char *));
			}
			if (*p == ' ')
				*p++ = '\0';
			l->list[n++] = p;
		}
	}
	if (l->cap == 0) {
		l->cap = 8;
		l->list = xcalloc(l->cap, sizeof(char *));
	}
	l->list[n] = NULL;
	return n;
}

void store_keyword_list_free(struct store_keyword_list *l)
{
	free(l->buf);
	free(l->list);
	memset(l, 0, sizeof(*l));
}

void store_prefix_text(const char *prefix, size_t len, struct buf *out)
{
	struct buf msg;
	buf_init(&msg, len + 2);
	buf_append(&msg, prefix, len);
	buf_append(&msg, "\r\n", 2);
	struct mail_result r;
	store_analyze(msg.data, msg.len, &r);
	buf_append(out, r.header_text, r.header_text_len);
	mail_result_free(&r);
	buf_free(&msg);
}

/* ---- annotation rows ------------------------------------------------ */

int64_t store_metadata_row_viewer(const char *name, int64_t viewer)
{
	return strncmp(name, "/private", 8) == 0 &&
			       (name[8] == '\0' || name[8] == '/')
		       ? viewer : 0;
}

bool store_metadata_in_depth(const char *found, size_t flen, size_t base_len,
			     int depth)
{
	/* depth 1 keeps the direct children */
	return depth != 1 || flen <= base_len + 1 ||
	       memchr(found + base_len + 1, '/', flen - base_len - 1) == NULL;
}

void store_metadata_push(struct store_metadata_list *l, const char *name,
			 size_t name_len, const void *value, size_t len)
{
	for (size_t i = 0; i < l->count; i++)
		if (strlen(l->items[i].name) == name_len &&
		    memcmp(l->items[i].name, name, name_len) == 0)
			return;
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
	}
	struct store_metadata *e = &l->items[l->count++];
	e->name = xstrndup(name, name_len);
	e->value = xmalloc(len + 1);
	if (len > 0)
		memcpy(e->value, value, len);
	e->value[len] = '\0';
	e->value_len = len;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct store_metadata *)a)->name,
		      ((const struct store_metadata *)b)->name);
}

void store_metadata_sort(struct store_metadata_list *l)
{
	if (l->count > 1)
		qsort(l->items, l->count, sizeof(*l->items), cmp_entry);
}

int store_metadata_limits(int64_t entries, double total,
			  struct store_error *err)
{
	if (entries > STORE_METADATA_MAX_ENTRIES)
		return store_set_error(err, STORE_ERR_LIMIT,
				       "Too many annotations (limit %u)",
				       STORE_METADATA_MAX_ENTRIES);
	if (total > STORE_METADATA_MAX_TOTAL)
		return store_set_error(err, STORE_ERR_LIMIT,
				       "Annotations too large in all (limit %u octets)",
				       STORE_METADATA_MAX_TOTAL);
	return 0;
}

void store_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = getrandom(p + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		got += (size_t)n;
	}
}
