/*
 * A JMAP engine over a real store in a temp dir (fsync off) for the fuzz
 * targets of src/jmap: one account with a few messages in two threads, so
 * filters and patches meet real data. jmap_api answers each input; the
 * answer must be JSON, 200 or 400.
 */
#ifndef FUZZ_JMAP_ENV_H
#define FUZZ_JMAP_ENV_H

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "jmap.h"
#include "store.h"

static char fz_dir[64];
static struct store *fz_store;
static struct jmap *fz_jmap;
static struct config *fz_cfg;

static int fz_rm(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void fz_cleanup(void)
{
	jmap_destroy(&fz_jmap);
	store_close(&fz_store);
	config_free(&fz_cfg);
	nftw(fz_dir, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *const fz_msgs[] = {
	"From: A <a@x.test>\r\nTo: b@x.test\r\nSubject: first\r\n"
	"Message-ID: <1@x>\r\n\r\nhello world\r\n",
	"From: B <b@x.test>\r\nTo: a@x.test\r\nSubject: Re: first\r\n"
	"Message-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\n\r\nreply text\r\n",
	"From: C <c@x.test>\r\nSubject: other\r\nMessage-ID: <3@x>\r\n"
	"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
	"Content-Type: text/plain\r\n\r\nbody\r\n--q\r\nContent-Type: "
	"application/pdf; name=a.pdf\r\n\r\nPDF\r\n--q--\r\n",
};

static void fz_setup(void)
{
	if (fz_jmap != NULL)
		return;
	snprintf(fz_dir, sizeof(fz_dir), "/tmp/loft-fuzz-jmap-XXXXXX");
	if (mkdtemp(fz_dir) == NULL)
		abort();
	struct store_settings set;
	memset(&set, 0, sizeof(set));
	set.data_dir = fz_dir;
	set.fsync = false;
	set.max_message_size = 1 << 20;
	struct store_error err = {0};
	if (store_open(&set, &fz_store, &err) < 0)
		abort();
	struct store_user *u;
	if (store_user_open(fz_store, 1, &u, &err) < 0)
		abort();
	for (size_t i = 0; i < sizeof(fz_msgs) / sizeof(*fz_msgs); i++) {
		struct store_append_params p = {i == 1 ? STORE_FLAG_SEEN : 0,
						NULL, 0, 0};
		if (store_append(u, i == 2 ? "Archive" : "INBOX", fz_msgs[i],
				 strlen(fz_msgs[i]), &p, NULL, NULL, &err) < 0)
			abort();
	}
	store_user_unref(&u);
	struct buf errors;
	buf_init(&errors, 0);
	static const char conf[] = "[jmap]\nmax_objects_in_get = 50\n";
	if (config_parse("fuzz.conf", conf, sizeof(conf) - 1, &fz_cfg,
			 &errors) < 0)
		abort();
	fz_jmap = jmap_create(fz_cfg, fz_store, NULL, &errors);
	if (fz_jmap == NULL)
		abort();
	buf_free(&errors);
	atexit(fz_cleanup);
}

/* Runs one request body; checks what any client may rely on. */
static void fz_api(const char *body, size_t len)
{
	struct jmap_caller who = {1, "fuzz@x.test"};
	struct buf out;
	buf_init(&out, 0);
	unsigned st = jmap_api(fz_jmap, &who, body, len, &out);
	if (st != 200 && st != 400)
		abort();
	json_t *r = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
	if (r == NULL)
		abort();
	if (st == 200 && !json_is_array(json_object_get(r, "methodResponses")))
		abort();
	json_decref(r);
	buf_free(&out);
}

#endif
