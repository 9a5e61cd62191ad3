/* Fuzz target: RFC 5322 date-time with obsolete forms. */
#include <stdint.h>
#include <stdlib.h>

#include "mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	time_t t;
	int tz;
	if (mail_date_parse((const char *)data, size, &t, &tz) &&
	    (tz < -(99 * 60 + 59) || tz > 99 * 60 + 59))
		abort();
	return 0;
}
