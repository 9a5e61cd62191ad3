/* Fuzz target: Content-Type / Content-Disposition parameters with RFC 2231
 * continuations and charsets: values are valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mail_params p;
	mail_params_parse((const char *)data, size, &p);
	for (size_t i = 0; i < p.count; i++) {
		const char *v = p.params[i].value;
		if (!mail_utf8_valid(v, strlen(v)))
			abort();
	}
	(void)mail_params_get(&p, "charset");
	mail_params_free(&p);
	return 0;
}
