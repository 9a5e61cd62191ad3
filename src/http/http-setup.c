/*
 * Client set-up, generated from the configured listeners (lib/mailsvc.h)
 * and the hostname, so what clients are told is what loftd serves:
 *
 *   GET  /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=A
 *   GET  /mail/config-v1.1.xml?emailaddress=A        Thunderbird autoconfig
 *   POST /autodiscover/autodiscover.xml              Microsoft Autodiscover
 *                                                    (POX, Outlook schema)
 *   GET  /setup/apple.mobileconfig?emailaddress=A    Apple configuration
 *                                                    profile (unsigned)
 *   GET  /setup/services.json                        the same, for the
 *                                                    webmail's device page
 *
 * Only TLS is advertised: implicit TLS first (RFC 8314), then STARTTLS
 * when [tls] is configured; a plain port without TLS never. An address
 * of a domain this server does not host gets 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "http-private.h"
#include "log.h"
#include "mailsvc.h"

struct setup_svc {
	const struct mailsvc *svc;
	unsigned port;
};

/* The advertised services in order of preference; returns the count. */
static size_t services(const struct http_server *server,
		       struct setup_svc out[16])
{
	size_t n = 0;
	for (const struct mailsvc *m = mailsvc_table; m->section && n < 16; m++) {
		if (!m->implicit_tls && !http_set(server)->tls_configured)
			continue;
		unsigned first = 0, outside = 0;
		for (size_t i = 0; i < server->service_count; i++) {
			if (strcmp(server->services[i].proto, m->section) != 0)
				continue;
			bool lo;
			unsigned p = mailsvc_port(server->services[i].addr, &lo);
			if (p != 0 && first == 0)
				first = p;
			if (p != 0 && !lo && outside == 0)
				outside = p;
		}
		unsigned port = outside ? outside : first;
		if (port == 0)
			continue;
		out[n].svc = m;
		out[n].port = port;
		n++;
	}
	return n;
}

static void xml_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': buf_append_str(out, "&lt;"); break;
		case '>': buf_append_str(out, "&gt;"); break;
		case '&': buf_append_str(out, "&amp;"); break;
		case '"': buf_append_str(out, "&quot;"); break;
		case '\'': buf_append_str(out, "&apos;"); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				buf_append_char(out, *s);
		}
	}
}

/* A plausible address: local@domain of printable ASCII without XML or
 * header specials. Returns the domain part or NULL. */
static const char *address_domain(const char *a)
{
	if (a == NULL || strlen(a) > 320)
		return NULL;
	const char *at = strrchr(a, '@');
	if (at == NULL || at == a || at[1] == '\0')
		return NULL;
	for (const char *p = a; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || strchr("<>&\"'\\/()[],;:", c))
			return NULL;
	}
	return at + 1;
}

/* 0 if the address may be set up here; -1 after answering. */
static int check_address(struct http_request *req, struct http_response *resp,
			 const char *addr, bool required)
{
	struct http_server *server = req->hc->server;
	if (addr == NULL && !required)
		return 0;
	const char *domain = address_domain(addr);
	if (domain == NULL) {
		http_response_error(resp, 400, "Give emailaddress=user@domain.");
		return -1;
	}
	if (server->auth != NULL && !auth_domain_exists(server->auth, domain)) {
		char lower[256];
		snprintf(lower, sizeof(lower), "%s", domain);
		for (char *c = lower; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		if (!auth_domain_exists(server->auth, lower)) {
			http_response_error(resp, 404, "This server does not "
					    "host that domain.");
			return -1;
		}
	}
	return 0;
}

static const char *mail_domain(const struct http_server *server,
			       const char *addr)
{
	const char *d = address_domain(addr);
	if (d != NULL)
		return d;
	const char *host = http_set(server)->hostname;
	const char *dot = strchr(host, '.');
	return dot != NULL && strchr(dot + 1, '.') != NULL ? dot + 1 : host;
}

/* ---- Thunderbird autoconfig ----------------------------------------- */

static void handle_autoconfig(struct http_request *req,
			      struct http_response *resp, void *ctx)
{
	struct http_server *server = req->hc->server;
	char *addr = http_query_param(req, "emailaddress");
	if (check_address(req, resp, addr, false) < 0) {
		free(addr);
		return;
	}
	const char *domain = mail_domain(server, addr);
	struct setup_svc sv[16];
	size_t n = services(server, sv);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<clientConfig version=\"1.1\">\n"
		       "  <emailProvider id=\"");
	xml_escape(&b, domain);
	buf_append_str(&b, "\">\n    <domain>");
	xml_escape(&b, domain);
	buf_append_str(&b, "</domain>\n    <displayName>");
	xml_escape(&b, domain);
	buf_append_str(&b, " mail</displayName>\n    <displayShortName>");
	xml_escape(&b, domain);
	buf_append_str(&b, "</displayShortName>\n");
	for (int outgoing = 0; outgoing < 2; outgoing++) {
		for (size_t i = 0; i < n; i++) {
			bool smtp = sv[i].svc->kind == MAILSVC_SMTP;
			if (smtp != (outgoing == 1))
				continue;
			buf_printf(&b, "    <%s type=\"%s\">\n      <hostname>",
				   smtp ? "outgoingServer" : "incomingServer",
				   mailsvc_kind_name(sv[i].svc->kind));
			xml_escape(&b, http_set(server)->hostname);
			buf_printf(&b, "</hostname>\n      <port>%u</port>\n"
				   "      <socketType>%s</socketType>\n"
				   "      <authentication>password-cleartext"
				   "</authentication>\n"
				   "      <username>%%EMAILADDRESS%%</username>\n"
				   "    </%s>\n", sv[i].port,
				   sv[i].svc->implicit_tls ? "SSL" : "STARTTLS",
				   smtp ? "outgoingServer" : "incomingServer");
		}
	}
	buf_append_str(&b, "  </emailProvider>\n</clientConfig>\n");
	http_response_content_type(resp, "application/xml; charset=utf-8");
	http_response_set_header(resp, "Cache-Control", "max-age=3600");
	http_response_send(resp, b.data, b.len);
	buf_free(&b);
	free(addr);
}

/* ---- Microsoft Autodiscover (POX) ----------------------------------- */

#define AD_RESPONSE_NS \
	"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
#define AD_OUTLOOK_NS \
	"http://schemas.microsoft.com/exchange/autodiscover/outlook/" \
	"responseschema/2006a"

static void autodiscover_error(struct http_response *resp, const char *code,
			       const char *message)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		   "<Autodiscover xmlns=\"" AD_RESPONSE_NS "\">\n"
		   "  <Response>\n    <Error Time=\"00:00:00\" Id=\"1\">\n"
		   "      <ErrorCode>%s</ErrorCode>\n      <Message>", code);
	xml_escape(&b, message);
	buf_append_str(&b, "</Message>\n      <DebugData />\n    </Error>\n"
		       "  </Response>\n</Autodiscover>\n");
	http_response_content_type(resp, "application/xml; charset=utf-8");
	http_response_send(resp, b.data, b.len);
	buf_free(&b);
}

static void handle_autodiscover(struct http_request *req,
				struct http_response *resp, void *ctx)
{
	struct http_server *server = req->hc->server;
	size_t len;
	const char *body = http_request_body(req, &len);
	char addr[330], schema[256];
	if (http_autodiscover_parse(body, len, addr, sizeof(addr), schema,
				    sizeof(schema)) < 0) {
		http_response_status(resp, 400);
		autodiscover_error(resp, "600", "Invalid Request");
		return;
	}
	if (schema[0] != '\0' && strcmp(schema, AD_OUTLOOK_NS) != 0) {
		/* e.g. the mobilesync (ActiveSync) schema: not offered. */
		autodiscover_error(resp, "601", "Provider is not available for "
				   "the requested schema");
		return;
	}
	if (check_address(req, resp, addr, true) < 0)
		return;
	struct setup_svc sv[16];
	size_t n = services(server, sv);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		       "<Autodiscover xmlns=\"" AD_RESPONSE_NS "\">\n"
		       "  <Response xmlns=\"" AD_OUTLOOK_NS "\">\n"
		       "    <Account>\n      <AccountType>email</AccountType>\n"
		       "      <Action>settings</Action>\n");
	for (size_t i = 0; i < n; i++) {
		static const char *const types[] = {"IMAP", "POP3", "SMTP"};
		buf_printf(&b, "      <Protocol>\n        <Type>%s</Type>\n"
			   "        <Server>", types[sv[i].svc->kind]);
		xml_escape(&b, http_set(server)->hostname);
		buf_printf(&b, "</Server>\n        <Port>%u</Port>\n"
			   "        <LoginName>", sv[i].port);
		xml_escape(&b, addr);
		buf_append_str(&b, "</LoginName>\n"
			       "        <DomainRequired>off</DomainRequired>\n"
			       "        <SPA>off</SPA>\n");
		if (sv[i].svc->implicit_tls)
			buf_append_str(&b, "        <SSL>on</SSL>\n");
		else
			buf_append_str(&b, "        <Encryption>TLS</Encryption>\n");
		buf_append_str(&b, "        <AuthRequired>on</AuthRequired>\n");
		if (sv[i].svc->kind == MAILSVC_SMTP)
			buf_append_str(&b, "        <UsePOPAuth>off</UsePOPAuth>\n"
				       "        <SMTPLast>off</SMTPLast>\n");
		buf_append_str(&b, "      </Protocol>\n");
	}
	buf_append_str(&b, "    </Account>\n  </Response>\n</Autodiscover>\n");
	http_response_content_type(resp, "application/xml; charset=utf-8");
	http_response_send(resp, b.data, b.len);
	buf_free(&b);
}

/* ---- Apple configuration profile ------------------------------------ */

/* A stable UUID from text (so a downloaded profile replaces the last). */
static void uuid_of(const char *text, char out[37])
{
	unsigned char h[32];
	unsigned int len = sizeof(h);
	EVP_Digest(text, strlen(text), h, &len, EVP_sha256(), NULL);
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x50);   /* version 5-like */
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
		 "%02X%02X%02X%02X%02X%02X", h[0], h[1], h[2], h[3], h[4], h[5],
		 h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
		 h[15]);
}

static void plist_string(struct buf *b, const char *key, const char *value)
{
	buf_printf(b, "      <key>%s</key>\n      <string>", key);
	xml_escape(b, value);
	buf_append_str(b, "</string>\n");
}

static void handle_mobileconfig(struct http_request *req,
				struct http_response *resp, void *ctx)
{
	struct http_server *server = req->hc->server;
	char *addr = http_query_param(req, "emailaddress");
	if (check_address(req, resp, addr, true) < 0) {
		free(addr);
		return;
	}
	struct setup_svc sv[16];
	size_t n = services(server, sv);
	const struct setup_svc *in = NULL, *out = NULL;
	for (size_t i = 0; i < n; i++) {
		if (in == NULL && sv[i].svc->kind == MAILSVC_IMAP)
			in = &sv[i];
		if (out == NULL && sv[i].svc->kind == MAILSVC_SMTP)
			out = &sv[i];
	}
	for (size_t i = 0; i < n && in == NULL; i++)
		if (sv[i].svc->kind == MAILSVC_POP3)
			in = &sv[i];
	if (in == NULL) {
		free(addr);
		http_response_error(resp, 404, "No IMAP or POP3 listener with "
				    "TLS is configured.");
		return;
	}
	char reverse[300];
	const char *host = http_set(server)->hostname;
	/* com.example.mail from mail.example.com */
	reverse[0] = '\0';
	for (const char *end = host + strlen(host); end > host;) {
		const char *dot = end;
		while (dot > host && dot[-1] != '.')
			dot--;
		size_t used = strlen(reverse);
		snprintf(reverse + used, sizeof(reverse) - used, "%s%.*s",
			 used ? "." : "", (int)(end - dot), dot);
		end = dot > host ? dot - 1 : host;
	}
	char u1[37], u2[37];
	char *seed = xasprintf("%s/%s/profile", host, addr);
	uuid_of(seed, u1);
	free(seed);
	seed = xasprintf("%s/%s/mail", host, addr);
	uuid_of(seed, u2);
	free(seed);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
		       "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
		       "<plist version=\"1.0\">\n<dict>\n"
		       "  <key>PayloadContent</key>\n  <array>\n    <dict>\n");
	plist_string(&b, "EmailAccountDescription", addr);
	plist_string(&b, "EmailAccountType", in->svc->kind == MAILSVC_IMAP ?
		     "EmailTypeIMAP" : "EmailTypePOP");
	plist_string(&b, "EmailAddress", addr);
	plist_string(&b, "IncomingMailServerAuthentication", "EmailAuthPassword");
	plist_string(&b, "IncomingMailServerHostName", host);
	buf_printf(&b, "      <key>IncomingMailServerPortNumber</key>\n"
		   "      <integer>%u</integer>\n"
		   "      <key>IncomingMailServerUseSSL</key>\n      <true/>\n",
		   in->port);
	plist_string(&b, "IncomingMailServerUsername", addr);
	if (out != NULL) {
		plist_string(&b, "OutgoingMailServerAuthentication",
			     "EmailAuthPassword");
		plist_string(&b, "OutgoingMailServerHostName", host);
		buf_printf(&b, "      <key>OutgoingMailServerPortNumber</key>\n"
			   "      <integer>%u</integer>\n"
			   "      <key>OutgoingMailServerUseSSL</key>\n"
			   "      <true/>\n"
			   "      <key>OutgoingPasswordSameAsIncomingPassword</key>\n"
			   "      <true/>\n", out->port);
		plist_string(&b, "OutgoingMailServerUsername", addr);
	}
	plist_string(&b, "PayloadDescription", "Mail account settings");
	plist_string(&b, "PayloadDisplayName", addr);
	char *ident = xasprintf("%s.loft.mail.%s", reverse, addr);
	plist_string(&b, "PayloadIdentifier", ident);
	plist_string(&b, "PayloadType", "com.apple.mail.managed");
	plist_string(&b, "PayloadUUID", u2);
	buf_append_str(&b, "      <key>PayloadVersion</key>\n"
		       "      <integer>1</integer>\n"
		       "      <key>PreventAppSheet</key>\n      <false/>\n"
		       "      <key>PreventMove</key>\n      <false/>\n"
		       "      <key>SMIMEEnabled</key>\n      <false/>\n"
		       "    </dict>\n  </array>\n");
	struct buf desc;
	buf_init(&desc, 0);
	buf_printf(&desc, "Mail for %s on %s", addr, host);
	buf_printf(&b, "  <key>PayloadDescription</key>\n  <string>");
	xml_escape(&b, desc.data);
	buf_append_str(&b, "</string>\n  <key>PayloadDisplayName</key>\n"
		       "  <string>");
	xml_escape(&b, addr);
	buf_append_str(&b, "</string>\n  <key>PayloadIdentifier</key>\n"
		       "  <string>");
	xml_escape(&b, ident);
	buf_printf(&b, ".profile</string>\n"
		   "  <key>PayloadRemovalDisallowed</key>\n  <false/>\n"
		   "  <key>PayloadType</key>\n  <string>Configuration</string>\n"
		   "  <key>PayloadUUID</key>\n  <string>%s</string>\n"
		   "  <key>PayloadVersion</key>\n  <integer>1</integer>\n"
		   "</dict>\n</plist>\n", u1);
	buf_free(&desc);
	free(ident);
	struct buf cd;
	buf_init(&cd, 0);
	char *fname = xasprintf("%s.mobileconfig", addr);
	http_content_disposition(&cd, "attachment", fname);
	free(fname);
	http_response_content_type(resp, "application/x-apple-aspen-config");
	http_response_set_header(resp, "Content-Disposition", "%s", cd.data);
	http_response_set_header(resp, "Cache-Control", "no-store");
	http_response_send(resp, b.data, b.len);
	buf_free(&cd);
	buf_free(&b);
	free(addr);
}

/* ---- services.json --------------------------------------------------- */

static void handle_services(struct http_request *req,
			    struct http_response *resp, void *ctx)
{
	struct http_server *server = req->hc->server;
	struct setup_svc sv[16];
	size_t n = services(server, sv);
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "{\"hostname\":\"");
	http_json_escape(&b, http_set(server)->hostname);
	buf_append_str(&b, "\",\"services\":[");
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s{\"protocol\":\"%s\",\"port\":%u,"
			   "\"security\":\"%s\"}", i ? "," : "",
			   mailsvc_kind_name(sv[i].svc->kind), sv[i].port,
			   sv[i].svc->implicit_tls ? "tls" : "starttls");
	buf_append_str(&b, "],\"autoconfig\":\"/.well-known/autoconfig/mail/"
		       "config-v1.1.xml\",\"mobileconfig\":"
		       "\"/setup/apple.mobileconfig\"}");
	http_response_content_type(resp, "application/json");
	http_response_send(resp, b.data, b.len);
	buf_free(&b);
}

void http_setup_register(struct http_server *server)
{
	static const struct http_route routes[] = {
		{.method = "GET", .prefix =
		 "/.well-known/autoconfig/mail/config-v1.1.xml",
		 .flags = HTTP_ROUTE_EXACT, .handle = handle_autoconfig},
		{.method = "GET", .prefix = "/mail/config-v1.1.xml",
		 .flags = HTTP_ROUTE_EXACT, .handle = handle_autoconfig},
		{.method = "POST", .prefix = "/autodiscover/autodiscover.xml",
		 .flags = HTTP_ROUTE_EXACT, .max_body = 16384,
		 .handle = handle_autodiscover},
		{.method = "POST", .prefix = "/Autodiscover/Autodiscover.xml",
		 .flags = HTTP_ROUTE_EXACT, .max_body = 16384,
		 .handle = handle_autodiscover},
		{.method = "GET", .prefix = "/setup/apple.mobileconfig",
		 .flags = HTTP_ROUTE_EXACT, .handle = handle_mobileconfig},
		{.method = "GET", .prefix = "/setup/services.json",
		 .flags = HTTP_ROUTE_EXACT | HTTP_ROUTE_CORS,
		 .handle = handle_services},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		http_route_add(server, &routes[i], NULL);
}
