/*
 * The webmail's static files at "/" on every [http] and [https] listener
 * ([http] webmail = no turns it off). The directory is [http]
 * webmail_dir, else the first that exists of: webmail/ beside loftd,
 * ../share/loft/webmail from loftd's directory, the installed
 * LOFT_WEBMAIL_DIR (CMake), and the source tree's web/dist (the
 * webmail's build output, for `make run` from a build tree).
 *
 * - "/" is index.html; a path that names no file and has no extension is
 *   answered with index.html too when the browser asks for HTML (the
 *   page's own routes).
 * - Names carrying a content hash (app-3F2A9C1B.js, app.3f2a9c1b.css) are
 *   cached for a year as immutable; everything else is revalidated with
 *   its ETag (no-cache).
 * - A precompressed NAME.gz beside the file is served when the client
 *   accepts gzip; other compressible files are compressed on the fly.
 * - Every HTML page carries the strict Content-Security-Policy
 *   (http-response.c); nothing outside the directory can be reached:
 *   "..", "." and hidden segments, NUL and backslashes are refused, and
 *   the last component is opened without following a symlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "http-private.h"
#include "log.h"

#ifndef LOFT_WEBMAIL_DIR
#define LOFT_WEBMAIL_DIR "/usr/local/share/loft/webmail"
#endif
#ifndef LOFT_WEB_DIST
#define LOFT_WEB_DIST "web/dist"
#endif

struct http_static {
	char *dir;      /* NULL: no webmail installed */
	int dir_fd;
};

static const struct {
	const char *ext;
	const char *type;
} mime_types[] = {
	{"html", "text/html; charset=utf-8"},
	{"htm", "text/html; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"json", "application/json"},
	{"map", "application/json"},
	{"webmanifest", "application/manifest+json"},
	{"txt", "text/plain; charset=utf-8"},
	{"svg", "image/svg+xml"},
	{"png", "image/png"},
	{"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"},
	{"gif", "image/gif"},
	{"webp", "image/webp"},
	{"avif", "image/avif"},
	{"ico", "image/x-icon"},
	{"woff2", "font/woff2"},
	{"woff", "font/woff"},
	{"ttf", "font/ttf"},
	{"otf", "font/otf"},
	{"wasm", "application/wasm"},
	{NULL, NULL},
};

static const char *mime_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot != NULL)
		for (size_t i = 0; mime_types[i].ext != NULL; i++)
			if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
				return mime_types[i].type;
	return "application/octet-stream";
}

/* "app-3F2A9C1B.js", "index.3f2a9c1b.css", "chunk-AB12CD34EF.mjs": a run of
 * at least 8 [A-Za-z0-9_] holding a digit, after '-' or '.' and before
 * the extension. */
static bool content_hashed(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	const char *ext = strrchr(base, '.');
	if (ext == NULL || ext == base)
		return false;
	const char *p = ext;
	bool digit = false;
	size_t n = 0;
	while (p > base) {
		char c = p[-1];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || c == '_'))
			break;
		digit |= c >= '0' && c <= '9';
		n++;
		p--;
	}
	return n >= 8 && digit && p > base && (p[-1] == '-' || p[-1] == '.');
}

/* The decoded path below the directory, or NULL if it could leave it. */
static char *safe_relative(const char *path)
{
	char *dec = http_pct_decode(path, strlen(path), false);
	if (dec == NULL)
		return NULL;
	if (dec[0] != '/' || strchr(dec, '\\') != NULL || strlen(dec) > 1024) {
		free(dec);
		return NULL;
	}
	/* Every segment: not empty (except a trailing one), not "." or
	 * "..", not hidden. */
	for (char *seg = dec + 1; *seg;) {
		char *slash = strchr(seg, '/');
		size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
		if ((n == 0 && slash != NULL) || seg[0] == '.') {
			free(dec);
			return NULL;
		}
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)seg[i] < 0x20) {
				free(dec);
				return NULL;
			}
		}
		seg += n + (slash != NULL);
	}
	char *rel;
	size_t len = strlen(dec);
	if (len == 1 || dec[len - 1] == '/')
		rel = xasprintf("%sindex.html", dec + 1);
	else
		rel = xstrdup(dec + 1);
	free(dec);
	return rel;
}

/* Opens a regular file below the directory; -1 if there is none. */
static int open_file(const struct http_static *st, const char *rel,
		     struct stat *st_r)
{
	int fd = openat(st->dir_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, st_r) < 0 || !S_ISREG(st_r->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool wants_html(const struct http_request *req)
{
	const char *accept = http_request_header(req, "accept");
	return accept != NULL && strstr(accept, "text/html") != NULL;
}

static bool accepts_gzip(const struct http_request *req)
{
	return http_accepted_encoding(req) == HTTP_ENC_GZIP;
}

static void serve_fd(struct http_request *req, struct http_response *resp,
		     const char *rel, int fd, const struct stat *sb,
		     bool gzipped)
{
	char etag[64];
	snprintf(etag, sizeof(etag), "%llx-%llx%s",
		 (unsigned long long)sb->st_size,
		 (unsigned long long)sb->st_mtim.tv_sec * 1000000000ull +
		 (unsigned long long)sb->st_mtim.tv_nsec, gzipped ? "-gz" : "");
	http_response_content_type(resp, mime_type(rel));
	if (gzipped) {
		http_response_set_header(resp, "Content-Encoding", "gzip");
		http_response_set_header(resp, "Vary", "Accept-Encoding");
	}
	http_response_set_header(resp, "Cache-Control", "%s",
				 content_hashed(rel) ?
				 "public, max-age=31536000, immutable" :
				 "no-cache");
	http_response_set_header(resp, "X-Frame-Options", "DENY");
	http_response_set_header(resp, "Cross-Origin-Opener-Policy",
				 "same-origin");
	http_response_etag(resp, etag);
	http_response_last_modified(resp, sb->st_mtim.tv_sec);
	http_response_accept_ranges(resp);
	size_t len = (size_t)sb->st_size;
	void *map = NULL;
	if (len > 0) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			log_error("http", http_request_id(req), "mmap %s: %m", rel);
			http_response_error(resp, 500, "The file cannot be read.");
			return;
		}
	}
	http_response_send(resp, map != NULL ? map : "", len);
	if (map != NULL)
		munmap(map, len);
}

static void handle_static(struct http_request *req, struct http_response *resp,
			  void *ctx)
{
	struct http_static *st = ctx;
	if (st->dir == NULL) {
		http_response_error(resp, 404, "The webmail is not installed "
				    "on this server.");
		return;
	}
	char *rel = safe_relative(http_request_path(req));
	if (rel == NULL) {
		http_response_error(resp, 404, "Nothing here.");
		return;
	}
	struct stat sb;
	int fd = open_file(st, rel, &sb);
	if (fd < 0) {
		const char *base = strrchr(rel, '/');
		base = base ? base + 1 : rel;
		/* The page's own routes get the page. */
		if (strchr(base, '.') == NULL && wants_html(req)) {
			free(rel);
			rel = xstrdup("index.html");
			fd = open_file(st, rel, &sb);
		}
	}
	if (fd < 0) {
		free(rel);
		http_response_error(resp, 404, "Nothing here.");
		return;
	}
	if (accepts_gzip(req)) {
		char *gz = xasprintf("%s.gz", rel);
		struct stat gsb;
		int gfd = open_file(st, gz, &gsb);
		free(gz);
		if (gfd >= 0) {
			close(fd);
			serve_fd(req, resp, rel, gfd, &gsb, true);
			close(gfd);
			free(rel);
			return;
		}
	}
	serve_fd(req, resp, rel, fd, &sb, false);
	close(fd);
	free(rel);
}

/* The directory of the running binary (for the build tree's webmail/). */
static char *exe_dir(void)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return NULL;
	path[n] = '\0';
	char *slash = strrchr(path, '/');
	if (slash == NULL)
		return NULL;
	*slash = '\0';
	return xstrdup(path);
}

static char *find_dir(const struct http_settings *set)
{
	if (set->webmail_dir != NULL)
		return xstrdup(set->webmail_dir);
	char *exe = exe_dir();
	char *cands[4] = {
		exe ? xasprintf("%s/webmail", exe) : NULL,
		exe ? xasprintf("%s/../share/loft/webmail", exe) : NULL,
		xstrdup(LOFT_WEBMAIL_DIR),
		xstrdup(LOFT_WEB_DIST),
	};
	free(exe);
	char *found = NULL;
	for (int i = 0; i < 4; i++) {
		struct stat sb;
		if (found == NULL && cands[i] != NULL &&
		    stat(cands[i], &sb) == 0 && S_ISDIR(sb.st_mode))
			found = cands[i];
		else
			free(cands[i]);
	}
	return found;
}

char *http_webmail_dir(const struct config *cfg)
{
	struct http_settings set;
	memset(&set, 0, sizeof(set));
	set.webmail_dir = (char *)config_get(cfg, "http", "webmail_dir");
	return find_dir(&set);
}

void http_static_register(struct http_server *server)
{
	struct http_static *st = xcalloc(1, sizeof(*st));
	st->dir_fd = -1;
	st->dir = find_dir(http_set(server));
	if (st->dir != NULL) {
		st->dir_fd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (st->dir_fd < 0) {
			log_warn("http", NULL, "webmail directory %s: %s", st->dir,
				 strerror(errno));
			free(st->dir);
			st->dir = NULL;
		}
	}
	if (st->dir != NULL)
		log_debug("http", NULL, "webmail files from %s", st->dir);
	server->static_files = st;
	static const struct http_route route = {
		.method = "GET", .prefix = "/", .handle = handle_static,
	};
	http_route_add(server, &route, st);
}

void http_static_free(struct http_static **stp)
{
	struct http_static *st = *stp;
	*stp = NULL;
	if (st == NULL)
		return;
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	free(st->dir);
	free(st);
}
