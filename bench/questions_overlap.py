"""How lexical the hand-written questions are: per question, the share of its content morphemes (Kiwi, the
BM25 tokenizer's tags) found in its gold paragraphs (title and text); distribution per set, and how many
questions need two gold paragraphs and two different articles.

    .venv/bin/python bench/questions_overlap.py
"""

from __future__ import annotations

import statistics


def main() -> None:
    from lextune.demo import QUESTION_SPLITS, bundled_questions, question_gold_overlap
    from lextune.runs import load_beir

    for kind, split in QUESTION_SPLITS.items():
        ds = load_beir(bundled_questions(kind), split=split)
        shares = sorted(question_gold_overlap(kind).values())
        n = len(shares)
        p10, p25, p75, p90 = (shares[min(n - 1, int(q * (n - 1) + 0.5))] for q in (0.1, 0.25, 0.75, 0.9))
        two_paragraphs = sum(len(g) > 1 for g in ds.qrels.values())
        two_articles = sum(len({c.split(":p")[0].split(":i")[0] for c in g}) > 1 for g in ds.qrels.values())
        print(f"{kind}: {n} questions, {sum(len(g) for g in ds.qrels.values())} judgements, two paragraphs "
              f"{two_paragraphs}, two articles {two_articles}; overlap min {shares[0]:.2f} p10 {p10:.2f} "
              f"p25 {p25:.2f} median {statistics.median(shares):.2f} p75 {p75:.2f} p90 {p90:.2f} "
              f"max {shares[-1]:.2f}")


if __name__ == "__main__":
    main()
