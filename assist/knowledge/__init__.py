"""Korean hybrid search over the regulation corpus (BM25 on kiwipiepy morphemes + EmbeddingGemma).

    from assist.knowledge import KnowledgeBase, SearchFilters
    kb = KnowledgeBase.open()                 # loads the built index (builds it when missing)
    hits = kb.search("불법주차 신고하면 과태료 얼마예요", top_k=5)
    kb.is_confident(hits)

See docs/knowledge.md.
"""

from __future__ import annotations

from .analyzer import KoreanAnalyzer
from .dense import DenseModelMissing
from .kb import KnowledgeBase
from .model_assembly import ModelAssemblyError, ensure_embedding_model
from .records import Passage, Record, SearchFilters, SearchHit
from .settings import KnowledgeSettings
from .store import IndexNotFound

__all__ = [
    "DenseModelMissing",
    "IndexNotFound",
    "KnowledgeBase",
    "KnowledgeSettings",
    "KoreanAnalyzer",
    "ModelAssemblyError",
    "Passage",
    "Record",
    "SearchFilters",
    "SearchHit",
    "ensure_embedding_model",
]
