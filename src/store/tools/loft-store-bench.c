/*
 * loft-store-bench: measures the embedded store alone (no protocol):
 * appends per second with durability from 1 and N threads, and on a
 * mailbox of M messages the time of a FLAGS fetch of everything, a
 * substring search (BODY) for a word in about 1 % of messages, and a
 * flag change on everything.
 *
 *   loft-store-bench [-t threads] [-n appends per thread] [-m mailbox size]
 *                    [-s message size] [-d dir]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "store-private.h"
#include "store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *words[] = {
	"meeting", "report", "budget", "project", "schedule", "customer",
	"invoice", "delivery", "network", "server", "update", "release",
	"question", "answer", "holiday", "weekend", "family", "dinner",
	"document", "review", "contract", "payment", "account", "support",
};

/* A plain text message of about size bytes; every 100th holds "zanzibar". */
static char *make_msg(unsigned seed, size_t size, size_t *len_r)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "From: Sender %u <s%u@example.test>\r\nTo: user@example.test\r\n"
		   "Subject: %s %s %u\r\nMessage-ID: <%u.bench@example.test>\r\n"
		   "Date: Sat, 21 Nov 2026 06:00:00 +0000\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n\r\n",
		   seed % 97, seed % 97, words[seed % 24], words[(seed / 24) % 24],
		   seed, seed);
	unsigned x = seed * 2654435761u + 1;
	size_t col = 0;
	while (b.len < size) {
		x = x * 1103515245u + 12345u;
		const char *w = words[(x >> 16) % 24];
		buf_append_str(&b, w);
		col += strlen(w) + 1;
		if (col > 70) {
			buf_append_str(&b, "\r\n");
			col = 0;
		} else {
			buf_append_char(&b, ' ');
		}
	}
	if (seed % 100 == 7)
		buf_append_str(&b, "\r\nsee you in Zanzibar tomorrow\r\n");
	return buf_steal(&b, len_r);
}

struct worker {
	struct store *store;
	int64_t user;
	unsigned first, count;
	size_t size;
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct store_user *u;
	struct store_error err;
	if (store_user_open(w->store, w->user, &u, &err) < 0)
		return NULL;
	for (unsigned i = 0; i < w->count; i++) {
		size_t len;
		char *m = make_msg(w->first + i, w->size, &len);
		if (store_append(u, "INBOX", m, len, NULL, NULL, NULL, &err) < 0)
			fprintf(stderr, "append: %s\n", err.msg);
		free(m);
	}
	store_user_unref(&u);
	return NULL;
}

static double run_appends(struct store *store, int64_t user, unsigned threads,
			  unsigned each, size_t size)
{
	pthread_t t[64];
	struct worker w[64];
	double t0 = now_s();
	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct worker){store, user, i * each, each, size};
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return (double)(threads * each) / (now_s() - t0);
}

int main(int argc, char **argv)
{
	unsigned threads = 8, each = 200, mbox = 0;
	size_t size = 10 * 1024;
	const char *dir = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "t:n:m:s:d:")) != -1) {
		switch (opt) {
		case 't': threads = (unsigned)atoi(optarg); break;
		case 'n': each = (unsigned)atoi(optarg); break;
		case 'm': mbox = (unsigned)atoi(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-t threads] [-n each] [-m mailbox] [-s size] [-d dir]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > 64)
		threads = 8;
	char tmpl[] = "/tmp/loft-store-bench-XXXXXX";
	if (dir == NULL && (dir = mkdtemp(tmpl)) == NULL)
		return 1;
	struct store_settings set = {.data_dir = dir, .fsync = true};
	struct store *store;
	struct store_error err;
	if (store_open(&set, &store, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("dir %s, message size %zu\n", dir, size);
	if (each > 0) {
		printf("appends/s, fsync on, 1 thread:  %.0f\n",
		       run_appends(store, 1, 1, each, size));
		printf("appends/s, fsync on, %u threads: %.0f\n", threads,
		       run_appends(store, 2, threads, each, size));
	}
	store_close(&store);
	if (mbox > 0) {
		unsigned want = mbox;
		/* filling a big mailbox: durability off, it is only setup */
		set.fsync = false;
		store_open(&set, &store, &err);
		double t0 = now_s();
		struct store_user *u;
		store_user_open(store, 3, &u, &err);
		struct store_mailbox_info have;
		store_mailbox_status(u, "INBOX", &have, &err);
		if (have.messages >= mbox)
			mbox = 0; /* -d with a filled mailbox: measure only */
		store_mailbox_info_free(&have);
		unsigned per = (mbox + 1) / 2;
		pthread_t t[2];
		struct worker w[2] = {{store, 3, 0, per, size}, {store, 3, per, mbox - per, size}};
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, worker_main, &w[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		(void)want;
		store_index_flush(u, &err);
		printf("filled %u messages in %.1f s (%.0f/s, fsync off)\n", mbox,
		       now_s() - t0, mbox / (now_s() - t0));
		for (int round = 0; round < 2; round++) {
			t0 = now_s();
			struct store_fetch *f;
			const struct store_msg *m;
			unsigned n = 0;
			store_fetch_begin(u, "INBOX", NULL, 0, STORE_FETCH_FLAGS, &f, &err);
			while (store_fetch_next(f, &m, &err) == 1)
				n++;
			store_fetch_end(&f);
			printf("fetch FLAGS of %u: %.1f ms\n", n, (now_s() - t0) * 1000);
			t0 = now_s();
			store_fetch_begin(u, "INBOX", NULL, 0,
					  STORE_FETCH_ENVELOPE | STORE_FETCH_STRUCTURE, &f, &err);
			n = 0;
			while (store_fetch_next(f, &m, &err) == 1)
				n += m->envelope != NULL;
			store_fetch_end(&f);
			printf("fetch ENVELOPE BODYSTRUCTURE of %u: %.1f ms\n", n,
			       (now_s() - t0) * 1000);
			const char *needles[] = {"zanzibar", "Zanzibar tomorrow", "zz", "budget meeting"};
			for (int k = 0; k < 4; k++) {
				uint32_t *uids;
				size_t cnt;
				t0 = now_s();
				store_search_text(u, "INBOX", STORE_TEXT_BODY, needles[k],
						  NULL, 0, &uids, &cnt, &err);
				printf("search BODY \"%s\": %zu hits, %.1f ms\n", needles[k],
				       cnt, (now_s() - t0) * 1000);
				free(uids);
			}
		}
		struct store_flag_change ch = {.mode = STORE_FLAGS_ADD, .flags = STORE_FLAG_SEEN};
		store_user_unref(&u);
		store_close(&store);
		set.fsync = true;
		store_open(&set, &store, &err);
		store_user_open(store, 3, &u, &err);
		t0 = now_s();
		store_flags_update(u, "INBOX", NULL, 0, &ch, NULL, NULL, NULL, NULL, &err);
		printf("STORE +FLAGS \\Seen on all: %.1f ms\n", (now_s() - t0) * 1000);
		uint32_t *uids;
		size_t cnt;
		struct store_mailbox_info info;
		store_mailbox_status(u, "INBOX", &info, &err);
		uint64_t ms = info.highestmodseq;
		store_mailbox_info_free(&info);
		struct store_uid_range r = {500, 509};
		store_flags_update(u, "INBOX", &r, 1, &(struct store_flag_change){.mode = STORE_FLAGS_ADD, .flags = STORE_FLAG_FLAGGED}, NULL, NULL, NULL, NULL, &err);
		t0 = now_s();
		store_changed_since(u, "INBOX", ms, NULL, 0, &uids, &cnt, &err);
		free(uids);
		bool complete;
		store_expunged_since(u, "INBOX", ms, NULL, 0, &uids, &cnt, &complete, &err);
		free(uids);
		printf("changed+expunged since (10 changes): %.2f ms\n", (now_s() - t0) * 1000);
		store_user_unref(&u);
		store_close(&store);
	}
	return 0;
}
