/* Default limits of the MIME parser (see struct mail_limits). */
#include "mail.h"

void mail_limits_default(struct mail_limits *limits)
{
	limits->max_depth = 100;
	limits->max_parts = 10000;
	limits->max_header_fields = 10000;
	limits->max_search_text = 16u << 20;
}
