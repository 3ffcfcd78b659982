"""``dasan kb build|update|units|search|info|list|activate|rollback|import``, ``dasan eval retrieval`` and
``dasan eval rerank`` (registered by assist/cli.py).

Why one module of ~430 lines: argument parsing and printing for each command, no logic of their own
(that is in the modules beside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("dasan.kb")


def register(sub: Any, groups: dict[str, Any]) -> None:
    kb = sub.add_parser("kb", help="Build, update and search the regulation knowledge base")
    kb_sub = kb.add_subparsers(dest="kb_command", metavar="ACTION", required=True)

    p = kb_sub.add_parser("build", help="Build the index for the configured corpus (with a progress bar)")
    p.add_argument(
        "--corpus", nargs="*", help="JSONL files (default: DASAN_KB_CORPUS_PATHS or the shared corpus)"
    )
    p.add_argument("--bm25-only", action="store_true", help="Skip the dense side (no embedding model needed)")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="Do nothing when an index for this corpus and these settings is already built "
        "(with --budget: a provisional one will do too)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Fit the embedding into this many seconds on this machine: if the configured token cap is "
        "projected to take longer, build a provisional index at a shorter cap (a later full build replaces it)",
    )
    p.add_argument(
        "--units",
        action="store_true",
        help="Then embed every statute sentence for the drafts' sentence choice (as `dasan kb units`)",
    )
    p.set_defaults(func=cmd_build, reuse=False)

    p = kb_sub.add_parser("update", help="Rebuild for a changed corpus, re-embedding only changed passages")
    p.add_argument(
        "--corpus", nargs="*", help="JSONL files (default: DASAN_KB_CORPUS_PATHS or the shared corpus)"
    )
    p.add_argument("--bm25-only", action="store_true", help="Skip the dense side (no embedding model needed)")
    p.set_defaults(func=cmd_build, reuse=True, budget=None)

    p = kb_sub.add_parser("list", help="List the built versions (indexes) and which one is active")
    p.add_argument("--json", action="store_true", help="Print JSON")
    p.set_defaults(func=cmd_list)

    p = kb_sub.add_parser(
        "activate", help="Make a built version active and tell the running assist services to switch"
    )
    p.add_argument("key", help="Index key (or a unique prefix of it), from `dasan kb list`")
    p.add_argument("--no-announce", action="store_true", help="Only record it (services use it at restart)")
    p.set_defaults(func=cmd_activate)

    p = kb_sub.add_parser("rollback", help="Go back to the version active before the current one")
    p.add_argument("--no-announce", action="store_true", help="Only record it (services use it at restart)")
    p.set_defaults(func=cmd_rollback)

    p = kb_sub.add_parser(
        "import",
        help="Read a folder of corpus files (*.jsonl, the corpus format), report added, amended and repealed "
        "articles against the active version, then build it as a new version",
    )
    p.add_argument("folder", help="Folder of JSONL files in the format of ../shared/corpus/regulations.jsonl")
    p.add_argument("--dry-run", action="store_true", help="Only report what changed; build nothing")
    p.add_argument("--activate", action="store_true", help="Activate the new version once built")
    p.add_argument("--bm25-only", action="store_true", help="Skip the dense side (no embedding model needed)")
    p.add_argument("--no-announce", action="store_true", help="With --activate: only record it")
    p.set_defaults(func=cmd_import)

    p = kb_sub.add_parser("search", help="Search the knowledge base")
    p.add_argument("query", help="The question, in Korean")
    p.add_argument("--top-k", type=int, default=5, help="How many articles to show")
    p.add_argument("--method", choices=["hybrid", "bm25", "dense", "bm25_ws"], default="hybrid")
    p.add_argument("--law", action="append", default=[], help="Only this law (repeatable)")
    p.add_argument("--jurisdiction", action="append", default=[], help="Only this jurisdiction (repeatable)")
    p.add_argument("--applies-in", help="Only rules that apply in this place, e.g. '서울특별시 송파구'")
    p.add_argument("--topic", action="append", default=[], help="Only this topic tag (repeatable)")
    p.add_argument("--as-of", help="Effective-date rule for this day (YYYY-MM-DD, default today)")
    p.add_argument("--json", action="store_true", help="Print JSON")
    p.set_defaults(func=cmd_search)

    p = kb_sub.add_parser(
        "units",
        help="Embed every statute sentence of the built index once, for the drafts' sentence choice",
        description="Stores a document vector of every sentence and 호 item of every passage beside the "
        "index (unit_vectors.npy/.json), so the grounded draft weighs the question's cosine to each "
        "sentence (DASAN_ASSIST_DRAFT_DENSE_WEIGHT) without an encoder call while serving. Rows of "
        "unchanged passages are reused from the newest store of another index. A running assist "
        "service picks the store up within a minute.",
    )
    p.add_argument("--if-missing", action="store_true", help="Do nothing when the index already has them")
    p.add_argument("--batch-size", type=int, default=32, help="Units per encoder batch")
    p.set_defaults(func=cmd_units)

    p = kb_sub.add_parser("info", help="Show the built index (size, settings, memory)")
    p.add_argument("--json", action="store_true", help="Print JSON")
    p.set_defaults(func=cmd_info)

    p = kb_sub.add_parser(
        "memory",
        help="The site's question memory: questions its counselors confirmed, read by the second stage",
        description="add: embed the questions of utterances.jsonl files (a `dasan feedback export`, or "
        "hand-labelled) and keep their vectors and article ids — no text — in DASAN_KB_MEMORY_SITE_PATH, "
        "beside the shipped memory; the assist service reads it when it starts. info: sizes. clear: "
        "remove the site's memory.",
    )
    msub = p.add_subparsers(dest="memory_command", metavar="ACTION", required=True)
    m = msub.add_parser("add", help="Add (or relabel) the questions of utterances.jsonl files")
    m.add_argument("files", type=Path, nargs="+", help="utterances.jsonl files")
    m.set_defaults(func=cmd_memory)
    m = msub.add_parser("info", help="How many questions the shipped and the site's memory hold")
    m.set_defaults(func=cmd_memory)
    m = msub.add_parser("clear", help="Remove the site's memory (the shipped one stays)")
    m.set_defaults(func=cmd_memory)

    p = groups["eval"].add_parser("retrieval", help="Recall, MRR and nDCG of each retrieval method")
    p.add_argument("file", help="Labelled JSONL (format of eval-dev/utterances.jsonl)")
    p.add_argument("--json", action="store_true", help="Print JSON")
    p.add_argument("--per-item", action="store_true", help="Include per-item rankings in the JSON")
    p.add_argument(
        "--noisy", action="store_true", help="Also evaluate ASR-like noisy variants of the utterances"
    )
    p.add_argument(
        "--query-backend",
        choices=["bf16", "torch", "int8", "onnx", "onnx-fp32"],
        default=None,
        help="Embed the queries with this encoder backend against the built index's passage vectors "
        "(made by the configured backend): a query-side comparison without re-embedding the corpus",
    )
    p.set_defaults(func=cmd_eval_retrieval)

    p = groups["eval"].add_parser(
        "rerank", help="Cross-validate the learned second stage (and with --train, refit and save it)"
    )
    p.add_argument(
        "--folds", type=int, default=5, help="Grouped folds (an item and its rewrite, a call: one fold)"
    )
    p.add_argument(
        "--max-withheld",
        type=float,
        default=0.035,
        help="Most in-scope questions of the training folds abstention may withhold (0.035: with sets "
        "1–28 and 30–36 held-out folds withheld 0.043 (0.040–0.048 over 5 seeds) at out-of-scope "
        "abstention 0.927 (0.915–0.936), where 0.04 withheld 0.050 (0.048–0.051), over the 0.05 "
        "promise on some seeds; docs/knowledge.md, Sessions 20–24)",
    )
    p.add_argument("--train", action="store_true", help="Then fit on every example and write the model files")
    p.add_argument(
        "--with-holdout1",
        action="store_true",
        help="Also learn from eval/*_holdout.jsonl (an experiment of session 8; the shipped models do not)",
    )
    p.add_argument(
        "--with-holdouts",
        default="",
        metavar="N,N",
        help="Also learn from these held-out sets (1: eval/*_holdout.jsonl, N: eval/*_holdoutN.jsonl); the "
        "known ones are rerank_train.HOLDOUT_SUFFIX, and a set still blind (rerank_train.BLIND_HOLDOUTS) is "
        "refused; the shipped models' list is in eval/README.md, 'Which sets are what'",
    )
    p.add_argument(
        "--call-turns",
        action="store_true",
        help="The out-of-scope model also learns from call turns: labelled ones in scope, "
        "questions labelled [] out of scope",
    )
    p.add_argument(
        "--call-model",
        choices=("questions", "no_card"),
        default=None,
        help="Also cross-validate (and with --train ship) an in-call abstention model learned from call "
        "turns alone, with the caller's words as features: it withholds a card from the unanswerable "
        "in-call questions (questions) or from every non-closing turn labelled [] (no_card)",
    )
    p.add_argument("--ablation", action="store_true", help="Also cross-validate without each feature group")
    p.add_argument(
        "--drop-features",
        metavar="NAME,NAME",
        default="",
        help="Hold these ranker features at 0 in every model of this run (rerank.FEATURES): the "
        "baseline a new feature is judged against, on the same cached features and seeds; refused "
        "with --train (the shipped models read every feature)",
    )
    p.add_argument(
        "--leave-writer-out",
        nargs="?",
        const="all",
        default=None,
        metavar="N,N",
        help="Also fit on all writers' sets but one and judge that one, with and without the question "
        "memory: every writer (no value), or the writers of these held-out sets (e.g. 46,47,48)",
    )
    p.add_argument(
        "--no-memory",
        action="store_true",
        help="Cross-validate without the question memory (the models read none; with --train, ship none)",
    )
    p.add_argument(
        "--no-oos-probe",
        action="store_true",
        help="Abstention without the out-of-scope probe on the caller's words' vector (oos_probe.py; "
        "with --train, ship none)",
    )
    p.add_argument(
        "--call-model-all-calls",
        action="store_true",
        help="Judge --call-model on every call set's held-out folds, not only the fixed pools",
    )
    p.add_argument(
        "--ranker-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a LightGBM ranker parameter (rerank_train.PARAMS) for this run, e.g. num_leaves=31",
    )
    p.add_argument(
        "--no-turn-probe",
        action="store_true",
        help="The in-call abstention model (--call-model) without the turn probe on the caller's words' "
        "vector (oos_probe.py; with --train, ship none)",
    )
    p.add_argument(
        "--context-vectors",
        choices=("text", "composed", "composed-h"),
        default=None,
        help="How the context variants' dense queries are made (rerank.CONTEXT_VECTORS; default: as the "
        "shipped models learned); --train records it beside the models",
    )
    p.add_argument(
        "--unfamiliar-share",
        type=float,
        default=None,
        metavar="P",
        help="Share of labelled training rows that read the question memory without the questions on "
        "their own articles, as a question on an article nobody asked about (default: the shipped "
        "models' setting, rerank_train.UNFAMILIAR_SHARE)",
    )
    p.add_argument(
        "--seeds",
        default="",
        metavar="N,N",
        help="Also repeat the cross-validation with these random seeds of the ranker (e.g. 13,1,2,3,4) "
        "and report the spread: a difference smaller than it is noise",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="Also run each fold's held-out utterances and calls through the product (drafts, live cards, summaries)",
    )
    p.add_argument(
        "--live-summaries",
        action="store_true",
        help="--live for the call summaries alone (each fold's held-out calls played with that fold's "
        "models; no utterances, no turn scores); with --train, also fit and write the learned summary "
        "confirmation (assist/summary_confirm.json) on every call's out-of-fold evidence",
    )
    p.add_argument(
        "--summary-evidence",
        default="",
        metavar="PATH",
        help="With --live/--live-summaries: also write every played call's summary evidence (card "
        "articles, law neighbours, closeness; article ids and numbers only) to PATH, for `dasan eval confirm`",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="Recompute the candidates' features (cached per index, labelled set and feature code)",
    )
    p.add_argument("--out", default="benchmarks/results/rerank_cv.json", help="Where the report goes")
    p.set_defaults(func=cmd_eval_rerank)

    p = groups["eval"].add_parser(
        "confirm",
        help="Cross-validate the summary's learned confirmation on recorded evidence "
        "(dasan eval rerank --live-summaries --summary-evidence) in seconds; with --train, refit and save it",
    )
    p.add_argument("evidence", help="The evidence file --summary-evidence wrote")
    p.add_argument("--kind", choices=("logistic", "boosted"), default=None, help="Default: the shipped kind")
    p.add_argument(
        "--neighbours", type=int, default=None, help="Law neighbours per card law (default: LAW_NEIGHBOURS)"
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--train",
        action="store_true",
        help="Then fit on every call and write assist/summary_confirm.json at the operating point "
        "`dasan eval rerank --live-summaries --train` would choose",
    )
    p.add_argument("--out", default="benchmarks/results/confirm_cv.json", help="Where the report goes")
    p.set_defaults(func=cmd_eval_confirm)


def _settings(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from .settings import KnowledgeSettings

    update: dict[str, Any] = {}
    if getattr(args, "corpus", None):
        update["corpus_paths"] = [Path(p) for p in args.corpus]
    if getattr(args, "bm25_only", False):
        update["dense_enabled"] = False
    return KnowledgeSettings().model_copy(update=update)


def _open(settings: Any) -> Any:
    from .dense import DenseModelMissing
    from .kb import KnowledgeBase

    try:
        return KnowledgeBase.open(settings, progress=sys.stderr.isatty())
    except DenseModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _open_with_query_backend(settings: Any, backend: str) -> Any:
    """The built index of ``settings`` (its passage vectors as its backend made them), with an
    encoder of ``backend`` for the queries; None (and a message) when that index is not built."""
    from .corpus import load_records
    from .dense import Encoder
    from .kb import KnowledgeBase
    from .store import IndexStore, index_key

    settings = settings.resolved()
    store = IndexStore(settings.index_dir)
    path = store.path_for(index_key(load_records(settings.corpus_paths), settings))
    if not store.is_built(path):
        print(f"error: no index built for these settings ({path}): run `dasan kb build`", file=sys.stderr)
        return None
    encoder = Encoder(
        settings.embedding_model_path,
        backend,
        settings.max_seq_length,
        settings.query_max_length,
        settings.threads,
    )
    return KnowledgeBase.load(path, settings, encoder=encoder)


def served_for_queries(kb: Any, path: Any) -> Any:
    """The index as a service loads it: ``kb`` itself when its encoder is the one services embed
    queries with, else the saved index loaded again with that query encoder (an fp32 index built
    with torch is queried through ONNX fp32 where the export is ready: ``query_encoders``)."""
    from .kb import KnowledgeBase

    if kb.encoder is None or kb.settings.query_encoders()[0] == kb.encoder.backend:
        return kb
    return KnowledgeBase.load(path, kb.settings, analyzer=kb.analyzer)


def cmd_build(args: argparse.Namespace) -> int:
    import time

    from .dense import DenseModelMissing
    from .kb import KnowledgeBase

    settings = _settings(args)
    t0 = time.perf_counter()
    if getattr(args, "if_missing", False):
        path = KnowledgeBase.index_path(settings)
        if (path / "manifest.json").is_file():
            print(f"index already built: {path}")
            return 0
        if args.budget is not None:
            found = KnowledgeBase.provisional_index(settings)
            if found is not None:
                print(f"provisional index already built: {found} (`dasan kb build` makes the full one)")
                return 0
    try:
        reuse = KnowledgeBase.latest(settings) if args.reuse else None
        kb = KnowledgeBase.build(None, settings, progress=True, reuse=reuse, budget_s=args.budget)
    except DenseModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = kb.save()
    print(
        f"built {kb.info()['passages']} passages from {len(kb.records)} records in {time.perf_counter() - t0:.1f} s"
    )
    if kb.provisional:
        print(
            f"provisional: articles embedded at {kb.settings.max_seq_length} tokens to fit the {args.budget:.0f} s "
            f"budget (projected full build: {kb.provisional['projected_s'][str(settings.max_seq_length)]:.0f} s); "
            "run `dasan kb build` for the full index"
        )
    print(f"index: {path}")
    if kb.dense is not None:
        from .memory import shipped_memory

        t1 = time.perf_counter()
        # the shipped questions embedded by the encoder that services query this index with, stored
        # beside it (its vectors are keyed by that encoder: embedded by the build's, a service on an
        # fp32 index — queried through ONNX fp32 — embedded them all again at its first start)
        memory = shipped_memory(served_for_queries(kb, path), progress=True)
        if memory is not None:
            print(f"question memory: {len(memory)} questions embedded in {time.perf_counter() - t1:.1f} s")
    active = _registry(settings).active()
    if active is not None and active != kb.key:
        print(f"version {active} is the active one; use this one with: dasan kb activate {kb.key}")
    if getattr(args, "units", False):
        if kb.dense is None or kb.provisional:
            print(
                "no statute-sentence vectors: "
                + ("a BM25-only index" if kb.dense is None else "a provisional index")
            )
            return 0
        return _units(kb, batch_size=32)
    return 0


def _units(kb: Any, batch_size: int, reuse: Any = None) -> int:
    """Embed ``kb``'s units, reusing the rows of ``reuse`` (its own store), else of the newest store
    of another index, where a passage is unchanged."""
    from assist.unit_store import latest_store, precompute

    reuse = reuse or latest_store(kb.settings.index_dir, kb.encoder.fingerprint, exclude=kb.path)
    print(
        f"embedding statute sentences with {kb.encoder.backend} (reused where unchanged: {reuse is not None})"
    )
    stats = precompute(kb, batch_size=batch_size, progress=True, reuse=reuse)
    print(
        f"unit vectors: {stats['units']} units of {stats['passage_count']} passages ({stats['embedded']} embedded, "
        f"{stats['reused']} reused) in {stats['seconds']:.0f} s, {stats['bytes'] / 2**20:.0f} MiB, in {kb.path}"
    )
    return 0


def cmd_units(args: argparse.Namespace) -> int:
    from assist.unit_store import UnitStore

    from .dense import DenseModelMissing
    from .kb import KnowledgeBase
    from .store import IndexNotFound

    settings = _settings(args)
    try:
        kb = KnowledgeBase.open(settings, build_if_missing=False)
    except (IndexNotFound, DenseModelMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if kb.dense is None or kb.encoder is None:
        print(
            "error: the index has no dense side (built --bm25-only): nothing to embed units with",
            file=sys.stderr,
        )
        return 1
    stored = UnitStore.load(kb.path, kb.encoder.fingerprint)
    if args.if_missing and stored is not None:
        missing = stored.missing(kb.passages)
        if not missing:
            print(f"unit vectors already stored: {kb.path}")
            return 0
        print(f"{missing} passages have no current unit vectors: embedding those")
    return _units(kb, args.batch_size, stored)


def cmd_search(args: argparse.Namespace) -> int:
    from datetime import date

    from .records import SearchFilters

    kb = _open(_settings(args))
    if kb is None:
        return 1
    filters = SearchFilters(
        law_names=args.law,
        jurisdictions=args.jurisdiction,
        applies_in=args.applies_in,
        topics=args.topic,
        **({"as_of": date.fromisoformat(args.as_of)} if args.as_of else {}),
    )
    hits = kb.search(args.query, top_k=args.top_k, filters=filters, method=args.method)
    confident = kb.is_confident(hits)
    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "confident": confident,
                    "hits": [h.model_dump(mode="json") for h in hits],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    if not hits:
        print("no passage found")
        return 0
    if not confident:
        print("(low confidence: below the abstention threshold, a counselor would not be shown these)")
    for n, h in enumerate(hits, 1):
        ranks = ", ".join(f"{k} #{v}" for k, v in h.ranks.items())
        print(f"{n}. {h.citation}  [{h.doc_id}]  score {h.score:.3f} ({ranks})")
        print(f"   {h.snippet}")
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    from .memory import MEMORY_PATH, QuestionMemory, describe, grow_site_memory, read_questions

    settings = _settings(args)
    path = Path(settings.memory_site_path)
    if args.memory_command == "info":
        # the shipped questions as listed (their vectors are the index's: `dasan kb build` embeds them)
        texts, articles = read_questions(MEMORY_PATH) if MEMORY_PATH.exists() else ([], [])
        shipped = {"questions": len(texts), "out_of_scope": sum(1 for a in articles if not a)}
        site = QuestionMemory.load(path, missing_ok=True)
        info = {"shipped": shipped | {"path": str(MEMORY_PATH)}, "site": describe(site) | {"path": str(path)}}
        print(json.dumps(info, ensure_ascii=False, indent=1))
        return 0
    if args.memory_command == "clear":
        site = QuestionMemory.load(path, missing_ok=True)
        if path.exists():
            path.unlink()
        log.info("site question memory cleared", extra={"event": "memory_clear", "removed": len(site or ())})
        print(f"removed the site's memory ({len(site or ())} questions) at {path}")
        return 0
    items: list[dict[str, Any]] = []
    for f in args.files:
        items += [json.loads(ln) for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    kb = _open(settings)
    if kb is None or kb.dense is None:
        print("error: the question memory needs the dense side of a built index", file=sys.stderr)
        return 1
    counts = grow_site_memory(kb, path, items)
    log.info("site question memory grown", extra={"event": "memory_add", **counts})
    print(
        f"{counts['new']} questions added, {counts['relabelled']} relabelled, "
        f"{counts['skipped_unconfirmed']} without a confirmed answer and {counts['skipped_unknown_articles']} "
        f"citing articles this corpus lacks skipped; the site's memory holds {counts['total']} at {path} "
        "(the assist service reads it when it starts)"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import os
    import time

    import psutil

    proc = psutil.Process(os.getpid())
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    kb = _open(_settings(args))
    if kb is None:
        return 1
    info = kb.info()
    info["load_seconds"] = round(time.perf_counter() - t0, 2)
    info["memory_mb"] = round((proc.memory_info().rss - rss0) / 2**20, 1)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:>20}: {v}")
    return 0


def _save_confirm(
    evidence: list[Any], cv: dict[str, Any], kind: str | None = None, neighbours: int | None = None
) -> Any:
    """Fit the learned summary confirmation on every call's evidence and write it, its threshold the
    most recall at the precision floor ``cv`` chose (``shipped_floor``: the lowest that kept
    P >= 0.80 on every held-out fold), else the best F0.5; what was written (None: nothing fitted)."""
    from assist.eval_assist import CONFIRM_MIN_PRECISION, fit_confirm
    from assist.summary_regs import CONFIRM_KIND, LAW_NEIGHBOURS

    kind = kind or CONFIRM_KIND
    neighbours = LAW_NEIGHBOURS if neighbours is None else neighbours
    floor = cv.get("shipped_floor")
    confirm = fit_confirm(evidence, floor, kind, neighbours)
    if confirm is None:
        return None
    point = (
        f"most recall at P >= {floor} on the calls fitted (kept P >= {CONFIRM_MIN_PRECISION} on every held-out fold)"
        if floor is not None
        else "best F0.5"
    )
    confirm.save(
        calls=len(evidence),
        operating_point=point,
        fitted_on="out-of-fold evidence of every labelled call (dasan eval rerank --live-summaries --train)",
    )
    held = cv["learned_floors"].get(str(floor)) if floor is not None else cv["learned"]
    return {
        "kind": kind,
        "neighbours": neighbours,
        "threshold": confirm.threshold,
        "calls": len(evidence),
        "operating_point": point,
        "held_out_folds": held,
    }


def cmd_eval_confirm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from assist.eval_assist import regulations_cv
    from assist.summary_regs import CONFIRM_KIND, LAW_NEIGHBOURS, evidence_from_json

    path = Path(args.evidence)
    if not path.exists():
        print(
            f"error: {path}: no such evidence file (dasan eval rerank --live-summaries --summary-evidence)",
            file=sys.stderr,
        )
        return 2
    evidence = evidence_from_json(json.loads(path.read_text(encoding="utf-8")))
    kind = args.kind or CONFIRM_KIND
    neighbours = LAW_NEIGHBOURS if args.neighbours is None else args.neighbours
    cv = regulations_cv(evidence, args.folds, kind, neighbours)
    report: dict[str, Any] = {"evidence": str(path), "calls": len(evidence), "cv": cv}
    for name in ("learned", "learned_p80"):
        r = cv[name]
        folds = " ".join(f"{x['precision']:.2f}/{x['recall']:.2f}" for x in r["per_fold"])
        print(
            f"{kind}, {neighbours} neighbours, {name}: held-out folds P/R {folds}; mean {r['mean_precision']} / {r['mean_recall']}"
        )
    for fl, r in cv["learned_floors"].items():
        print(
            f"  floor {fl}: held-out mean P {r['mean_precision']} (worst fold {r['worst_fold_precision']}), "
            f"R {r['mean_recall']}"
        )
    print(f"shipped floor (the lowest keeping P >= 0.80 on every held-out fold): {cv['shipped_floor']}")
    if args.train:
        report["summary_confirm"] = _save_confirm(evidence, cv, kind, neighbours)
        print(f"wrote assist/summary_confirm.json: {report['summary_confirm']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


def cmd_eval_rerank(args: argparse.Namespace) -> int:
    from pathlib import Path

    from assist.assistant import Assistant
    from assist.settings import AssistSettings

    from .memory import MEMORY_FEATURES
    from .rerank import COMPOSED_MODEL_DIR, FEATURES, MODEL_PATH, Reranker
    from .rerank_train import (
        PARAMS,
        UNFAMILIAR_SHARE,
        cross_validate,
        default_sets,
        featurized_examples,
        shipped_context_vectors,
        train_and_save,
    )

    drop = tuple(f.strip() for f in args.drop_features.split(",") if f.strip())
    unknown = [f for f in drop if f not in FEATURES]
    # the memory's columns are computed again in every fold (from the fold's own questions): held at
    # 0 beforehand they would come back; --no-memory drops them all
    per_fold = [f for f in drop if f in MEMORY_FEATURES and f != "mem_law_vote"]
    why = ""
    if unknown:
        why = f"not ranker features: {', '.join(unknown)}"
    elif per_fold:
        why = f"{', '.join(per_fold)}: computed in every fold, use --no-memory"
    elif drop and args.train:
        why = "not with --train"
    if why:
        print(f"error: --drop-features: {why}", file=sys.stderr)
        return 2
    if args.leave_writer_out not in (None, "all"):
        from .rerank_train import WRITERS

        unknown_writers = [
            k for k in args.leave_writer_out.split(",") if k.strip() and f"holdout {k.strip()}" not in WRITERS
        ]
        if unknown_writers:
            print(f"error: --leave-writer-out: no held-out set {', '.join(unknown_writers)}", file=sys.stderr)
            return 2
    shipped_vectors = shipped_context_vectors()
    vectors = args.context_vectors or shipped_vectors
    model_path = MODEL_PATH
    if args.train and vectors != shipped_vectors:
        # a second model set beside the shipped one (#18), never in its place
        if vectors != "composed":
            print(f"error: --train: no model set is shipped for {vectors} vectors", file=sys.stderr)
            return 2
        if args.live_summaries:
            print(
                "error: --train --live-summaries: the summary confirmation is the shipped set's; fit it "
                "with the shipped set's vectors",
                file=sys.stderr,
            )
            return 2
        model_path = COMPOSED_MODEL_DIR / MODEL_PATH.name
    kb = _open(_settings(args))
    if kb is None:
        return 1
    if kb.dense is None:
        print("the second stage needs the dense side", file=sys.stderr)
        return 1
    root = Path(__file__).resolve().parents[2]
    assistant = Assistant(kb, AssistSettings(rerank=False))
    reranker = Reranker(kb, turn_features=True, context_vectors=vectors)
    holdouts = [k.strip() for k in (args.with_holdouts or "").split(",") if k.strip()]
    sets = default_sets(root, root.parent / "shared", with_holdout1=args.with_holdout1, holdouts=holdouts)
    print(
        f"{len(sets)} labelled sets; candidates and features of each from var/cache or computed now",
        file=sys.stderr,
    )
    examples, fresh = featurized_examples(
        assistant, reranker, sets, use_cache=not args.no_cache, progress=True
    )
    print(
        f"{len(examples)} labelled examples; featurised now: {', '.join(fresh) or 'none (all cached)'}",
        file=sys.stderr,
    )
    if drop:
        from .rerank_train import ablated

        examples = ablated(examples, drop)
        if "mem_law_vote" in drop:  # the memory's columns are recomputed per fold
            reranker.law_vote = False
    for kv in args.ranker_param:
        key, _, value = kv.partition("=")
        if key not in PARAMS or not value:
            print(f"error: --ranker-param {kv!r}: not KEY=VALUE of {', '.join(PARAMS)}", file=sys.stderr)
            return 2
        PARAMS[key] = type(PARAMS[key])(value)
    memory = not args.no_memory
    probe = not args.no_oos_probe
    turn_probe = not args.no_turn_probe
    share = UNFAMILIAR_SHARE if args.unfamiliar_share is None else args.unfamiliar_share
    report, oof = cross_validate(
        reranker,
        examples,
        args.folds,
        args.max_withheld,
        args.call_turns,
        memory=memory,
        unfamiliar_share=share,
        probe=probe,
    )
    report["unfamiliar_share"] = share
    report["oos_probe"] = probe
    report["ranker_params"] = dict(PARAMS)
    report["dropped_features"] = list(drop)
    report["index"] = kb.info()
    if args.call_model:
        from .rerank_train import call_model_cv

        report["call_model"] = call_model_cv(
            reranker,
            examples,
            oof,
            args.folds,
            args.max_withheld,
            args.call_model,
            memory=memory,
            unfamiliar_share=share,
            probe=probe,
            turn_probe=turn_probe,
            all_calls=args.call_model_all_calls,
        )
    if args.ablation:
        from .rerank_train import ablation

        report["ablation"] = ablation(reranker, examples, args.folds)
    if args.seeds:
        from .rerank_train import seed_spread

        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        report["seeds"] = seed_spread(
            reranker,
            examples,
            seeds,
            args.folds,
            args.max_withheld,
            memory=memory,
            unfamiliar_share=share,
            probe=probe,
        )
    if args.leave_writer_out:
        from .rerank_train import leave_writer_out

        writers = None
        if args.leave_writer_out != "all":
            writers = [f"holdout {k.strip()}" for k in args.leave_writer_out.split(",") if k.strip()]
        report["leave_writer_out"] = leave_writer_out(reranker, examples, share, writers)
    evidence: list[Any] = []
    if args.live or args.live_summaries:
        from assist.eval_cv import live_cv

        live_assistant = Assistant(kb, AssistSettings())
        report["live"] = live_cv(
            live_assistant,
            reranker,
            examples,
            oof,
            sets,
            args.folds,
            args.max_withheld,
            args.call_model,
            memory=memory,
            unfamiliar_share=share,
            probe=probe,
            turn_probe=turn_probe,
            summaries_only=args.live_summaries and not args.live,
            evidence_out=evidence,
        )
    if args.summary_evidence and evidence:
        from assist.summary_regs import evidence_to_json

        Path(args.summary_evidence).write_text(json.dumps(evidence_to_json(evidence), ensure_ascii=False))
    if args.train and evidence:
        cv = report["live"]["mean_of_held_out_folds"]["summary_regulations"]
        report["summary_confirm"] = _save_confirm(evidence, cv)
    if args.train:
        report["trained"] = train_and_save(
            reranker,
            examples,
            oof,
            path=model_path,
            max_withheld=args.max_withheld,
            call_turns=args.call_turns,
            call_model=args.call_model,
            memory=memory,
            unfamiliar_share=share,
            probe=probe,
            turn_probe=turn_probe,
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    mean = report["mean_of_held_out_folds"]
    print(f"mean of {args.folds} held-out folds (report: {out}):")
    for name, row in mean.items():
        if name == "abstain":
            print(
                f"  abstention: out of scope abstained {row['oos_abstained']}, in scope withheld {row['in_scope_withheld']}; "
                f"in-call questions abstained {row.get('call_questions_abstained_own_threshold')}, "
                f"labelled call turns withheld {row.get('call_turns_in_scope_withheld_own_threshold')} "
                f"(at the in-call threshold; at the single questions' {row.get('call_questions_abstained')} "
                f"and {row.get('call_turns_in_scope_withheld')})"
            )
            continue
        if name in ("familiar", "unfamiliar"):
            for kind, r in row.items():
                print(
                    f"  {kind}, articles {name} to the fold's memory (n={r['n']}): reranked H@1 "
                    f"{r['hit_at_1']:.3f} H@5 {r['hit_at_5']:.3f} MRR {r['mrr_at_10']:.3f}"
                )
            continue
        a, b = row["first_stage"], row["reranked"]
        print(
            f"  {name:<11} n={a['n']:<4} first stage H@1 {a['hit_at_1']:.3f} H@5 {a['hit_at_5']:.3f} "
            f"MRR {a['mrr_at_10']:.3f} → reranked H@1 {b['hit_at_1']:.3f} H@5 {b['hit_at_5']:.3f} MRR {b['mrr_at_10']:.3f}"
        )
    if "call_model" in report:
        cm = report["call_model"]["mean_of_held_out_folds"]
        for tag, label in (("call_model", "in-call model"), ("single_model", "single-question model")):
            r = cm.get(tag, {})
            print(
                f"  call turns, {label}: labelled withheld {r.get('labelled_withheld')}, in-call questions "
                f"withheld {r.get('questions_withheld')}, no-card turns withheld {r.get('no_card_withheld')}, "
                f"top card right {r.get('top1_right')}, shown precision {r.get('shown_precision')}"
            )
    for kind, row in report.get("seeds", {}).get("summary", {}).items():
        if isinstance(row, dict) and "hit_at_1" in row:
            h, m = row["hit_at_1"], row["mrr_at_10"]
            print(
                f"  {kind} over {len(report['seeds']['per_seed'])} seeds: H@1 {h['mean']:.3f} "
                f"({h['min']:.3f}–{h['max']:.3f}), MRR {m['mean']:.3f} ({m['min']:.3f}–{m['max']:.3f})"
            )
        elif isinstance(row, dict):
            print(f"  {kind} over seeds: {row['mean']} ({row['min']}–{row['max']})")
    for writer, res in report.get("leave_writer_out", {}).items():
        for kind, row in res.items():
            a, b = row["no_memory"], row["memory"]
            print(
                f"  {writer} left out, {kind} (n={a['n']}): H@1 / H@5 without memory {a['hit_at_1']:.3f} / "
                f"{a['hit_at_5']:.3f}, with {b['hit_at_1']:.3f} / {b['hit_at_5']:.3f}"
            )
    if "live" in report:
        lm = report["live"]["mean_of_held_out_folds"]
        u, t, r = lm["utterances"], lm["turns"], lm["summary_regulations"]
        print("  through the product, held-out folds (mean):")
        if u.get("citation_precision") is not None:
            print(
                f"    utterances: citation precision {u['citation_precision']}, out of scope abstained "
                f"{u['out_of_scope_abstained']}, in scope withheld {u['in_scope_withheld']}, keywords F1 {u['keywords_f1']}"
            )
        if t.get("hit_at_1") is not None:
            print(
                f"    live cards: top right {t['hit_at_1']}, in top 3 {t['hit_at_3']}, citation precision "
                f"{t['citation_precision']}, abstained in scope {t['abstained_in_scope']}, new card where none "
                f"expected {t['shown_when_none_expected']}"
            )
        lr, lp = r.get("learned", {}), r.get("learned_p80", {})
        print(
            f"    summary regulations: P {r['mean_precision']} R {r['mean_recall']} (closeness threshold); "
            f"learned P {lr.get('mean_precision')} R {lr.get('mean_recall')} (F0.5), "
            f"P {lp.get('mean_precision')} R {lp.get('mean_recall')} (most recall at P >= 0.80)"
        )
    for name, ab in report.get("ablation", {}).items():
        print(f"  without: {name}")
        for set_name, row in ab["mean"].items():
            print(
                f"    {set_name:<11} H@1 {row['hit_at_1']:.3f} H@5 {row['hit_at_5']:.3f} MRR {row['mrr_at_10']:.3f}"
            )
    return 0


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from .eval_retrieval import evaluate, format_table, load_items

    kb = _open_with_query_backend(_settings(args), args.query_backend) if args.query_backend else None
    kb = kb or _open(_settings(args))
    if kb is None:
        return 1
    items = load_items(args.file)
    report = evaluate(kb, items)
    if args.query_backend:
        report["query_backend"] = kb.encoder.backend
        report["index_backend"] = kb.settings.dense_backend
    noisy = evaluate(kb, items, noisy=True) if args.noisy else None
    if args.json:
        if not args.per_item:
            report.pop("per_item", None)
            if noisy:
                noisy.pop("per_item", None)
        if noisy:
            report["noisy"] = noisy
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_table(report))
        if noisy:
            print("\nASR-like noisy variants (no punctuation, broken/joined words, misspellings):")
            print(format_table(noisy))
    return 0


# -- versions -------------------------------------------------------------------------------------
def _registry(settings: Any) -> Any:
    from .versions import VersionRegistry

    return VersionRegistry(settings.index_dir)


def cmd_list(args: argparse.Namespace) -> int:
    versions = _registry(_settings(args)).versions()
    if args.json:
        print(json.dumps([v.model_dump(mode="json") for v in versions], ensure_ascii=False, indent=2))
        return 0
    if not versions:
        print("no built index (run `dasan kb build`)")
        return 0
    for v in versions:
        mark = "*" if v.active else " "
        kind = "hybrid" if v.dense else "bm25"
        print(
            f"{mark} {v.key}  {v.created or '?':<25} {v.records:>6} records {v.passages:>6} passages  {kind}"
        )
    if not any(v.active for v in versions):
        print("(none activated: services use the index of the configured corpus)")
    return 0


def _announce(key: str, how: str, no_announce: bool) -> int:
    if no_announce:
        print("recorded; running services switch at their next restart")
        return 0
    from assist.kb_switch import announce
    from assist.settings import AssistSettings
    from streaming.settings import KafkaSettings

    topic = AssistSettings().kb_topic
    try:
        announce(KafkaSettings(), topic, key, how)
    except Exception as exc:  # the registry is updated either way
        print(
            f"warning: not announced on {topic} ({type(exc).__name__}); services switch at restart",
            file=sys.stderr,
        )
        return 1
    print(f"announced on {topic}: running assist services switch between two ticks")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from .versions import UnknownVersion

    reg = _registry(_settings(args))
    try:
        act = reg.activate(reg.resolve(args.key))
    except UnknownVersion as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"active: {act.key}")
    return _announce(act.key, act.how, args.no_announce)


def cmd_rollback(args: argparse.Namespace) -> int:
    from .versions import UnknownVersion

    try:
        act = _registry(_settings(args)).rollback()
    except UnknownVersion as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"rolled back; active: {act.key}")
    return _announce(act.key, act.how, args.no_announce)


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .corpus import load_records
    from .dense import DenseModelMissing
    from .kb import KnowledgeBase
    from .versions import corpus_diff, corpus_files, describe

    settings = _settings(args)
    try:
        files = corpus_files(Path(args.folder))
        new = load_records(files)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reg = _registry(settings)
    active = reg.active_path()
    current = load_records([active / "records.jsonl"] if active else settings.corpus_paths)
    print(f"against {'version ' + active.name if active else 'the configured corpus'}:")
    diff = corpus_diff(current, new)
    for line in describe(diff):
        print(line)
    if args.dry_run:
        return 0
    if not diff.changed:
        print("nothing changed; no new version built")
        return 0
    settings = settings.model_copy(update={"corpus_paths": files})
    try:
        kb = KnowledgeBase.build(None, settings, progress=True, reuse=KnowledgeBase.latest(settings))
    except DenseModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = kb.save()
    print(f"built version {kb.key} ({len(kb.records)} records): {path}")
    if not args.activate:
        print(f"activate it with: dasan kb activate {kb.key}")
        return 0
    act = reg.activate(kb.key, how="import")
    print(f"active: {act.key}")
    return _announce(act.key, act.how, args.no_announce)
