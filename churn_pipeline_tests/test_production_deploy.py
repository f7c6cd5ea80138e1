"""Deployment files: the image builds from files that exist, compose is valid and wires every setting.

``docker-compose config`` needs Debian's docker-compose (.ci/run installs it); without it that one
test skips, except under CI where it must run. There is no Docker engine here: images are not built.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
SERVICES = {"mysql", "code-server", "webserver", "daemon", "api"}
# Set by the image or compose itself, not something to configure per deployment.
FIXED_IN_IMAGE = {"CHURN_DB_URL", "CHURN_DATA_DIR", "CHURN_LANDING_DIR", "CHURN_MODEL_DIR"}


def _instructions(dockerfile: Path) -> list[str]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in _instructions(dockerfile):
        words = line.split()
        if words[0].upper() in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            args = [w for w in words[1:] if not w.startswith("--")]
            sources += args[:-1]
    return sources


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_every_copy_source_of_the_image_exists_and_is_in_the_build_context():
    dockerfiles = sorted(DOCKER.glob("Dockerfile*"))
    dockerfiles = [d for d in dockerfiles if not d.name.endswith(".dockerignore")]
    assert dockerfiles
    for dockerfile in dockerfiles:
        sources = _copy_sources(dockerfile)
        assert sources, dockerfile
        ignore = (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
        kept = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
        for source in sources:
            assert list(REPO.glob(source)), f"{dockerfile.name}: COPY source {source} does not exist"
            assert any(fnmatch.fnmatch(source.rstrip("/"), k) for k in kept), (
                f"{dockerfile.name}: {source} is excluded from the build context by its .dockerignore")


def test_compose_runs_every_service_with_health_checks_and_persistent_volumes():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == SERVICES
    assert all("test" in service["healthcheck"] for service in services.values())
    assert "--local-infile=1" in services["mysql"]["command"]
    assert "mysql-data:/var/lib/mysql" in services["mysql"]["volumes"]
    assert "./mysql-init:/docker-entrypoint-initdb.d:ro" in services["mysql"]["volumes"]
    for name in SERVICES - {"mysql"}:
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
    assert services["api"]["command"][:2] == ["uvicorn", "churn_pipeline.api.app:app"]
    assert "dagster-daemon" in services["daemon"]["command"] and "dagster-webserver" in services["webserver"]["command"]
    assert any(v.startswith("churn-models:") for v in services["code-server"]["volumes"])
    assert "/var/lib/churn/landing:ro" in " ".join(services["code-server"]["volumes"])
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    assert "grpc_server" in workspace["load_from"][0]


def test_every_setting_is_wired_through_compose_and_listed_in_env_example():
    compose_text = COMPOSE.read_text()
    services = yaml.safe_load(compose_text)["services"]
    example = _env_example()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    assert referenced <= set(example), f"missing from .env.example: {sorted(referenced - set(example))}"
    # every {env: X} of the Dagster instance and workspace is set for the Dagster services
    for name in ("dagster.yaml", "workspace.yaml"):
        needed = set(re.findall(r"\{env: ([A-Z0-9_]+)\}", (DOCKER / name).read_text()))
        for service in ("code-server", "webserver", "daemon"):
            assert needed <= set(services[service]["environment"]), (name, service)
    # every CHURN_* variable the pipeline reads can be set for the code server
    read = set()
    for path in (REPO / "churn_pipeline").rglob("*.py"):
        if "api" not in path.relative_to(REPO / "churn_pipeline").parts:
            read |= set(re.findall(r"\"(CHURN_[A-Z0-9_]+)\"", path.read_text()))
    unwired = read - FIXED_IN_IMAGE - set(services["code-server"]["environment"])
    assert not unwired, f"settings the pipeline reads but compose does not pass: {sorted(unwired)}"
    # no real secret in the example
    for key, value in example.items():
        if key.endswith("PASSWORD"):
            assert value.startswith("change-me"), key
    assert example["CHURN_ALERT_WEBHOOK_URL"] == ""


def test_docker_compose_config_validates_the_file(tmp_path):
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{message}; CI must validate the compose file")
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "DAGSTER_", "MYSQL_"))}
    ok = subprocess.run([binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert set(yaml.safe_load(ok.stdout)["services"]) == SERVICES
    # Without the passwords it refuses to start rather than create users with empty passwords.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = subprocess.run([binary, "--env-file", str(empty), "-f", str(COMPOSE), "config"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "PASSWORD in docker/.env" in refused.stderr
