"""``lextune label``: a page for judging a few real questions, on the service's FastAPI stack.

Type a question; the pooled top-k of BM25 and the dense model (when the index has one) come back shuffled, the
systems hidden, each hit with its breadcrumb and text. Keys: ``2`` relevant, ``1`` partly, ``0`` not, ``s`` skip,
``u`` (or Backspace) undo, ``/`` back to the question box. Every action is one line appended to
``events.jsonl`` at once (nothing is lost on a crash or a closed tab; a reload replays the log), and the labels
are exported as a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv`` and the same judgements
as ``qrels/dev.tsv``, the split `lextune eval --data` and a run's ``validation:`` read by default).
"""

# FastAPI reads the endpoints' annotations at runtime: no `from __future__ import annotations` here.
import hashlib
import json
import random
import shutil
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from lextune.artifacts import atomic_dir, make_meta, write_json_atomic
from lextune.extras import optional_import

optional_import("fastapi", "serve", "the labelling page")
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

from lextune.serve.errors import ApiError, install_error_handlers  # noqa: E402


class SearchBody(BaseModel):
    query: str = Field(..., min_length=1, max_length=2000)


class JudgeBody(BaseModel):
    qid: str
    doc: str
    grade: int = Field(..., ge=0, le=2)


class QidBody(BaseModel):
    qid: str
    doc: str | None = None


class LabelStore:
    """The append-only event log of a labelling session and the state it replays to."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "events.jsonl"
        self._lock = threading.Lock()

    def append(self, event: dict) -> None:
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({**event, "time": time.time()}, ensure_ascii=False) + "\n")
            f.flush()

    def state(self) -> dict[str, dict]:
        """qid -> {text, hits, done: [[doc, grade or None (skipped)], ...]} in the order questions were asked."""
        out: dict[str, dict] = {}
        if not self.path.is_file():
            return out
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line a crash cut short
            q = out.get(e.get("qid"))
            if e.get("event") == "query":
                out.setdefault(e["qid"], {"text": e["text"], "hits": e["hits"], "done": []})
            elif q is not None and e.get("event") in ("judge", "skip"):
                q["done"] = [d for d in q["done"] if d[0] != e["doc"]] + [[e["doc"], e.get("grade")]]
            elif q is not None and e.get("event") == "undo" and q["done"]:
                q["done"].pop()
        return out


def pooled_hits(index, query: str, k: int, seed: str, pipelines: dict) -> list[str]:
    """The union of each system's top ``k``, shuffled by the question (stable across reloads)."""
    ids: dict[str, None] = {}
    for pipe in pipelines.values():
        ids.update(dict.fromkeys(pipe.search({"q": query}, k).get("q", {})))
    out = list(ids)
    random.Random(seed).shuffle(out)
    return out


def export_beir(index, store: LabelStore) -> dict:
    """The judged questions as a BEIR folder in the store's folder (written atomically, file by file)."""
    state = store.state()
    judged = {qid: q for qid, q in state.items() if any(g is not None for _, g in q["done"])}
    folder = store.folder
    with atomic_dir(folder / ".export", overwrite=True) as tmp:
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            for d, doc in index.docs.items():
                f.write(json.dumps({"_id": d, "title": doc.get("title") or "", "text": doc.get("text") or
                                    doc["contents"]}, ensure_ascii=False) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for qid, q in judged.items():
                f.write(json.dumps({"_id": qid, "text": q["text"]}, ensure_ascii=False) + "\n")
        (tmp / "qrels").mkdir()
        rows = "".join(f"{qid}\t{doc}\t{grade}\n" for qid, q in judged.items() for doc, grade in q["done"]
                       if grade is not None)
        for split in ("test", "dev"):
            (tmp / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    for name in ("corpus.jsonl", "queries.jsonl"):
        (folder / ".export" / name).replace(folder / name)
    (folder / "qrels").mkdir(exist_ok=True)
    for split in ("test", "dev"):
        (folder / ".export" / "qrels" / f"{split}.tsv").replace(folder / "qrels" / f"{split}.tsv")
    shutil.rmtree(folder / ".export", ignore_errors=True)
    summary = {"queries": len(judged), "judgements": rows.count("\n"),
               "relevant": sum(1 for q in judged.values() for _, g in q["done"] if g)}
    write_json_atomic(folder / "meta.json", make_meta("labels", inputs={"index": str(index.folder)}, summary=summary))
    return summary


def create_label_app(index_dir: str | Path, out_dir: str | Path, *, k: int = 10, dense_model: str | None = None):
    """The labelling page and its API over the index in ``index_dir``; labels go to ``out_dir``."""
    from lextune.index import LexIndex, PipelineConfig, build_pipeline

    index = LexIndex.load(index_dir)
    pipelines = {"bm25": build_pipeline(index, PipelineConfig(retrievers=["bm25"]))} if index.bm25 else {}
    if index.has_dense or dense_model:
        pipelines["dense"] = build_pipeline(index, PipelineConfig(retrievers=["dense"], dense_model=dense_model))
    store = LabelStore(out_dir)
    app = FastAPI(title="lextune label", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    def hit(d: str) -> dict:
        doc = index.docs[d]
        return {"id": d, "title": doc.get("title") or d, "text": doc.get("text") or doc["contents"]}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/api/search")
    def search(body: SearchBody) -> dict:
        qid = "q" + hashlib.sha1(body.query.strip().encode()).hexdigest()[:12]
        known = store.state().get(qid)
        ids = known["hits"] if known else pooled_hits(index, body.query.strip(), k, qid, pipelines)
        if known is None:
            store.append({"event": "query", "qid": qid, "text": body.query.strip(), "hits": ids})
        return {"qid": qid, "hits": [hit(d) for d in ids], "done": (known or {}).get("done", [])}

    @app.post("/api/judge")
    def judge(body: JudgeBody) -> dict:
        _known(body.qid, body.doc)
        store.append({"event": "judge", "qid": body.qid, "doc": body.doc, "grade": body.grade})
        return {"ok": True}

    @app.post("/api/skip")
    def skip(body: QidBody) -> dict:
        _known(body.qid, body.doc)
        store.append({"event": "skip", "qid": body.qid, "doc": body.doc})
        return {"ok": True}

    @app.post("/api/undo")
    def undo(body: QidBody) -> dict:
        _known(body.qid)
        store.append({"event": "undo", "qid": body.qid})
        return {"done": store.state()[body.qid]["done"]}

    @app.get("/api/state")
    def state() -> dict:
        return {"questions": [{"qid": qid, "text": q["text"], "judged": sum(1 for _, g in q["done"] if g is not None),
                               "hits": len(q["hits"])} for qid, q in store.state().items()]}

    @app.post("/api/export")
    def export() -> dict:
        return {**export_beir(index, store), "folder": str(store.folder)}

    def _known(qid: str, doc: str | None = None) -> None:
        q = store.state().get(qid)
        if q is None or (doc is not None and doc not in q["hits"]):
            raise ApiError(404, f"unknown question {qid!r}" if q is None else f"{doc!r} is not a hit of {qid!r}",
                           code="not_found")

    return app


PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>lextune label</title>
<style>
 body { font-family: 'Noto Sans KR', 'NanumGothic', 'Nanum Gothic', 'Malgun Gothic', 'Apple SD Gothic Neo', sans-serif;
        margin: 2em auto; max-width: 56em; color: #222; }
 #q { width: 70%; font-size: 1.1em; padding: .4em; } button { font-size: 1em; }
 .hit { border: 1px solid #ccc; border-radius: 6px; padding: .6em .8em; margin: .5em 0; }
 .hit.current { border: 2px solid #1a73e8; background: #f3f8ff; }
 .hit .t { font-weight: bold; } .hit .x { white-space: pre-wrap; margin-top: .3em; }
 .g2 { background: #e6f4ea; } .g1 { background: #fef7e0; } .g0 { background: #fce8e6; } .gs { opacity: .5; }
 .grade { float: right; font-weight: bold; } #help, #status { color: #555; font-size: .9em; }
</style></head><body>
<h2>lextune label</h2>
<form id="f"><input id="q" placeholder="질문을 입력하고 Enter" autocomplete="off"> <button>search</button>
 <button type="button" id="export">export</button></form>
<p id="help">2 relevant · 1 partly · 0 not relevant · s skip · u undo · / new question</p>
<p id="status"></p><div id="hits"></div><h3>labelled</h3><ul id="done"></ul>
<script>
let qid = null, hits = [], grades = {}, cur = 0;
const $ = (id) => document.getElementById(id);
async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                                        body: JSON.stringify(body)});
  if (!r.ok) throw new Error((await r.json()).error.message);
  return r.json();
}
function next() { const i = hits.findIndex((h) => !(h.id in grades)); cur = i < 0 ? hits.length : i; }
function render() {
  $("hits").innerHTML = "";
  hits.forEach((h, i) => {
    const d = document.createElement("div"), g = grades[h.id];
    d.className = "hit" + (i === cur ? " current" : "") + (g === undefined ? "" : g === null ? " gs" : " g" + g);
    d.innerHTML = '<span class="grade"></span><div class="t"></div><div class="x"></div>';
    d.querySelector(".grade").textContent = g === undefined ? "" : g === null ? "skip" : String(g);
    d.querySelector(".t").textContent = h.title; d.querySelector(".x").textContent = h.text;
    $("hits").appendChild(d);
  });
  const n = Object.values(grades).filter((g) => g !== null).length;
  $("status").textContent = qid ? `${n} judged of ${hits.length}` + (cur >= hits.length ? " — done" : "") : "";
  const c = document.querySelector(".hit.current"); if (c) c.scrollIntoView({block: "nearest"});
}
async function refresh() {
  const s = await api("/api/state");
  $("done").innerHTML = "";
  s.questions.forEach((q) => { const li = document.createElement("li");
    li.textContent = `${q.text} (${q.judged}/${q.hits})`; $("done").appendChild(li); });
}
$("f").addEventListener("submit", async (ev) => {
  ev.preventDefault(); const text = $("q").value.trim(); if (!text) return;
  const r = await api("/api/search", {query: text});
  qid = r.qid; hits = r.hits; grades = {}; r.done.forEach(([d, g]) => { grades[d] = g; });
  next(); render(); refresh(); $("q").blur();
});
$("export").addEventListener("click", async () => {
  const r = await api("/api/export", {}); $("status").textContent = `exported ${r.queries} questions to ${r.folder}`;
});
document.addEventListener("keydown", async (ev) => {
  if (document.activeElement === $("q")) return;
  if (ev.key === "/") { ev.preventDefault(); $("q").focus(); $("q").select(); return; }
  if (!qid) return;
  if (["0", "1", "2"].includes(ev.key) && cur < hits.length) {
    const h = hits[cur]; await api("/api/judge", {qid, doc: h.id, grade: Number(ev.key)});
    grades[h.id] = Number(ev.key);
  } else if (ev.key === "s" && cur < hits.length) {
    const h = hits[cur]; await api("/api/skip", {qid, doc: h.id}); grades[h.id] = null;
  } else if (ev.key === "u" || ev.key === "Backspace") {
    const r = await api("/api/undo", {qid}); grades = {}; r.done.forEach(([d, g]) => { grades[d] = g; });
  } else { return; }
  ev.preventDefault(); next(); render(); refresh();
});
refresh();
</script></body></html>
"""
