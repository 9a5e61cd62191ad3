#ifndef LOFT_TESTPAUSE_H
#define LOFT_TESTPAUSE_H

/* Tests only: when the environment variable env names a file that
 * exists, makes FILE.ready and waits (at most 10 minutes) until FILE is
 * removed, so a test can act at this point (kill, expunge, rename) and
 * then let the code go on. Does nothing when env is unset. */
void test_pause(const char *env);

#endif
