/*
 * PatchObject (RFC 8620 5.3): keys are JSON Pointers (RFC 6901) with an
 * implicit leading "/", values replace what is there, null removes it.
 * Every part before the last must name an existing object member: a path
 * into an array, through a scalar, to a missing parent, or two paths one
 * of which is a prefix of the other is invalidPatch. Nothing is changed
 * in place: the caller gets a patched copy or nothing.
 */
#include "jmap-private.h"

#include <string.h>

#include "buf.h"

bool jmap_pointer_token(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '~') {
			buf_append_char(out, s[i]);
			continue;
		}
		if (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1'))
			return false;
		buf_append_char(out, s[i + 1] == '0' ? '~' : '/');
		i++;
	}
	return true;
}

/* Whether path a is a proper prefix of b at a token boundary. */
static bool prefix_of(const char *a, const char *b)
{
	size_t n = strlen(a);
	return strncmp(a, b, n) == 0 && b[n] == '/';
}

static bool apply_one(json_t *root, const char *path, json_t *value)
{
	json_t *cur = root;
	const char *p = path;
	struct buf tok;
	buf_init(&tok, 0);
	bool ok = true;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		buf_reset(&tok);
		if (!jmap_pointer_token(p, len, &tok)) {
			ok = false;
			break;
		}
		buf_append(&tok, "", 0);
		if (!json_is_object(cur) || memchr(tok.data, '\0', tok.len - 1)) {
			ok = false;
			break;
		}
		if (slash == NULL) {
			if (json_is_null(value))
				json_object_del(cur, tok.data);
			else
				json_object_set(cur, tok.data, value);
			break;
		}
		cur = json_object_get(cur, tok.data);
		if (cur == NULL) {
			ok = false;
			break;
		}
		p = slash + 1;
	}
	buf_free(&tok);
	return ok;
}

json_t *jmap_patch_apply(json_t *obj, json_t *patch, const char **bad_r)
{
	*bad_r = NULL;
	if (!json_is_object(obj) || !json_is_object(patch))
		return NULL;
	const char *k, *k2;
	json_t *v, *v2;
	json_object_foreach(patch, k, v) {
		if (k[0] == '\0' || k[0] == '/') {
			*bad_r = k;
			return NULL;
		}
		json_object_foreach(patch, k2, v2) {
			if (k != k2 && prefix_of(k, k2)) {
				*bad_r = k2;
				return NULL;
			}
		}
	}
	json_t *copy = json_deep_copy(obj);
	json_object_foreach(patch, k, v) {
		if (!apply_one(copy, k, v)) {
			*bad_r = k;
			json_decref(copy);
			return NULL;
		}
	}
	return copy;
}
