/*
 * Passwords before they are hashed or compared: SASLprep (RFC 4013) and
 * the policy a new password must meet.
 *
 * Every password Loft stores is prepared as a "stored string" first, so
 * a password typed with a no-break space, a full-width letter or a soft
 * hyphen hashes the same as what SCRAM clients derive their keys from
 * (RFC 5802 2.2 Normalize) and what PLAIN and LOGIN send after their own
 * preparation. At login the password given is prepared as a "query"
 * (unassigned code points pass); the caller also tries the bytes as sent
 * when they differ, for hashes made before SASLprep or imported from
 * servers that never prepared (Dovecot).
 */
#include "auth-private.h"

#include "buf.h"
#include "saslprep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOCAL_PART_MIN 3

char *auth_password_prep(const char *password)
{
	char *out;
	const char *why;
	if (saslprep(password, SASLPREP_QUERY, &out, &why) < 0)
		return xstrdup(password);
	return out;
}

/* The local part of address, lowercased into out ("" if it has none). */
static void local_part(const char *address, char *out, size_t size)
{
	const char *at = strrchr(address, '@');
	size_t n = at != NULL ? (size_t)(at - address) : strlen(address);
	if (n >= size)
		n = size - 1;
	memcpy(out, address, n);
	out[n] = '\0';
}

int auth_password_check(const struct auth_settings *set, const char *address,
			const char *password, char **error_r)
{
	char *prepped;
	const char *why;
	if (saslprep(password, SASLPREP_STORED, &prepped, &why) < 0) {
		*error_r = xasprintf("password refused: %s", why);
		return -1;
	}
	uint32_t min = set->password_min_length ? set->password_min_length
						: AUTH_PASSWORD_MIN_LENGTH;
	size_t chars = utf8_length(prepped);
	char local[AUTH_ADDRESS_MAX + 1];
	local_part(address, local, sizeof(local));
	int ret = -1;
	if (chars < min) {
		*error_r = xasprintf("password too weak: %zu characters, at "
				     "least %u needed ([auth] "
				     "password_min_length)", chars, min);
	} else if (strlen(local) >= LOCAL_PART_MIN &&
		   strcasestr(prepped, local) != NULL) {
		*error_r = xasprintf("password too weak: it contains the "
				     "account's name '%s'", local);
	} else {
		ret = 0;
	}
	explicit_bzero(prepped, strlen(prepped));
	free(prepped);
	return ret;
}

int auth_password_stored(const struct auth_settings *set, const char *address,
			 const char *password, char **prepped_r,
			 char **error_r)
{
	const char *why;
	if (address != NULL &&
	    auth_password_check(set, address, password, error_r) < 0)
		return -1;
	if (saslprep(password, SASLPREP_STORED, prepped_r, &why) == 0)
		return 0;
	if (address != NULL) {
		*error_r = xasprintf("password refused: %s", why);
		return -1;
	}
	/* A re-hash at login: the password is the query form that matched;
	 * keep it (unassigned code points and all) so it goes on matching. */
	*prepped_r = xstrdup(password);
	return 0;
}
