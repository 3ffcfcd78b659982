"""One Kafka principal per service, and the least-privilege rights each one has.

This table is the source of the Strimzi ``KafkaUser`` resources (``infra/k8s/platform/kafka-users.yaml``)
and of the ACL script of the compose stack (``infra/compose/kafka/acls.sh``):

    .venv/bin/python infra/kafka_acls.py        # rewrites both files

tests/infra/test_kafka_acls.py checks the files match this table, and the table against what each
service does in the code (the topics it consumes and produces, its consumer group, its DLQs).

Rights are on literal topic and group names only (no prefixes, no wildcards, no cluster rights):

- a consumer gets Read on its input topics and its group, and Write on the dead-letter topic of
  each input (streaming.kafka dead-letters undecodable records and failing handlers);
- a producer gets Write on the topics it produces. Since Kafka 3.0 (KIP-679) Write on a topic also
  allows initialising an idempotent producer, so no cluster-level IdempotentWrite is granted;
- the topic job gets Create/Describe/DescribeConfigs on the registry's topics and nothing else;
- KEDA (the autoscaler of assist's two roles and of the ASR workers) gets Describe on their groups
  and inputs: it reads the lag.

Assist runs as two deployments (assist/settings.py ``role``): ``cards`` (principal ``dasan-assist``,
group ``assist``) publishes only the live cards; ``summaries`` (principal ``dasan-assist-summaries``,
group ``assist-summaries``) also reads the cards published and writes only the call summaries. Each
may write only what its role publishes.

Raw audio (``call.audio``) is readable by the ASR workers only; unmasked transcripts
(``call.transcripts``) by the assist service and the console's recorder (which masks them).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streaming.topics import (  # noqa: E402
    ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW,
    CALL_AUDIO,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
    KB_VERSIONS,
    all_topic_specs,
    dlq_name,
)

K8S_USERS = REPO / "infra" / "k8s" / "platform" / "kafka-users.yaml"
COMPOSE_ACLS = REPO / "infra" / "compose" / "kafka" / "acls.sh"
STRIMZI_CLUSTER = "dasan-kafka"


@dataclass(frozen=True)
class Access:
    """What one principal may do. ``groups`` are consumer groups it joins (Read)."""

    service: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    create: tuple[str, ...] = ()  # topics it may create (the topic job)
    describe: tuple[str, ...] = ()  # topics it may only describe (offsets, lag)
    describe_groups: tuple[str, ...] = ()
    note: str = field(default="", compare=False)

    def topic_operations(self) -> dict[str, list[str]]:
        ops: dict[str, set[str]] = {}
        for t in self.read:
            ops.setdefault(t, set()).update({"Read", "Describe"})
        for t in self.write:
            ops.setdefault(t, set()).update({"Write", "Describe"})
        for t in self.create:
            ops.setdefault(t, set()).update({"Create", "Describe", "DescribeConfigs"})
        for t in self.describe:
            ops.setdefault(t, set()).add("Describe")
        return {t: sorted(o) for t, o in sorted(ops.items())}

    def group_operations(self) -> dict[str, list[str]]:
        ops: dict[str, set[str]] = {}
        for g in self.groups:
            ops.setdefault(g, set()).update({"Read", "Describe"})
        for g in self.describe_groups:
            ops.setdefault(g, set()).add("Describe")
        return {g: sorted(o) for g, o in sorted(ops.items())}


def _dlqs(*topics: str) -> tuple[str, ...]:
    return tuple(dlq_name(t) for t in topics)


ASR_WORKER_IN = (CALL_EVENTS, CALL_AUDIO)
ASSIST_IN = (CALL_EVENTS, CALL_TRANSCRIPTS)  # assist.service.INPUTS: what role cards consumes
SUMMARIES_IN = (*ASSIST_IN, ASSIST_SUGGESTIONS)  # role summaries also reads the cards published
ASSIST_GROUP = "assist"  # AssistSettings(role="cards").consumer_group (the test checks they agree)
SUMMARIES_GROUP = "assist-summaries"  # AssistSettings(role="summaries").consumer_group
ASR_GROUP = "asr-workers"  # AsrSettings.group_id (the test checks they agree)
RECORDER_IN = (CALL_EVENTS, CALL_TRANSCRIPTS, ASSIST_SUGGESTIONS, CALL_SUMMARIES, ASSIST_SUGGESTIONS_SHADOW)
SHADOW_NAME = "candidate"
"""The shadow assist the ACLs allow (``DASAN_ASSIST_SHADOW=candidate``; literal names only: another
name needs its own group here)."""

ACCESS: dict[str, Access] = {
    "dasan-gateway": Access(
        "asr-gateway",
        write=(CALL_EVENTS, CALL_AUDIO),
        note="publishes CallStarted/CallEnded and the call audio; reads nothing",
    ),
    "dasan-asr-worker": Access(
        "asr-worker",
        read=ASR_WORKER_IN,
        write=(CALL_TRANSCRIPTS, *_dlqs(*ASR_WORKER_IN)),
        groups=(ASR_GROUP,),
        note="the only reader of raw audio",
    ),
    "dasan-assist": Access(
        "assist",
        # role cards (`dasan assist run --role cards`): publishes the live cards only, never a summary.
        # Its own output is read back (no group) to rebuild call state after a rebalance;
        # kb.versions: read (no group) to switch versions, written by `dasan kb activate|rollback`
        # run in an assist pod
        read=(*ASSIST_IN, ASSIST_SUGGESTIONS, KB_VERSIONS),
        write=(ASSIST_SUGGESTIONS, KB_VERSIONS, *_dlqs(*ASSIST_IN)),
        groups=(ASSIST_GROUP,),
        note="role cards: the live cards (suggestions, keywords)",
    ),
    "dasan-assist-summaries": Access(
        "assist-summaries",
        # role summaries (`dasan assist run --role summaries`): its own group on the cards' inputs
        # and the cards published; call.summaries read back (no group) to rebuild; kb.versions read
        # (no group) to switch versions, never written (kb commands run in an assist pod)
        read=(*SUMMARIES_IN, CALL_SUMMARIES, KB_VERSIONS),
        write=(CALL_SUMMARIES, *_dlqs(*SUMMARIES_IN)),
        groups=(SUMMARIES_GROUP,),
        note="role summaries: the call summaries, on hang-up",
    ),
    "dasan-assist-shadow": Access(
        "assist-shadow",
        # a candidate configuration beside production: same inputs, its own group, writes only the
        # shadow topic (and reads it back to rebuild its call state); never a production topic
        read=(*ASSIST_IN, ASSIST_SUGGESTIONS_SHADOW),
        write=(ASSIST_SUGGESTIONS_SHADOW, *_dlqs(*ASSIST_IN)),
        groups=(f"assist-shadow-{SHADOW_NAME}",),
        note="shadow mode (docs/replay.md): output recorded for QA, shown to no counselor",
    ),
    "dasan-console": Access(
        "console",
        read=RECORDER_IN,
        write=_dlqs(*RECORDER_IN),
        groups=("console-recorder",),
        note="the recorder; no access to call.audio",
    ),
    "dasan-topics": Access(
        "dasan-topics",
        create=tuple(s.name for s in all_topic_specs()),
        note="the topic job (dasan topics create): creates the registry's topics, reads and writes none",
    ),
    "dasan-keda": Access(
        "keda",
        describe=(*ASSIST_IN, CALL_AUDIO),
        describe_groups=(ASSIST_GROUP, SUMMARIES_GROUP, ASR_GROUP),
        note="KEDA's Kafka scaler: the lag of assist's two groups and of the ASR workers' group",
    ),
}


def kafka_users() -> list[dict[str, Any]]:
    out = []
    for name, access in ACCESS.items():
        acls: list[dict[str, Any]] = []
        for topic, ops in access.topic_operations().items():
            acls.append(
                {"resource": {"type": "topic", "name": topic, "patternType": "literal"}, "operations": ops}
            )
        for group, ops in access.group_operations().items():
            acls.append(
                {"resource": {"type": "group", "name": group, "patternType": "literal"}, "operations": ops}
            )
        out.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {
                    "name": name,
                    "labels": {
                        "strimzi.io/cluster": STRIMZI_CLUSTER,
                        "dasan.seoul.go.kr/service": access.service,
                    },
                },
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return out


def render_k8s() -> str:
    header = (
        "# GENERATED from infra/kafka_acls.py: do not edit (.venv/bin/python infra/kafka_acls.py).\n"
        "# One SCRAM-SHA-512 user per service with least-privilege ACLs on literal topic and group names.\n"
        "# Strimzi's User Operator creates a Secret per user (same name, key `password`).\n"
    )
    return header + yaml.safe_dump_all(kafka_users(), sort_keys=False, allow_unicode=True)


def acl_commands() -> list[list[str]]:
    """kafka-acls.sh arguments, one ACL binding per command (adding an existing one is a no-op)."""
    cmds: list[list[str]] = []
    for name, access in ACCESS.items():
        for topic, ops in access.topic_operations().items():
            cmd = ["--add", "--allow-principal", f"User:{name}"]
            for op in ops:
                cmd += ["--operation", op]
            cmds.append([*cmd, "--topic", topic])
        for group, ops in access.group_operations().items():
            cmd = ["--add", "--allow-principal", f"User:{name}"]
            for op in ops:
                cmd += ["--operation", op]
            cmds.append([*cmd, "--group", group])
    return cmds


def render_compose() -> str:
    lines = [
        "#!/bin/sh",
        "# GENERATED from infra/kafka_acls.py: do not edit (.venv/bin/python infra/kafka_acls.py).",
        "# Run once by the compose service kafka-acls (as the super user kafka-admin, mutual TLS) before",
        "# the topic job: one principal per service (the CN of its client certificate), least privilege.",
        "set -eu",
        'ACLS="/opt/kafka/bin/kafka-acls.sh --bootstrap-server ${KAFKA_BOOTSTRAP} --command-config ${ADMIN_CONFIG}"',
    ]
    for cmd in acl_commands():
        lines.append("$ACLS " + " ".join(cmd))
    lines.append('echo "ACLs in place"')
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    K8S_USERS.write_text(render_k8s(), encoding="utf-8")
    COMPOSE_ACLS.parent.mkdir(parents=True, exist_ok=True)
    COMPOSE_ACLS.write_text(render_compose(), encoding="utf-8")
    COMPOSE_ACLS.chmod(0o755)
    print(f"wrote {K8S_USERS.relative_to(REPO)} and {COMPOSE_ACLS.relative_to(REPO)}")
