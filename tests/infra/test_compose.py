"""The single-site docker-compose stack (infra/compose): schema-valid and safe to run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .manifests import COMPOSE_FILE, SECRET_NAME, URL_CREDENTIALS, compose

SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"
OUR_SERVICES = {
    "asr-gateway": 8081,
    "asr-worker": 8083,
    "assist": 8082,
    "assist-summaries": 8082,
    "console": 8000,
}
ONE_SHOT = {"kafka-init", "kafka-acls"}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?+][^}]*)?\}")


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def resolve_default(value: str) -> str:
    """Compose's ${VAR:-default} with VAR unset."""
    return INTERPOLATION.sub(lambda m: re.sub(r"^:?-", "", m.group(0)[2 + len(m.group(1)) : -1]), value)


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(compose())
    # …and the validator is not a rubber stamp.
    bad = {"services": {"x": {"image": "a:1", "healthcheck": {"tst": ["CMD", "true"]}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(bad)


def test_every_service_has_limits_healthcheck_and_a_pinned_image() -> None:
    for name, svc in services().items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= limits.keys() or (name in ONE_SHOT and "memory" in limits), name
        if name not in ONE_SHOT:
            hc = svc.get("healthcheck", {})
            assert hc.get("test") and not hc.get("disable"), f"{name}: no healthcheck"
        image = resolve_default(svc["image"])
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: image {image} has no tag"
        assert not image.endswith(":latest"), name


def test_our_services_check_readyz_on_their_port() -> None:
    for name, port in OUR_SERVICES.items():
        svc = services()[name]
        assert env_of(svc)["HEALTHCHECK_PORT"] == str(port), name
        assert svc["healthcheck"]["test"] == ["CMD", "python", "/opt/dasan/healthcheck.py"], name


def test_containers_run_as_non_root() -> None:
    for name, svc in services().items():
        user = str(svc.get("user", ""))
        assert user and user.split(":")[0] not in {"0", "root"}, f"{name}: user {user!r}"
    for name in [*OUR_SERVICES, *ONE_SHOT]:
        svc = services()[name]
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name


def test_no_plaintext_secrets() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not URL_CREDENTIALS.search(text)
    for name, svc in services().items():
        for k, v in env_of(svc).items():
            if SECRET_NAME.search(k):
                assert k.endswith("_FILE") or k.endswith("__FILE") or INTERPOLATION.fullmatch(v), (name, k)
            if "://" in v and "@" in v:
                user_pass = v.split("://", 1)[1].split("@", 1)[0]
                assert ":" not in user_pass or INTERPOLATION.search(user_pass), (name, k)
    for secret in compose()["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    ignored = (COMPOSE_FILE.parent / ".gitignore").read_text().split()
    assert {".env", "secrets/"} <= set(ignored)


def test_kafka_is_kraft_with_three_replicas() -> None:
    brokers = {n: s for n, s in services().items() if n.startswith("kafka-") and n not in ONE_SHOT}
    assert len(brokers) == 3
    ids = set()
    for name, svc in brokers.items():
        env = env_of(svc)
        ids.add(env["KAFKA_NODE_ID"])
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert set(voters.values()) == {f"{n}:9093" for n in brokers}
        assert "ports" not in svc, f"{name}: Kafka must not be published"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"INTERNAL://{name}:9092"
    assert ids == {"1", "2", "3"}
    bootstrap = env_of(services()["console"])["DASAN_KAFKA_BOOTSTRAP"]
    assert set(bootstrap.split(",")) == {f"{n}:9092" for n in brokers}


def test_topics_are_provisioned_with_three_replicas_before_services_start() -> None:
    init = services()["kafka-init"]
    assert init["command"] == ["topics", "create", "--replication-factor", "3"]
    for name in OUR_SERVICES:
        assert services()[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_assist_runs_cards_and_summaries_apart() -> None:
    """Two assist services, one role each, in their own consumer groups (role=all, one process, is
    what `dasan demo` runs); the summaries service reserves less CPU than the cards'."""
    from assist.settings import AssistSettings
    from dasan.cli import build_parser

    roles = {}
    for name in ("assist", "assist-summaries"):
        svc = services()[name]
        assert "DASAN_ASSIST_ROLE" not in env_of(svc), name  # the role is in the command
        roles[name] = build_parser().parse_args(svc["command"]).role
        assert svc["image"] == services()["assist"]["image"], name
    assert roles == {"assist": "cards", "assist-summaries": "summaries"}
    # a new group where assist ran in role all: from the end, not call.events' 90 days
    assert env_of(services()["assist-summaries"])["DASAN_KAFKA_AUTO_OFFSET_RESET"] == "latest"
    groups = {AssistSettings(role=r).consumer_group for r in roles.values()}
    assert len(groups) == 2
    reserved = {n: float(services()[n]["deploy"]["resources"]["reservations"]["cpus"]) for n in roles}
    assert reserved["assist-summaries"] < reserved["assist"]


def test_gpu_workers_reserve_a_gpu() -> None:
    w = services()["asr-worker"]
    devices = w["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    env = env_of(w)
    assert env["DASAN_ASR_DEVICE"] == "cuda" and env["DASAN_ASR_COMPUTE_TYPE"] == "float16"
    assert env["DASAN_ASR_DEVICE_INDEX"] == "0"  # one worker per GPU, each with its own index
    assert any(v.endswith(":/models:ro") for v in w["volumes"])


def test_only_console_ingest_and_grafana_are_published() -> None:
    published = {n: s["ports"] for n, s in services().items() if s.get("ports")}
    assert published == {"asr-gateway": ["8081:8081"], "console": ["8000:8000"], "grafana": ["3000:3000"]}


def test_console_uses_postgres() -> None:
    env = env_of(services()["console"])
    assert env["DASAN_CONSOLE_DATABASE_URL"].startswith("postgresql+psycopg://dasan:${POSTGRES_PASSWORD")
    assert env["DASAN_CONSOLE_DATABASE_URL"].endswith("@postgres:5432/dasan")
    assert services()["console"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_readme_compose_snippets_are_valid() -> None:
    import yaml

    readme = (COMPOSE_FILE.parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    snippets = [b for b in blocks if isinstance(b, dict) and "services" in b]
    assert snippets
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    for snippet in snippets:
        jsonschema.Draft7Validator(schema).validate(snippet)
        for svc in snippet["services"].values():
            for k in svc.get("environment") or {}:
                assert k in env_of(services()["asr-worker"]), (
                    f"README sets {k}, which the worker does not use"
                )
