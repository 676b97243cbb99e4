"""Run every benchmark in one process and write the figures to benchmarks/RESULTS.md.

Each benchmark measures whybox and its peer on the same task in the same process and reports
ratios (the machines are shared and noisy: ratios are what carry over). Usage:

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py kernel     # the ones whose name contains "kernel"
"""

from __future__ import annotations

import os

# OpenMP threads of XGBoost, LightGBM and scikit-learn spin after each parallel region by
# default and steal the cores from whatever runs next; benchmarks measure one thing at a time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datetime as dt
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402

BENCHMARKS = [
    "bench_exact",
    "bench_kernel",
    "bench_lime",
    "bench_tree",
    "bench_tree_memory",
    "bench_effects",
    "bench_ebm",
    "bench_counterfactuals",
    "bench_metrics",
    "bench_gradients",
    "bench_image",
    "bench_cache",
    "bench_patching",
    "bench_toy_models",
    "bench_attnlrp",
    "bench_tokenshap",
    "bench_text_faithfulness",
    "bench_superposition",
    "bench_sae_training",
    "bench_sae_streaming",
    "bench_llm_client",
    "bench_rag",
    "bench_autointerp",
    "bench_serve",
    "bench_cot",
    "bench_sae_demo",
    "bench_dask",
    "bench_kernel_sweep",
    "bench_kernel_time",
    "bench_leverage",
]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv: list[str]) -> None:
    exact = [b for b in BENCHMARKS if b in argv]
    wanted = exact or [b for b in BENCHMARKS if not argv or any(a in b for a in argv)]
    results = {}
    tables: dict[str, str] = {}
    for name in wanted:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"skipping {name}: {exc}")
            continue
        print(f"running {name} ...", flush=True)
        results[name] = module.run()
        print(json.dumps(results[name], indent=1, default=str), flush=True)
        if hasattr(module, "markdown"):  # a benchmark that writes its own tables
            tables[name] = module.markdown(results[name])
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    blocks = {}
    old = rest.split(END, 1)[0]
    for chunk in old.split("\n### ")[1:]:
        blocks[chunk.split("\n", 1)[0].strip()] = "### " + chunk.rstrip() + "\n"
    stamp = f"{dt.date.today().isoformat()}, {machine()}"
    for name, res in results.items():
        if name in tables:
            body_lines = tables[name].strip().split("\n")
            if body_lines[0].startswith("### "):
                body_lines = body_lines[1:]
            blocks[name] = "\n".join([f"### {name}", "", f"Measured {stamp}.", *body_lines]) + "\n"
            continue
        lines = [f"### {name}", "", f"Measured {stamp}.", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in res.items()]
        blocks[name] = "\n".join(lines) + "\n"
    body = "\n".join(blocks[k] for k in sorted(blocks))
    path.write_text(f"{head}{START}\n{body}{END}{tail}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
