/* Fuzz target: address lists (RFC 5322 3.4 + obsolete forms, groups). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mail_address *list;
	size_t n = mail_address_parse((const char *)data, size, &list);
	long depth = 0;
	for (size_t i = 0; i < n; i++) {
		const struct mail_address *a = &list[i];
		if (a->host == NULL && a->mailbox != NULL)
			depth++;            /* group start */
		else if (a->host == NULL && a->mailbox == NULL)
			depth--;            /* group end */
		else if (a->mailbox == NULL)
			abort();            /* an address always has a mailbox */
		if (depth < 0 || depth > 1)
			abort();            /* groups do not nest */
		if (a->name != NULL && a->name_utf8 == NULL)
			abort();
	}
	if (depth != 0)
		abort();
	mail_address_list_free(list, n);
	return 0;
}
