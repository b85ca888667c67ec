"""The demo's run with another base model (issue 35: the demo switches base only if it wins on the 20
validation questions), then compare with `bench/demo_validation.py`:

    .venv/bin/python bench/demo_base.py /tmp/demo-legal bundled:lextune-legal-ko-small
    .venv/bin/python bench/demo_validation.py /tmp/demo-run3 /tmp/demo-legal
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("base_model")
    args = ap.parse_args()

    from lextune.demo import demo_config
    from lextune.pipeline import run_pipeline

    cfg = demo_config(args.out_dir)
    cfg.base_model = args.base_model
    result = run_pipeline(cfg, progress=lambda stage, msg: print(stage, msg, flush=True))
    print(json.dumps(result.comparison, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
