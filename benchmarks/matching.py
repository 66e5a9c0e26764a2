"""Benchmark the FAQ matcher against plain rapidfuzz baselines.

Run from the project root::

    python -m benchmarks.matching [--quick] [--markdown] [--data DIR]

Data: ``train.csv`` and ``test.csv`` (columns ``text,intent``) from the HWU64
intent data set, by default in ``<project>/../shared/data/hwu64`` (override
with ``--data DIR`` or the ``HELPDESK_BENCH_DATA`` environment variable).

Knowledge bases are built from K = 1, 3, 10 and all training phrasings per
intent (sampled with ``random.Random(42)``); every test sentence is a query.
Methods:

* ``matcher``          -- :func:`kb.matcher.build_matcher` (this project)
* ``token_set_ratio``  -- rapidfuzz ``fuzz.token_set_ratio``, best phrasing
* ``WRatio``           -- rapidfuzz ``fuzz.WRatio``, best phrasing

The baselines use ``rapidfuzz.utils.default_process`` on both sides; the
phrasings are pre-processed once (as a deployed baseline would) and each
query is processed once per search.

For the project matcher on the largest knowledge base the script also prints
how the top score is distributed (share of queries with top score >= t and
how often the top hit / top 3 hits are right among them), which is what
``answer_threshold`` / ``suggest_threshold`` are chosen from, and, for every
K, the answered / suggested / no-match split at the recommended thresholds
(``--answer`` / ``--suggest`` to try others).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared/data/hwu64"
ENV_VAR = "HELPDESK_BENCH_DATA"

DEFAULT_KS: tuple[int | None, ...] = (1, 3, 10, None)  # None = all phrasings
QUICK_KS: tuple[int | None, ...] = (1, None)
QUICK_QUERIES = 300
SEED = 42
THRESHOLDS = tuple(round(0.10 + 0.05 * i, 2) for i in range(17))  # 0.10 .. 0.90

#: Thresholds recommended from this benchmark (see the module docstring).
RECOMMENDED_ANSWER_THRESHOLD = 0.40
RECOMMENDED_SUGGEST_THRESHOLD = 0.20

MATCHER = "matcher"
BASELINES = {
    "token_set_ratio": fuzz.token_set_ratio,
    "WRatio": fuzz.WRatio,
}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def resolve_data_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    if cli_value:
        return Path(cli_value)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_DATA_DIR


def load_csv(path: Path) -> list[tuple[str, str]]:
    """Rows of (text, intent); rows with an empty text or intent are skipped."""
    rows: list[tuple[str, str]] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            text = (rec.get("text") or "").strip()
            intent = (rec.get("intent") or "").strip()
            if text and intent:
                rows.append((text, intent))
    return rows


def build_kb(
    train: Sequence[tuple[str, str]], k: int | None, seed: int = SEED
) -> list[tuple[str, list[str]]]:
    """K phrasings per intent (all if ``k`` is None), deterministic sample."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append(text)
    rng = random.Random(seed)
    kb: list[tuple[str, list[str]]] = []
    for intent in sorted(by_intent):
        texts = by_intent[intent]
        if k is not None and k < len(texts):
            texts = rng.sample(texts, k)
        kb.append((intent, list(texts)))
    return kb


def _k_label(k: int | None) -> str:
    return "all" if k is None else str(k)


# --------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def _eval_matcher(kb, queries):
    from kb.matcher import build_matcher

    t0 = time.perf_counter()
    matcher = build_matcher(kb)
    build_ms = (time.perf_counter() - t0) * 1000.0

    latencies: list[float] = []
    correct = top3 = 0
    scored: list[tuple[float, bool, bool]] = []  # (top score, top1 ok, in top3)
    for text, intent in queries:
        t0 = time.perf_counter()
        hits = matcher.match(text, limit=3)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        ok1 = bool(hits) and hits[0].entry_id == intent
        ok3 = any(h.entry_id == intent for h in hits)
        correct += ok1
        top3 += ok3
        scored.append((hits[0].score if hits else 0.0, ok1, ok3))
    n = max(1, len(queries))
    row = {
        "method": MATCHER,
        "accuracy": 100.0 * correct / n,
        "top3": 100.0 * top3 / n,
        "median_ms": statistics.median(latencies) if latencies else 0.0,
        "p99_ms": _percentile(latencies, 0.99),
        "build_ms": build_ms,
    }
    return row, scored


def _eval_baseline(name, scorer, kb, queries):
    choices: list[str] = []
    labels: list[str] = []
    for intent, phrasings in kb:
        for p in phrasings:
            choices.append(default_process(p))
            labels.append(intent)
    latencies: list[float] = []
    correct = 0
    for text, intent in queries:
        t0 = time.perf_counter()
        best = process.extractOne(
            default_process(text), choices, scorer=scorer, processor=None
        )
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if best is not None and labels[best[2]] == intent:
            correct += 1
    n = max(1, len(queries))
    return {
        "method": name,
        "accuracy": 100.0 * correct / n,
        "top3": None,
        "median_ms": statistics.median(latencies) if latencies else 0.0,
        "p99_ms": _percentile(latencies, 0.99),
        "build_ms": None,
    }


def threshold_analysis(
    scored: Sequence[tuple[float, bool, bool]],
    thresholds: Iterable[float] = THRESHOLDS,
) -> list[dict]:
    """For each t: share of queries with top score >= t and accuracy among them."""
    n = max(1, len(scored))
    out = []
    for t in thresholds:
        sel = [s for s in scored if s[0] >= t - 1e-9]
        k = len(sel)
        out.append(
            {
                "threshold": t,
                "share": 100.0 * k / n,
                "top1_correct": 100.0 * sum(s[1] for s in sel) / k if k else None,
                "top3_correct": 100.0 * sum(s[2] for s in sel) / k if k else None,
            }
        )
    return out


def operating_point(
    scored: Sequence[tuple[float, bool, bool]], answer: float, suggest: float
) -> dict:
    """What the bot would do with ``answer``/``suggest`` thresholds."""
    n = max(1, len(scored))
    ans = [x for x in scored if x[0] >= answer - 1e-9]
    sug = [x for x in scored if suggest - 1e-9 <= x[0] < answer - 1e-9]
    none = [x for x in scored if x[0] < suggest - 1e-9]

    def pct(part, of):
        return 100.0 * part / len(of) if of else None

    return {
        "answered": 100.0 * len(ans) / n,
        "answered_correct": pct(sum(x[1] for x in ans), ans),
        "suggested": 100.0 * len(sug) / n,
        "suggested_top3_correct": pct(sum(x[2] for x in sug), sug),
        "no_match": 100.0 * len(none) / n,
    }


def evaluate(
    data_dir: str | os.PathLike[str] | None = None,
    ks: Iterable[int | None] = DEFAULT_KS,
    limit_queries: int | None = None,
    methods: Iterable[str] | None = None,
) -> tuple[list[dict], dict[str, list[tuple[float, bool, bool]]]]:
    """Rows as in :func:`run` plus per-K (top score, top1 ok, top3 ok) lists."""
    data = resolve_data_dir(data_dir)
    train = load_csv(data / "train.csv")
    queries = load_csv(data / "test.csv")
    if limit_queries is not None:
        queries = queries[: max(0, int(limit_queries))]
    wanted = list(methods) if methods is not None else [MATCHER, *BASELINES]

    rows: list[dict] = []
    scores: dict[str, list[tuple[float, bool, bool]]] = {}
    for k in ks:
        kb = build_kb(train, k)
        common = {
            "k": _k_label(k),
            "entries": len(kb),
            "phrasings": sum(len(p) for _, p in kb),
            "queries": len(queries),
        }
        for method in wanted:
            if method == MATCHER:
                row, scored = _eval_matcher(kb, queries)
                scores[common["k"]] = scored
            else:
                row = _eval_baseline(method, BASELINES[method], kb, queries)
            rows.append({**common, **row})
    return rows, scores


def run(
    data_dir: str | os.PathLike[str] | None = None,
    ks: Iterable[int | None] = DEFAULT_KS,
    limit_queries: int | None = None,
) -> list[dict]:
    """Run the benchmark; one dict per (K, method).

    Keys: k ("1", "3", "10", "all"), method, entries, phrasings, queries,
    accuracy (top-1, %), top3 (%, matcher only), median_ms, p99_ms,
    build_ms (matcher only, else None).
    """
    rows, _ = evaluate(data_dir, ks, limit_queries)
    return rows


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

_COLUMNS = (
    ("K", "k", "{}"),
    ("entries", "entries", "{}"),
    ("phrasings", "phrasings", "{}"),
    ("method", "method", "{}"),
    ("top-1 %", "accuracy", "{:.1f}"),
    ("top-3 %", "top3", "{:.1f}"),
    ("median ms", "median_ms", "{:.3f}"),
    ("p99 ms", "p99_ms", "{:.3f}"),
    ("build ms", "build_ms", "{:.1f}"),
)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def format_table(
    headers: Sequence[str],
    body: Sequence[Sequence[str]],
    markdown: bool,
    left: Iterable[int] = (0,),
) -> str:
    left = set(left)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append(
            "|" + "|".join("---" if i in left else "---:" for i in range(len(headers))) + "|"
        )
        lines.extend("| " + " | ".join(r) + " |" for r in body)
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )
    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in body)
    return "\n".join(out)


def format_results(rows: Sequence[dict], markdown: bool = False) -> str:
    headers = [c[0] for c in _COLUMNS]
    body = [[_fmt(r.get(key), spec) for _, key, spec in _COLUMNS] for r in rows]
    return format_table(headers, body, markdown, left=(0, 3))


def format_thresholds(analysis: Sequence[dict], markdown: bool = False) -> str:
    headers = ["top score >=", "share of queries %", "top-1 correct %", "top-3 correct %"]
    body = [
        [
            f"{a['threshold']:.2f}",
            f"{a['share']:.1f}",
            _fmt(a["top1_correct"], "{:.1f}"),
            _fmt(a["top3_correct"], "{:.1f}"),
        ]
        for a in analysis
    ]
    return format_table(headers, body, markdown, left=())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help=f"data dir with train.csv/test.csv (env {ENV_VAR})")
    parser.add_argument("--quick", action="store_true", help=f"K=1 and all, first {QUICK_QUERIES} queries")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--answer", type=float, default=RECOMMENDED_ANSWER_THRESHOLD,
                        help="answer threshold for the outcome split (default %(default)s)")
    parser.add_argument("--suggest", type=float, default=RECOMMENDED_SUGGEST_THRESHOLD,
                        help="suggest threshold for the outcome split (default %(default)s)")
    args = parser.parse_args(argv)

    data_dir = resolve_data_dir(args.data)
    if not (data_dir / "train.csv").is_file() or not (data_dir / "test.csv").is_file():
        print(f"error: train.csv/test.csv not found in {data_dir}", file=sys.stderr)
        return 2
    ks = QUICK_KS if args.quick else DEFAULT_KS
    limit = QUICK_QUERIES if args.quick else None

    t0 = time.perf_counter()
    rows, scores = evaluate(data_dir, ks, limit)
    elapsed = time.perf_counter() - t0

    print(f"data: {data_dir}  queries: {rows[0]['queries'] if rows else 0}  seed: {SEED}")
    print()
    print(format_results(rows, args.markdown))
    last_k = _k_label(list(ks)[-1])
    if last_k in scores:
        print()
        print(f"Score distribution, project matcher, K={last_k}:")
        print()
        print(format_thresholds(threshold_analysis(scores[last_k]), args.markdown))
    print()
    print(
        f"Outcome split, project matcher, answer_threshold={args.answer:.2f}, "
        f"suggest_threshold={args.suggest:.2f}:"
    )
    print()
    headers = ["K", "answered %", "answered right %", "suggested %",
               "right one in suggestions %", "no match %"]
    body = []
    for k, scored in scores.items():
        op = operating_point(scored, args.answer, args.suggest)
        body.append([
            k,
            f"{op['answered']:.1f}",
            _fmt(op["answered_correct"], "{:.1f}"),
            f"{op['suggested']:.1f}",
            _fmt(op["suggested_top3_correct"], "{:.1f}"),
            f"{op['no_match']:.1f}",
        ])
    print(format_table(headers, body, args.markdown))
    print()
    print(f"total time: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
