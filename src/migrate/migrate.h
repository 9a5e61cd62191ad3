/*
 * Moving mail in and out of an account (issue 17), for loftctl:
 * `loftctl import ADDRESS SOURCE` from a Maildir tree (Maildir++ or
 * LAYOUT=fs, with Dovecot's dovecot-uidlist and dovecot-keywords) or an
 * mbox file or tree, and `loftctl export ADDRESS DEST --format
 * maildir|mbox`. Everything goes through store.h: quota, the search
 * index, the change counter, group commit; a running loftd sees it.
 *
 * UIDs: a folder that never held mail takes the source's UIDVALIDITY and
 * UIDs (so a client's cache and a POP3 client's UIDLs stay valid); later
 * runs keep UIDs while no other mail reached the folder. Resume: each
 * message's mark (source, file name or content hash) commits with it, so
 * a run killed -9 and run again stores each message once. The source is
 * only read: symlinks and anything outside it are not followed.
 */
#ifndef LOFT_MIGRATE_H
#define LOFT_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "store.h"

struct migrate_folder_stats;
struct migrate_batch;
struct migrate_got;

struct migrate {
	struct store *store;
	struct store_user *user;
	const char *folder;        /* only this source folder (NULL: all) */
	bool dry_run;              /* read and check everything, write
				      nothing */
	bool json;                 /* one JSON object per line on out */
	bool progress;             /* a progress line on err (a terminal) */
	FILE *out, *err;
	bool exporting;            /* set by migrate_export (the words) */
	/* IMAP and POP3 sources */
	const char *password;
	const char *authzid;       /* log in as an admin for the user */
	bool expunge_vanished;     /* a later IMAP run expunges here what
				      vanished at the source (kept for
				      undelete) */
	/* backup: the account's accounts.db record (a jansson object with
	 * secret, disabled, aliases, settings; new reference; NULL: none),
	 * stored in its manifest as "account" (loftctl gives it) */
	struct json_t *(*account_record)(void *ctx, const char *address);
	void *account_ctx;
	/* restore: stores a Sieve script (compiled by the caller, which
	 * knows the [sieve] limits) and makes it active if asked; 0, or -1
	 * with why. NULL: scripts are not restored (said on err). */
	int (*sieve_restore)(void *ctx, struct store_user *user,
			     const char *name, const char *source, size_t len,
			     bool active, char *why, size_t why_size);
	/* backup: an ACL entry's identifier as text ("anyone",
	 * "authenticated", "$group", an address; "-" first when negative),
	 * malloced; NULL: its account or group is gone (not kept). NULL
	 * callback: ACLs are not kept. */
	char *(*acl_ident)(void *ctx, const struct store_acl_entry *e,
			   const char *owner);
	/* restore: gives ident the rights on mailbox of user unless the
	 * mailbox has an entry for it; 1 done, 0 it had one, -1 with why.
	 * NULL: ACLs are not restored. */
	int (*acl_restore)(void *ctx, struct store_user *user,
			   const char *mailbox, const char *ident,
			   const char *rights, char *why, size_t why_size);
	/* backup: a user id's address (malloced; NULL: no such account):
	 * readers' own \Seen of shared mailboxes are kept by address. NULL
	 * callback: they are not kept. */
	char *(*user_address)(void *ctx, int64_t id);
	/* restore: an address's user id here (0: no such account). */
	int64_t (*user_id)(void *ctx, const char *address);
	/* backup of the whole server (loftctl backup DEST): what is in no
	 * one account -- domains, groups, DKIM keys, the queue -- as a new
	 * jansson object, kept as the snapshot's server.json (bodies
	 * through migrate_backup_blob_put). NULL result: failed (said on
	 * err); NULL callback: none kept. */
	struct json_t *(*server_record)(void *ctx, struct migrate *m,
					const char *dest);
	/* import and restore: a commit stored messages into user (called
	 * after each; loftctl tells a running loftd, whose IDLE clients
	 * then see them while the run goes on). NULL: no one told. */
	void (*committed)(void *ctx, struct store_user *user);
	/* totals */
	uint64_t imported, skipped, failed, bytes, problems;
	/* internal */
	uint64_t started_ns, last_progress_ns, total_guess;
	/* messages the source holds, when known before the run (a
	 * Maildir's files): the progress line's ETA */
	uint64_t total_msgs;
	struct migrate_folder_stats *cur;
	struct migrate_batch *batch;   /* messages waiting for a commit */
	bool quota_stop;               /* a commit met the quota */
	/* restore: the modseq each message stored with its source UID got
	 * (UID order), while got_record */
	bool got_record;
	struct migrate_got *got;
	size_t got_n, got_cap;
	/* ... and, when set, kept as marks of this source after each
	 * commit ("UID=MODSEQ,..."), for the rerun of a killed restore */
	const char *got_mark_source;
};

/* Imports SOURCE: "maildir:PATH", "mbox:PATH", or a path (a directory
 * with cur/ or Maildir++ folders is a Maildir, another directory an mbox
 * tree, a file an mbox). 0 when every message was imported (or was
 * there already), 1 when something failed or was not understood (each
 * named on err / in the JSON), 2 for a SOURCE that cannot be read at
 * all. */
int migrate_import(struct migrate *m, const char *source);

/* Exports the account to DEST (created, mode 0700): a Maildir++ tree
 * Dovecot reads (dovecot-uidlist with the same UIDVALIDITY and UIDs,
 * dovecot-keywords, subscriptions) or mboxrd files with Status,
 * X-Status, X-Keywords, X-IMAPbase and X-UID. Same return values. */
enum migrate_format { MIGRATE_MAILDIR, MIGRATE_MBOX };
int migrate_export(struct migrate *m, const char *dest,
		   enum migrate_format format);

/* Online backup (migrate-backup.c, docs/backup.md): one snapshot of the
 * accounts (users[i] open for addresses[i]) in DEST. 0, 1 when an
 * account failed (then no snapshot is made), 2 when DEST is unusable. */
int migrate_backup(struct migrate *m, const char *dest, const char **addresses,
		   struct store_user **users, size_t count);
/* Checks every file of every snapshot; names each missing or damaged
 * one; 1 if any. */
int migrate_backup_verify(struct migrate *m, const char *dest);
int migrate_backup_list(struct migrate *m, const char *dest);
/* Removes complete snapshots but the newest keep (keep < 0: any number)
 * that are older than before (0: any age) -- never the newest complete
 * one --, runs that never finished, and the blobs no remaining snapshot
 * names. An account file of a removed snapshot that a kept one names
 * is moved into the kept one first. dry_run: only says what it would
 * remove. 0, 1 when something failed, 2 when a backup runs on DEST. */
int migrate_backup_prune(struct migrate *m, const char *dest, long keep,
			 time_t before, bool dry_run);
/* The "account" record address has in DEST's newest complete snapshot
 * (new reference), or NULL with why set. */
struct json_t *migrate_backup_account(const char *dest, const char *address,
				      char *why, size_t why_size);
/* Checks one backup JSON file's bytes as verify and restore read them
 * (its own checksum, the format, the files a SNAPSHOT names inside the
 * backup, each message's sha256): 0, or -1 with why (the fuzz target's
 * entry, fuzz-migrate-manifest). */
int migrate_manifest_check(const char *data, size_t len, char *why,
			   size_t why_size);
/* Bytes kept in DEST/blobs by their SHA-256 (sha_r, 65 bytes), once:
 * 0, or -1 with errno. */
int migrate_backup_blob_put(const char *dest, const void *data, size_t len,
			    char sha_r[65]);
/* A blob's bytes into out (appended), checked against its name: 0, or
 * -1 with why. */
struct buf;
int migrate_backup_blob_get(const char *dest, const char *sha,
			    struct buf *out, char *why, size_t why_size);
/* The server record (server.json) of DEST's newest complete snapshot,
 * checked with every blob it names (new reference); NULL with why (also
 * when that snapshot has none: made for some accounts only). */
struct json_t *migrate_backup_server(const char *dest, char *why,
				     size_t why_size);
/* The addresses in DEST's newest complete snapshot (caller frees each
 * and the array); -1 with why. */
int migrate_backup_addresses(const char *dest, char ***addresses_r,
			     size_t *count_r, char *why, size_t why_size);
/* Restores address from DEST's newest complete snapshot into m->user
 * (m->folder: one folder; since: internal dates from then on, 0: all).
 * 0: done; 1: done with problems (what was restored stays); 2: refused
 * before anything was written (no snapshot, the account not in it, a
 * damaged manifest or body). */
int migrate_restore(struct migrate *m, const char *dest, const char *address,
		    time_t since);

#endif
