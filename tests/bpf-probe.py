#!/usr/bin/env python3
"""Exit 0 if this machine lets us use BPF (the bpf() system call creates a
map), 1 otherwise, with the reason on stderr. Independent of Carillon's own
program, so a program the verifier rejects is never mistaken for a machine
without BPF."""
import ctypes
import os
import platform
import struct
import sys

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2

if SYS_BPF is None:
    print(f"no bpf() syscall number known for {platform.machine()}", file=sys.stderr)
    sys.exit(1)
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack("IIII", BPF_MAP_TYPE_ARRAY, 4, 4, 1), 128)
fd = libc.syscall(SYS_BPF, BPF_MAP_CREATE, attr, 128)
if fd < 0:
    err = ctypes.get_errno()
    print(f"bpf(BPF_MAP_CREATE) failed: {os.strerror(err)}", file=sys.stderr)
    sys.exit(1)
os.close(fd)
