"""Free TCP ports for private test servers (loftd, Dovecot, Postfix).

A port is picked at random below the kernel's ephemeral range (32768 and
up on Linux), where no client socket and no bind(0) of a parallel test is
handed one, and is checked bindable. It is free only until somebody binds
it: a server that then finds it taken should be given a new one
(loftenv.Loft.start() does that).
"""

import random
import socket

LOW, HIGH = 20000, 32000
_rng = random.SystemRandom()
# Ports this process handed out: a server not yet started does not hold
# its port, so the bind check alone could give two of them the same one.
_given = set()


def free_port(host='127.0.0.1'):
    """A TCP port nobody listens on right now, and never one this process
    handed out before."""
    for _ in range(1000):
        port = _rng.randrange(LOW, HIGH)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            _given.add(port)
            return port
    raise RuntimeError('no free port in %d..%d' % (LOW, HIGH))
