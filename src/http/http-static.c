/*
 * The webmail's static files at "/" (filled in next).
 */
#include "http-private.h"

void http_static_register(struct http_server *server)
{
}
