"""Query generation with any OpenAI-compatible chat-completions server (OpenAI, Upstage Solar, Gemini's
OpenAI endpoint, vLLM, Ollama, llama.cpp).

Versioned Korean prompts in three styles; JSON answers parsed with repair; concurrency and a request
rate limit; retries with backoff on 429, 5xx and timeouts (honouring Retry-After); a cache keyed by
prompt version, model and chunk hash, appended as each chunk finishes, so a rerun costs nothing and a
crashed run resumes; token and cost accounting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.errors import ConfigError, LextuneError
from lextune.extras import optional_import
from lextune.schema import Chunk, SynthQuery

Style = Literal["lay", "expert", "keyword"]

PROMPT_VERSION = "ko-v1"
SYSTEM_PROMPT = "당신은 한국 법령 검색 시스템의 평가용 질의를 만드는 법률 전문가입니다. 반드시 JSON으로만 답합니다."
STYLE_TEXT = {
    "lay": "법을 모르는 일반인이 자신의 상황을 설명하며 묻는 질문 (구체적 상황, 일상적인 말투, 조문 용어를 그대로 쓰지 말 것)",
    "expert": "변호사나 실무자가 쓰는 정확한 법률 용어의 질문",
    "keyword": "검색창에 입력할 2~6단어의 짧은 키워드 질의",
}
USER_TEMPLATE = """다음 조문으로 답할 수 있는 검색 질의를 {n}개 만드세요.
각 질의의 유형은 순서대로 다음과 같습니다:
{styles}
규칙: 조문 번호(제N조)와 법령명을 그대로 베끼지 말고, 조문의 문장을 복사하지 마세요.
출력 형식(JSON 배열만): [{{"style": "유형", "query": "질의"}}, ...]

[조문]
{title}
{text}"""


class LLMConfig(BaseModel):
    """Where and how to ask an OpenAI-compatible server for queries."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = "http://localhost:8000/v1"
    model: str = "solar-pro2"
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    styles: list[Style] = Field(default_factory=lambda: ["lay", "expert", "keyword"])
    n_per_chunk: int = Field(3, ge=1, le=20)
    temperature: float = 0.7
    max_tokens: int = 600
    concurrency: int = Field(4, ge=1)
    requests_per_minute: float | None = None
    max_retries: int = Field(5, ge=0)
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_chars: int = Field(2000, description="Truncate very long provisions in the prompt.")
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0


@dataclass
class LLMStats:
    requests: int = 0
    retries: int = 0
    cached: int = 0
    failed_chunks: int = 0
    unparseable: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)

    def cost(self, cfg: LLMConfig) -> float:
        return self.prompt_tokens / 1000 * cfg.price_per_1k_prompt + self.completion_tokens / 1000 * cfg.price_per_1k_completion


class LLMError(LextuneError):
    pass


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_json_queries(content: str) -> list[dict]:
    """The model's answer as a list of {"style", "query"}; repairs fences, smart quotes, trailing commas,
    a wrapping object, and falls back to one query per bullet line."""
    text = content.strip()
    m = _FENCE.search(text)
    if m:
        text = m.group(1).strip()
    text = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    start = min([i for i in (text.find("["), text.find("{")) if i >= 0], default=-1)
    if start >= 0:
        end = max(text.rfind("]"), text.rfind("}"))
        candidate = re.sub(r",\s*([\]}])", r"\1", text[start : end + 1])
        for attempt in (candidate, f"[{candidate}]"):
            try:
                data = json.loads(attempt)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                data = next((v for v in data.values() if isinstance(v, list)), [data])
            out = []
            for item in data if isinstance(data, list) else []:
                if isinstance(item, str) and item.strip():
                    out.append({"style": None, "query": item.strip()})
                elif isinstance(item, dict):
                    q = item.get("query") or item.get("question") or item.get("질의")
                    if isinstance(q, str) and q.strip():
                        out.append({"style": item.get("style"), "query": q.strip()})
            if out:
                return out
    bullet = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+)$")
    lines = [m.group(1).strip().strip('"') for line in content.splitlines() if (m := bullet.match(line))]
    out = [{"style": None, "query": line} for line in lines if len(line) >= 4]
    if not out:
        raise ValueError("no queries found in the answer")
    return out


class _RateLimiter:
    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.lock = threading.Lock()
        self.next_at = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at)
            self.next_at = at + self.interval
        time.sleep(max(0.0, at - now))


class LLMQueryGenerator:
    """Generate queries for chunks through an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, config: LLMConfig, cache_path: str | Path | None = None) -> None:
        httpx = optional_import("httpx", "synth", "LLM generation")
        self.config = config
        self.stats = LLMStats()
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_s)
        self._httpx = httpx
        self._limiter = _RateLimiter(config.requests_per_minute)
        self._lock = threading.Lock()
        self.cache_path = Path(cache_path) if cache_path else None
        self._cache: dict[str, list[dict]] = {}
        if self.cache_path and self.cache_path.is_file():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    self._cache[rec["key"]] = rec["queries"]
                except (json.JSONDecodeError, KeyError):
                    continue  # a line cut by a crash: that chunk is simply asked again

    def cache_key(self, chunk: Chunk) -> str:
        c = self.config
        raw = json.dumps([PROMPT_VERSION, c.model, c.styles, c.n_per_chunk, c.max_chars,
                          hashlib.sha1(chunk.contents.encode()).hexdigest()])
        return hashlib.sha1(raw.encode()).hexdigest()

    def _styles(self) -> list[str]:
        return [self.config.styles[i % len(self.config.styles)] for i in range(self.config.n_per_chunk)]

    def prompt(self, chunk: Chunk) -> list[dict]:
        styles = "\n".join(f"{i}. {s}: {STYLE_TEXT[s]}" for i, s in enumerate(self._styles(), start=1))
        user = USER_TEMPLATE.format(n=self.config.n_per_chunk, styles=styles, title=chunk.title,
                                    text=chunk.text[: self.config.max_chars])
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _post(self, messages: list[dict]) -> str:
        c = self.config
        body = {"model": c.model, "messages": messages, "temperature": c.temperature, "max_tokens": c.max_tokens}
        delay = c.backoff_s
        last = ""
        for attempt in range(c.max_retries + 1):
            self._limiter.wait()
            with self._lock:
                self.stats.requests += 1
                if attempt:
                    self.stats.retries += 1
            try:
                resp = self._client.post("/chat/completions", json=body)
            except (self._httpx.TimeoutException, self._httpx.TransportError) as exc:
                last = f"{type(exc).__name__}"
            else:
                if resp.status_code == 200:
                    data = resp.json()
                    usage = data.get("usage") or {}
                    with self._lock:
                        self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                        self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
                    return data["choices"][0]["message"]["content"] or ""
                last = f"HTTP {resp.status_code}"
                if resp.status_code == 429 or resp.status_code >= 500:
                    retry_after = resp.headers.get("retry-after")
                    if retry_after:
                        with contextlib.suppress(ValueError):  # an HTTP date: keep our own backoff
                            delay = max(delay, float(retry_after))
                else:
                    raise LLMError(f"{last}: {resp.text[:300]}")
            if attempt < c.max_retries:
                time.sleep(min(c.max_backoff_s, delay) * (1 + 0.1 * random.random()))
                delay = min(c.max_backoff_s, delay * 2)
        raise LLMError(f"gave up after {c.max_retries + 1} attempts ({last})")

    def _generate_one(self, chunk: Chunk) -> list[dict]:
        key = self.cache_key(chunk)
        if key in self._cache:
            with self._lock:
                self.stats.cached += 1
            return self._cache[key]
        parse_error = None
        for _ in range(3):
            content = self._post(self.prompt(chunk))
            try:
                queries = parse_json_queries(content)
                break
            except ValueError as exc:
                parse_error = exc
                with self._lock:
                    self.stats.unparseable += 1
        else:
            raise LLMError(f"unparseable answers for {chunk.id}: {parse_error}")
        styles = self._styles()
        for i, q in enumerate(queries):
            q["style"] = q.get("style") if q.get("style") in STYLE_TEXT else styles[i % len(styles)]
        queries = queries[: self.config.n_per_chunk]
        with self._lock:
            self._cache[key] = queries
            if self.cache_path:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.cache_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "chunk": chunk.id, "queries": queries}, ensure_ascii=False) + "\n")
                    f.flush()
        return queries

    def generate(self, chunks: list[Chunk], progress: Callable[[int, int], None] | None = None) -> list[SynthQuery]:
        """Queries for every chunk; a chunk that keeps failing is counted and skipped, not fatal."""
        if not chunks:
            return []
        out: list[SynthQuery] = []
        done = 0
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self._generate_one, c): c for c in chunks}
            for fut in as_completed(futures):
                chunk = futures[fut]
                done += 1
                try:
                    queries = fut.result()
                except LLMError as exc:
                    with self._lock:
                        self.stats.failed_chunks += 1
                        if len(self.stats.errors) < 20:
                            self.stats.errors.append(f"{chunk.id}: {exc}")
                    queries = []
                for i, q in enumerate(queries):
                    out.append(SynthQuery(f"llm:{chunk.id}:{i}", q["query"], [chunk.id], "llm", PROMPT_VERSION,
                                          chunk.doc_id, {"style": q["style"], "model": self.config.model}))
                if progress:
                    progress(done, len(chunks))
        if self.stats.failed_chunks == len(chunks):
            raise LLMError(f"every request failed; first error: {self.stats.errors[:1]}")
        out.sort(key=lambda q: q.id)
        return out

    def close(self) -> None:
        self._client.close()


def check_config(cfg: LLMConfig) -> None:
    if cfg.api_key_env and not os.environ.get(cfg.api_key_env) and not cfg.base_url.startswith(("http://localhost", "http://127.")):
        raise ConfigError(f"set the API key in ${cfg.api_key_env} (or api_key_env: null for a server without keys)")
