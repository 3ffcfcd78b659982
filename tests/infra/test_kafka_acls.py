"""One Kafka principal per service with least-privilege ACLs, in Kubernetes and in compose.

What each service needs is written out here independently of infra/kafka_acls.py (from the code:
what it consumes with which group, what it produces, where its dead letters go), and the
generated Strimzi users and compose ACL script must grant exactly that: every principal reaches
only its own topics and groups, on literal names. Apache Kafka's authorizer itself is not run here
(no Apache Kafka on this machine: the local broker, Tansu, has no ACLs); the compose stack's mutual
TLS is exercised for real with the certificates make-secrets.sh makes, through a TLS terminator that
requires a client certificate in front of Tansu.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from streaming.settings import KafkaSettings
from streaming.topics import TOPICS, all_topic_specs, dlq_name, topic_for_event

from .manifests import INFRA, compose, render_overlay
from .test_compose import env_of, services
from .test_k8s import by_kind, containers

spec = importlib.util.spec_from_file_location("kafka_acls", INFRA / "kafka_acls.py")
assert spec and spec.loader
kafka_acls = importlib.util.module_from_spec(spec)
sys.modules["kafka_acls"] = kafka_acls  # dataclasses look their module up while it loads
spec.loader.exec_module(kafka_acls)


def _groups() -> dict[str, str]:
    from asr.settings import AsrSettings
    from assist.settings import AssistSettings
    from console.settings import ConsoleSettings

    return {
        "asr-worker": AsrSettings().group_id,
        "assist": AssistSettings(role="cards").consumer_group,
        "assist-summaries": AssistSettings(role="summaries").consumer_group,
        "assist-shadow": AssistSettings(shadow=kafka_acls.SHADOW_NAME).consumer_group,
        "console": ConsoleSettings().recorder_group,
    }


def expected() -> dict[str, dict[str, Any]]:
    """What each principal needs, from what the services do (not from infra/kafka_acls.py)."""
    from assist.service import AssistService, topics_of
    from assist.settings import AssistSettings
    from console.recorder import TOPICS as RECORDER_TOPICS

    groups = _groups()
    # assist runs as two deployments (infra/k8s/base/assist*.yaml): role cards and role summaries;
    # what each consumes and publishes in its role (assist/service.py topics_of)
    cards_in, cards_out = topics_of(AssistSettings(role="cards"))
    summaries_in, summaries_out = topics_of(AssistSettings(role="summaries"))
    shadow_in, shadow_out = topics_of(AssistSettings(shadow=kafka_acls.SHADOW_NAME))
    # the roles split what one assist publishes: cards the suggestions and keywords, summaries the
    # summaries, and neither anything of the other's
    assert set(cards_out) == {topic_for_event(t) for t in ("suggestion", "keywords_updated")}
    assert set(summaries_out) == {topic_for_event("call_summary")}
    assert shadow_out == (AssistService.SHADOW_TOPIC,)  # a shadow writes all its output there

    produces = {  # event types each service produces → their registry topics
        "asr-gateway": {topic_for_event(t) for t in ("call_started", "call_ended", "audio_frame")},
        "asr-worker": {topic_for_event("transcript_segment")},
        "assist": set(cards_out),
        "assist-summaries": set(summaries_out),
        "assist-shadow": set(shadow_out),
        "console": set(),
    }
    consumes = {  # EventConsumer topics (asr/worker.py, assist/service.py, console/recorder.py)
        "asr-worker": {"call.events", "call.audio"},
        "assist": set(cards_in),
        "assist-summaries": set(summaries_in),
        "assist-shadow": set(shadow_in),
        "console": set(RECORDER_TOPICS),
    }
    assert consumes["assist"] == {"call.events", "call.transcripts"}
    assert consumes["assist-summaries"] == {"call.events", "call.transcripts", "assist.suggestions"}
    # assist re-reads its own outputs without a group to rebuild call state (assist/service.py rebuild),
    # and reads the knowledge-base version announcements without a group (assist/kb_switch.py, both
    # roles), which `dasan kb activate|rollback` (run in an assist pod, role cards) writes
    kb_topic = AssistSettings().kb_topic
    produces["assist"].add(kb_topic)
    reads_back = {
        "assist": {*cards_out, kb_topic},
        "assist-summaries": {*summaries_out, kb_topic},
        "assist-shadow": set(shadow_out),
    }
    out: dict[str, dict[str, Any]] = {}
    for principal, service in (
        ("dasan-gateway", "asr-gateway"),
        ("dasan-asr-worker", "asr-worker"),
        ("dasan-assist", "assist"),
        ("dasan-assist-summaries", "assist-summaries"),
        ("dasan-assist-shadow", "assist-shadow"),
        ("dasan-console", "console"),
    ):
        inputs = consumes.get(service, set())
        topics: dict[str, set[str]] = {}
        for t in inputs | reads_back.get(service, set()):
            topics.setdefault(t, set()).update({"Read", "Describe"})
        for t in produces[service] | {dlq_name(t) for t in inputs}:
            topics.setdefault(t, set()).update({"Write", "Describe"})
        out[principal] = {
            "topics": topics,
            "groups": {groups[service]: {"Read", "Describe"}} if service in groups else {},
        }
    out["dasan-topics"] = {
        "topics": {s.name: {"Create", "Describe", "DescribeConfigs"} for s in all_topic_specs()},
        "groups": {},
    }
    # KEDA's Kafka scaler on the lag of assist's two roles and of the ASR workers (base/keda.yaml)
    out["dasan-keda"] = {
        "topics": {"call.events": {"Describe"}, "call.transcripts": {"Describe"}, "call.audio": {"Describe"}},
        "groups": {
            groups["assist"]: {"Describe"},
            groups["assist-summaries"]: {"Describe"},
            groups["asr-worker"]: {"Describe"},
        },
    }
    return out


def granted_k8s() -> dict[str, dict[str, Any]]:
    users = by_kind(render_overlay("production"), "KafkaUser")
    out: dict[str, dict[str, Any]] = {}
    for name, user in users.items():
        rights: dict[str, Any] = {"topics": {}, "groups": {}, "other": []}
        assert user["spec"]["authentication"]["type"] == "scram-sha-512", name
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            if (
                res["type"] in ("topic", "group")
                and res.get("patternType") == "literal"
                and "*" not in res["name"]
            ):
                rights[res["type"] + "s"].setdefault(res["name"], set()).update(acl["operations"])
            else:
                rights["other"].append(acl)
            assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*", (name, acl)
        out[name] = rights
    return out


def granted_compose() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in (INFRA / "compose" / "kafka" / "acls.sh").read_text(encoding="utf-8").splitlines():
        if not line.startswith("$ACLS "):
            continue
        args = shlex.split(line)[1:]
        assert args[:2] == ["--add", "--allow-principal"], line
        principal = args[2].removeprefix("User:")
        ops = {args[i + 1] for i, a in enumerate(args) if a == "--operation"}
        kind = "topics" if "--topic" in args else "groups"
        name = args[args.index("--topic" if kind == "topics" else "--group") + 1]
        assert not {"--resource-pattern-type", "--cluster", "--transactional-id"} & set(args), line
        rights = out.setdefault(principal, {"topics": {}, "groups": {}, "other": []})
        rights[kind].setdefault(name, set()).update(ops)
    return out


def test_generated_files_are_up_to_date() -> None:
    assert (INFRA / "k8s" / "platform" / "kafka-users.yaml").read_text(
        encoding="utf-8"
    ) == kafka_acls.render_k8s()
    assert (INFRA / "compose" / "kafka" / "acls.sh").read_text(
        encoding="utf-8"
    ) == kafka_acls.render_compose(), "stale: run .venv/bin/python infra/kafka_acls.py"


@pytest.mark.parametrize("where", ["kubernetes", "compose"])
def test_each_principal_reaches_only_its_topics_and_groups(where: str) -> None:
    granted = granted_k8s() if where == "kubernetes" else granted_compose()
    want = expected()
    assert set(granted) == set(want)
    for principal, rights in granted.items():
        assert not rights["other"], f"{principal}: cluster, prefix or wildcard rights {rights['other']}"
        assert rights["topics"] == want[principal]["topics"], principal
        assert rights["groups"] == want[principal]["groups"], principal


def test_personal_data_topics_have_few_readers() -> None:
    granted = granted_k8s()

    def readers(topic: str) -> set[str]:
        return {p for p, r in granted.items() if "Read" in r["topics"].get(topic, set())}

    def writers(topic: str) -> set[str]:
        return {p for p, r in granted.items() if "Write" in r["topics"].get(topic, set())}

    assert readers("call.audio") == {"dasan-asr-worker"}  # raw audio
    assert readers("call.audio.dlq") == set()
    # unmasked text: assist's two roles, its shadow (the same code with candidate settings) and the recorder
    assert readers("call.transcripts") == {
        "dasan-assist",
        "dasan-assist-summaries",
        "dasan-assist-shadow",
        "dasan-console",
    }
    assert writers("assist.suggestions") == {"dasan-assist"}  # a shadow never reaches a counselor
    assert writers("call.summaries") == {"dasan-assist-summaries"}  # role cards writes no summary
    assert writers("kb.versions") == {"dasan-assist"}  # `dasan kb activate|rollback`, in an assist pod
    assert writers("assist.suggestions.shadow") == {"dasan-assist-shadow"}
    assert writers("call.events") == {"dasan-gateway"}  # who may start a call
    assert writers("call.audio") == {"dasan-gateway"}
    assert writers("call.transcripts") == {"dasan-asr-worker"}
    for principal in ("dasan-topics", "dasan-keda"):
        ops = set().union(*granted[principal]["topics"].values(), *granted[principal]["groups"].values())
        assert not ops & {"Read", "Write", "Delete", "Alter", "AlterConfigs"}, principal
    for name in TOPICS:  # every registry topic is reachable by someone, its DLQ by its consumers
        assert readers(name) or name == "call.audio.dlq", name


def test_workloads_use_their_own_principal() -> None:
    res = render_overlay("production")
    users = set(by_kind(res, "KafkaUser"))
    used = {}
    for name, w in {**by_kind(res, "Deployment"), **by_kind(res, "Job")}.items():
        for c in containers(w):
            env = {e["name"]: e for e in c.get("env", [])}
            if "DASAN_KAFKA_SASL_USERNAME" in env:
                used[name] = env["DASAN_KAFKA_SASL_USERNAME"]["value"]
    assert used == {
        "asr-gateway": "dasan-gateway",
        "asr-worker": "dasan-asr-worker",
        "assist": "dasan-assist",
        "assist-summaries": "dasan-assist-summaries",
        "console": "dasan-console",
        "dasan-topics": "dasan-topics",
    }
    # the shadow assist's principal is deployed only while a candidate runs (docs/replay.md)
    assert set(used.values()) | {"dasan-keda", "dasan-assist-shadow"} == users
    for auth, target in (
        ("dasan-kafka", "assist"),
        ("dasan-kafka-summaries", "assist-summaries"),
        ("dasan-kafka-asr", "asr-worker"),
    ):
        trigger = by_kind(res, "TriggerAuthentication")[auth]["spec"]
        password = {"parameter": "password", "name": "dasan-keda", "key": "password"}
        assert password in trigger["secretTargetRef"]
        env = {e["name"]: e for c in containers(by_kind(res, "Deployment")[target]) for e in c.get("env", [])}
        username = next(e for e in trigger["env"] if e["parameter"] == "username")
        assert username["containerName"] == target
        assert env[username["name"]]["value"] == "dasan-keda"


def test_the_kafka_cluster_denies_what_no_acl_allows() -> None:
    kafka = by_kind(render_overlay("production"), "Kafka")["dasan-kafka"]["spec"]["kafka"]
    assert kafka["authorization"] == {"type": "simple"}
    assert "allow.everyone.if.no.acl.found" not in kafka.get("config", {})
    assert "superUsers" not in kafka["authorization"]
    assert all(
        listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
        for listener in kafka["listeners"]
    )


# ---------------------------------------------------------------- compose


COMPOSE_PRINCIPALS = {
    "asr-gateway": "dasan-gateway",
    "asr-worker": "dasan-asr-worker",
    "assist": "dasan-assist",
    "assist-summaries": "dasan-assist-summaries",
    "console": "dasan-console",
    "kafka-init": "dasan-topics",
}


def _secret_file(service: dict[str, Any], target: str) -> str:
    src = next(
        s["source"] for s in service.get("secrets", []) if isinstance(s, dict) and s.get("target") == target
    )
    return compose()["secrets"][src]["file"]


def test_compose_brokers_require_mutual_tls_and_acls() -> None:
    brokers = {n: s for n, s in services().items() if n in ("kafka-1", "kafka-2", "kafka-3")}
    for name, svc in brokers.items():
        env = env_of(svc)
        assert env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == "INTERNAL:SSL,CONTROLLER:SSL"
        assert env["KAFKA_SSL_CLIENT_AUTH"] == "required"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert set(env["KAFKA_SUPER_USERS"].split(";")) == {
            "User:kafka-1",
            "User:kafka-2",
            "User:kafka-3",
            "User:kafka-admin",
        }
        assert _secret_file(svc, "kafka_node.pem") == f"./secrets/kafka/{name}.pem"
        assert "--command-config" in svc["healthcheck"]["test"][1]


def test_compose_services_present_their_own_certificate() -> None:
    for name, principal in COMPOSE_PRINCIPALS.items():
        svc = services()[name]
        env = env_of(svc)
        assert _secret_file(svc, "kafka_client.crt") == f"./secrets/kafka/{principal}.crt", name
        assert _secret_file(svc, "kafka_client.key") == f"./secrets/kafka/{principal}.key", name
        fields: dict[str, Any] = {
            k.removeprefix("DASAN_KAFKA_").lower(): v for k, v in env.items() if k.startswith("DASAN_KAFKA_")
        }
        s = KafkaSettings(DASAN_ENV=env["DASAN_ENV"], **fields)
        assert s.env == "production" and s.common_config()["security_protocol"] == "SSL", name
        assert (
            s.ssl_certfile == "/run/secrets/kafka_client.crt"
            and s.ssl_keyfile == "/run/secrets/kafka_client.key"
        )
    # the certificates make-secrets.sh issues are exactly these principals
    script = (INFRA / "compose" / "make-secrets.sh").read_text(encoding="utf-8")
    line = next(x for x in script.splitlines() if x.startswith("for principal in"))
    assert set(line.removeprefix("for principal in").split(";")[0].split()) == set(
        COMPOSE_PRINCIPALS.values()
    )
    acls = services()["kafka-acls"]
    assert _secret_file(acls, "kafka_admin.pem") == "./secrets/kafka/kafka-admin.pem"
    assert services()["kafka-init"]["depends_on"] == {
        "kafka-acls": {"condition": "service_completed_successfully"}
    }


# ---------------------------------------------------------------- mutual TLS for real


def _make_site(d: Path) -> Path:
    shutil.copy(INFRA / "compose" / "make-secrets.sh", d / "make-secrets.sh")
    subprocess.run(["bash", str(d / "make-secrets.sh")], check=True, capture_output=True, timeout=300)
    return d / "secrets" / "kafka"


@pytest.fixture(scope="module")
def site_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The certificates of infra/compose/make-secrets.sh, made in a scratch copy."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed")
    return _make_site(tmp_path_factory.mktemp("compose"))


def test_mutual_tls_with_the_site_certificates(site_certs: Path, tmp_path: Path) -> None:
    """A broker port that requires a client certificate from the site CA: a service's certificate
    gets through (topics created, an event produced), none, or one from another site's CA, does not."""
    import ssl

    from streaming.admin import create_topics
    from streaming.broker import broker_binary, free_port

    from .test_kafka_security import TlsTerminator, make_server_cert

    shutil.copy(site_certs / "ca.pem", site_certs / "site-ca.pem")  # make_server_cert's naming
    shutil.copy(site_certs / "ca.key", site_certs / "site-ca.key")
    server_cert, server_key = make_server_cert(site_certs, "loopback", "site", "IP:127.0.0.1")
    other_site = _make_site(tmp_path)  # the same principals, signed by another CA
    plain, tls = free_port(), free_port()
    cmd = [broker_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
           "--advertised-listener-url", f"tcp://127.0.0.1:{tls}", "--storage-engine", "memory://tansu/"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        term = TlsTerminator(tls, plain, server_cert, server_key)
        term.ctx.verify_mode = ssl.CERT_REQUIRED  # like KAFKA_SSL_CLIENT_AUTH=required
        term.ctx.load_verify_locations(site_certs / "ca.pem")
        with term:
            common: dict[str, Any] = {
                "bootstrap": f"127.0.0.1:{tls}",
                "security_protocol": "SSL",
                "ssl_cafile": str(site_certs / "ca.pem"),
            }

            def client(certs: Path | None, principal: str = "dasan-gateway") -> KafkaSettings:
                extra: dict[str, Any] = {} if certs is None else {
                    "ssl_certfile": str(certs / f"{principal}.crt"), "ssl_keyfile": str(certs / f"{principal}.key")
                }  # fmt: skip
                return KafkaSettings(**common, **extra)

            topics = KafkaSettings(DASAN_ENV="production", **common, ssl_certfile=str(site_certs / "dasan-topics.crt"), ssl_keyfile=str(site_certs / "dasan-topics.key"))  # fmt: skip
            assert create_topics(topics, partitions=1)["call.events"] in {"created", "exists"}
            producer = KafkaProducer(**client(site_certs).producer_config())
            try:
                producer.send("call.events", key=b"mtls", value=uuid.uuid4().hex.encode()).get(timeout=30)
            finally:
                producer.close(5)
            for refused in (client(None), client(other_site)):
                with pytest.raises(KafkaError):
                    KafkaProducer(**refused.producer_config(), max_block_ms=3000, bootstrap_timeout_ms=4000)
    finally:
        proc.terminate()
        proc.wait(10)
