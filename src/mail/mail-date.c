/*
 * RFC 5322 3.3 date-time, with the obsolete forms of 4.3 that real mail
 * still carries: two- and three-digit years, missing seconds or weekday,
 * named zones (UT, GMT, EST..PDT, military letters = +0000 as 4.3 says),
 * comments, and a missing zone taken as +0000.
 */
#include "mail-private.h"

#include <string.h>
#include <strings.h>

struct dlex {
	const char *p, *end;
};

static void dskip(struct dlex *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (mail_is_lwsp(c) || c == ',') {
			lx->p++;
		} else if (c == '(') {
			int depth = 0;
			while (lx->p < lx->end) {
				c = *lx->p++;
				if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

static bool dnum(struct dlex *lx, int maxdigits, int *v_r, int *digits_r)
{
	int v = 0, n = 0;
	while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9' && n < maxdigits) {
		v = v * 10 + (*lx->p - '0');
		lx->p++;
		n++;
	}
	*v_r = v;
	if (digits_r)
		*digits_r = n;
	return n > 0;
}

static size_t dword(struct dlex *lx, char *w, size_t cap)
{
	size_t n = 0;
	while (lx->p < lx->end &&
	       ((*lx->p >= 'a' && *lx->p <= 'z') || (*lx->p >= 'A' && *lx->p <= 'Z'))) {
		if (n < cap - 1)
			w[n++] = *lx->p;
		lx->p++;
	}
	w[n] = '\0';
	return n;
}

static int month_of(const char *w)
{
	static const char *const months[] = {"jan", "feb", "mar", "apr", "may",
		"jun", "jul", "aug", "sep", "oct", "nov", "dec"};
	for (int i = 0; i < 12; i++)
		if (strncasecmp(w, months[i], 3) == 0)
			return i;
	return -1;
}

static bool zone_of(const char *w, int *min_r)
{
	static const struct { const char *n; int h; } zones[] = {
		{"UT", 0}, {"UTC", 0}, {"GMT", 0}, {"Z", 0}, {"EST", -5},
		{"EDT", -4}, {"CST", -6}, {"CDT", -5}, {"MST", -7}, {"MDT", -6},
		{"PST", -8}, {"PDT", -7},
	};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		if (strcasecmp(w, zones[i].n) == 0) {
			*min_r = zones[i].h * 60;
			return true;
		}
	}
	if (strlen(w) == 1) {
		*min_r = 0;   /* military zones: RFC 5322 4.3 says treat as 0 */
		return true;
	}
	return false;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

bool mail_date_parse(const char *s, size_t len, time_t *time_r,
		     int *tz_offset_r)
{
	struct dlex lx = {s, s + len};
	char w[16];
	int day, year, hour, min, sec = 0, digits, mon;
	dskip(&lx);
	/* optional day of week */
	const char *save = lx.p;
	if (dword(&lx, w, sizeof(w)) > 0)
		dskip(&lx);
	else
		lx.p = save;
	if (!dnum(&lx, 2, &day, NULL))
		return false;
	dskip(&lx);
	if (lx.p < lx.end && *lx.p == '-')
		lx.p++;
	if (dword(&lx, w, sizeof(w)) < 3 || (mon = month_of(w)) < 0)
		return false;
	dskip(&lx);
	if (lx.p < lx.end && *lx.p == '-')
		lx.p++;
	if (!dnum(&lx, 4, &year, &digits))
		return false;
	if (digits == 2)
		year += year < 50 ? 2000 : 1900;
	else if (digits == 3)
		year += 1900;
	dskip(&lx);
	if (!dnum(&lx, 2, &hour, NULL) || lx.p >= lx.end || *lx.p != ':')
		return false;
	lx.p++;
	if (!dnum(&lx, 2, &min, NULL))
		return false;
	if (lx.p < lx.end && *lx.p == ':') {
		lx.p++;
		if (!dnum(&lx, 2, &sec, NULL))
			return false;
	}
	if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return false;
	dskip(&lx);
	int tz = 0;
	if (lx.p < lx.end && (*lx.p == '+' || *lx.p == '-')) {
		int sign = *lx.p == '-' ? -1 : 1, v;
		lx.p++;
		if (!dnum(&lx, 4, &v, &digits) || digits != 4)
			return false;
		if (v % 100 > 59)
			return false;
		tz = sign * ((v / 100) * 60 + v % 100);
	} else if (dword(&lx, w, sizeof(w)) > 0) {
		if (!zone_of(w, &tz))
			tz = 0;
	}
	int64_t days = days_from_civil(year, (unsigned)mon + 1, (unsigned)day);
	int64_t t = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)tz * 60;
	*time_r = (time_t)t;
	if (tz_offset_r)
		*tz_offset_r = tz;
	return true;
}
