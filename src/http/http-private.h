/*
 * Internals shared by the files of src/http: the server, a connection's
 * session, the request and response structs, and the built-in modules'
 * registration functions. Nothing outside src/http includes this.
 *
 * Threading: a connection's http_conn, its request and response are
 * touched by its I/O thread while no task runs and by the worker running
 * its task otherwise (the net layer never runs both at once). A stream
 * (http-stream.c) is the exception: other threads reach it only through
 * net_conn_post.
 */
#ifndef LOFT_HTTP_PRIVATE_H
#define LOFT_HTTP_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <zlib.h>

#include "auth.h"
#include "buf.h"
#include "http-parser.h"
#include "http.h"

#define HTTP_PIECE_SIZE (64 * 1024)   /* streamed body pieces */
#define HTTP_STREAM_MAX_INPUT 4096    /* bytes a streaming client may send */

struct http_settings {
	uint64_t max_body;            /* buffered request bodies */
	unsigned header_timeout;      /* whole head, from its first byte */
	unsigned body_timeout;        /* no body byte for this long */
	unsigned keepalive_timeout;   /* idle between requests */
	size_t stream_max_unread;     /* default for streams */
	char **cors_origins;
	size_t cors_count;
	bool webmail;                 /* serve the static files at "/" */
	char *webmail_dir;
	char *hostname;
	unsigned session_idle;        /* cookie session idle lifetime, s */
	unsigned session_remember;    /* "remember me" lifetime, s */
	bool session_bind_address;    /* a cookie works from one address */
	bool tls_configured;          /* [tls]: STARTTLS ports are advertised */
	bool trust_proxy;             /* X-Forwarded-For/-Proto from loopback */
	struct http_settings *older;  /* replaced by a reload: kept */
};

struct http_route_entry {
	struct http_route r;
	void *ctx;
	size_t prefix_len;
};

/* The server's settings: a reload (http_server_reload) swaps in new
 * ones; readers take them with http_set(), replaced ones are kept until
 * the server goes. */
struct http_server {
	struct http_settings *set_;
	struct store *store;
	struct auth *auth;
	struct http_route_entry *routes;
	size_t route_count;
	struct http_service *services;
	size_t service_count;
	bool admin;                   /* the [metrics] listener's server */
	struct http_static *static_files;
};

static inline const struct http_settings *
http_set(const struct http_server *server)
{
	return __atomic_load_n(&server->set_, __ATOMIC_ACQUIRE);
}

enum http_conn_state {
	HTTP_ST_HEAD,        /* reading a request head (I/O thread) */
	HTTP_ST_BEGIN,       /* task: authentication and begin() */
	HTTP_ST_BODY,        /* reading the body (I/O thread) */
	HTTP_ST_PIECE,       /* task: body() with a piece */
	HTTP_ST_RUN,         /* task: handle() */
	HTTP_ST_STREAM,      /* a long-lived stream is open */
	HTTP_ST_CLOSING,     /* the answer is out; closing */
};

enum http_encoding { HTTP_ENC_IDENTITY, HTTP_ENC_GZIP, HTTP_ENC_DEFLATE };

struct http_response {
	struct http_request *req;
	unsigned status;
	struct buf headers;           /* "Name: value\r\n" lines */
	char *etag;
	time_t last_modified;
	bool ranges;
	bool started;                 /* the status line went out */
	bool finished;                /* the whole response went out */
	bool chunked;                 /* a begin/write/end body */
	bool close;                   /* Connection: close after it */
	bool broken;                  /* a write failed */
	bool streaming;               /* http_response_stream */
	enum http_encoding enc;
	z_stream *z;
};

struct http_request {
	struct http_conn *hc;
	const struct http_head *head;
	const struct http_route_entry *route;
	struct buf body;              /* buffered body, or the current piece */
	uint64_t received;
	bool is_head;                 /* HEAD: no body in the answer */
	bool begun;                   /* begin() or handle() ran: cleanup owed */
	bool cleaned;
	bool authed;                  /* authentication was tried */
	/* The login gate has the credentials (auth_login_*): the request
	 * goes on in http_auth_resume. then: what was going on. */
	enum { HTTP_THEN_RUN, HTTP_THEN_BEGIN } auth_then;
	/* A handler's answer comes later (http_request_suspend): the task
	 * that ran it does not finish the request. */
	bool suspended;
	bool csrf_ok;                 /* a cookie request passed the check */
	enum http_auth_kind auth_kind;
	struct auth_user user;
	bool has_user;
	void *data;
	char *origin;
	char *joined;                 /* scratch for joined repeated fields */
	char csrf[AUTH_SESSION_ID_SIZE];  /* a cookie session's CSRF token */
	/* Who the client is, [http] trust_proxy applied (http-request.c). */
	bool client_known;
	bool client_secure;
	bool client_local;
	char client_ip[46];
	struct http_response resp;
};

struct http_conn {
	struct http_server *server;
	struct net_conn *conn;
	enum http_conn_state state;
	struct http_parser parser;
	struct http_body body;
	struct http_request *req;
	struct http_stream *stream;
	time_t head_deadline;         /* 0: no request started */
	bool expect_sent;             /* 100 Continue went out */
};

/* http-server.c */
const struct http_route_entry *http_route_find(struct http_server *server,
					       const char *method,
					       const char *path,
					       bool *other_method_r);
/* The request is answered: cleanup, then the next request or a close.
 * Worker or I/O thread, whichever has the connection. */
void http_conn_finish(struct http_conn *hc);
/* A one-shot answer from the I/O thread (errors before a handler). */
void http_conn_reply_io(struct http_conn *hc, unsigned status,
			const char *text, bool close);

/* http-response.c */
void http_response_init(struct http_response *resp, struct http_request *req);
void http_response_deinit(struct http_response *resp);
/* Whether the client accepts compression and which coding. */
enum http_encoding http_accepted_encoding(const struct http_request *req);
/* Writes the status line and the header fields (I/O thread or worker). */
int http_response_write_head(struct http_response *resp, uint64_t length,
			     bool has_length);
bool http_type_compressible(const char *type);

/* http-auth.c: authenticates the request if the route asks (worker).
 * Returns 0 to go on, -1 after answering (401, 403, 429...), 1 when the
 * credentials went to the login gate (src/auth): the task returns, and
 * http_auth_resume(hc, 0 or -1) continues in a later task. */
int http_auth_request(struct http_request *req);
/* http-server.c: where a request whose credentials were checked goes on
 * (req->auth_then); rc as http_auth_request's. */
void http_auth_resume(struct http_conn *hc, int rc);
/* A handler answers later (from a task of the connection), then calls
 * http_conn_finish. */
void http_request_suspend(struct http_request *req);
void http_auth_register(struct http_server *server);
/* 401 with the challenges; returns -1. */
int http_auth_answer_401(struct http_request *req, const char *detail);
/* Applies an auth_result: 0 (user set) or -1 after answering. */
int http_auth_verdict(struct http_request *req, enum auth_result r,
		      enum http_auth_kind kind, const char *what);

/* http-session.c: the session cookie, if the request has one: true with
 * *rc_r as http_auth_request's; false without a cookie. */
bool http_session_request(struct http_request *req, int *rc_r);
void http_session_register(struct http_server *server);

/* http-cors.c: the CORS headers for an allowed Origin (added to resp),
 * and the answer to a preflight (I/O thread or worker). */
bool http_cors_origin_allowed(const struct http_server *server,
			      const char *origin);
void http_cors_headers(struct http_request *req);
bool http_cors_preflight(struct http_conn *hc, struct http_request *req);

/* http-server.c: the request is over (its cleanup ran, its memory is
 * freed); next_request then reads the next one (I/O thread). */
void http_conn_request_done(struct http_conn *hc);
void http_conn_next_request(struct http_conn *hc);

/* http-stream.c */
/* The handler that opened a stream has returned (end of its task). */
void http_stream_task_end(struct http_conn *hc);
void http_stream_conn_closed(struct http_conn *hc);
void http_stream_tick(struct http_conn *hc);
void http_stream_input(struct http_conn *hc);
void http_stream_shutdown(struct http_conn *hc);

/* Built-in modules (each registers its routes). */
void http_static_register(struct http_server *server);
void http_static_free(struct http_static **st);
void http_setup_register(struct http_server *server);
void http_metrics_register(struct http_server *server);

/* http-autodiscover.c: EMailAddress and AcceptableResponseSchema of an
 * Autodiscover POX request; -1 if it is not one (or unsafe). */
int http_autodiscover_parse(const char *body, size_t len, char *email,
			    size_t email_size, char *schema,
			    size_t schema_size);

/* http-request.c: the value of name in an application/x-www-form-
 * urlencoded string, decoded, or NULL (caller frees). */
char *http_form_value(const char *form, size_t len, const char *name);

/* http-util.c */
/* An RFC 9110 5.6.7 IMF-fixdate. */
void http_date(time_t t, char out[32]);
int http_date_parse(const char *s, time_t *t_r);
/* Whether a comma list (If-None-Match) holds this entity tag. */
bool http_etag_match(const char *list, const char *etag);

#endif
