"""One self-contained HTML report: metric tables, per-system bars, rank histograms, failure categories
and a 2-D map of query and passage embeddings (t-SNE, or PCA without scikit-learn). Charts are
matplotlib PNGs embedded as data URIs, so the file opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from lextune.artifacts import atomic_file
from lextune.eval.evaluate import EvalResult
from lextune.eval.failures import CATEGORIES, FailureCase, category_counts
from lextune.extras import optional_import

BAR_METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1", "map@10"]
RANK_BINS = [("1", 1, 1), ("2-3", 2, 3), ("4-10", 4, 10), ("11-100", 11, 100)]


def _plt():
    optional_import("matplotlib", "report", "the HTML report").use("Agg")
    return optional_import("matplotlib.pyplot", "report", "the HTML report")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bars(result: EvalResult) -> str:
    plt = _plt()
    metrics = [m for m in BAR_METRICS if m in next(iter(result.overall.values()))]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(metrics)), 3.6))
    width = 0.8 / len(result.systems)
    x = np.arange(len(metrics))
    for i, s in enumerate(result.systems):
        vals = [result.overall[s][m] for m in metrics]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=s)
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("Metrics per system")
    return _png(fig)


def first_gold_ranks(result: EvalResult, runs: dict, qrels: dict, depth: int = 100) -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = {}
    for s in result.systems:
        ranks: list[int | None] = []
        for q in result.queries:
            ranked = [d for d, _ in sorted(runs[s].get(q, {}).items(), key=lambda kv: -kv[1])][:depth]
            golds = {d for d, r in qrels[q].items() if r > 0}
            hit = [i + 1 for i, d in enumerate(ranked) if d in golds]
            ranks.append(hit[0] if hit else None)
        out[s] = ranks
    return out


def _rank_hist(ranks: dict[str, list[int | None]]) -> str:
    plt = _plt()
    labels = [b[0] for b in RANK_BINS] + ["not found"]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(ranks)
    x = np.arange(len(labels))
    for i, (s, rs) in enumerate(ranks.items()):
        counts = [sum(1 for r in rs if r is not None and lo <= r <= hi) for _, lo, hi in RANK_BINS]
        counts.append(sum(1 for r in rs if r is None))
        ax.bar(x + i * width - 0.4 + width / 2, counts, width, label=s)
    ax.set_xticks(x, labels)
    ax.set_xlabel("rank of the first gold")
    ax.set_ylabel("queries")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("Where the first relevant provision lands")
    return _png(fig)


def _failure_bars(failures: dict[str, list[FailureCase]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(1, len(failures))
    x = np.arange(len(CATEGORIES))
    for i, (s, cases) in enumerate(failures.items()):
        counts = category_counts(cases)
        ax.bar(x + i * width - 0.4 + width / 2, [counts[c] for c in CATEGORIES], width, label=s)
    ax.set_xticks(x, CATEGORIES)
    ax.set_ylabel("failed queries")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("Failure categories (failure notebook)")
    return _png(fig)


def project_2d(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """t-SNE when scikit-learn is there and there are enough points, else PCA."""
    if len(vectors) >= 10:
        try:
            from sklearn.manifold import TSNE

            perplexity = max(2.0, min(30.0, (len(vectors) - 1) / 3))
            return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors), "t-SNE"
        except ImportError:
            pass
    centered = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T, "PCA"


def embedding_map(query_vecs: np.ndarray, query_failed: list[bool], passage_vecs: np.ndarray,
                  query_synthetic: list[bool] | None = None) -> str:
    """Scatter of queries (failures in red; synthetic as triangles) and passages (grey)."""
    plt = _plt()
    points, method = project_2d(np.vstack([query_vecs, passage_vecs]))
    nq = len(query_vecs)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(points[nq:, 0], points[nq:, 1], s=8, c="#bbbbbb", label="gold passages")
    synth = query_synthetic or [False] * nq
    for failed, syn, color, marker, label in (
        (False, False, "#1f77b4", "o", "query (ok)"), (True, False, "#d62728", "o", "query (failed)"),
        (False, True, "#2ca02c", "^", "synthetic (ok)"), (True, True, "#ff7f0e", "^", "synthetic (failed)"),
    ):
        idx = [i for i in range(nq) if query_failed[i] == failed and synth[i] == syn]
        if idx:
            ax.scatter(points[idx, 0], points[idx, 1], s=22, c=color, marker=marker, label=label)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8)
    ax.set_title(f"Queries and gold passages ({method})")
    return _png(fig)


def _metric_table(result: EvalResult, shown: list[str], with_wtl: bool) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(m)}</th>" for m in shown) + ("<th>W/T/L</th>" if with_wtl else "")
    rows = []
    for s in result.systems:
        cells = []
        for m in shown:
            v = result.overall[s][m]
            sig = result.significance.get(s, {}).get(m) or []
            mark = f"<sup title='significantly better than {esc(', '.join(sig))}'>*</sup>" if sig else ""
            best = max(result.overall[x][m] for x in result.systems)
            style = " class='best'" if abs(v - best) < 1e-12 and len(result.systems) > 1 else ""
            cells.append(f"<td{style}>{v:.3f}{mark}</td>")
        if with_wtl:
            wtl = result.win_tie_loss[s]
            cells.append(f"<td>{wtl['win']}/{wtl['tie']}/{wtl['loss']}</td>")
        rows.append(f"<tr><th>{esc(s)}</th>{''.join(cells)}</tr>")
    return f"<table class='metrics'><tr><th>system</th>{head}</tr>{''.join(rows)}</table>"


def render_report(result: EvalResult, runs: dict, qrels: dict, failures: dict[str, list[FailureCase]],
                  path: str | Path, *, title: str = "lextune evaluation", meta: dict | None = None,
                  map_png: str | None = None) -> Path:
    """Write the HTML report to ``path`` (atomically) and return it."""
    esc = html.escape
    metrics = result.config.metric_names()
    key = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@10", "hit_rate@1", "hit_rate@10", "precision@10"]
    main_table = _metric_table(result, [m for m in key if m in metrics] or metrics[:8], with_wtl=True)
    full_table = _metric_table(result, metrics, with_wtl=False)
    ranks = first_gold_ranks(result, runs, qrels)
    charts = [("Metrics", _bars(result)), ("First-gold ranks", _rank_hist(ranks)),
              ("Failures", _failure_bars(failures))]
    if map_png:
        charts.append(("Embedding map", map_png))
    fail_rows = []
    for s, cases in failures.items():
        for c in cases[:30]:
            top = esc(c.top[0].title) if c.top else "—"
            gold = esc("; ".join(g.title for g in c.golds))
            fail_rows.append(f"<tr><td>{esc(s)}</td><td>{esc(c.query_id)}</td><td>{esc(c.query)}</td>"
                             f"<td>{esc(c.category)}</td><td>{c.first_gold_rank or '—'}</td><td>{gold}</td><td>{top}</td></tr>")
    warnings = "".join(f"<li>{esc(w)}</li>" for w in result.inputs.warnings()) or "<li>none</li>"
    meta_html = ""
    if meta:
        meta_html = "<dl>" + "".join(f"<dt>{esc(str(k))}</dt><dd><code>{esc(str(v))}</code></dd>"
                                     for k, v in meta.items()) + "</dl>"
    doc = f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body{{font-family:system-ui,-apple-system,"Noto Sans KR",sans-serif;margin:2rem auto;max-width:1100px;color:#222}}
table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}th,td{{border:1px solid #ddd;padding:.3rem .55rem;text-align:right}}
th{{background:#f5f5f5}}td.best{{font-weight:bold;background:#eef7ee}}.fail td{{text-align:left}}
figure{{margin:1.2rem 0}}img{{max-width:100%}}code{{font-size:.8rem}}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{len(result.queries)} judged queries · systems compared against <b>{esc(result.systems[0])}</b>
({esc(result.config.primary)} win/tie/loss) · * = significantly better than another system
({esc(result.config.stat_test)} test, p &lt; {result.config.max_p}).</p>
<h2>Metrics</h2>
{main_table}
<details><summary>All metrics and cut-offs</summary>{full_table}</details>
<h2>Charts</h2>
{''.join(f'<figure><figcaption>{esc(n)}</figcaption><img class="chart" alt="{esc(n)}" src="{src}"></figure>' for n, src in charts)}
<h2>Failure notebook (오답 노트), first 30 per system</h2>
<table class="fail"><tr><th>system</th><th>query id</th><th>query</th><th>category</th><th>first gold</th><th>gold</th><th>top hit</th></tr>
{''.join(fail_rows)}</table>
<h2>Input checks</h2><ul>{warnings}</ul>
<h2>Provenance</h2>{meta_html}
</body></html>"""
    path = Path(path)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(doc, encoding="utf-8")
    return path
