#include "testpause.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "buf.h"

void test_pause(const char *env)
{
	const char *f = getenv(env);
	if (f == NULL || access(f, F_OK) != 0)
		return;
	char *ready = xasprintf("%s.ready", f);
	int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	free(ready);
	for (int i = 0; i < 6000 && access(f, F_OK) == 0; i++)
		usleep(100000);
}
