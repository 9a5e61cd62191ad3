/*
 * GETMETADATA and SETMETADATA (RFC 5464, with errata 2785/2786: options
 * come before the mailbox): annotations of a mailbox, or of the server
 * for the mailbox name "" (METADATA-SERVER), kept by the store (store.h
 * "metadata") with its limits.
 *
 * Entry names are "/private/..." or "/shared/...", compared in lower
 * case. The server's /shared entries belong to the whole server: users
 * read them, only the administrator could set them, so SETMETADATA of one
 * gets NO [NOPERM] (Loft keeps none yet); its /private entries are each
 * user's own. On another account's mailbox /shared entries are the
 * mailbox's and /private ones the reader's own (the store keeps them
 * apart). Values are nstrings or literal8 (binary); a value that is not
 * binary must end its lines with CRLF (RFC 5464 3.2).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-commands.h"
#include "log.h"

#define MAX_ENTRIES_PER_COMMAND 1000

/* RFC 5464 3.2 / 5: slash-separated, 7-bit, no wildcards, no empty
 * component, under /private or /shared; a vendor entry names a vendor
 * and something of theirs. scope_ok: a GETMETADATA name, which may also
 * be the root of a tree: "/private" or "/shared" alone, or
 * ".../vendor/<vendor-token>" (RFC 5464 3.2.1.1 "the top level of
 * shared entries ... of some vendor"; with DEPTH, what is below it, as
 * Dovecot answers). Writes the lower-cased name to out. */
static bool entry_valid(const struct imap_arg *a, bool scope_ok, char **out)
{
	if (!imap_arg_is_astring(a) || a->literal8 || imap_arg_has_nul(a))
		return false;
	const char *s = a->str.ptr;
	size_t n = a->str.len;
	if (n < 2 || s[0] != '/' || s[n - 1] == '/' || n > 1024)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '*' || ch == '%' ||
		    (ch == '/' && i + 1 < n && s[i + 1] == '/'))
			return false;
	}
	char *low = xstrndup(s, n);
	for (char *p = low; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	bool priv = strcmp(low, "/private") == 0 ||
		    strncmp(low, "/private/", 9) == 0;
	bool shared = strcmp(low, "/shared") == 0 ||
		      strncmp(low, "/shared/", 8) == 0;
	bool scope = strcmp(low, "/private") == 0 || strcmp(low, "/shared") == 0;
	const char *rest = priv ? low + 8 : low + 7;
	/* /vendor/<name> must go on: /shared/vendor/vendor.example/x */
	bool vendor_short = strncmp(rest, "/vendor", 7) == 0 &&
			    (rest[7] == '\0' ||
			     (rest[7] == '/' && strchr(rest + 8, '/') == NULL));
	if ((!priv && !shared) || ((scope || vendor_short) && !scope_ok)) {
		free(low);
		return false;
	}
	*out = low;
	return true;
}

/* A mailbox argument in any namespace (another account's mailbox is
 * reached through a viewer's handle, whose every call the store checks:
 * RFC 5464 3.3's l and one of r s w i p); name NULL for "" (the server,
 * always the user's own). Replies and returns -1 on error. */
static int mailbox_arg(struct imap_cmd *cmd, const struct imap_arg *a,
		       struct imap_mbref *ref)
{
	memset(ref, 0, sizeof(*ref));
	if (!imap_arg_is_astring(a) || imap_arg_has_nul(a)) {
		imap_cmd_bad(cmd, "[CLIENTBUG] Expected a mailbox name");
		return -1;
	}
	if (a->str.len == 0) {
		store_user_ref(cmd->client->store_user);
		ref->user = cmd->client->store_user;
		return 0;
	}
	return imap_cmd_mailbox_ref(cmd, a, false, ref);
}

/* The mailbox as a METADATA response names it. */
static void mailbox_out(struct imap_client *c, const struct imap_arg *a,
			const struct imap_mbref *ref, struct buf *out)
{
	if (ref->name == NULL) {
		buf_append_str(out, "\"\"");
	} else if (ref->shared) {
		/* the name as the client gave it */
		char *raw = imap_client_mailbox_in_raw(c, a->str.ptr, a->str.len);
		imap_client_mailbox_out(c, raw, out);
		free(raw);
	} else {
		imap_client_mailbox_out(c, ref->name, out);
	}
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* (MAXSIZE n DEPTH 0|1|infinity) */
static const char *parse_options(const struct imap_arg *l, uint64_t *maxsize,
				 int *depth)
{
	bool have_max = false, have_depth = false;
	if (l->type == IMAP_ARG_EOL)
		return "Empty GETMETADATA option list";
	for (; l->type != IMAP_ARG_EOL; l += 2) {
		if (l[1].type != IMAP_ARG_ATOM)
			return "GETMETADATA options take a value";
		struct slice v = l[1].str;
		if (imap_arg_atom_eq(l, "MAXSIZE") && !have_max) {
			uint64_t x = 0;
			if (v.len == 0 || v.len > 10)
				return "Invalid MAXSIZE";
			for (size_t i = 0; i < v.len; i++) {
				if (v.ptr[i] < '0' || v.ptr[i] > '9')
					return "Invalid MAXSIZE";
				x = x * 10 + (uint64_t)(v.ptr[i] - '0');
			}
			if (x > UINT32_MAX)
				return "Invalid MAXSIZE";
			*maxsize = x;
			have_max = true;
		} else if (imap_arg_atom_eq(l, "DEPTH") && !have_depth) {
			if (slice_eq(v, "0"))
				*depth = 0;
			else if (slice_eq(v, "1"))
				*depth = 1;
			else if (slice_eq_ci(v, "infinity"))
				*depth = -1;
			else
				return "DEPTH is 0, 1 or infinity";
			have_depth = true;
		} else {
			return "Unknown GETMETADATA option";
		}
	}
	return NULL;
}

/* GETMETADATA [(options)] mailbox entries */
void cmd_getmetadata(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	uint64_t maxsize = UINT64_MAX;
	int depth = 0;
	const char *error;
	if (a->type == IMAP_ARG_LIST) {
		if ((error = parse_options(a->list, &maxsize, &depth)) != NULL) {
			imap_cmd_bad(cmd, "[CLIENTBUG] %s", error);
			return;
		}
		a++;
	}
	const struct imap_arg *ent = &a[1];
	if (a->type == IMAP_ARG_EOL || ent->type == IMAP_ARG_EOL ||
	    ent[1].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] GETMETADATA needs a mailbox and entries");
		return;
	}
	const struct imap_arg *list = ent->type == IMAP_ARG_LIST ? ent->list : ent;
	size_t n = ent->type == IMAP_ARG_LIST ? ent->list_count : 1;
	if (n == 0 || n > MAX_ENTRIES_PER_COMMAND) {
		imap_cmd_bad(cmd, "[CLIENTBUG] GETMETADATA needs 1 to %d entries",
			     MAX_ENTRIES_PER_COMMAND);
		return;
	}
	char **names = xcalloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++) {
		if (!entry_valid(&list[i], true, &names[i])) {
			free_names(names, i);
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid entry name");
			return;
		}
	}
	struct imap_mbref ref;
	if (mailbox_arg(cmd, a, &ref) < 0) {
		free_names(names, n);
		return;
	}
	struct store_metadata *found = NULL;
	size_t count = 0;
	struct store_error err = {0};
	if (store_metadata_get(ref.user, ref.name, (const char *const *)names,
			       n, depth, &found, &count, &err) < 0) {
		free_names(names, n);
		imap_cmd_ref_error(cmd, &ref, &err);
		imap_mbref_free(&ref);
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	uint64_t longest = 0;
	bool any = false;
	for (size_t i = 0; i < count; i++) {
		if (found[i].value_len > maxsize) {
			if (found[i].value_len > longest)
				longest = found[i].value_len;
			continue;
		}
		buf_append_str(&b, any ? " " : "");
		imap_append_astring(&b, found[i].name, false);
		buf_append_char(&b, ' ');
		if (memchr(found[i].value, '\0', found[i].value_len) != NULL) {
			buf_printf(&b, "~{%zu}\r\n", found[i].value_len);
			buf_append(&b, found[i].value, found[i].value_len);
		} else {
			imap_append_string(&b, found[i].value, found[i].value_len,
					   imap_client_utf8(c));
		}
		any = true;
	}
	if (any) {
		struct buf line;
		buf_init(&line, 0);
		buf_append_str(&line, "* METADATA ");
		mailbox_out(c, a, &ref, &line);
		buf_append_str(&line, " (");
		buf_append(&line, b.data, b.len);
		buf_append_str(&line, ")\r\n");
		imap_client_write(c, line.data, line.len);
		buf_free(&line);
	}
	buf_free(&b);
	store_metadata_free(found, count);
	free_names(names, n);
	imap_mbref_free(&ref);
	if (longest > 0)
		imap_cmd_ok(cmd, "[METADATA LONGENTRIES %llu] GETMETADATA completed",
			    (unsigned long long)longest);
	else
		imap_cmd_ok(cmd, "GETMETADATA completed");
}

/* A value must not hold a bare CR or LF unless it is binary. */
static bool value_valid(const struct imap_arg *v)
{
	if (v->type == IMAP_ARG_NIL)
		return true;
	if (!imap_arg_is_string(v))
		return false;
	if (v->literal8)
		return true;
	const char *s = v->str.ptr;
	for (size_t i = 0; i < v->str.len; i++) {
		if (s[i] == '\0')
			return false;
		if (s[i] == '\r' && (i + 1 >= v->str.len || s[i + 1] != '\n'))
			return false;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return false;
	}
	return true;
}

/* SETMETADATA mailbox (entry value ...) */
void cmd_setmetadata(struct imap_cmd *cmd)
{
	const struct imap_arg *a = cmd->args;
	if (a->type == IMAP_ARG_EOL || a[1].type != IMAP_ARG_LIST ||
	    a[2].type != IMAP_ARG_EOL || a[1].list_count == 0 ||
	    a[1].list_count % 2 != 0 ||
	    a[1].list_count > 2 * MAX_ENTRIES_PER_COMMAND) {
		imap_cmd_bad(cmd, "[CLIENTBUG] SETMETADATA needs a mailbox and (entry value ...)");
		return;
	}
	size_t n = a[1].list_count / 2;
	const struct imap_arg *l = a[1].list;
	struct store_metadata *e = xcalloc(n, sizeof(*e));
	bool shared_server = false;
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *v = &l[2 * i + 1];
		if (!entry_valid(&l[2 * i], false, &e[i].name) ||
		    (l[2 * i].type == IMAP_ARG_LIST) || !value_valid(v)) {
			for (size_t k = 0; k <= i; k++)
				free(e[k].name);
			free(e);
			imap_cmd_bad(cmd, "[CLIENTBUG] Invalid entry name or value");
			return;
		}
		shared_server |= strncmp(e[i].name, "/shared", 7) == 0;
		if (v->type != IMAP_ARG_NIL) {
			e[i].value = (char *)v->str.ptr;
			e[i].value_len = v->str.len;
		}
	}
	struct imap_mbref ref;
	struct store_error err = {0};
	if (mailbox_arg(cmd, a, &ref) < 0) {
		/* replied */
	} else if (ref.name == NULL && shared_server) {
		imap_cmd_no(cmd, "[NOPERM] The server's shared annotations are the administrator's");
	} else if (store_metadata_set(ref.user, ref.name, e, n, &err) < 0) {
		bool big = false;
		for (size_t i = 0; i < n; i++)
			big |= e[i].value != NULL &&
			       e[i].value_len > STORE_METADATA_MAX_VALUE;
		if (err.kind == STORE_ERR_LIMIT && big)
			imap_cmd_no(cmd, "[METADATA MAXSIZE %u] Value too large",
				    STORE_METADATA_MAX_VALUE);
		else if (err.kind == STORE_ERR_LIMIT)
			imap_cmd_no(cmd, "[METADATA TOOMANY] %s", err.msg);
		else if (err.kind == STORE_ERR_NOTFOUND && !ref.shared)
			imap_cmd_no(cmd, "[NONEXISTENT] No such mailbox");
		else if (err.kind == STORE_ERR_PERM &&
			 strcmp(err.msg, STORE_METADATA_NOPRIVATE) == 0)
			imap_cmd_no(cmd, "[METADATA NOPRIVATE] %s", err.msg);
		else
			imap_cmd_ref_error(cmd, &ref, &err);
	} else {
		imap_cmd_ok(cmd, "SETMETADATA completed");
	}
	imap_mbref_free(&ref);
	for (size_t i = 0; i < a[1].list_count / 2; i++)
		free(e[i].name);
	free(e);
}
