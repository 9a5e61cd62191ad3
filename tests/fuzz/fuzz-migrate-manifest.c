/*
 * Fuzz target for the backup format's reader (src/migrate/
 * migrate-backup.c, docs/backup.md): a sealed JSON file's checksum and
 * format, the account files a SNAPSHOT names (never outside the backup:
 * no "..", no "/" in an address, no absolute path) and each message's
 * fields as restore reads them. The input is one file; a file that
 * passes must pass again (the check changes nothing it reads).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[200] = "";
	int r = migrate_manifest_check((const char *)data, size, why,
				       sizeof(why));
	if (r != 0 && r != -1)
		abort();
	if (r == -1 && why[0] == '\0')
		abort();
	if (r == 0 && migrate_manifest_check((const char *)data, size, why,
					     sizeof(why)) != 0)
		abort();
	return 0;
}
