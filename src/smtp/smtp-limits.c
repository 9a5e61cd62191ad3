/*
 * Per-address limits of the MX listener: connections at once, and
 * messages per sliding hour, counted per client address (IPv6 per /64,
 * so one host cannot dodge them by changing its low bits). The defaults
 * are far above what a busy sending MX does (RFC 5321 4.5.3.2 lets a
 * sender retry later); they stop a single address from holding every
 * connection slot or flooding a mailbox.
 *
 * A table of addresses (chained hash) under one mutex; the I/O threads
 * take it for a lookup at connect, at MAIL and at the end of a message.
 * An entry with no connection and no message in the last hour is
 * dropped when its bucket is next walked, so the table holds only
 * addresses that are active.
 */
#include "smtp-private.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIMIT_BUCKETS 1024
#define LIMIT_MINUTES 60

struct smtp_limit_entry {
	struct smtp_limit_entry *next;
	unsigned char key[16];
	unsigned conns;
	time_t minute[LIMIT_MINUTES];
	uint32_t messages[LIMIT_MINUTES];
};

struct smtp_limits {
	pthread_mutex_t mu;
	unsigned max_conns;
	unsigned max_messages;
	struct smtp_limit_entry *buckets[LIMIT_BUCKETS];
};

struct smtp_limits *smtp_limits_create(unsigned max_conns,
				       unsigned max_messages_per_hour)
{
	struct smtp_limits *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->mu, NULL);
	l->max_conns = max_conns;
	l->max_messages = max_messages_per_hour;
	return l;
}

void smtp_limits_set(struct smtp_limits *l, unsigned max_conns,
		     unsigned max_messages_per_hour)
{
	pthread_mutex_lock(&l->mu);
	l->max_conns = max_conns;
	l->max_messages = max_messages_per_hour;
	pthread_mutex_unlock(&l->mu);
}

void smtp_limits_destroy(struct smtp_limits **lp)
{
	struct smtp_limits *l = *lp;

	if (l == NULL)
		return;
	for (size_t i = 0; i < LIMIT_BUCKETS; i++) {
		while (l->buckets[i] != NULL) {
			struct smtp_limit_entry *e = l->buckets[i];
			l->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&l->mu);
	free(l);
	*lp = NULL;
}

/* The address as 16 bytes: IPv4 mapped, IPv6 cut to its /64. */
static bool address_key(const char *ip, unsigned char key[16])
{
	struct in_addr a4;

	memset(key, 0, 16);
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a4, 4);
		return true;
	}
	if (inet_pton(AF_INET6, ip, key) == 1) {
		if (!(memcmp(key, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0))
			memset(key + 8, 0, 8);
		return true;
	}
	return false;
}

static unsigned bucket_of(const unsigned char key[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % LIMIT_BUCKETS;
}

static uint32_t messages_in_hour(const struct smtp_limit_entry *e, time_t now)
{
	uint32_t n = 0;

	for (int i = 0; i < LIMIT_MINUTES; i++)
		if (e->minute[i] > now / 60 - LIMIT_MINUTES)
			n += e->messages[i];
	return n;
}

/* The entry of key (created if asked), dropping idle ones met on the way
 * (under l->mu). */
static struct smtp_limit_entry *entry_get(struct smtp_limits *l,
					  const unsigned char key[16],
					  bool create)
{
	struct smtp_limit_entry **pp = &l->buckets[bucket_of(key)], *found = NULL;
	time_t now = time(NULL);

	while (*pp != NULL) {
		struct smtp_limit_entry *e = *pp;
		if (memcmp(e->key, key, 16) == 0) {
			found = e;
		} else if (e->conns == 0 && messages_in_hour(e, now) == 0) {
			*pp = e->next;
			free(e);
			continue;
		}
		pp = &e->next;
	}
	if (found == NULL && create) {
		found = xcalloc(1, sizeof(*found));
		memcpy(found->key, key, 16);
		found->next = l->buckets[bucket_of(key)];
		l->buckets[bucket_of(key)] = found;
	}
	return found;
}

bool smtp_limits_connect(struct smtp_limits *l, const char *ip)
{
	unsigned char key[16];
	bool ok = true;

	if (l == NULL || !address_key(ip, key))
		return true;
	pthread_mutex_lock(&l->mu);
	struct smtp_limit_entry *e = entry_get(l, key, true);
	if (l->max_conns != 0 && e->conns >= l->max_conns)
		ok = false;
	else
		e->conns++;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void smtp_limits_disconnect(struct smtp_limits *l, const char *ip)
{
	unsigned char key[16];

	if (l == NULL || !address_key(ip, key))
		return;
	pthread_mutex_lock(&l->mu);
	struct smtp_limit_entry *e = entry_get(l, key, false);
	if (e != NULL && e->conns > 0)
		e->conns--;
	pthread_mutex_unlock(&l->mu);
}

bool smtp_limits_message_ok(struct smtp_limits *l, const char *ip)
{
	unsigned char key[16];
	bool ok = true;

	if (l == NULL || !address_key(ip, key))
		return true;
	pthread_mutex_lock(&l->mu);
	struct smtp_limit_entry *e = l->max_messages == 0 ? NULL
				     : entry_get(l, key, false);
	if (e != NULL && messages_in_hour(e, time(NULL)) >= l->max_messages)
		ok = false;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void smtp_limits_message(struct smtp_limits *l, const char *ip)
{
	unsigned char key[16];
	time_t now = time(NULL);

	if (l == NULL || !address_key(ip, key))
		return;
	pthread_mutex_lock(&l->mu);
	struct smtp_limit_entry *e = entry_get(l, key, true);
	int slot = (int)((now / 60) % LIMIT_MINUTES);
	if (e->minute[slot] != now / 60) {
		e->minute[slot] = now / 60;
		e->messages[slot] = 0;
	}
	e->messages[slot]++;
	pthread_mutex_unlock(&l->mu);
}
