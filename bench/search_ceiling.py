"""How far can lexical features take procedure search on the official FAQ questions?

Issue 3 asks for top-1 ≥ 0.75 / top-3 ≥ 0.90 on `faq_dev.jsonl`. This script measures
the ceiling of everything the shipped search can see, with a deliberately optimistic
setup, so the gap can be judged from numbers rather than from opinion:

1. **Recall@k** of the BM25F stage: how often the right procedure is among the k
   candidates that any reranker would get to reorder.
2. **A learned reranker fitted on the FAQ questions themselves** (5-fold cross-validated:
   each question is ranked by a model that did not see it). Features per candidate are
   every lexical signal the search computes: BM25 per field (names, lĩnh vực, agency,
   documents, conditions + result), the recall score and rank, name coverage (IDF share,
   word order, share of the question explained), level and named-level agreement,
   variant verbs, question length. Models: logistic regression and gradient boosting.

Fitting on the development questions is exactly what the product must not ship (the
figures of `bot eval search` would then be training accuracy); here it only bounds what
any weighting of these features could reach. The current search's own figures come
from the same run for comparison.

    .venv/bin/python bench/search_ceiling.py [--folds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.catalog.importers.load import parse_files  # noqa: E402
from bot.catalog.search import (  # noqa: E402
    LEVEL_WORDS,
    RECALL,
    STOPWORDS,
    CatalogIndex,
    _bigrams,
    docs_from_records,
)
from bot.catalog.search_eval import Case, load_cases  # noqa: E402

SHARED = ROOT.parent / "shared"
CRAWL = SHARED / "data/dvcqg/procedures_2026-06.jsonl.gz"
FAQ = SHARED / "data/dvcqg/faq_dev.jsonl"
KS = (1, 3, 10)


def candidate_features(index: CatalogIndex, question: str) -> tuple[list[str], np.ndarray]:
    """The recall stage's candidates for a question and one feature row per candidate."""
    qwords = index.query_words(question)
    q = {w for w in qwords if w not in STOPWORDS}
    if not q:
        return [], np.zeros((0, 0))
    terms = [w for w in qwords if w not in STOPWORDS] + _bigrams(qwords)
    cols = [c for t in terms for c in index.columns.get(t, ())]
    per_field = []
    for lo, hi in index.field_bounds:
        mine = [c for c in cols if lo <= c < hi]
        per_field.append(np.asarray(index.matrix[:, mine].sum(axis=1)).ravel() if mine
                         else np.zeros(len(index.entries)))
    fields = np.array(per_field)
    total = fields.sum(axis=0)
    cand = np.argsort(-total, kind="stable")[:RECALL]
    qbi = set(_bigrams(qwords))
    qlevels = {lv for lv, keys in LEVEL_WORDS.items() if keys & qbi}
    qtext = f" {' '.join(qwords)} "
    qweight = index._weight(q) or 1.0
    field_max = fields[:, cand].max(axis=1) + 1e-9
    rows = []
    for rank, i in enumerate(cand):
        e = index.entries[int(i)]
        best = max(e.prepared, key=lambda t: index._score_text(q, qbi, t), default=None)
        words = {s for t in e.prepared for s in t.words}
        row = [total[i] / (total[cand[0]] or 1.0), float(np.log1p(total[i])), 1 / (rank + 1)]
        row += list(fields[:, i] / field_max)
        if best is not None and best.total:
            row += [index._score_text(q, qbi, best),
                    index._weight(best.content & q) / best.total,
                    len(best.bigrams & qbi) / len(best.bigrams) if best.bigrams else 0.0,
                    len(best.content)]
        else:
            row += [0.0, 0.0, 0.0, 0.0]
        row.append(index._weight(q & words) / qweight)
        row += [float(lv in e.levels) for lv in ("xa", "tinh", "bo", "khac")]
        row += [float(bool(qlevels)), float(bool(e.levels & qlevels))]
        row += [float(bool(e.variant)), float(bool(e.variant) and f" {e.variant} " in qtext)]
        row += [float(len(q)), float(len(q) >= 8)]
        rows.append(row)
    return [index.entries[int(i)].code for i in cand], np.array(rows, dtype=float)


def rank_of(order: list[str], case: Case) -> int | None:
    return next((r for r, c in enumerate(order) if c in case.codes), None)


def summary(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    out = {f"top{k}": round(sum(r is not None and r < k for r in ranks) / n, 3) for k in KS}
    out["mrr"] = round(sum(1 / (r + 1) for r in ranks if r is not None) / n, 3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    index = CatalogIndex(docs_from_records(parse_files([CRAWL])))
    cases, _ = load_cases(FAQ)
    shipped = [rank_of([r.code for r in index.search(c.question, limit=10, min_score=0.0)], c)
               for c in cases]
    data = [candidate_features(index, c.question) for c in cases]
    recall = {f"recall@{k}": round(sum(rank_of(codes[:k], c) is not None
                                       for (codes, _), c in zip(data, cases, strict=True))
                                   / len(cases), 3) for k in (10, 30, RECALL)}
    rng = np.random.default_rng(0)
    folds = np.array_split(rng.permutation(len(cases)), args.folds)
    models = {
        "logistic regression": lambda: LogisticRegression(C=1.0, max_iter=5000),
        "gradient boosting": lambda: HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=4, random_state=0),
    }
    learned: dict[str, dict[str, float]] = {}
    for label, make in models.items():
        ranks: list[int | None] = [None] * len(cases)
        for held in folds:
            held_set = set(int(i) for i in held)
            train = [(x, np.array([code in cases[i].codes for code in codes], dtype=int))
                     for i, (codes, x) in enumerate(data) if i not in held_set and len(codes)]
            model = make().fit(np.vstack([x for x, _ in train]),
                               np.concatenate([y for _, y in train]))
            for i in held_set:
                codes, x = data[i]
                if not codes:
                    continue
                order = np.argsort(-model.predict_proba(x)[:, 1], kind="stable")
                ranks[i] = rank_of([codes[j] for j in order], cases[i])
        learned[label] = summary(ranks)
    result = {"questions": len(cases), "catalog": len(index.entries),
              "shipped_search": summary(shipped), "bm25f_recall": recall,
              "reranker_fitted_on_faq_cv": learned, "target": {"top1": 0.75, "top3": 0.90}}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"{FAQ.name}: {len(cases)} câu hỏi, danh mục {len(index.entries)} thủ tục")
    print(f"  tìm kiếm hiện tại:            {result['shipped_search']}")
    print(f"  BM25F recall:                 {recall}")
    for label, m in learned.items():
        print(f"  reranker học trên FAQ ({args.folds}-fold, {label}): {m}")
    print("  mục tiêu: top1 0.75, top3 0.90")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
