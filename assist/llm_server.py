"""A small OpenAI-compatible chat server on llama.cpp (``dasan llm serve``), loopback only.

It exists so that the ``llm`` draft generator can be run and tested against a real model on a machine
without a GPU; production sites serve their own model behind the same API (vLLM). The runtime is
``cyllama`` (a prebuilt llama.cpp wheel, the ``llm`` extra), the weights a GGUF assembled by
``dasan llm install``. Endpoints: ``GET /v1/models``, ``GET /health``, ``POST /v1/chat/completions``
(non-streaming: ``messages``, ``max_tokens``, ``temperature``, ``stop``, ``seed``). One request is decoded
at a time (one llama.cpp context); others wait for it. The chat template is the model's own, or the
named llama.cpp template its catalogue entry gives (Gemma's GGUF carries none).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

log = logging.getLogger("dasan.assist.llm_server")

MISSING_RUNTIME = "the llama.cpp runtime is not installed: pip install -e '.[llm]' (cyllama==0.2.18); scripts/setup.sh does it"


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0, le=2)
    stop: list[str] | str | None = None
    seed: int | None = None
    stream: bool = False


def require_loopback(host: str) -> None:
    """The server has no authentication: it never listens beyond this machine."""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"dasan llm serve listens on loopback only (127.0.0.1, ::1, localhost), not {host!r}"
        )


def load_runtime() -> Any:
    try:
        import cyllama  # noqa: F401
        from cyllama import api
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise RuntimeError(MISSING_RUNTIME) from exc
    return api


class ChatEngine:
    """One GGUF model and one llama.cpp context, used by one request at a time."""

    def __init__(
        self,
        model_path: Path,
        *,
        chat_template: str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        model_name: str | None = None,
    ) -> None:
        api = load_runtime()
        self.model_path = Path(model_path)
        self.model_name = model_name or self.model_path.stem
        self.chat_template = chat_template
        self.n_ctx = n_ctx
        self.threads = threads or max(1, min(os.cpu_count() or 1, 4))
        threads_ = self.threads

        class _LLM(api.LLM):  # type: ignore[name-defined]
            def _ensure_context(self, prompt_length: int, config: Any) -> Any:
                ctx = super()._ensure_context(prompt_length, config)
                ctx.set_n_threads(threads_, threads_)  # llama.cpp defaults to 4, too many on 2 cores
                return ctx

        self._api = api
        self._llm = _LLM(str(self.model_path), verbose=False, n_ctx=n_ctx, temperature=0.0)
        self._lock = threading.Lock()
        self.requests = 0

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return str(self._llm._apply_template(messages, self.chat_template))

    def _generate(self, prompt: str, cfg: Any, stop: list[str]) -> tuple[str, int, int]:
        """Greedy/sampled decoding that detokenises the whole output at once.

        cyllama's own loop turns every token into text on its own, which breaks a Korean syllable that
        byte-level vocabularies (Qwen, SmolLM) split over two tokens into U+FFFD; llama.cpp's
        ``detokenize`` of the whole sequence does not.
        """
        llm = self._llm
        vocab = llm.vocab
        tokens = vocab.tokenize(prompt, add_special=True, parse_special=True)
        ctx = llm._ensure_context(len(tokens), cfg)
        sampler = llm._ensure_sampler(cfg)
        for i in range(0, len(tokens), cfg.n_batch):
            ctx.decode(self._api.llama_batch_get_one(tokens[i : i + cfg.n_batch], i))
        out: list[int] = []
        pos = len(tokens)
        text = ""
        for _ in range(cfg.max_tokens):
            if pos >= self.n_ctx - 1:
                break
            tok = sampler.sample(ctx, -1)
            if vocab.is_eog(tok):
                break
            out.append(tok)
            ctx.decode(self._api.llama_batch_get_one([tok], pos))
            pos += 1
            if stop:
                text = vocab.detokenize(out)
                cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
                if cut >= 0:
                    return text[:cut], len(tokens), len(out)
        return vocab.detokenize(out), len(tokens), len(out)

    def chat(self, req: ChatRequest) -> dict[str, Any]:
        msgs = [m.model_dump() for m in req.messages]
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        cfg = self._api.GenerationConfig(
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            n_ctx=self.n_ctx,
            stop_sequences=stop,
            seed=req.seed if req.seed is not None else 42,
        )
        with self._lock:
            t0 = time.perf_counter()
            text, n_prompt, n_gen = self._generate(self.prompt(msgs), cfg, stop)
            elapsed = time.perf_counter() - t0
            self.requests += 1
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if n_gen >= req.max_tokens else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_gen,
                "total_tokens": n_prompt + n_gen,
            },
            "timings": {"total_ms": round(elapsed * 1000, 1)},
        }


def create_app(engine: ChatEngine) -> Any:
    from fastapi import FastAPI, HTTPException
    from fastapi.concurrency import run_in_threadpool

    app = FastAPI(title="dasan llm", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": engine.model_name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "owned_by": "local"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest) -> dict[str, Any]:
        if req.stream:
            raise HTTPException(status_code=400, detail="stream is not supported")
        return await run_in_threadpool(engine.chat, req)

    return app


def serve(
    model_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8091,
    chat_template: str | None = None,
    n_ctx: int = 4096,
    threads: int | None = None,
    model_name: str | None = None,
) -> None:
    import uvicorn

    require_loopback(host)
    engine = ChatEngine(
        model_path, chat_template=chat_template, n_ctx=n_ctx, threads=threads, model_name=model_name
    )
    log.info("serving %s on http://%s:%d/v1", model_path.name, host, port)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning", access_log=False)
