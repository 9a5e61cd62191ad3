"""Sieve figures (issue 16), one run: compile time and compiled size of a
1,000-rule script (goal: under 50 ms), as `loftctl sieve check --verbose`
measures the compile alone; median of 7.

Run: LOFTCTL=build/loftctl python3 bench/sieve.py
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile


def script(rules):
    out = ['require ["fileinto", "imap4flags", "envelope", "subaddress", '
           '"body", "vacation", "variables", "relational", '
           '"comparator-i;ascii-numeric"];']
    kinds = [
        'if header :contains "subject" "topic-{i}" {{ fileinto "F{i}"; }}',
        'if address :domain :is "from" "d{i}.example" {{ addflag "$L{i}"; }}',
        'if envelope :detail "to" "tag{i}" {{ fileinto :flags "\\\\Seen" '
        '"T{i}"; stop; }}',
        'if body :text :contains "word{i}" {{ setflag "$B{i}"; }}',
        'if header :matches "list-id" "*<l{i}.*>*" {{ set "l" "${{1}}"; '
        'fileinto "Lists/${{l}}"; }}',
    ]
    for i in range(rules):
        out.append(kinds[i % len(kinds)].format(i=i))
    return '\n'.join(out) + '\n'


def main():
    loftctl = os.environ.get('LOFTCTL', 'build/loftctl')
    tmp = tempfile.mkdtemp(prefix='loft-bench-sieve-')
    cfg = os.path.join(tmp, 'loftd.conf')
    with open(cfg, 'w') as f:
        f.write('data_dir = %s\n' % os.path.join(tmp, 'data'))
    text = script(1000)
    times, size = [], None
    for _ in range(7):
        r = subprocess.run([loftctl, '--config', cfg, 'sieve', 'check',
                            '--verbose'], input=text, capture_output=True,
                           text=True)
        m = re.search(r'compiled in ([\d.]+) ms, (\d+) bytes of source, '
                      r'(\d+) bytes compiled', r.stdout)
        if r.returncode != 0 or m is None:
            print(r.stdout, r.stderr)
            sys.exit(1)
        times.append(float(m.group(1)))
        size = (int(m.group(2)), int(m.group(3)))
    print('1,000-rule script: %d bytes of source, compiled in %.2f ms '
          '(median of 7), %d bytes compiled' % (size[0],
                                                statistics.median(times),
                                                size[1]))


if __name__ == '__main__':
    main()
