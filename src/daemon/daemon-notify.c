/*
 * Readiness for systemd (Type=notify): READY=1 once every listener
 * accepts, RELOADING=1 (with MONOTONIC_USEC, as systemd 253's
 * notify-reload wants) while SIGHUP is handled, READY=1 after it,
 * STOPPING=1 at SIGTERM. Only the parent (the main pid) notifies; without
 * NOTIFY_SOCKET sd_notify does nothing.
 */
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon.h"
#include "log.h"

void daemon_notify(const char *state)
{
	char buf[128];
	if (strcmp(state, "RELOADING=1") == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
			 (unsigned long long)ts.tv_sec * 1000000ULL +
				 (unsigned long long)ts.tv_nsec / 1000);
		state = buf;
	}
	int rc = sd_notify(0, state);
	if (rc < 0)
		log_warn("loftd", NULL, "sd_notify: %s", strerror(-rc));
}
