/*
 * NOTIFY (RFC 5465): one connection watches many mailboxes.
 *
 * NOTIFY SET names event groups: (filter events), filter one of
 * selected / selected-delayed (the selected mailbox), personal, inboxes
 * (every mailbox an MDA can deliver to: LMTP +folder and Sieve fileinto
 * reach any, so the same as personal, as RFC 5465 6 asks when the set is
 * not smaller), subscribed, subtree NAMES, mailboxes NAMES. A mailbox
 * takes its events from the first group that matches it. Events:
 * MessageNew [(fetch-atts), selected only], MessageExpunge, FlagChange,
 * MailboxName, SubscriptionChange, MailboxMetadataChange,
 * ServerMetadataChange. AnnotationChange (per-message annotations, RFC
 * 5257) is refused with [BADEVENT].
 *
 * What the client gets, also between commands and without IDLE:
 *   selected mailbox   EXISTS / FETCH (the MessageNew fetch-atts of a new
 *                      message) / FETCH FLAGS (FlagChange) at once;
 *                      EXPUNGE or VANISHED at once with "selected", held
 *                      for a command that may report them with
 *                      "selected-delayed" (the normal IMAP rules).
 *   other mailboxes    STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN, and
 *                      HIGHESTMODSEQ once CONDSTORE is on) after a change
 *                      of a watched kind; LIST for created (attributes),
 *                      deleted (\NonExistent) and renamed ("OLDNAME")
 *                      mailboxes; LIST with or without \Subscribed;
 *                      METADATA mailbox (entries) for changed entries.
 * Mailboxes of other accounts (the Other Users / Shared namespaces) are
 * watched under the user's rights (RFC 5465 5, RFC 4314): subtree and
 * mailboxes may name them (a namespace's root: every owner who granted
 * the user something), subscribed covers those subscribed to; personal
 * and inboxes are the user's own. Only mailboxes the user holds l on
 * exist for NOTIFY; message events (STATUS) need r as well. A granted l
 * is told as a created mailbox, a revoked one (or a deleted owner) as
 * deleted (LIST \NonExistent). The owners' channels are followed with
 * store_watch, and their mail opened as a viewer's for each look.
 *
 * Threads: the store hub's callback (any thread) only records which
 * mailboxes changed (imap_notify_record); the session's worker turns
 * that into responses. A client that does not read makes the output
 * grow: past NOTIFY_OUTPUT_MAX queued bytes the session says
 * "* OK [NOTIFICATIONOVERFLOW]" and NOTIFY is off (as NOTIFY NONE), so a
 * push never blocks a worker on a client that reads nothing.
 */
#ifndef LOFT_IMAP_NOTIFY_H
#define LOFT_IMAP_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct imap_client;
struct imap_notify;
struct store_change;

/* Made at login before the hub subscription (the callback reads it),
 * freed when the session ends. */
struct imap_notify *imap_notify_new(void);
void imap_notify_free(struct imap_notify **n);
/* NOTIFY NONE: no more events (logout, UNAUTHENTICATE, overflow). */
void imap_notify_off(struct imap_client *c);

/* The hub's callback (any thread): records a change of the user's own
 * mail or of a watched owner's. true if the session should be woken for
 * it (the selected mailbox's changes are woken for by the caller). */
bool imap_notify_record(struct imap_client *c,
			const struct store_change *change, uint32_t selected);

/* Worker, between commands or in IDLE: the selected mailbox's changes
 * as the NOTIFY selected group asks (no IDLE needed), then the other
 * mailboxes' (imap_notify_flush). false when NOTIFY is off. */
bool imap_notify_push(struct imap_client *c, bool idling);
/* Worker, any time a response may go out (before a tagged reply, in
 * IDLE): STATUS / LIST / METADATA for the other mailboxes' recorded
 * changes. */
void imap_notify_flush(struct imap_client *c);
/* After a sync of the selected mailbox: the MessageNew fetch-atts of the
 * messages above last_uid (the view's last UID before the sync). */
void imap_notify_new_messages(struct imap_client *c, uint32_t last_uid);
/* Whether new messages of the selected mailbox get a FETCH. */
bool imap_notify_wants_new(const struct imap_client *c);

#endif
