/*
 * Shared by the import and export drivers: progress, reports (text or
 * one JSON object per line), per-folder counts, well-known folder roles.
 */
#ifndef LOFT_MIGRATE_PRIVATE_H
#define LOFT_MIGRATE_PRIVATE_H

#include "migrate.h"

struct migrate_folder_stats {
	char *name;
	uint64_t imported, skipped, failed, bytes, renumbered;
	bool uids_kept;
};

/* The special use a folder's name says (Sent, Sent Messages, Trash,
 * Deleted Items, Junk, Spam, Drafts, Archive ...; 0: none). */
unsigned migrate_role_of(const char *name);

/* Dovecot's default POP3 UIDL of a message (migrate-import.c). */
const char *migrate_dovecot_uidl(char out[20], uint32_t uid,
				 uint32_t uidvalidity);

void migrate_start(struct migrate *m);
/* A summary line (or JSON object) for the whole run. */
void migrate_finish(struct migrate *m, const char *what);
void migrate_folder_begin(struct migrate *m, const char *name);
/* The folder's summary line. */
void migrate_folder_end(struct migrate *m);
/* One message done (imported: counted as such) and the progress line. */
void migrate_count(struct migrate *m, uint64_t bytes, bool imported);
/* Reports a problem: "FOLDER: ITEM: reason" on err, or a JSON object
 * {"type":"error",...} on out; counted in m->problems. folder and item
 * may be NULL. */
void migrate_error(struct migrate *m, const char *folder, const char *item,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
