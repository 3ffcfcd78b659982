"""Settings of the ASR gateway and workers (environment variables ``DASAN_ASR_*``).

The edge: this class reads the environment and validates it; the pure core (policy, guards,
decoder) takes the frozen options of :mod:`asr.options`, built here (``policy_options()``,
``decoder_options()``). The defaults of those fields are the options' own defaults.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .options import DecoderOptions, GuardOptions, PolicyOptions

_P, _D, _G = PolicyOptions(), DecoderOptions(), GuardOptions()

DEFAULT_HOTWORDS = (
    "다산콜 120 과태료 대형폐기물 주정차 불법주차 견인 재산세 자동차세 주민센터 구청 시청 서울시 "
    "강남구 강동구 강북구 강서구 관악구 광진구 구로구 금천구 노원구 도봉구 동대문구 동작구 마포구 "
    "서대문구 서초구 성동구 성북구 송파구 양천구 영등포구 용산구 은평구 종로구 중구 중랑구 "
    "따릉이 공공자전거 분리수거 음식물쓰레기 민원 신고 접수 상담사"
)


DEV_CALLER_KEY_SECRET = "dev-only-caller-key-secret"
DEV_INGEST_SECRET = "dev-only-ingest-secret"


class AsrSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASAN_ASR_", extra="ignore")

    env: Literal["development", "production"] = Field(
        default="development", validation_alias="DASAN_ENV", description="development | production"
    )

    # ---------------------------------------------------------------- model
    model: str = Field(
        default="base",
        description="'base' (bundled Whisper base, assembled from the registry packages), a local "
        "CTranslate2 model directory, or a faster-whisper model name already in the local cache",
    )
    model_name: str | None = Field(
        default=None, description="Name written on transcripts (default: derived from `model`)"
    )
    model_dir: Path | None = Field(
        default=None, description="Where the bundled model is assembled (default: DASAN_MODEL_DIR)"
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="auto",
        description="cpu | cuda | auto (CUDA when CTranslate2 sees a device; a CUDA model that fails "
        "to load falls back to the CPU with a warning)",
    )
    device_index: int | None = Field(default=None, description="GPU index (cuda)")
    compute_type: str = Field(
        default="auto",
        description="CTranslate2 compute type; auto: float16 on CUDA, int8 on a CPU with VNNI, float32 "
        "on one without (its int8 saturates: docs/asr.md). The choice and its reason are logged",
    )
    cpu_threads: int | Literal["auto"] = Field(
        default="auto",
        description="CTranslate2 intra-op threads (0: all; auto: half the CPUs this process may use, 1 to 8)",
    )
    language: str = Field(default=_D.language, description="Spoken language (no detection)")
    beam_size: int = Field(default=_D.beam_size, ge=1, le=10, description="Beam size of final decodes")
    partial_beam_size: int = Field(
        default=_D.partial_beam_size, ge=1, le=10, description="Beam size of partial decodes"
    )
    initial_prompt: str | None = Field(
        default=_D.initial_prompt, description="Domain prompt given to the decoder (None: no prompt)"
    )
    hotwords: str | None = Field(
        default=None,
        description=f"Words to bias decoding towards (space separated); 'default' uses: {DEFAULT_HOTWORDS}",
    )
    min_context_s: float = Field(
        default=_D.min_context_s,
        ge=1,
        le=30,
        description="Shortest encoder input in seconds (30: Whisper's fixed window)",
    )
    max_new_tokens: int = Field(
        default=_D.max_new_tokens, ge=8, le=220, description="Token limit of one decode"
    )

    # ---------------------------------------------------------------- streaming policy
    partial_interval_s: float = Field(
        default=_P.partial_interval_s, gt=0, description="Target interval between partials"
    )
    min_partial_audio_s: float = Field(
        default=_P.min_partial_audio_s, ge=0, description="Speech needed before a first partial"
    )
    vad_threshold: float = Field(
        default=_P.vad_threshold, gt=0, lt=1, description="Silero speech probability threshold"
    )
    vad_neg_threshold: float = Field(
        default=_P.vad_neg_threshold,
        gt=0,
        lt=1,
        description="Below this probability a window counts as silence",
    )
    vad_min_silence_ms: int = Field(
        default=_P.vad_min_silence_ms, ge=100, description="Silence that ends an utterance"
    )
    vad_min_speech_ms: int = Field(
        default=_P.vad_min_speech_ms, ge=0, description="Shorter bursts are not utterances"
    )
    vad_speech_pad_ms: int = Field(
        default=_P.vad_speech_pad_ms, ge=0, description="Audio kept before speech onset"
    )
    speculative_final_ms: int = Field(
        default=_P.speculative_final_ms,
        ge=0,
        description="Start the final decode after this much silence; it is kept if the pause reaches "
        "vad_min_silence_ms (0: decode finals only once the utterance has ended)",
    )
    max_segment_s: float = Field(
        default=_P.max_segment_s,
        ge=4,
        le=28,
        description="Longest segment: longer speech is cut at the best pause",
    )
    no_speech_threshold: float = Field(
        default=_G.no_speech_threshold, ge=0, le=1, description="Drop if above and logprob low"
    )
    logprob_threshold: float = Field(
        default=_G.logprob_threshold, description="avg_logprob below this is low confidence"
    )
    min_avg_logprob: float = Field(
        default=_G.min_avg_logprob,
        description="Text decoded with a lower avg_logprob is dropped (music, noise)",
    )
    compression_ratio_threshold: float = Field(
        default=_G.compression_ratio_threshold, gt=1, description="Above: repetition loop"
    )
    hallucination_silence_threshold: float | None = Field(
        default=None,
        ge=0,
        description="Offline baseline only (faster-whisper transcribe with word timestamps): skip silences "
        "longer than this around suspected hallucinations. Streaming never decodes such silence (VAD gating)",
    )

    # ---------------------------------------------------------------- batching / capacity
    max_streams: int = Field(default=8, ge=1, description="Concurrent call channels per worker (admission)")
    batch_size: int = Field(default=_D.batch_size, ge=1, description="Decode windows per forward pass")
    batch_window_ms: int = Field(default=30, ge=0, description="Wait this long to fill a batch")

    # ---------------------------------------------------------------- gateway
    gateway_host: str = Field(default="127.0.0.1", description="Gateway listen address")
    gateway_port: int = Field(default=8081, ge=0, le=65535, description="Gateway port")
    max_calls: int = Field(
        default=64,
        ge=1,
        description="Concurrent connections per gateway before 'busy' (a slot is taken at accept, "
        "before the start message)",
    )
    idle_timeout_s: float = Field(default=10.0, gt=0, description="No message for this long ends the call")
    max_frame_ms: int = Field(default=200, ge=10, le=1000, description="Largest binary frame, in ms of audio")
    start_timeout_s: float = Field(default=5.0, gt=0, description="Time allowed for the start message")
    caller_key_secret: SecretStr = Field(
        default=SecretStr(DEV_CALLER_KEY_SECRET),
        description="Site secret for caller_key (HMAC-SHA256 of the caller number); set it in production",
    )
    ingest_secret: SecretStr = Field(
        default=SecretStr(DEV_INGEST_SECRET),
        description="Site secret the telephony side (PBX adapter, simulator) signs start tokens with "
        "(HMAC-SHA256, streaming.ingest.sign_start); set it in production",
    )
    ingest_secret_previous: SecretStr | None = Field(
        default=None,
        description="The previous ingest secret, still accepted while the PBX adapters move to the new "
        "one (rotation); unset it once they have",
    )
    ingest_token_max_ttl_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Start tokens expiring further ahead than this are refused (a leaked token stays "
        "useful at most this long)",
    )
    max_ahead_s: float = Field(
        default=5.0,
        ge=0,
        description="A call whose audio runs more than this many seconds ahead of the wall clock since "
        "its start is ended ('too_fast'). 0: no pacing check (offline benchmarks and tests only; "
        "refused in production)",
    )
    max_call_s: float = Field(
        default=4 * 3600.0, gt=0, description="The gateway ends a call this long ('max_duration')"
    )
    tls_certfile: Path | None = Field(
        default=None,
        description="Gateway: serve wss:// with this certificate (PEM; with tls_keyfile). Unset: plain ws://, "
        "for loopback or behind a TLS-terminating proxy",
    )
    tls_keyfile: Path | None = Field(
        default=None, description="Gateway: the private key of tls_certfile (PEM)"
    )
    tls_cafile: Path | None = Field(
        default=None,
        description="Clients (simulator, benchmarks): trust this CA for a wss:// gateway (a site CA); unset: "
        "the system's trust store",
    )

    # ---------------------------------------------------------------- worker
    worker_host: str = Field(default="127.0.0.1", description="Worker health endpoint address")
    worker_port: int = Field(default=8083, ge=0, le=65535, description="Worker health port (0: off)")
    group_id: str = Field(default="asr-workers", description="Kafka consumer group of the workers")
    stream_idle_s: float = Field(
        default=60.0, gt=0, description="Drop state of a call with no audio for this long (no CallEnded seen)"
    )
    end_grace_s: float = Field(
        default=5.0,
        gt=0,
        description="After CallEnded, wait this long without any frame of a stream whose audio is "
        "incomplete before finishing it",
    )
    max_poll_records: int = Field(
        default=64,
        ge=1,
        description="Audio frames a worker takes per Kafka poll (the VAD runs on the consumer thread: "
        "a batch must stay far inside max.poll.interval on a slow, loaded CPU)",
    )
    publish_partials: bool = Field(default=_P.partials, description="Decode and publish partial segments")

    @model_validator(mode="after")
    def _production_safety(self) -> AsrSettings:
        if self.env == "production" and self.caller_key_secret.get_secret_value() == DEV_CALLER_KEY_SECRET:
            raise ValueError(
                "set DASAN_ASR_CALLER_KEY_SECRET in production (caller keys must not use the dev secret)"
            )
        if self.env == "production":
            dev = [
                s
                for s in (self.ingest_secret, self.ingest_secret_previous)
                if s is not None and s.get_secret_value() in {DEV_INGEST_SECRET, ""}
            ]
            if dev:
                raise ValueError(
                    "set DASAN_ASR_INGEST_SECRET in production (start tokens must not use the dev secret)"
                )
            if self.max_ahead_s == 0:
                raise ValueError("DASAN_ASR_MAX_AHEAD_S=0 (no pacing check) is for tests, not production")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("DASAN_ASR_TLS_CERTFILE and DASAN_ASR_TLS_KEYFILE go together (wss needs both)")
        return self

    def client_ssl(self, url: str) -> ssl.SSLContext | None:
        """The TLS context a client of the gateway uses for ``url``: None for ws://; for wss:// one that
        verifies the gateway's certificate against ``tls_cafile`` (or the system's trust store)."""
        if not url.startswith("wss://"):
            return None
        return ssl.create_default_context(cafile=str(self.tls_cafile) if self.tls_cafile else None)

    def ingest_secrets(self) -> list[str]:
        """The secrets a start token may be signed with: the current one first."""
        keys = [self.ingest_secret.get_secret_value()]
        if self.ingest_secret_previous is not None:
            keys.append(self.ingest_secret_previous.get_secret_value())
        return [k for k in keys if k]

    @field_validator("hotwords")
    @classmethod
    def _hotwords(cls, v: str | None) -> str | None:
        if v is not None and v.strip().lower() == "default":
            return DEFAULT_HOTWORDS
        return v or None

    # ---------------------------------------------------------------- options of the pure core
    def guard_options(self) -> GuardOptions:
        return GuardOptions(
            no_speech_threshold=self.no_speech_threshold,
            logprob_threshold=self.logprob_threshold,
            min_avg_logprob=self.min_avg_logprob,
            compression_ratio_threshold=self.compression_ratio_threshold,
        )

    def policy_options(self) -> PolicyOptions:
        return PolicyOptions(
            vad_threshold=self.vad_threshold,
            vad_neg_threshold=self.vad_neg_threshold,
            vad_min_silence_ms=self.vad_min_silence_ms,
            vad_min_speech_ms=self.vad_min_speech_ms,
            vad_speech_pad_ms=self.vad_speech_pad_ms,
            speculative_final_ms=self.speculative_final_ms,
            max_segment_s=self.max_segment_s,
            partial_interval_s=self.partial_interval_s,
            min_partial_audio_s=self.min_partial_audio_s,
            partials=self.publish_partials,
            guards=self.guard_options(),
        )

    def decoder_options(self) -> DecoderOptions:
        return DecoderOptions(
            language=self.language,
            beam_size=self.beam_size,
            partial_beam_size=self.partial_beam_size,
            initial_prompt=self.initial_prompt,
            hotwords=self.hotwords,
            min_context_s=self.min_context_s,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
        )

    @field_validator("cpu_threads")
    @classmethod
    def _threads(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("cpu_threads must be 0 (all), a positive number or 'auto'")
        return v

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        from .hardware import cuda_device_count

        return "cuda" if cuda_device_count() > 0 else "cpu"
