"""Full regulation articles for citation clicks (from the corpus file, by passage ``doc_id``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from .. import schemas
from ..deps import CorpusDep, CurrentUser
from ..store import NotFound

router = APIRouter(prefix="/api", tags=["knowledge"])


@router.get("/articles", response_model=schemas.ArticleOut)
def api_article(
    id: Annotated[str, Query(max_length=200, description="Corpus record id (passage doc_id)")],
    user: CurrentUser,
    corpus: CorpusDep,
) -> Any:
    art = corpus.article(id)
    if art is None:
        raise NotFound(id)
    return art
