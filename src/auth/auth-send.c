/*
 * Who may send as what (auth.h "sending"): the one sender check that SMTP
 * submission, JMAP EmailSubmission and the webmail apply. An account
 * sends as its own address and its aliases (a +detail of either is the
 * same address), or as anything when its policy says send_as = any.
 * Built from lookups alone, so it works unchanged where those are calls
 * into another process.
 */
#include "auth-private.h"

#include <stdio.h>
#include <string.h>

int auth_may_send_as(struct auth *auth, int64_t user_id, const char *address)
{
	struct auth_policy pol;
	struct auth_user u;
	const char *at = strrchr(address, '@');
	const char *plus;
	char base[AUTH_ADDRESS_MAX + 1];
	int rc;

	if (auth_user_policy(auth, user_id, &pol) < 0)
		return -1;
	if (pol.send_as_any)
		return 1;
	rc = auth_lookup(auth, address, &u);
	if (rc != 0 || at == NULL)
		return rc < 0 ? -1 : u.id == user_id;
	plus = memchr(address, '+', (size_t)(at - address));
	if (plus == NULL)
		return 0;
	if ((size_t)snprintf(base, sizeof(base), "%.*s%s", (int)(plus - address),
			     address, at) >= sizeof(base))
		return 0;
	rc = auth_lookup(auth, base, &u);
	return rc < 0 ? -1 : rc == 1 && u.id == user_id;
}
