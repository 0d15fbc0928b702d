#!/usr/bin/env python3
"""Build signed-image.bin: an independent (Python, zlib) implementation of `fwtool -I` then
`fwtool -S`, used to cross-check attendant-proto's fwtool reader. See README.md."""
import struct
import zlib

MAGIC = 0x46577830


def fwtool_crc(data: bytes) -> int:
    # fwtool's CRC has no final XOR: the complement of zlib's CRC32.
    return zlib.crc32(data) ^ 0xFFFFFFFF


def append(image: bytes, kind: int, payload: bytes) -> bytes:
    if kind == 1:
        payload = struct.pack(">II", 0, 0) + payload  # fwimage_header: version 0, flags 0
    block = image + payload
    size = len(payload) + 16
    return block + struct.pack(">IIB3xI", MAGIC, fwtool_crc(block), kind, size)


payload = bytes((i * 31 + 7) % 256 for i in range(8192))
metadata = open("metadata.json", "rb").read()
signature = b"not a real ucert: placeholder signature blob for tests\n"
image = append(append(payload, 1, metadata), 0, signature)
open("signed-image.bin", "wb").write(image)
