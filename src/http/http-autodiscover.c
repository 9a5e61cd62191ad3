/*
 * The Autodiscover POX request (an XML document POSTed by Outlook and
 * other clients), parsed with expat: only EMailAddress and
 * AcceptableResponseSchema under Autodiscover/Request are read. A DOCTYPE
 * (and so any entity declaration: no billion laughs, no external
 * entities), more than 32 levels of nesting, or values over 320 bytes
 * make the request invalid. Pure function, fuzzed
 * (tests/fuzz/fuzz-http-autodiscover.c).
 */
#include <string.h>

#include <expat.h>

#include "http-private.h"

#define MAX_DEPTH 32
#define MAX_VALUE 320

struct ad_parse {
	XML_Parser parser;
	int depth;
	bool in_request;
	int field;            /* 1 EMailAddress, 2 schema, 0 other */
	struct buf value;
	char *email;
	size_t email_size;
	char *schema;
	size_t schema_size;
	bool seen_root;
	bool failed;
};

/* "ns local" (expat's namespace separator ' ') -> local name */
static const char *local_name(const char *name)
{
	const char *sp = strrchr(name, ' ');
	return sp != NULL ? sp + 1 : name;
}

static void ad_fail(struct ad_parse *p)
{
	p->failed = true;
	XML_StopParser(p->parser, XML_FALSE);
}

static void XMLCALL start(void *ud, const XML_Char *name,
			  const XML_Char **attrs)
{
	struct ad_parse *p = ud;
	const char *ln = local_name(name);
	if (++p->depth > MAX_DEPTH) {
		ad_fail(p);
		return;
	}
	if (p->depth == 1) {
		if (strcmp(ln, "Autodiscover") != 0)
			ad_fail(p);
		p->seen_root = true;
		return;
	}
	if (p->depth == 2 && strcmp(ln, "Request") == 0)
		p->in_request = true;
	if (p->depth == 3 && p->in_request) {
		p->field = strcmp(ln, "EMailAddress") == 0 ? 1 :
			strcmp(ln, "AcceptableResponseSchema") == 0 ? 2 : 0;
		buf_reset(&p->value);
	}
}

static void XMLCALL end(void *ud, const XML_Char *name)
{
	struct ad_parse *p = ud;
	if (p->depth == 3 && p->field != 0) {
		char *dst = p->field == 1 ? p->email : p->schema;
		size_t size = p->field == 1 ? p->email_size : p->schema_size;
		const char *v = p->value.data ? p->value.data : "";
		/* Trim the whitespace around the value. */
		while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
			v++;
		size_t n = strlen(v);
		while (n > 0 && strchr(" \t\r\n", v[n - 1]))
			n--;
		if (n >= size || memchr(v, '\0', n) != NULL) {
			ad_fail(p);
			return;
		}
		memcpy(dst, v, n);
		dst[n] = '\0';
		p->field = 0;
	}
	if (p->depth == 2)
		p->in_request = false;
	p->depth--;
}

static void XMLCALL text(void *ud, const XML_Char *s, int len)
{
	struct ad_parse *p = ud;
	if (p->depth != 3 || p->field == 0)
		return;
	if (buf_append(&p->value, s, (size_t)len) < 0)
		ad_fail(p);
}

static void XMLCALL doctype(void *ud, const XML_Char *name,
			    const XML_Char *sysid, const XML_Char *pubid,
			    int has_internal)
{
	ad_fail(ud);
}

static void XMLCALL entity(void *ud, const XML_Char *name, int param,
			   const XML_Char *value, int value_len,
			   const XML_Char *base, const XML_Char *sysid,
			   const XML_Char *pubid, const XML_Char *notation)
{
	ad_fail(ud);
}

int http_autodiscover_parse(const char *body, size_t len, char *email,
			    size_t email_size, char *schema,
			    size_t schema_size)
{
	struct ad_parse p;
	memset(&p, 0, sizeof(p));
	email[0] = '\0';
	schema[0] = '\0';
	if (len > 65536 || len > (size_t)INT32_MAX)
		return -1;
	p.email = email;
	p.email_size = email_size;
	p.schema = schema;
	p.schema_size = schema_size;
	buf_init(&p.value, MAX_VALUE);
	p.parser = XML_ParserCreateNS(NULL, ' ');
	if (p.parser == NULL)
		abort();
	XML_SetUserData(p.parser, &p);
	XML_SetElementHandler(p.parser, start, end);
	XML_SetCharacterDataHandler(p.parser, text);
	XML_SetStartDoctypeDeclHandler(p.parser, doctype);
	XML_SetEntityDeclHandler(p.parser, entity);
	XML_SetParamEntityParsing(p.parser, XML_PARAM_ENTITY_PARSING_NEVER);
	enum XML_Status st = XML_Parse(p.parser, body, (int)len, XML_TRUE);
	XML_ParserFree(p.parser);
	buf_free(&p.value);
	if (st != XML_STATUS_OK || p.failed || !p.seen_root ||
	    email[0] == '\0') {
		email[0] = '\0';
		schema[0] = '\0';
		return -1;
	}
	return 0;
}
