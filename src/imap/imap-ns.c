/*
 * The namespace mapping (imap-ns.h). A name in another namespace is
 * taken apart component by component; nothing in it is interpreted as
 * a path ("..", "." and empty components are refused, not resolved), so
 * "Other Users/../bob@example.test/INBOX" names no one.
 */
#include "imap-ns.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static bool on(const char *prefix)
{
	return prefix != NULL && prefix[0] != '\0';
}

bool imap_ns_address_valid(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);
	if (at == NULL || at == s || at + 1 == s + len ||
	    memchr(at + 1, '@', (size_t)(s + len - at - 1)) != NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch == 0x7f || ch == '/' || ch == '*' ||
		    ch == '%' || ch == '"' || ch == '\\')
			return false;
	}
	return true;
}

static char *lower_dup(const char *s, size_t len)
{
	char *r = xstrndup(s, len);
	for (char *p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/* The mailbox part: components not empty, not "." or "..", no control
 * characters; INBOX as the first component is case-insensitive. */
static char *mailbox_part(const char *s, size_t len)
{
	if (len == 0)
		return NULL;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/') {
			unsigned char ch = (unsigned char)s[i];
			if (ch < 0x20 || ch == 0x7f || ch == '*' || ch == '%')
				return NULL;
			continue;
		}
		size_t n = i - start;
		if (n == 0 || (n == 1 && s[start] == '.') ||
		    (n == 2 && s[start] == '.' && s[start + 1] == '.'))
			return NULL;
		start = i + 1;
	}
	char *r = xstrndup(s, len);
	if (strncasecmp(r, "INBOX", 5) == 0 && (r[5] == '\0' || r[5] == '/'))
		memcpy(r, "INBOX", 5);
	return r;
}

int imap_ns_parse(const struct imap_ns_settings *ns, const char *viewer_domain,
		  const char *name, size_t len, struct imap_ns_name *r,
		  const char **error_r)
{
	const char *prefix = NULL;
	enum imap_ns_kind kind = IMAP_NS_PERSONAL;
	const char *cand[2] = {ns->other, ns->shared};
	for (int k = 0; k < 2 && prefix == NULL; k++) {
		size_t pl = on(cand[k]) ? strlen(cand[k]) : 0;
		if (pl > 0 && len >= pl && memcmp(name, cand[k], pl) == 0 &&
		    (len == pl || name[pl] == '/')) {
			prefix = cand[k];
			kind = k == 0 ? IMAP_NS_OTHER : IMAP_NS_SHARED;
		}
	}
	if (prefix == NULL)
		return 0;
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	size_t pl = strlen(prefix);
	if (len == pl)
		return 1;                      /* the root */
	const char *o = name + pl + 1, *end = name + len;
	const char *slash = memchr(o, '/', (size_t)(end - o));
	size_t olen = (size_t)((slash ? slash : end) - o);
	bool has_at = memchr(o, '@', olen) != NULL;
	if (kind == IMAP_NS_SHARED && !has_at && olen > 0 && viewer_domain) {
		char *full = xasprintf("%.*s@%s", (int)olen, o, viewer_domain);
		if (imap_ns_address_valid(full, strlen(full)))
			r->owner = lower_dup(full, strlen(full));
		free(full);
	} else if (imap_ns_address_valid(o, olen)) {
		r->owner = lower_dup(o, olen);
	}
	if (r->owner == NULL) {
		*error_r = "[NONEXISTENT] No such mailbox";
		return -1;
	}
	if (slash == NULL) {
		/* a shared address alone is its INBOX */
		if (kind == IMAP_NS_SHARED)
			r->mailbox = xstrdup("INBOX");
		return 1;
	}
	r->mailbox = mailbox_part(slash + 1, (size_t)(end - slash - 1));
	if (r->mailbox == NULL ||
	    (kind == IMAP_NS_SHARED && strcmp(r->mailbox, "INBOX") == 0)) {
		imap_ns_name_free(r);
		*error_r = "[NONEXISTENT] No such mailbox";
		return -1;
	}
	return 1;
}

void imap_ns_name_free(struct imap_ns_name *r)
{
	free(r->owner);
	free(r->mailbox);
	r->owner = r->mailbox = NULL;
}

char *imap_ns_format(const struct imap_ns_settings *ns,
		     const char *viewer_domain, enum imap_ns_kind kind,
		     const char *owner, const char *mailbox)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, kind == IMAP_NS_SHARED ? ns->shared : ns->other);
	if (owner != NULL) {
		const char *at = strrchr(owner, '@');
		buf_append_char(&b, '/');
		if (kind == IMAP_NS_SHARED && at != NULL && viewer_domain &&
		    strcasecmp(at + 1, viewer_domain) == 0)
			buf_append(&b, owner, (size_t)(at - owner));
		else
			buf_append_str(&b, owner);
		if (mailbox != NULL &&
		    !(kind == IMAP_NS_SHARED && strcmp(mailbox, "INBOX") == 0)) {
			buf_append_char(&b, '/');
			buf_append_str(&b, mailbox);
		}
	}
	size_t n;
	return buf_steal(&b, &n);
}
