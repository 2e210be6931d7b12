"""Query latency of procedure search on the full catalog and on a 10x synthetic one.

The catalog is parsed from the portal exports (no database: this measures the index, not
SQLite), plus the shipped seed. The synthetic catalog repeats every procedure ten times
under new codes, each copy's names extended with syllables of another procedure so the
copies are distinct texts with the catalog's own vocabulary. Queries are the questions of
the evaluation files. The baseline, measured in the same run on the same catalog, is the
plain BM25 over names used by `bot eval search`. Latencies are per query, one thread; the
machine is shared and noisy, so read the ratio more than the absolute numbers.

The full catalog is measured twice: hybrid (lexical + the e5 signal, whose passage vectors
come from the shared cache in var/vectors/, so a first run embeds the catalog's names for
some minutes) and lexical only (`semantic=False`). The 10x catalog is lexical only: its
made-up names would take hours to embed, and the e5 part of a query does not grow with
the catalog (one query vector, cosines for the 60 candidates only).

    .venv/bin/python bench/search_latency.py [--scale 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.catalog.importers.load import parse_files  # noqa: E402
from bot.catalog.search import CatalogIndex, IndexDoc, docs_from_records  # noqa: E402
from bot.catalog.search_eval import NameBM25, load_cases  # noqa: E402

SHARED = ROOT.parent / "shared"
EXPORTS = [SHARED / "data/dvcqg/procedures_2026-06.jsonl.gz",
           SHARED / "data/dvcqg/procedures_bqp_207.jsonl.gz"]
QUERIES = [SHARED / "data/dvcqg/faq_dev.jsonl", SHARED / "eval/citizen_dev.jsonl"]


def catalog_docs() -> list[IndexDoc]:
    """Seed records win over imported ones, as `bot catalog import` keeps them."""
    return docs_from_records(parse_files(EXPORTS))


def synthetic(docs: list[IndexDoc], scale: int, seed: int = 42) -> list[IndexDoc]:
    """`scale` copies of every procedure, each with a distinct name suffix."""
    rng = random.Random(seed)
    out = list(docs)
    for k in range(1, scale):
        for d in docs:
            other = rng.choice(docs).names[-1][0].split()
            suffix = " ".join(other[: rng.randint(2, 5)])
            names = tuple((f"{t} {suffix}", w) for t, w in d.names if t)
            out.append(IndexDoc(f"{d.code}-{k}", f"{d.name} {suffix}", names, d.field,
                                d.agency, d.documents, d.body, d.levels))
    return out


def timings(fn: Callable[[str], object], queries: list[str]) -> list[float]:
    """Milliseconds per query, after a short warm-up on other text."""
    for q in ("làm căn cước", "dang ky khai sinh", "giấy phép xây dựng nhà ở"):
        fn(q)
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append(1000 * (time.perf_counter() - t))
    return out


def summary(ms: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(ms, n=100)
    return {"p50": round(qs[49], 2), "p95": round(qs[94], 2), "p99": round(qs[98], 2),
            "mean": round(statistics.fmean(ms), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=10, help="size of the synthetic catalog (10x)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    missing = [p for p in EXPORTS + QUERIES if not p.exists()]
    if missing:
        print(f"missing shared data: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    queries = [c.question for p in QUERIES for c in load_cases(p)[0]]
    base_docs = catalog_docs()
    report: dict[str, dict] = {}
    runs = (("full", base_docs, True), ("full", base_docs, False),
            (f"{args.scale}x", synthetic(base_docs, args.scale), False))
    for label, docs, semantic in runs:
        t = time.perf_counter()
        index = CatalogIndex(docs, semantic=semantic, progress=sys.stderr.isatty())
        build_s = time.perf_counter() - t
        baseline = NameBM25(docs)
        ours = summary(timings(lambda q, i=index: i.search(q, limit=10), queries))
        base = summary(timings(baseline.rank, queries))
        report[f"{label} {'hybrid' if index.semantic else 'lexical'}"] = {
            "procedures": len(docs), "queries": len(queries), "e5": index.semantic,
            "index_build_s": round(build_s, 1), "search_ms": ours,
            "baseline_bm25_names_ms": base,
            "p95_ratio_vs_baseline": round(ours["p95"] / base["p95"], 2)}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print("| catalog | procedures | build s | search p50 / p95 / p99 ms | "
          "baseline p50 / p95 / p99 ms | p95 ratio |")
    print("|---|---|---|---|---|---|")
    for label, r in report.items():
        o, b = r["search_ms"], r["baseline_bm25_names_ms"]
        print(f"| {label} | {r['procedures']} | {r['index_build_s']} | "
              f"{o['p50']} / {o['p95']} / {o['p99']} | {b['p50']} / {b['p95']} / {b['p99']} | "
              f"{r['p95_ratio_vs_baseline']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
