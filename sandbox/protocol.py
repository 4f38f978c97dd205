"""Length-prefixed framing over pipes: 4-byte big-endian length, then the payload.

Client -> host payloads are pickles (the host trusts its client); host -> client payloads are
strict JSON (the client never unpickles anything an untrusted host produced).
"""

from __future__ import annotations

import os
import struct

HEADER = struct.Struct(">I")


def write_frame(fd: int, payload: bytes) -> None:
    data = HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int) -> bytes:
    (length,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if length > max_bytes:
        raise ValueError(f"frame of {length} bytes exceeds {max_bytes}")
    return read_exact(fd, length)


class FrameReader:
    """Blocking frame reader with a buffer: a small request costs one ``read`` syscall, not two."""

    CHUNK = 1 << 16

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, need: int) -> None:
        while len(self.buf) < need:
            chunk = os.read(self.fd, max(need - len(self.buf), self.CHUNK))
            if not chunk:
                raise EOFError("pipe closed")
            self.buf += chunk

    def read(self, max_bytes: int) -> bytes:
        self._fill(HEADER.size)
        (length,) = HEADER.unpack_from(self.buf)
        if length > max_bytes:
            raise ValueError(f"frame of {length} bytes exceeds {max_bytes}")
        end = HEADER.size + length
        self._fill(end)
        data = bytes(self.buf[HEADER.size : end])
        del self.buf[:end]
        return data
