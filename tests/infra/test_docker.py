"""The container images (infra/docker): non-root, pinned, models baked/mounted, /readyz checks."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from .manifests import DOCKERFILES, INFRA, REPO, dockerfile_env

HEALTHCHECK = INFRA / "docker" / "healthcheck.py"


def stages(path: Path) -> list[list[str]]:
    """Instructions per build stage (continuation lines joined)."""
    lines = path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    out: list[list[str]] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_is_non_root_with_a_readyz_healthcheck(dockerfile: Path) -> None:
    final = stages(dockerfile)[-1]
    users = [i.split(None, 1)[1] for i in final if i.upper().startswith("USER ")]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] not in {"0", "root"}
    args = {m.group(1): m.group(2) for m in re.finditer(r"ARG (\w+)=(\S+)", "\n".join(final))}
    uid = users[-1].split(":")[0]
    if uid.startswith("${"):
        assert args[uid[2:-1]] not in {"0", ""}
    hc = [i for i in final if i.upper().startswith("HEALTHCHECK ")]
    assert len(hc) == 1 and "/opt/dasan/healthcheck.py" in hc[0]
    assert "COPY infra/docker/healthcheck.py /opt/dasan/healthcheck.py" in final


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_and_packages_are_pinned(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    assert ":latest" not in text
    for line in stages(dockerfile)[0]:
        if "pip install" in line and "pip install ." not in line:
            for pkg in re.findall(r"\s([A-Za-z][\w.-]*)(==)?\S*", line.split("pip install", 1)[1]):
                if not pkg[0].startswith("-") and pkg[0] not in {"TORCH_INDEX_URL"}:
                    assert pkg[1] == "==", f"unpinned pip package {pkg[0]} in {dockerfile.name}"
    assert "torch==2.13.0" in text  # the CPU build first, as scripts/setup.sh does


def test_models_are_baked_and_the_hub_is_off() -> None:
    cpu, gpu = DOCKERFILES
    for df in (cpu, gpu):
        env = dockerfile_env(df)
        assert env["DASAN_MODEL_DIR"] == "/opt/dasan/models"
        assert "dasan models install" in df.read_text(encoding="utf-8")
        assert "COPY --from=" in df.read_text(encoding="utf-8")
    assert dockerfile_env(cpu)["HF_HUB_OFFLINE"] == "1"


def test_gpu_image_has_cuda_runtime_and_cudnn_from_wheels() -> None:
    _, gpu = DOCKERFILES
    text = gpu.read_text(encoding="utf-8")
    assert re.search(r"nvidia-cublas-cu12==12\.\d", text) and re.search(r"nvidia-cudnn-cu12==9\.\d", text)
    env = dockerfile_env(gpu)
    libdirs = env["LD_LIBRARY_PATH"].split(":")
    assert any(d.endswith("nvidia/cublas/lib") for d in libdirs)
    assert any(d.endswith("nvidia/cudnn/lib") for d in libdirs)
    assert env["DASAN_ASR_DEVICE"] == "cuda" and env["DASAN_ASR_COMPUTE_TYPE"] == "float16"
    # The venv's Python version must match the site-packages path in LD_LIBRARY_PATH.
    base = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)", text)
    assert base and all(f"python{base.group(1)}/site-packages" in d for d in libdirs)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist(dockerfile: Path) -> None:
    for line in stages(dockerfile)[0]:
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src} does not exist"
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().split()
    assert {".venv", ".models", ".git"} <= set(ignore)


class _Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/readyz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture()
def readyz_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_check(port: int) -> int:
    env = {"HEALTHCHECK_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, timeout=30
    ).returncode


def test_healthcheck_script_follows_readyz(readyz_server: HTTPServer) -> None:
    port = readyz_server.server_address[1]
    _Handler.status = 200
    assert _run_check(port) == 0
    _Handler.status = 503
    assert _run_check(port) == 1
    readyz_server.shutdown()
    readyz_server.server_close()
    assert _run_check(port) == 1  # nothing listening


def test_every_data_file_of_the_packages_is_in_the_installed_package() -> None:
    """The images `pip install .` (not editable): a data file the packages read but package-data does
    not name is missing there. Until session 27 that was the question memory
    (assist/knowledge/rerank_memory.jsonl): an image's ranker read none, most of its worth."""
    import fnmatch
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    patterns = config["package-data"]["*"]
    packages = [p.rstrip("*") for p in config["packages"]["find"]["include"]]
    tracked = subprocess.run(
        ["git", "ls-files", *packages], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    data = [f for f in tracked if not f.endswith(".py")]
    assert "assist/knowledge/rerank_memory.jsonl" in data
    missing = [f for f in data if not any(fnmatch.fnmatch(Path(f).name, p) for p in patterns)]
    assert not missing, f"not installed by `pip install .`: {missing}"
