"""The training corpus of the Korean-legal base model (issue 35): the current text of every statute, decree
and rule that court decisions cite often, taken from the legalize-kr tree by citation counts (never by a
benchmark).

Counts, per cited law, the 판시사항 items of ../shared/corpus/precedents.jsonl.gz whose 참조조문 group cites it
(through lextune's one 참조조문 parser and its law-name matching: spacing, middle dots, short and former
names), keeps the laws cited by at least --min-items items, and copies their Markdown out of the tree:

    .venv/bin/python scripts/legal_corpus.py --out legal-ko-corpus/ [--min-items 20]

Prints how many laws, files and items that covers (also written to ``<out>.json``); `lextune run
configs/legal-ko.yaml` ingests the folder.
"""

from __future__ import annotations

import argparse
import json
import tarfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpus"
_FILE_OF_SUFFIX = {"시행령": "시행령.md", "시행규칙": "시행규칙.md"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-items", type=int, default=20)
    ap.add_argument("--tree", default=str(SHARED / "legalize-kr.tar.gz"))
    ap.add_argument("--precedents", default=str(SHARED / "precedents.jsonl.gz"))
    args = ap.parse_args()

    from lextune.ingest.refs import name_candidates, norm_name, parse_reference_groups
    from lextune.synth.precedents import align, read_precedent_records, split_items

    with tarfile.open(args.tree) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and m.name.endswith(".md")}
    # (normalised act name, file) -> member; acts are the tree's folder names
    files: dict[tuple[str, str], str] = {}
    for name in members:
        parts = name.split("/")
        if len(parts) == 3:
            files[(norm_name(parts[1]), parts[2])] = name

    def member_for(law: str) -> str | None:
        for key, _ in name_candidates(law):
            suffix = next((s for s in _FILE_OF_SUFFIX if key.endswith(s)), None)
            act = key[: len(key) - len(suffix)] if suffix else key
            wanted = _FILE_OF_SUFFIX.get(suffix or "", "법률.md")
            if (act, wanted) in files:
                return files[(act, wanted)]
            if suffix is None:  # an act filed under another name (대한민국헌법/헌법.md)
                others = [m for (a, f), m in files.items() if a == act and f not in _FILE_OF_SUFFIX.values()]
                if len(others) == 1:
                    return others[0]
        return None

    items_per_file: Counter = Counter()
    items = items_resolvable = 0
    for _, obj in read_precedent_records([args.precedents]):
        text, refs = obj.get("판시사항") or "", obj.get("참조조문") or ""
        if not isinstance(text, str) or not isinstance(refs, str) or not text.strip() or not refs.strip():
            continue
        parsed = split_items(text)
        for cites in align(parsed, parse_reference_groups(refs)):
            items += 1
            found = {m for c in cites if c.law and not c.addendum
                     for m in [member_for(c.current.law if c.current is not None and c.current.law else c.law)] if m}
            items_resolvable += bool(found)
            items_per_file.update(found)
    chosen = sorted(f for f, n in items_per_file.items() if n >= args.min_items)
    covered = sum(items_per_file[f] for f in chosen)
    out = Path(args.out)
    with tarfile.open(args.tree) as tar:
        for name in chosen:
            target = out / Path(name).relative_to("kr")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(members[name]).read())
    summary = {"min_items": args.min_items, "files": len(chosen), "laws": len({Path(f).parent.name for f in chosen}),
               "items": items, "items_with_a_file_in_the_tree": items_resolvable,
               "item_file_pairs_covered": covered, "item_file_pairs_total": sum(items_per_file.values()),
               "top": items_per_file.most_common(15)}
    out.with_name(out.name + ".json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "top"}, ensure_ascii=False))
    print("top:", ", ".join(f"{Path(f).parent.name}/{Path(f).stem} {n}" for f, n in summary["top"]))


if __name__ == "__main__":
    main()
