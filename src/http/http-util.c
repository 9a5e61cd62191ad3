/*
 * Small pieces of HTTP: reason phrases, dates (RFC 9110 5.6.7), entity
 * tag lists, JSON string escaping, and
 * Content-Disposition for any file name (RFC 6266, RFC 8187).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http-private.h"

const char *http_status_reason(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" :
		status < 500 ? "Client Error" : "Server Error";
	}
}

static const char *const wkday[] = {"Sun", "Mon", "Tue", "Wed", "Thu",
				    "Fri", "Sat"};
static const char *const month[] = {"Jan", "Feb", "Mar", "Apr", "May",
				    "Jun", "Jul", "Aug", "Sep", "Oct",
				    "Nov", "Dec"};

void http_date(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 wkday[tm.tm_wday], tm.tm_mday, month[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* IMF-fixdate only (the form every current client sends). */
int http_date_parse(const char *s, time_t *t_r)
{
	char wd[4], mon[4];
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%3s %d %3s %d %d:%d:%d GMT", wd, &tm.tm_mday, mon,
		   &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 7)
		return -1;
	int m = -1;
	for (int i = 0; i < 12; i++)
		if (strcmp(mon, month[i]) == 0)
			m = i;
	if (m < 0 || tm.tm_year < 1970 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	tm.tm_mon = m;
	tm.tm_year -= 1900;
	*t_r = timegm(&tm);
	return 0;
}

/* RFC 9110 13.1.2: "*" or a list of entity tags, compared weakly. */
bool http_etag_match(const char *list, const char *etag)
{
	size_t el = strlen(etag);
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '*')
			return true;
		if (s[0] == 'W' && s[1] == '/')
			s += 2;
		if (*s != '"')
			break;
		const char *start = ++s;
		const char *q = strchr(start, '"');
		if (q == NULL)
			break;
		if ((size_t)(q - start) == el && memcmp(start, etag, el) == 0)
			return true;
		s = q + 1;
	}
	return false;
}

void http_json_escape(struct buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': buf_append_str(out, "\\\""); break;
		case '\\': buf_append_str(out, "\\\\"); break;
		case '\n': buf_append_str(out, "\\n"); break;
		case '\r': buf_append_str(out, "\\r"); break;
		case '\t': buf_append_str(out, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				buf_printf(out, "\\u%04x", *p);
			else if (*p == '<' || *p == '>' || *p == '&')
				buf_printf(out, "\\u%04x", *p);  /* safe in HTML */
			else
				buf_append_char(out, (char)*p);
		}
	}
}

/* Length of a valid UTF-8 sequence at s (1-4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 :
		(s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (n == 0 || (n == 2 && s[0] < 0xc2) || (n == 4 && s[0] > 0xf4))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if (n == 3 && s[0] == 0xe0 && s[1] < 0xa0)
		return 0;     /* overlong */
	if (n == 3 && s[0] == 0xed && s[1] >= 0xa0)
		return 0;     /* surrogate */
	if (n == 4 && s[0] == 0xf0 && s[1] < 0x90)
		return 0;
	if (n == 4 && s[0] == 0xf4 && s[1] >= 0x90)
		return 0;
	return n;
}

/* Unicode bidi controls (U+202A-202E, U+2066-2069) and other format
 * characters that make a name read differently than it is (U+200E,
 * U+200F, U+061C). */
static bool utf8_is_bidi(const unsigned char *s, size_t n)
{
	if (n == 3 && s[0] == 0xe2 && s[1] == 0x80 &&
	    ((s[2] >= 0xaa && s[2] <= 0xae) || s[2] == 0x8e || s[2] == 0x8f))
		return true;
	if (n == 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 &&
	    s[2] <= 0xa9)
		return true;
	return n == 2 && s[0] == 0xd8 && s[1] == 0x9c;
}

void http_content_disposition(struct buf *out, const char *disposition,
			      const char *name)
{
	const unsigned char *s = (const unsigned char *)(name ? name : "");
	struct buf ascii, ext;
	buf_init(&ascii, 0);
	buf_init(&ext, 0);
	bool need_ext = false;
	while (*s) {
		size_t n = utf8_len(s);
		if (n == 0 || utf8_is_bidi(s, n)) {
			/* Invalid UTF-8 or a bidi override: neutralised. */
			buf_append_char(&ascii, '_');
			buf_append_char(&ext, '_');
			need_ext = true;
			s += n == 0 ? 1 : n;
			continue;
		}
		if (n > 1) {
			buf_append_char(&ascii, '_');
			for (size_t i = 0; i < n; i++)
				buf_printf(&ext, "%%%02X", s[i]);
			need_ext = true;
			s += n;
			continue;
		}
		unsigned char c = *s++;
		/* Path separators, controls and quoting characters could
		 * change the saved path or break the header. */
		bool unsafe = c < 0x20 || c == 0x7f || c == '/' || c == '\\' ||
			c == '"' || c == '%' || c == ';' || c == ':' ||
			c == '*' || c == '?' || c == '<' || c == '>' ||
			c == '|';
		buf_append_char(&ascii, unsafe ? '_' : (char)c);
		/* RFC 8187 attr-char: ALPHA DIGIT !#$&+-.^_`|~ */
		bool attr = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			(c >= 'A' && c <= 'Z') || strchr("!#$&+-.^_`|~", c);
		if (unsafe)
			buf_append_char(&ext, '_');
		else if (attr)
			buf_append_char(&ext, (char)c);
		else
			buf_printf(&ext, "%%%02X", c);
		if (unsafe)
			need_ext = true;
	}
	/* A name made only of dots ("..") is no file name. */
	bool dots = ascii.len > 0;
	for (size_t i = 0; i < ascii.len; i++)
		if (ascii.data[i] != '.')
			dots = false;
	if (ascii.len == 0 || dots) {
		buf_reset(&ascii);
		buf_append_str(&ascii, "download");
		buf_reset(&ext);
		buf_append_str(&ext, "download");
	} else if (ascii.data[0] == '.') {
		ascii.data[0] = '_';   /* no hidden files, no "../" start */
		if (ext.data[0] == '.')
			ext.data[0] = '_';
	}
	buf_printf(out, "%s; filename=\"%s\"", disposition, ascii.data);
	if (need_ext)
		buf_printf(out, "; filename*=UTF-8''%s", ext.data);
	buf_free(&ascii);
	buf_free(&ext);
}
