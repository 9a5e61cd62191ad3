/*
 * URLAUTH (RFC 4467): the checks and the INTERNAL mechanism shared by
 * imap_urlauth_resolve (SMTP BURL) and the IMAP commands GENURLAUTH,
 * URLFETCH and RESETKEY, and by CATENATE for URLs that carry a URLAUTH.
 * See imap-urlauth.h.
 */
#include "imap-urlauth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "buf.h"
#include "imap-commands.h"
#include "imap-ns.h"
#include "imap-server.h"
#include "imap-url.h"
#include "log.h"
#include "store.h"
#include "utf7.h"

static atomic_int url_inbox_namespace;
/* the other users' and shared namespaces and [sharing] cross_domain */
static _Atomic(char *) url_other_ns, url_shared_ns;
static atomic_bool url_cross_domain;

void imap_urlauth_set_namespace(int inbox_namespace)
{
	atomic_store(&url_inbox_namespace, inbox_namespace);
}

/* Replaced strings: a running resolve may still read one, so they are
 * kept (a few bytes a reload), reachable from here so LeakSanitizer does
 * not count them (loftd --check and every reload's check set them too). */
struct retired_ns {
	struct retired_ns *next;
	char *text;
};
static struct retired_ns *retired;
static pthread_mutex_t retired_mu = PTHREAD_MUTEX_INITIALIZER;

static void retire(char *text)
{
	if (text == NULL)
		return;
	struct retired_ns *r = xmalloc(sizeof(*r));
	r->text = text;
	pthread_mutex_lock(&retired_mu);
	r->next = retired;
	retired = r;
	pthread_mutex_unlock(&retired_mu);
}

void imap_urlauth_set_sharing(const char *other, const char *shared,
			      bool cross_domain)
{
	retire(atomic_exchange(&url_other_ns,
			       other != NULL ? xstrdup(other) : NULL));
	retire(atomic_exchange(&url_shared_ns,
			       shared != NULL ? xstrdup(shared) : NULL));
	atomic_store(&url_cross_domain, cross_domain);
}

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

/* A URL's mailbox (an IMAP name: modified UTF-7, or UTF-8) in UTF-8;
 * false if it is not a valid one. */
static bool url_mailbox_utf8(const char *name, struct buf *b)
{
	size_t len = strlen(name);
	bool eight = false;
	for (size_t i = 0; i < len; i++)
		eight |= (unsigned char)name[i] >= 0x80;
	if (eight ? (!utf8_valid(name, len) || buf_append(b, name, len) < 0)
		  : utf7_decode(name, len, b) < 0)
		return false;
	buf_append_char(b, '\0');
	return true;
}

/* A URL's mailbox in the personal namespace as a store name; NULL if it
 * is not a valid one. */
static char *url_mailbox(const char *name)
{
	struct buf b;
	buf_init(&b, 0);
	if (!url_mailbox_utf8(name, &b)) {
		buf_free(&b);
		return NULL;
	}
	char *s = b.data;
	if (atomic_load(&url_inbox_namespace)) {
		if (strcasecmp(s, "INBOX") != 0) {
			if (strncasecmp(s, "INBOX.", 6) != 0 || s[6] == '\0') {
				buf_free(&b);
				return NULL;
			}
			memmove(s, s + 6, strlen(s + 6) + 1);
			for (char *p = s; *p != '\0'; p++)
				if (*p == '.')
					*p = '/';
		}
	}
	size_t n;
	return buf_steal(&b, &n);
}

/* The INTERNAL token of a URL rump: hex HMAC-SHA1 keyed with the
 * mailbox access key (RFC 4467 6.1). */
static void internal_token(const unsigned char *key, const char *rump,
			   size_t len, char hex[41])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	HMAC(EVP_sha1(), key, STORE_URLAUTH_KEY_LEN, (const unsigned char *)rump,
	     len, mac, &maclen);
	for (unsigned i = 0; i < maclen && i < 20; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	hex[40] = '\0';
}

/* Whether requester (an address, NULL: not authenticated) may use a URL
 * of this access identifier; submit: the requester is the submission
 * server acting for it. */
static bool access_allows(const char *access, const char *requester,
			  bool submit)
{
	if (strcasecmp(access, "anonymous") == 0)
		return true;
	if (requester == NULL)
		return false;
	if (strcasecmp(access, "authuser") == 0)
		return true;
	if (strncasecmp(access, "user+", 5) == 0)
		return strcasecmp(access + 5, requester) == 0;
	if (strncasecmp(access, "submit+", 7) == 0)
		return submit && strcasecmp(access + 7, requester) == 0;
	return false;
}

/* Checks a URLAUTH URL against the key of its mailbox (mailbox reached
 * through box, see imap_url_box). Returns 0, or -1 with why. */
static int urlauth_check(struct store_user *box, const char *mailbox,
			 const struct imap_url *u, const char *url,
			 const char *requester, bool submit, char *why,
			 size_t whylen)
{
	struct store_error err = {0};
	unsigned char key[STORE_URLAUTH_KEY_LEN];
	char hex[41];
	if (u->access == NULL || u->mechanism == NULL || u->token == NULL) {
		snprintf(why, whylen, "The URL carries no URLAUTH");
		return -1;
	}
	if (strcasecmp(u->mechanism, "INTERNAL") != 0) {
		snprintf(why, whylen, "Unknown URLAUTH mechanism");
		return -1;
	}
	if (u->uidvalidity == 0) {
		snprintf(why, whylen, "A URLAUTH URL needs a UIDVALIDITY");
		return -1;
	}
	if (u->expire != 0 && u->expire <= time(NULL)) {
		snprintf(why, whylen, "The URL has expired");
		return -1;
	}
	if (!access_allows(u->access, requester, submit)) {
		snprintf(why, whylen, "The URL is not for this user");
		return -1;
	}
	if (store_urlauth_key(box, mailbox, false, key, &err) < 0) {
		snprintf(why, whylen, "%s",
			 err.kind == STORE_ERR_NOTFOUND ? "No such mailbox"
			 : err.kind == STORE_ERR_NOPERM ? err.msg
							: "Cannot check the URL now");
		return -1;
	}
	internal_token(key, url, u->rump_len, hex);
	OPENSSL_cleanse(key, sizeof(key));
	/* the token is hex: compared lower-cased, in constant time */
	char low[41] = {0};
	size_t n = strlen(u->token);
	for (size_t i = 0; i < 40 && i < n; i++)
		low[i] = (char)(u->token[i] | 0x20);
	if (n != 40 || CRYPTO_memcmp(hex, low, 40) != 0) {
		snprintf(why, whylen, "The URL's authorization is not valid");
		return -1;
	}
	return 0;
}

int imap_url_box(struct store *store, struct auth *auth,
		 const struct auth_user *viewer, struct store_user *own,
		 const char *url_mailbox_name, struct store_user **user_r,
		 char **name_r, char *why, size_t whylen)
{
	*user_r = NULL;
	*name_r = NULL;
	struct buf b;
	buf_init(&b, 0);
	if (!url_mailbox_utf8(url_mailbox_name, &b)) {
		buf_free(&b);
		snprintf(why, whylen, "Invalid mailbox in URL");
		return -1;
	}
	struct imap_ns_settings ns = {atomic_load(&url_other_ns),
				      atomic_load(&url_shared_ns)};
	struct imap_ns_name n;
	const char *error;
	int r = imap_ns_parse(&ns, domain_of(viewer->address), b.data,
			      strlen(b.data), &n, &error);
	buf_free(&b);
	if (r == 0) {
		*name_r = url_mailbox(url_mailbox_name);
		if (*name_r == NULL) {
			snprintf(why, whylen, "Invalid mailbox in URL");
			return -1;
		}
		store_user_ref(own);
		*user_r = own;
		return 0;
	}
	struct auth_user owner;
	/* as imap_mbref_resolve: a shared address only under the shared
	 * namespace, an account only under the other users'; hidden,
	 * missing and malformed all read "No such mailbox" */
	if (r < 0 || n.owner == NULL || n.mailbox == NULL || auth == NULL ||
	    auth_lookup(auth, n.owner, &owner) != 1 ||
	    (auth_user_is_shared(auth, owner.id) == 1) !=
		    (n.kind == IMAP_NS_SHARED)) {
		if (r > 0)
			imap_ns_name_free(&n);
		snprintf(why, whylen, "No such mailbox");
		return -1;
	}
	if (owner.id == viewer->id) {
		store_user_ref(own);
		*user_r = own;
	} else if (imap_acl_open_as(store, auth, atomic_load(&url_cross_domain),
				    viewer, owner.id, owner.address,
				    user_r) < 0) {
		imap_ns_name_free(&n);
		snprintf(why, whylen, "No such mailbox");
		return -1;
	}
	*name_r = n.mailbox;
	n.mailbox = NULL;
	imap_ns_name_free(&n);
	return 0;
}

/* The store handle of the URL's user (the session's own when it is the
 * same) and who that is. */
static int owner_open(struct store *store, struct auth *auth,
		      const struct imap_url *u, struct store_user *own,
		      int64_t own_id, struct store_user **user_r,
		      struct auth_user *owner_r, char *why, size_t whylen)
{
	struct auth_user owner;
	struct store_error err = {0};
	if (u->user == NULL) {
		snprintf(why, whylen, "A URLAUTH URL names its owner");
		return -1;
	}
	if (auth == NULL || auth_lookup(auth, u->user, &owner) != 1 ||
	    owner.disabled) {
		snprintf(why, whylen, "No such user");
		return -1;
	}
	*owner_r = owner;
	if (own != NULL && owner.id == own_id) {
		store_user_ref(own);
		*user_r = own;
		return 0;
	}
	if (store_user_open(store, owner.id, user_r, &err) < 0) {
		snprintf(why, whylen, "Cannot read the URL's mailbox now");
		return -1;
	}
	return 0;
}

static int resolve(struct store *store, struct auth *auth,
		   struct store_user *own, int64_t own_id, const char *requester,
		   bool submit, const char *url, char **data_r, size_t *len_r,
		   char *why, size_t whylen)
{
	struct imap_url u;
	const char *error;
	struct store_user *owner = NULL, *box = NULL;
	struct auth_user url_user;
	char *mailbox = NULL;
	struct store_error err = {0};
	int ret = -1;
	if (imap_url_parse(url, true, &u, &error) < 0) {
		snprintf(why, whylen, "%s", error);
		return -1;
	}
	/* the mailbox as the URL's user sees it: another account's is
	 * read with that user's rights (RFC 4467 7: checked when used) */
	if (owner_open(store, auth, &u, own, own_id, &owner, &url_user, why,
		       whylen) == 0 &&
	    imap_url_box(store, auth, &url_user, owner, u.mailbox, &box,
			 &mailbox, why, whylen) == 0 &&
	    urlauth_check(box, mailbox, &u, url, requester, submit, why,
			  whylen) == 0) {
		if (imap_url_fetch(box, mailbox, &u, data_r, len_r, &err) < 0)
			snprintf(why, whylen, "%s",
				 err.kind == STORE_ERR_INTERNAL
					 ? "Cannot read the message now" : err.msg);
		else
			ret = 0;
	}
	free(mailbox);
	if (box != NULL)
		store_user_unref(&box);
	if (owner != NULL)
		store_user_unref(&owner);
	imap_url_free(&u);
	return ret;
}

int imap_urlauth_resolve(struct store *store, struct auth *auth,
			 int64_t submitter_user_id, const char *url,
			 char **data_r, size_t *len_r, char **error_r)
{
	struct auth_user sub;
	char why[200];
	*data_r = NULL;
	*len_r = 0;
	if (auth == NULL || auth_lookup_id(auth, submitter_user_id, &sub) != 1) {
		*error_r = xstrdup("Unknown submitter");
		return -1;
	}
	if (resolve(store, auth, NULL, 0, sub.address, true, url, data_r, len_r,
		    why, sizeof(why)) < 0) {
		*error_r = xstrdup(why);
		return -1;
	}
	return 0;
}

/* ---- IMAP session side ----------------------------------------------- */

int imap_urlauth_fetch_for(struct imap_client *c, const struct imap_url *u,
			   const char *url, char **data_r, size_t *len_r,
			   char *why, size_t whylen)
{
	(void)u;
	return resolve(c->server->store, c->server->auth, c->store_user,
		       c->user.id, c->user.address, false, url, data_r, len_r,
		       why, whylen);
}

/* Whether the URL's data can be read now; -1 with why if not. */
static int url_resolves(struct store_user *box, const char *mailbox,
			const struct imap_url *u, char *why, size_t whylen)
{
	struct store_error err = {0};
	char *data = NULL;
	size_t len = 0;
	if (imap_url_fetch(box, mailbox, u, &data, &len, &err) < 0) {
		snprintf(why, whylen, "%.150s",
			 err.kind == STORE_ERR_INTERNAL || err.kind == STORE_ERR_TEMP ||
				 err.kind == STORE_ERR_UNAVAILABLE || err.msg[0] == '\0'
				 ? "Cannot read the URL's message now" : err.msg);
		return -1;
	}
	free(data);
	return 0;
}

/* GENURLAUTH url mechanism [url mechanism ...] (RFC 4467 7.2): the URL
 * must be the user's own, with UIDVALIDITY and an access identifier but
 * no verifier, not expired, and name a message (and part) that exists. */
void cmd_genurlauth(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	struct buf out;
	if (a->type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] GENURLAUTH needs a URL and a mechanism");
		return;
	}
	buf_init(&out, 0);
	buf_append_str(&out, "* GENURLAUTH");
	for (; a->type != IMAP_ARG_EOL; a += 2) {
		struct imap_url u;
		const char *error;
		unsigned char key[STORE_URLAUTH_KEY_LEN];
		char hex[41];
		struct store_error err = {0};
		if (!imap_arg_is_astring(a) || imap_arg_has_nul(a) ||
		    !imap_arg_is_atom(&a[1])) {
			buf_free(&out);
			imap_cmd_bad(cmd, "[CLIENTBUG] GENURLAUTH takes URL and mechanism pairs");
			return;
		}
		if (!imap_arg_atom_eq(&a[1], "INTERNAL")) {
			buf_free(&out);
			imap_cmd_no(cmd, "[BADURLMECH] INTERNAL is the only mechanism");
			return;
		}
		const char *why = NULL;
		char *mailbox = NULL, whybuf[200];
		struct store_user *box = NULL;
		if (imap_url_parse(a->str.ptr, true, &u, &error) < 0)
			why = error;
		else if (u.access == NULL || u.mechanism != NULL)
			why = "The URL needs ;URLAUTH=access and no verifier";
		else if (u.uidvalidity == 0)
			why = "The URL needs a UIDVALIDITY";
		else if (u.user == NULL || strcasecmp(u.user, c->user.address) != 0)
			why = "Only the URL's user may authorize it";
		else if (u.expire != 0 && u.expire <= time(NULL))
			why = "The URL has already expired";
		else if (imap_url_box(c->server->store, c->server->auth, &c->user,
				      c->store_user, u.mailbox, &box, &mailbox,
				      whybuf, sizeof(whybuf)) < 0)
			why = whybuf;
		/* the URL must resolve now (UIDVALIDITY, message, section):
		 * one that cannot is refused here, not signed (as Dovecot) */
		else if (url_resolves(box, mailbox, &u, whybuf, sizeof(whybuf)) < 0)
			why = whybuf;
		/* another account's mailbox: r on it (the store checks) */
		else if (store_urlauth_key(box, mailbox, false, key, &err) < 0)
			why = err.kind == STORE_ERR_NOTFOUND ? "No such mailbox"
			      : err.kind == STORE_ERR_NOPERM ? err.msg
							     : "Cannot authorize now";
		if (box != NULL)
			store_user_unref(&box);
		if (why != NULL) {
			imap_cmd_no(cmd, "[BADURL \"%.*s\"] %s",
				    (int)(a->str.len < 400 ? a->str.len : 400),
				    a->str.ptr, why);
			free(mailbox);
			imap_url_free(&u);
			buf_free(&out);
			return;
		}
		internal_token(key, a->str.ptr, a->str.len, hex);
		OPENSSL_cleanse(key, sizeof(key));
		char *full = xasprintf("%s:%.*s:%s", a->str.ptr,
				       (int)a[1].str.len, a[1].str.ptr, hex);
		buf_append_char(&out, ' ');
		imap_append_string(&out, full, strlen(full), false);
		free(full);
		free(mailbox);
		imap_url_free(&u);
	}
	buf_append_str(&out, "\r\n");
	imap_client_write(c, out.data, out.len);
	buf_free(&out);
	imap_cmd_ok(cmd, "GENURLAUTH completed");
}

/* URLFETCH url ... (RFC 4467 7.3): the data of each URL the user may
 * use, NIL for the others. */
void cmd_urlfetch(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	if (a->type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] URLFETCH needs URLs");
		return;
	}
	for (const struct imap_arg *p = a; p->type != IMAP_ARG_EOL; p++) {
		if (!imap_arg_is_astring(p) || imap_arg_has_nul(p)) {
			imap_cmd_bad(cmd, "[CLIENTBUG] URLFETCH takes URLs");
			return;
		}
	}
	for (; a->type != IMAP_ARG_EOL; a++) {
		char *data = NULL, why[200];
		size_t len = 0;
		struct buf out;
		buf_init(&out, 0);
		buf_append_str(&out, "* URLFETCH ");
		imap_append_string(&out, a->str.ptr, a->str.len, false);
		if (resolve(c->server->store, c->server->auth, c->store_user,
			    c->user.id, c->user.address, false, a->str.ptr, &data,
			    &len, why, sizeof(why)) < 0) {
			log_info("imap", c->sid, "URLFETCH refused: %s", why);
			buf_append_str(&out, " NIL\r\n");
		} else {
			/* a literal may not hold NUL: 0x80 instead, as FETCH */
			for (size_t i = 0; i < len; i++)
				if (data[i] == '\0')
					data[i] = (char)0x80;
			buf_printf(&out, " {%zu}\r\n", len);
			buf_append(&out, data, len);
			buf_append_str(&out, "\r\n");
		}
		imap_client_write(c, out.data, out.len);
		buf_free(&out);
		free(data);
	}
	imap_cmd_ok(cmd, "URLFETCH completed");
}

/* RESETKEY without a mailbox also resets the user's own keys of other
 * accounts' mailboxes (RFC 4467 3: the user's table holds them): of every
 * owner the ACL hints name (a superset; a key of an owner that no longer
 * shares anything with the user signs nothing that resolves). 0, or -1
 * with err. */
static int reset_others(struct imap_client *c, struct store_error *err)
{
	if (c->server->auth == NULL)
		return 0;
	int64_t *owners = NULL;
	size_t no = 0;
	if (auth_acl_owners(c->server->auth, c->user.id, &owners, &no) < 0) {
		err->kind = STORE_ERR_TEMP;
		snprintf(err->msg, sizeof(err->msg),
			 "Cannot read the shared mailboxes now");
		return -1;
	}
	int ret = 0;
	for (size_t i = 0; ret == 0 && i < no; i++) {
		struct auth_user o;
		struct store_user *u;
		unsigned char key[STORE_URLAUTH_KEY_LEN];
		if (owners[i] == c->user.id ||
		    auth_lookup_id(c->server->auth, owners[i], &o) != 1 ||
		    imap_acl_open_owner(c, o.id, o.address, &u) < 0)
			continue;   /* a stale hint */
		ret = store_urlauth_key(u, NULL, true, key, err);
		store_user_unref(&u);
	}
	free(owners);
	return ret;
}

/* RESETKEY [mailbox [mechanism ...]] (RFC 4467 7.1): the user's own
 * keys, also of another account's mailbox. */
void cmd_resetkey(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	unsigned char key[STORE_URLAUTH_KEY_LEN];
	struct store_error err = {0};
	struct imap_mbref ref = {0};
	int ret;
	if (a->type != IMAP_ARG_EOL) {
		for (const struct imap_arg *m = a + 1; m->type != IMAP_ARG_EOL; m++) {
			if (!imap_arg_atom_eq(m, "INTERNAL")) {
				imap_cmd_no(cmd, "[BADURLMECH] INTERNAL is the only mechanism");
				return;
			}
		}
		if (imap_cmd_mailbox_ref(cmd, a, false, &ref) < 0)
			return;
		ret = store_urlauth_key(ref.user, ref.name, true, key, &err);
	} else {
		ret = store_urlauth_key(c->store_user, NULL, true, key, &err);
		if (ret == 0)
			ret = reset_others(c, &err);
	}
	if (ret < 0 && err.kind == STORE_ERR_NOTFOUND && !ref.shared)
		imap_cmd_no(cmd, "[NONEXISTENT] No such mailbox");
	else if (ret < 0)
		imap_cmd_ref_error(cmd, &ref, &err);
	else if (a->type != IMAP_ARG_EOL)
		/* RFC 4467 7.1: the mailbox's mechanisms */
		imap_cmd_ok(cmd, "[URLMECH INTERNAL] RESETKEY completed");
	else
		imap_cmd_ok(cmd, "RESETKEY completed");
	OPENSSL_cleanse(key, sizeof(key));
	imap_mbref_free(&ref);
}
