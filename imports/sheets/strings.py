"""A workbook's shared-string table, kept compact and spilled to disk past a memory budget.

An .xlsx stores every distinct text once, in `sharedStrings.xml`, and cells refer to it by position. A
big export holds a million distinct strings (trade ids); a hostile one holds tens of millions. A
Python list of str would cost ~60 bytes per string, so the strings are joined into chunks of 4,096 with
a 4-byte offset each (about 1 byte per character plus 4 per string), and once the table passes
`memory_budget` bytes the rest goes to a temporary file read back with `pread` (memory stays flat
whatever the table's size; the file is bounded by the archive's unpacked-size limit).
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from array import array

CHUNK = 4096  # strings per chunk (raw() relies on it: index >> 12, index & 4095)
_PAIR = struct.Struct("<QQ")


class StringTable:
    """Append-only list of strings with a bounded memory footprint (`table[i]`, `len(table)`)."""

    def __init__(self, memory_budget: int = 48 * 2**20) -> None:
        self.memory_budget = memory_budget
        self._chunks: list[str] = []
        self._starts = array("L")  # per chunk: CHUNK + 1 local offsets (the last is the chunk's end)
        self._pending: list[str] = []
        self._memory = 0
        self._count = 0  # strings in memory (complete chunks + pending)
        self._spilled = 0  # strings on disk, numbered after the in-memory ones
        self._data: tuple[int, int] | None = None  # (data fd, offsets fd) once spilling
        self._data_end = 0
        self._offsets: array = array("Q")
        self._sealed = False

    def append(self, text: str) -> None:
        if self._data is not None:
            self._spill(text)
            return
        self._pending.append(text)
        self._count += 1
        if len(self._pending) == CHUNK:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        pending = self._pending
        chunk = "".join(pending)
        offset = 0
        starts = self._starts
        for text in pending:
            starts.append(offset)
            offset += len(text)
        starts.extend([offset] * (CHUNK + 1 - len(pending)))
        self._chunks.append(chunk)
        self._pending = []
        self._memory += sys.getsizeof(chunk) + 4 * (CHUNK + 1)
        if self._memory > self.memory_budget and self._data is None:
            data_fd, path = tempfile.mkstemp(prefix="airlock-sst-")
            os.unlink(path)  # the file lives as long as the descriptor
            offsets_fd, path = tempfile.mkstemp(prefix="airlock-sst-")
            os.unlink(path)
            self._data = (data_fd, offsets_fd)

    def _spill(self, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self._offsets.append(self._data_end)
        self._data_end += len(data)
        self._pending.append(text)
        if len(self._pending) >= CHUNK:
            self._write_spill()
        self._spilled += 1

    def _write_spill(self) -> None:
        assert self._data is not None
        data_fd, offsets_fd = self._data
        os.write(data_fd, "".join(self._pending).encode("utf-8", "surrogatepass"))
        self._offsets.append(self._data_end)  # the end of the last string so far
        os.write(offsets_fd, self._offsets.tobytes())
        del self._offsets[:]
        os.lseek(offsets_fd, -8, os.SEEK_CUR)  # the end marker is overwritten by the next start
        self._pending = []

    def seal(self) -> None:
        """No more appends: the last partial chunk is stored."""
        if self._sealed:
            return
        self._sealed = True
        if self._data is not None:
            self._write_spill()
        elif self._pending:
            self._flush_chunk()

    def __len__(self) -> int:
        return self._count + self._spilled

    def __getitem__(self, index: int) -> str:
        if 0 <= index < self._count:
            chunk, local = divmod(index, CHUNK)
            base = chunk * (CHUNK + 1) + local
            starts = self._starts
            return self._chunks[chunk][starts[base] : starts[base + 1]]
        spilled = index - self._count
        if self._data is None or not 0 <= spilled < self._spilled or index < 0:
            raise IndexError(index)
        data_fd, offsets_fd = self._data
        start, end = _PAIR.unpack(os.pread(offsets_fd, 16, 8 * spilled))
        return os.pread(data_fd, end - start, start).decode("utf-8", "surrogatepass")

    def raw(self) -> tuple[list[str], array, int]:
        """For the hot loop of a sheet reader: the chunks, their offsets and how many strings are in memory.

        String `i < count` is `chunks[i >> 12][starts[b] : starts[b + 1]]` with `b = (i >> 12) * 4097 + (i & 4095)`
        (what `table[i]` does, without a method call per cell)."""
        return self._chunks, self._starts, self._count

    @property
    def spilled(self) -> int:
        """How many strings live on disk."""
        return self._spilled

    def close(self) -> None:
        if self._data is not None:
            for fd in self._data:
                os.close(fd)
            self._data = None
        self._chunks = []
        self._starts = array("L")

    def __enter__(self) -> StringTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
