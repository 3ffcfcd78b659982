"""From per-method scores to hits: candidate pools, fusion (per passage or per article), one hit per
article, snippets. The second stage of a search (a reranker goes after :meth:`Ranker.rank`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .fusion import fuse_rrf, fuse_weighted, top_indices
from .records import SOURCE_FIELDS, Passage, SearchHit
from .settings import KnowledgeSettings


class Ranker:
    def __init__(self, passages: Sequence[Passage], settings: KnowledgeSettings) -> None:
        self.passages = passages
        self.settings = settings
        art_pos: dict[tuple[str, str], int] = {}
        # article of each passage, and the passages of each article
        self.art_of = np.array(
            [art_pos.setdefault((p.doc_id, p.version), len(art_pos)) for p in passages], dtype=np.int64
        )
        self.art_passages: list[list[int]] = [[] for _ in range(len(art_pos))]
        for i, a in enumerate(self.art_of):
            self.art_passages[a].append(i)

    def rank(
        self, qtokens: list[str], scores: dict[str, np.ndarray], mask: np.ndarray, top_k: int
    ) -> list[SearchHit]:
        """The ``top_k`` hits for one query from each method's scores of every passage (``mask``:
        the passages the filters allow; ``qtokens``: the query's tokens, for the snippet)."""
        s = self.settings
        pool = max(s.candidates, top_k * 4)
        tops = {name: top_indices(sc, pool, mask) for name, sc in scores.items()}
        ranks = {name: {int(i): r + 1 for r, i in enumerate(idx)} for name, idx in tops.items()}
        if s.fuse_level == "article" and s.dedupe_articles:
            # hits are articles: report each method's article rank (its best passage's place among articles)
            for name, idx in tops.items():
                art_rank: dict[int, int] = {}
                for i in idx:
                    art_rank.setdefault(int(self.art_of[i]), len(art_rank) + 1)
                ranks[name] = {p: r for a, r in art_rank.items() for p in self.art_passages[a]}
        if len(scores) == 1:
            name = next(iter(scores))
            # a lexical method with no matching term returns nothing rather than arbitrary passages
            order = [i for i in tops[name] if name == "dense" or scores[name][i] > 0]
            fused = {int(i): float(scores[name][i]) for i in order}
        else:
            cand = np.unique(np.concatenate(list(tops.values()))) if tops else np.zeros(0, dtype=np.int64)
            weights = {"dense": s.weight_dense, "bm25": s.weight_bm25}
            if s.fuse_level == "article":
                order, fused = self._fuse_articles(cand, tops, scores, mask, weights)
            else:
                if s.fusion == "rrf":
                    rk = {n: np.array([ranks[n].get(int(i), 0) for i in cand]) for n in scores}
                    f = fuse_rrf(rk, weights, s.rrf_k)
                else:
                    f = fuse_weighted({n: scores[n][cand] for n in scores}, weights)
                order_idx = np.argsort(-f, kind="stable")
                order = [int(cand[j]) for j in order_idx]
                fused = {int(cand[j]): float(f[j]) for j in order_idx}
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for i in order:
            p = self.passages[i]
            if s.dedupe_articles:
                if p.doc_id in seen:
                    continue
                seen.add(p.doc_id)
            hits.append(
                SearchHit(
                    **{f: getattr(p, f) for f in SOURCE_FIELDS},
                    text=p.text,
                    snippet=self.snippet(p.text, qtokens),
                    score=fused[i],
                    ranks={n: ranks[n][i] for n in ranks if i in ranks[n]},
                    scores={n: float(sc[i]) for n, sc in scores.items()},
                )
            )
            if len(hits) >= top_k:
                break
        return hits

    def _fuse_articles(
        self,
        cand: np.ndarray,
        tops: dict[str, np.ndarray],
        scores: dict[str, np.ndarray],
        mask: np.ndarray,
        weights: dict[str, float],
    ) -> tuple[list[int], dict[int, float]]:
        """Fuse per article: each method scores an article by its best allowed passage; the article is
        shown through the passage with the best normalised weighted score."""
        s = self.settings
        arts = list(dict.fromkeys(int(a) for a in self.art_of[cand]))
        plists = [[p for p in self.art_passages[a] if mask[p]] for a in arts]
        if s.fusion == "rrf":
            art_rank: dict[str, dict[int, int]] = {}
            for n, idx in tops.items():
                seen: dict[int, int] = {}
                for i in idx:
                    seen.setdefault(int(self.art_of[i]), len(seen) + 1)
                art_rank[n] = seen
            f = fuse_rrf(
                {n: np.array([art_rank[n].get(a, 0) for a in arts]) for n in scores}, weights, s.rrf_k
            )
        else:
            agg = {n: np.array([sc[pl].max() for pl in plists], dtype=np.float32) for n, sc in scores.items()}
            f = fuse_weighted(agg, weights)
        lohi = {n: (float(sc[cand].min()), float(sc[cand].max())) for n, sc in scores.items()}

        def passage_value(p: int) -> float:
            v = 0.0
            for n, sc in scores.items():
                lo, hi = lohi[n]
                v += weights.get(n, 0.0) * ((float(sc[p]) - lo) / (hi - lo) if hi > lo else 0.0)
            return v

        order: list[int] = []
        fused: dict[int, float] = {}
        for j in np.argsort(-f, kind="stable"):
            best = max(plists[j], key=passage_value)
            order.append(best)
            fused[best] = float(f[j])
        return order, fused

    def snippet(self, text: str, qtokens: list[str]) -> str:
        """The line of the passage that shares most query morphemes, cut to ``snippet_chars``."""
        n = self.settings.snippet_chars
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()] or [text]
        terms = {t for t in qtokens if len(t) > 1}
        best = max(lines, key=lambda ln: sum(1 for t in terms if t in ln)) if terms else lines[0]
        return best if len(best) <= n else best[: n - 1].rstrip() + "…"
