/*
 * The compiled image: binding its arrays (every index checked, so an
 * image read back from the store can be trusted by the executor),
 * loading, freeing, and error lists.
 */
#include "sieve-private.h"

#include <stdlib.h>
#include <string.h>

static bool list_ok(const struct sieve_script *s, uint32_t l)
{
	return l < s->hdr->list_count;
}

static bool node_ok(const struct sieve_script *s, uint32_t n)
{
	return n < s->hdr->node_count;
}

bool sv_script_bind(struct sieve_script *s)
{
	if (s->image_len < sizeof(struct sv_header))
		return false;
	const struct sv_header *h = s->image;
	if (h->magic != SV_MAGIC || h->version != SV_VERSION)
		return false;
	uint64_t need = sizeof(*h) +
		(uint64_t)h->node_count * sizeof(struct sv_node) +
		(uint64_t)h->list_count * sizeof(struct sv_list) +
		(uint64_t)h->str_count * sizeof(struct sv_str) + h->pool_len;
	if (need != s->image_len || h->node_count == 0 || h->list_count == 0)
		return false;
	const char *p = (const char *)s->image + sizeof(*h);
	s->hdr = h;
	s->nodes = (const struct sv_node *)p;
	p += (size_t)h->node_count * sizeof(struct sv_node);
	s->lists = (const struct sv_list *)p;
	p += (size_t)h->list_count * sizeof(struct sv_list);
	s->strs = (const struct sv_str *)p;
	p += (size_t)h->str_count * sizeof(struct sv_str);
	s->pool = p;
	if (!node_ok(s, h->root))
		return false;
	for (uint32_t i = 0; i < h->str_count; i++)
		if ((uint64_t)s->strs[i].off + s->strs[i].len > h->pool_len)
			return false;
	for (uint32_t i = 0; i < h->list_count; i++)
		if ((uint64_t)s->lists[i].first + s->lists[i].count >
		    h->str_count)
			return false;
	/* the compiler makes a node after its tests and block, before its
	 * next sibling: links that keep to that order cannot cycle */
	for (uint32_t i = 0; i < h->node_count; i++) {
		const struct sv_node *n = &s->nodes[i];
		if (n->op >= OP_COUNT || !node_ok(s, n->next) ||
		    !node_ok(s, n->kid) || !node_ok(s, n->block) ||
		    (n->next && n->next <= i) || (n->kid && n->kid >= i) ||
		    (n->block && n->block >= i) ||
		    n->match > M_COUNT || n->cmp > C_NUMERIC || n->rel > R_NE)
			return false;
		for (int k = 0; k < 4; k++)
			if (!list_ok(s, n->targ[k]) || !list_ok(s, n->arg[k]))
				return false;
	}
	return true;
}

const void *sieve_script_image(const struct sieve_script *s, size_t *len_r)
{
	*len_r = s->image_len;
	return s->image;
}

struct sieve_script *sieve_script_load(const void *image, size_t len,
				       const char *name)
{
	struct sieve_script *s = xcalloc(1, sizeof(*s));
	s->image = xmalloc(len ? len : 1);
	memcpy(s->image, image, len);
	s->image_len = len;
	s->name = xstrdup(name ? name : "script");
	if (!sv_script_bind(s)) {
		sieve_script_free(&s);
		return NULL;
	}
	return s;
}

const char *sieve_script_name(const struct sieve_script *s)
{
	return s->name;
}

bool sieve_script_uses(const struct sieve_script *s, const char *extension)
{
	for (int e = 0; e < EXT_COUNT; e++)
		if (strcmp(sv_ext_names[e], extension) == 0)
			return (s->hdr->exts & (1u << e)) != 0;
	return false;
}

void sieve_script_free(struct sieve_script **sp)
{
	struct sieve_script *s = *sp;
	if (s == NULL)
		return;
	free(s->image);
	free(s->name);
	free(s);
	*sp = NULL;
}

void sieve_errors_free(struct sieve_errors *e)
{
	free(e->items);
	free(e->warnings);
	memset(e, 0, sizeof(*e));
}

void sieve_errors_format(const struct sieve_errors *e, const char *prefix,
			 struct buf *out)
{
	for (size_t i = 0; i < e->count; i++)
		buf_printf(out, "%sline %u, column %u: %s\n", prefix ? prefix : "",
			   e->items[i].line, e->items[i].column,
			   e->items[i].message);
}
