"""Tokenizers for BM25: Korean content morphemes (kiwipiepy) or whitespace, as a registry.

Korean statute retrieval lives or dies by its tokenizer: content morphemes beat whitespace tokens by
0.2-0.3 nDCG@10 (../shared/notes/retrieval-findings.md). We keep nouns, verb/adjective stems, roots,
foreign words, numbers and Hanja, and drop party placeholders (갑/을/병/정/무) that Kiwi reads as rare
nouns.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.errors import ConfigError
from lextune.extras import optional_import

DEFAULT_TAGS = ["NN*", "VV", "VA", "XR", "SL", "SN", "SH"]
DEFAULT_STOPWORDS = ["갑", "을", "병", "정", "무"]


class TokenizerConfig(BaseModel):
    """Which tokenizer BM25 uses (saved with the index, so queries are tokenized the same way)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["kiwi", "whitespace"] = "kiwi"
    tags: list[str] = Field(default_factory=lambda: list(DEFAULT_TAGS))
    stopwords: list[str] = Field(default_factory=lambda: list(DEFAULT_STOPWORDS))
    user_dictionary: str | None = Field(None, description="A file of legal terms: 'word[<TAB>tag]' a line.")
    lowercase: bool = True
    num_workers: int = Field(-1, description="Kiwi worker threads: -1 all cores, 0 a single thread.")


class Tokenizer:
    """Batched, cached tokenization."""

    def __init__(self, config: TokenizerConfig, cache_size: int = 10000) -> None:
        self.config = config
        self._cache: OrderedDict[str, list[str]] = OrderedDict()
        self._cache_size = cache_size
        self._stop = set(config.stopwords)

    def _tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        raise NotImplementedError

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokens of each text; repeated texts (queries) come from an LRU cache."""
        out: list[list[str] | None] = [self._cache.get(t) for t in texts]
        missing = [i for i, toks in enumerate(out) if toks is None]
        if missing:
            fresh = self._tokenize_many([texts[i] for i in missing])
            for i, toks in zip(missing, fresh, strict=True):
                out[i] = toks
                if len(texts[i]) < 2000:
                    self._cache[texts[i]] = toks
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return [t for t in out if t is not None]


class WhitespaceTokenizer(Tokenizer):
    _PUNCT = re.compile(r"[^\w]+")

    def _tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        out = []
        for text in texts:
            text = text.lower() if self.config.lowercase else text
            out.append([t for t in self._PUNCT.sub(" ", text).split() if t and t not in self._stop])
        return out


class KiwiTokenizer(Tokenizer):
    def __init__(self, config: TokenizerConfig, cache_size: int = 10000) -> None:
        super().__init__(config, cache_size)
        self._kiwi = optional_import("kiwipiepy", "index", "Korean BM25").Kiwi(num_workers=config.num_workers)
        self._exact = {t for t in config.tags if not t.endswith("*")}
        self._prefixes = tuple(t[:-1] for t in config.tags if t.endswith("*"))
        if config.user_dictionary:
            self._load_user_dictionary(Path(config.user_dictionary))

    def _load_user_dictionary(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"user dictionary {path} does not exist")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, tag = line.partition("\t")
            try:
                self._kiwi.add_user_word(word.strip(), (tag or "NNP").strip())
            except Exception as exc:  # noqa: BLE001 - kiwipiepy raises plain exceptions
                raise ConfigError(f"{path}:{lineno}: cannot add {word!r}: {exc}") from exc

    def _keep(self, tag: str) -> bool:
        base = tag.split("-")[0]
        return base in self._exact or base.startswith(self._prefixes)

    def _tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        out = []
        lower = self.config.lowercase
        if self.config.num_workers == 0:
            analysed = (self._kiwi.tokenize(t) for t in texts)
        else:
            analysed = self._kiwi.tokenize(list(texts))
        for tokens in analysed:
            toks = []
            for tok in tokens:
                if self._keep(tok.tag) and tok.form not in self._stop:
                    toks.append(tok.form.lower() if lower else tok.form)
            out.append(toks)
        return out


TOKENIZERS: dict[str, Callable[[TokenizerConfig], Tokenizer]] = {
    "kiwi": KiwiTokenizer,
    "whitespace": WhitespaceTokenizer,
}


def make_tokenizer(config: TokenizerConfig | None = None) -> Tokenizer:
    config = config or TokenizerConfig()
    return TOKENIZERS[config.kind](config)
