/*
 * Namespaces (RFC 2342): the one mapping between a name as an IMAP
 * client gives it (UTF-8, after the transfer encoding is undone) and
 * (namespace, owner, mailbox) in the store, and back. Pure: no I/O, no
 * session; fuzzed (tests/fuzz/fuzz-imap-acl.c), and split then joined
 * is the identity.
 *
 *   personal   everything else (the session's own namespace rules)
 *   other      "<other>/<address>/<mailbox>": another account's mail
 *              ("<other>/alice@example.test/INBOX" is her INBOX)
 *   shared     "<shared>/<local part>/<mailbox>" for a shared address of
 *              the viewer's domain, "<shared>/<address>/..." for another
 *              domain's; "<shared>/sales" alone is its INBOX
 * Both use "/" whatever the personal namespace's separator.
 */
#ifndef LOFT_IMAP_NS_H
#define LOFT_IMAP_NS_H

#include <stdbool.h>
#include <stddef.h>

struct imap_ns_settings {
	const char *other;     /* "Other Users"; "" or NULL: off */
	const char *shared;    /* "Shared"; "" or NULL: off */
};

enum imap_ns_kind { IMAP_NS_PERSONAL, IMAP_NS_OTHER, IMAP_NS_SHARED };

struct imap_ns_name {
	enum imap_ns_kind kind;
	char *owner;           /* lower-case address; NULL: the namespace's
				  root itself */
	char *mailbox;         /* the owner's store name; NULL: the owner's
				  level only (a hierarchy level) */
};

/* 1: name is in the other or shared namespace (r filled; free it with
 * imap_ns_name_free); 0: in the personal namespace (r untouched); -1: a
 * malformed name there (*error_r: a static text with a response code).
 * viewer_domain completes shared names without a domain. */
int imap_ns_parse(const struct imap_ns_settings *ns, const char *viewer_domain,
		  const char *name, size_t len, struct imap_ns_name *r,
		  const char **error_r);
void imap_ns_name_free(struct imap_ns_name *r);
/* The UTF-8 name a viewer of viewer_domain gives (kind, owner,
 * mailbox); mailbox NULL: the owner's level. Caller frees. */
char *imap_ns_format(const struct imap_ns_settings *ns,
		     const char *viewer_domain, enum imap_ns_kind kind,
		     const char *owner, const char *mailbox);
/* Whether an address can be an owner in a name: "local@domain", no "/",
 * no control characters, no "*" or "%". */
bool imap_ns_address_valid(const char *s, size_t len);

#endif
