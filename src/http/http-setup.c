/*
 * Client set-up: autoconfig, Autodiscover, .mobileconfig (filled in next).
 */
#include "http-private.h"

void http_setup_register(struct http_server *server)
{
}
