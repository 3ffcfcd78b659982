"""Commands of the assist package (see dasan/cli.py).

``dasan assist run`` (the service), ``dasan assist suggest``, ``dasan summarize``,
``dasan eval assist``; the knowledge base adds ``dasan kb …`` and ``dasan eval retrieval``.
(``dasan mask`` lives in streaming/cli.py, next to the masking it runs.)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("dasan.assist")


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add this package's subcommands to the `dasan` parser."""
    assist = sub.add_parser("assist", help="The assist service and a one-off suggestion")
    asub = assist.add_subparsers(dest="assist_command", metavar="WHAT", required=True)

    run = asub.add_parser("run", help="Run the assist service (consumes transcripts, publishes suggestions)")
    run.add_argument("--instance", default=None, help="Name of this instance in logs (default: host and pid)")
    run.add_argument(
        "--role",
        choices=["all", "cards", "summaries"],
        default=None,
        help="cards, summaries (in their own consumer group), or all in one loop (default: DASAN_ASSIST_ROLE, all)",
    )
    run.set_defaults(func=cmd_run)

    sug = asub.add_parser("suggest", help="Keywords, passages and a draft answer for one caller utterance")
    sug.add_argument("text", help="What the caller said")
    sug.add_argument("--json", action="store_true", help="Print the result as JSON")
    sug.add_argument("--generator", choices=["grounded", "llm"], default=None, help="Override the generator")
    sug.add_argument("--index", type=Path, default=None, help="Use this built index folder (var/kb/<key>)")
    sug.set_defaults(func=cmd_suggest)

    summ = sub.add_parser("summarize", help="Summarise a call from a transcript file (calls.jsonl format)")
    summ.add_argument("file", type=Path, help="JSONL: one call per line with 'turns' (speaker, text)")
    summ.add_argument("--call", default=None, help="Only the call with this id")
    summ.add_argument("--json", action="store_true", help="Print JSON")
    summ.add_argument("--index", type=Path, default=None, help="Use this built index folder (var/kb/<key>)")
    summ.set_defaults(func=cmd_summarize)

    ev = groups["eval"].add_parser(
        "assist", help="Keywords, citations, abstention and summaries on a labelled file"
    )
    ev.add_argument("files", type=Path, nargs="+", help="utterances.jsonl and/or calls.jsonl")
    ev.add_argument("--json", action="store_true", help="Print the full result as JSON")
    ev.add_argument("--generator", choices=["grounded", "llm"], default=None, help="Override the generator")
    ev.add_argument("--save", type=Path, default=None, help="Also write the JSON result to this file")
    ev.add_argument("--index", type=Path, default=None, help="Use this built index folder (var/kb/<key>)")
    ev.set_defaults(func=cmd_eval)

    sen = groups["eval"].add_parser(
        "sentences",
        help="Which statute sentence the grounded draft reads, against the counselor's next turn "
        "(cross-validates draft_context_weight and draft_dense_weight)",
    )
    sen.add_argument(
        "--train", type=Path, nargs="+", required=True, help="calls.jsonl files to cross-validate on"
    )
    sen.add_argument("--unseen", type=Path, nargs="*", default=[], help="calls.jsonl files only measured")
    sen.add_argument("--folds", type=int, default=5, help="Folds of calls (default 5)")
    sen.add_argument("--save", type=Path, default=None, help="Also write the JSON result to this file")
    sen.add_argument("--index", type=Path, default=None, help="Use this built index folder (var/kb/<key>)")
    sen.add_argument(
        "--article",
        action="store_true",
        help="Also compare reading the article's best passage with the passage retrieval matched "
        "(draft_article_passages), references taken over the whole article",
    )
    sen.add_argument(
        "--no-dense",
        action="store_true",
        help="Skip the dense side (draft_dense_weight, the dense reference, the latency figures)",
    )
    sen.add_argument(
        "--show",
        type=int,
        default=15,
        help="Training cases to print with the lexical and the dense choice side by side (0: none)",
    )
    sen.set_defaults(func=cmd_eval_sentences)

    from assist.knowledge import cli as knowledge_cli

    knowledge_cli.register(sub, groups)


def _assistant(generator: str | None = None, index: Path | None = None) -> Any:
    from .assistant import Assistant
    from .settings import AssistSettings

    settings = AssistSettings()
    if generator:
        settings = settings.model_copy(update={"generator": generator})
    return Assistant.open(settings, index=index)


def cmd_suggest(args: argparse.Namespace) -> int:
    assistant = _assistant(args.generator, args.index)
    res = assistant.suggest_text(args.text)
    if args.json:
        out = {
            "query": res.query,
            "keywords": res.keywords,
            "confident": res.confident,
            "passages": [p.model_dump(mode="json") for p in res.passages],
            "draft": res.draft.model_dump(mode="json"),
            "latency": res.latency.model_dump(mode="json"),
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"질의(마스킹): {res.query}")
    print(f"키워드: {', '.join(res.keywords) or '-'}")
    print("근거:")
    for i, p in enumerate(res.passages, 1):
        print(f"  [{i}] {p.citation}  score={p.score:.3f}  {p.snippet[:80]}")
    if not res.passages:
        print("  (없음)")
    print(f"답변 초안 ({res.draft.generator}):")
    if res.draft.abstained:
        print(f"  {res.draft.abstain_reason}")
    ids = {p.passage_id: i for i, p in enumerate(res.passages, 1)}
    for s in res.draft.sentences:
        refs = "".join(f"[{ids.get(c, '?')}]" for c in s.citations)
        print(f"  {s.text} {refs}")
    lat = res.latency
    print(
        f"지연(ms): 마스킹 {lat.masking_ms} · 키워드 {lat.keywords_ms} · 검색 {lat.retrieval_ms} · "
        f"초안 {lat.draft_ms} · 합계 {lat.total_ms}"
    )
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from .eval_assist import call_turns
    from .summary import Summarizer

    calls = [json.loads(line) for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.call:
        calls = [c for c in calls if c.get("id") == args.call]
        if not calls:
            print(f"no call {args.call!r} in {args.file}", file=sys.stderr)
            return 1
    summarizer = Summarizer(_assistant(index=args.index))
    outs = []
    for call in calls:
        if "turns" not in call:
            print(f"line without 'turns' in {args.file}", file=sys.stderr)
            return 1
        parts = summarizer.summarize(call_turns(call))
        d = {
            "call_id": call.get("id"),
            "category": parts.category,
            "call_reason": parts.call_reason,
            "key_facts": parts.key_facts,
            "counselor_answers": parts.counselor_answers,
            "actions": [{"kind": a.kind.value, "text": a.text} for a in parts.actions],
            "regulations_cited": parts.regulations_cited,
            "entities": parts.entities,
            "keywords": parts.keywords,
            "generator": parts.generator,
            "latency_ms": parts.latency_ms,
        }
        outs.append(d)
    if args.json:
        for d in outs:
            print(json.dumps(d, ensure_ascii=False))
        return 0
    for d in outs:
        print(f"== {d['call_id']}  [{d['category']}]")
        print(f"사유: {d['call_reason']}")
        for f in d["key_facts"]:
            print(f"  · {f}")
        print("상담 안내:")
        for a in d["counselor_answers"]:
            print(f"  - {a}")
        print("조치: " + "; ".join(f"[{a['kind']}] {a['text']}" for a in d["actions"]))
        print("근거 규정: " + ", ".join(d["regulations_cited"]))
        print("개체: " + json.dumps(d["entities"], ensure_ascii=False))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval_assist import evaluate, format_table

    result = evaluate(_assistant(args.generator, args.index), args.files)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        print(format_table(result))
    return 0


def _read_calls(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]


def cmd_eval_sentences(args: argparse.Namespace) -> int:
    from . import eval_sentences as es

    assistant = _assistant("grounded", args.index)
    dense = None if args.no_dense else es.with_dense(assistant)
    cases, tried = es.collect(assistant, _read_calls(args.train), dense=dense)
    print(
        f"train: {tried} labelled caller turns, {len(cases)} with a right top article of ≥ 2 sentences",
        file=sys.stderr,
    )
    result: dict[str, Any] = {"train": es.cross_validate(assistant, cases, args.folds), "train_turns": tried}
    cv = result["train"]
    result["chosen_on_all_training"] = es.chosen_on_all(cv)
    u_cases: list[Any] = []
    if args.unseen:
        u_cases, u_tried = es.collect(assistant, _read_calls(args.unseen), dense=dense)
        result["unseen"] = es.evaluate(assistant, u_cases, es.WEIGHTS) | {"turns": u_tried}
    print("draft_context_weight (dense side off), lexical reference:")
    _print_cv(cv)
    if "unseen" in result:
        print("  unseen: " + json.dumps(result["unseen"]))
    if dense is not None:
        views: dict[str, Any] = {}
        for ref in ("lexical", "dense", "both"):
            dcv = es.cross_validate(assistant, cases, args.folds, es.DENSE_WEIGHTS, es.DENSE, ref)
            chosen = es.chosen_on_all(dcv)
            views[ref] = {
                "train": dcv,
                "chosen_on_all_training": chosen,
                "paired_train": es.paired(assistant, cases, chosen, es.DENSE, ref),
            }
            if u_cases:
                views[ref]["unseen"] = es.evaluate(assistant, u_cases, es.DENSE_WEIGHTS, es.DENSE, ref)
                views[ref]["paired_unseen"] = es.paired(assistant, u_cases, chosen, es.DENSE, ref)
            print(f"draft_dense_weight, {ref} reference{' (both agree)' if ref == 'both' else ''}:")
            _print_cv(dcv)
            if "unseen" in views[ref]:
                print("  unseen: " + json.dumps(views[ref]["unseen"]))
            for k in ("paired_train", "paired_unseen"):
                if k in views[ref]:
                    print(f"  {k}: " + json.dumps(views[ref][k]))
        result["dense"] = views
        result["dense_latency"] = es.dense_latency(
            assistant, cases + u_cases, assistant.settings.draft_dense_cache
        )
        print("dense side, added ms per draft: " + json.dumps(result["dense_latency"]))
        if args.show:
            weight = views["lexical"]["chosen_on_all_training"] or 0.5
            result["examples_weight"] = weight
            result["examples"] = es.examples(assistant, cases, weight, args.show)
            for ex in result["examples"]:
                print(
                    f"--- {ex['call']} t{ex['turn']} {ex['article']}{'' if ex['differ'] else ' (same choice)'}\n"
                    f"  question:      {ex['question']}\n"
                    f"  lexical {_marks(ex, 'lexical_pick')}: {ex['lexical_pick'][:160]}\n"
                    f"  dense@{weight} {_marks(ex, 'dense_pick')}: {ex['dense_pick'][:160]}\n"
                    f"  answer:        {ex['counselor_answer'][:200]}"
                )
    if args.article:
        result["article"] = {"train": es.article_view(assistant, _read_calls(args.train))}
        if args.unseen:
            result["article"]["unseen"] = es.article_view(assistant, _read_calls(args.unseen))
        for k, v in result["article"].items():
            print(f"article's best passage vs the matched one, {k}: " + json.dumps(v))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    return 0


def _marks(ex: dict[str, Any], pick: str) -> str:
    """[L D]: whether a pick is the lexical (L) and the dense (D) reference (lower case: it is not)."""
    lex, den = ex[f"{pick}_refs"]
    return f"[{'L' if lex else 'l'}{'D' if den else 'd'}]"


def _print_cv(cv: dict[str, Any]) -> None:
    for fold in cv["held_out"]:
        print(
            f"  fold {fold['fold']}: weight {fold['weight']}  held-out agreement {fold['agreement']} "
            f"(at {cv['baseline_weight']}: {fold['baseline']}; {fold['cases']} cases)"
        )
    print(
        f"  held-out mean {cv['held_out_mean']} (at {cv['baseline_weight']}: {cv['baseline_mean']}); "
        "by weight (all folds): " + ", ".join(f"{w}: {v['agreement']}" for w, v in cv["by_weight"].items())
    )


def cmd_run(args: argparse.Namespace) -> int:
    import os
    import socket

    from assist.knowledge import KnowledgeSettings
    from assist.knowledge.versions import VersionRegistry
    from streaming.health import HealthServer
    from streaming.kafka import install_signal_handlers
    from streaming.logs import setup_logging
    from streaming.settings import KafkaSettings

    from .assistant import Assistant
    from .health import Startup
    from .kb_switch import KbSwitch, internal_routes, load_version
    from .service import AssistService
    from .settings import AssistSettings

    setup_logging("assist")
    settings = AssistSettings()
    if args.role:
        settings = AssistSettings(role=args.role)
    kafka = KafkaSettings()
    startup = Startup(args.instance or f"{socket.gethostname()}-{os.getpid()}")
    holder: dict[str, Any] = {}
    routes = internal_routes(
        lambda: holder.get("service") and holder["service"].assistant, settings.search_district_boost
    )
    health = HealthServer(
        settings.health_host, settings.health_port, startup.readiness, routes=routes
    ).start()
    startup.enter("loading the knowledge base")  # builds the index first when none matches
    index_dir = KnowledgeSettings().index_dir
    active = VersionRegistry(index_dir).active_path()  # the version `dasan kb activate` chose, if any
    assistant = Assistant.open(settings, index=active)
    startup.enter("warming up")  # the first caller's card must not pay for lazy set-up
    log.info("assist warmed up", extra={"s": round(assistant.warm_up(), 2), "instance": startup.instance})
    startup.enter("connecting to Kafka")
    switch = None
    if settings.kb_watch:
        switch = KbSwitch(
            kafka,
            settings.kb_topic,
            lambda key: load_version(index_dir / key, settings, holder["service"].assistant),
            assistant.kb.key,
        )
    service = AssistService(assistant, settings, kafka, instance=startup.instance, kb_switch=switch)
    holder["service"] = service
    if switch is not None:
        switch.start()
    startup.started(service)
    install_signal_handlers(service.stop)
    try:
        service.run()
    finally:
        if switch is not None:
            switch.stop()
        service.producer.close()
        health.stop()
    return 0
