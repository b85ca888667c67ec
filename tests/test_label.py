"""The labelling page in a real headless Chromium, driven through the DevTools protocol: three questions labelled
with key presses, the page reloaded and the labels found, the export read by `lextune eval --data`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from liveserver import chromium, free_port, serving

LAWS = Path(__file__).resolve().parents[1] / "src" / "lextune" / "data" / "laws"
CHROMIUM = chromium()
QUESTIONS = ["금융거래의 비밀보장", "채권추심자가 연락할 수 있는 시간", "실명확인 의무"]



class Browser:
    """A headless Chromium page, commanded over its DevTools websocket (no browser-automation library)."""

    def __init__(self, profile: Path) -> None:
        from websockets.sync.client import connect

        port = free_port()
        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update",
                                      f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                                      "--window-size=1100,1400", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                ws = next(p["webSocketDebuggerUrl"] for p in pages if p.get("type") == "page")
                break
            except (httpx.HTTPError, StopIteration):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.ws = connect(ws, max_size=None)
        self.n = 0

    def send(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg.get("result", {})

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait(self, expression: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while not self.js(expression):
            if time.time() > deadline:
                raise TimeoutError(expression)
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && !!document.getElementById('q')")

    def key(self, key: str) -> None:
        code = {"Enter": "Enter", "/": "Slash"}.get(key, f"Digit{key}" if key.isdigit() else f"Key{key.upper()}")
        vk = {"Enter": 13, "/": 191}[key] if key in ("Enter", "/") else ord(key.upper())
        text = "\r" if key == "Enter" else key
        self.send("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, text=text, windowsVirtualKeyCode=vk)
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=vk)

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium and fonts-nanum (.ci/run installs them)")
def test_three_questions_labelled_with_keys_survive_a_reload_and_export_to_eval(tmp_path):
    from lextune.index import IndexBuildConfig, build_index, docs_from_chunks
    from lextune.index.dense import DenseConfig
    from lextune.ingest import ingest_chunks
    from lextune.serve.label import create_label_app

    chunks, _ = ingest_chunks([LAWS / "000549.json", LAWS / "010910.json"])
    build_index(docs_from_chunks(chunks), tmp_path / "idx", IndexBuildConfig(dense=DenseConfig()))  # BM25 + e5
    labels = tmp_path / "labels"
    with serving(create_label_app(tmp_path / "idx", labels, k=3)) as base:
        browser = Browser(tmp_path / "profile")
        try:
            url = f"{base}/"
            browser.open(url)
            assert "NanumGothic" in browser.js("getComputedStyle(document.body).fontFamily")  # Korean fonts named
            for i, question in enumerate(QUESTIONS):
                browser.js("document.getElementById('q').focus()")
                browser.js("document.getElementById('q').value = ''")
                browser.send("Input.insertText", text=question)
                browser.key("Enter")
                browser.wait("document.querySelectorAll('.hit').length > 0 && document.activeElement.id !== 'q'")
                for key in ["2", "0", "s", "1"] if i == 0 else ["2", "1", "0"]:
                    browser.key(key)
                    time.sleep(0.15)
                if i == 0:  # the last judgement (1) taken back
                    browser.key("u")
                browser.wait("document.getElementById('status').textContent.includes('judged')")
            time.sleep(0.5)
            shot = browser.send("Page.captureScreenshot", format="png")["data"]
            if os.environ.get("LEXTUNE_SCREENSHOT"):
                Path(os.environ["LEXTUNE_SCREENSHOT"]).write_bytes(base64.b64decode(shot))
            browser.open(url)  # a reload (or a closed tab): everything is on disk already
            browser.wait("document.querySelectorAll('#done li').length === 3")
            listed = browser.js("[...document.querySelectorAll('#done li')].map(li => li.textContent)")
            assert [x.rsplit("/", 1)[0] for x in listed] == [f"{QUESTIONS[0]} (2", f"{QUESTIONS[1]} (3", f"{QUESTIONS[2]} (3"]
            pooled = [int(x.rsplit("/", 1)[1].rstrip(")")) for x in listed]  # BM25's top 3 and e5's top 3, pooled
            assert all(3 <= n <= 6 for n in pooled) and max(pooled) > 3
            browser.js("document.getElementById('export').click()")
            browser.wait("document.getElementById('status').textContent.startsWith('exported 3')")
        finally:
            browser.close()
    qrels = (labels / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    grades = [int(line.split("\t")[2]) for line in qrels]
    assert len(qrels) == 8 and grades[:2] == [2, 0] and sorted(grades[2:]) == [0, 0, 1, 1, 2, 2]
    assert (labels / "qrels" / "dev.tsv").read_text() == (labels / "qrels" / "test.tsv").read_text()
    assert sorted(p.name for p in labels.iterdir()) == ["corpus.jsonl", "events.jsonl", "meta.json", "qrels",
                                                        "queries.jsonl"]
    res = CliRunner().invoke(app, ["eval", "--data", str(labels), "--index", str(tmp_path / "idx"), "-s", "bm25",
                                   "--out", str(tmp_path / "ev"), "--no-report"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "bm25" in json.dumps(metrics) and "ndcg@10" in json.dumps(metrics)
