"""Loading the infra files for the tests: rendered k8s overlays, the compose file, Dockerfiles,
and every ``DASAN_*`` setting they reference."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .kustomize_lite import build

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
OVERLAYS = ("staging", "production")
COMPOSE_FILE = INFRA / "compose" / "docker-compose.yml"
DOCKERFILES = (INFRA / "docker" / "Dockerfile", INFRA / "docker" / "Dockerfile.asr-gpu")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL)", re.I)
# user:password@ inside a URL, unless the password is a $(VAR) or ${VAR} reference.
URL_CREDENTIALS = re.compile(r"://[^/@\s:]+:(?!\$[({])[^@\s/]+@")


@cache
def render_overlay(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(build(K8S / "overlays" / name))


def kubectl_kustomize() -> list[str] | None:
    """The kustomize command on this machine (standalone kustomize or kubectl's), if any."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    kubectl = shutil.which("kubectl")
    if kubectl and subprocess.run([kubectl, "kustomize", "--help"], capture_output=True).returncode == 0:
        return [kubectl, "kustomize"]
    return None


def pod_spec(res: dict[str, Any]) -> dict[str, Any] | None:
    spec = res.get("spec", {})
    if res["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec") if res["kind"] in WORKLOAD_KINDS else None


def containers(res: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(res) or {}
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def dockerfile_env(path: Path) -> dict[str, str]:
    """ENV assignments of a Dockerfile (``ENV A=1 B=2`` with line continuations)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ENV "):
            for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", line[4:]):
                out[m.group(1)] = m.group(2)
    return out


def referenced_dasan_env() -> dict[str, set[str]]:
    """{DASAN_* name: where it is set} across compose, every rendered overlay and the Dockerfiles."""
    refs: dict[str, set[str]] = {}

    def add(name: str, where: str) -> None:
        if name.startswith("DASAN_"):
            refs.setdefault(name, set()).add(where)

    for svc_name, svc in compose()["services"].items():
        env = svc.get("environment") or {}
        names = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for n in names:
            add(n, f"compose:{svc_name}")
    for overlay in OVERLAYS:
        for res in render_overlay(overlay):
            if res["kind"] == "ConfigMap":
                for n in res.get("data") or {}:
                    add(n, f"k8s/{overlay}:ConfigMap/{res['metadata']['name']}")
            for c in containers(res):
                for e in c.get("env", []):
                    add(e["name"], f"k8s/{overlay}:{res['kind']}/{res['metadata']['name']}")
    for df in DOCKERFILES:
        for n in dockerfile_env(df):
            add(n, f"docker:{df.name}")
    return refs
