#!/usr/bin/env python3
"""Turns dd.bin into a C array so instar carries its guest with it."""
import sys

src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(src, 'rb').read()
with open(dst, 'w') as f:
    f.write('/* Generated from %s by guest/embed.py. */\n' % src.split('/')[-1])
    f.write('#include <stddef.h>\n#include <stdint.h>\n')
    f.write('const uint8_t %s[] __attribute__((aligned(16))) = {\n' % name)
    for i in range(0, len(data), 16):
        f.write('  ' + ','.join(str(b) for b in data[i:i + 16]) + ',\n')
    f.write('};\nconst size_t %s_len = %d;\n' % (name, len(data)))
