"""No secret in the repository, and no database password in logs, run metadata or CLI output.

The scan covers every file git would commit (tracked, plus untracked files not ignored) and names
file and line of each finding. Placeholders (``${VAR}``, ``<new>``, ``change-me-*``, ``user:password``
in prose) are fine; a real-looking credential is not, even in a test: build it at run time instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from churn_pipeline.assets.ingestion import raw_customers
from churn_pipeline.assets.preparation import clean_customers
from churn_pipeline.definitions import build_resources
from churn_pipeline.settings import Settings, mask_url
from churn_pipeline.synthetic import generate_customers, write_snapshot

REPO = Path(__file__).resolve().parents[1]
DAY = "2024-03-01"

PLACEHOLDER = re.compile(
    r"^(|\*+|x+|\.\.\.|<[^>]*>|\$\{[^}]*\}|\$[A-Za-z_]\w*|\{[^}]*\}|%\([^)]*\)s|"
    r"change-?me[\w-]*|password|passwd|pass|pw|pwd|secret|user)$", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://(?P<user>[^\s/:@'\"`]*):(?P<password>[^\s/@'\"`]*)@",
                             re.IGNORECASE)
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T\w+/B\w+/\w+"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
# In configuration files a password, secret or token must come from the environment.
CONFIG_FILE = re.compile(r"(^|/)(\.env[^/]*|[^/]+\.(ya?ml|ini|cfg|conf|toml|properties)|Dockerfile[^/]*)$")
CONFIG_SECRET = re.compile(r"(?i)^\s*[\w.-]*(password|passwd|secret|token|api_?key)[\w.-]*\s*[:=]\s*[\"']?"
                           r"(?P<value>[^\s\"'#]*)")
CONFIG_REFERENCE = re.compile(r"^(\$|\{env:|\{\{|<|change-?me)", re.IGNORECASE)
# Fake credentials that tests need as literals, each with the reason.
KNOWN_FAKES = {
    ("churn_pipeline_tests/test_definitions.py", "s3cret"): "fake password: checks CHURN_DB_URL stays an EnvVar",
}


def findings(path: str, text: str) -> list[str]:
    """``path:line: what`` for every credential-looking string in ``text``."""
    found = []
    config = bool(CONFIG_FILE.search(path))
    for number, line in enumerate(text.splitlines(), start=1):
        expanded = re.sub(r"\$\{[^}]*\}", "${VAR}", line)  # compose's ${X:?message} holds spaces
        for match in URL_CREDENTIALS.finditer(expanded):
            password = match.group("password")
            if not PLACEHOLDER.match(password) and (path, password) not in KNOWN_FAKES:
                found.append(f"{path}:{number}: password in a URL ({match.group('user')}:***@)")
        for kind, pattern in SECRET_PATTERNS.items():
            if pattern.search(line):
                found.append(f"{path}:{number}: {kind}")
        secret = CONFIG_SECRET.match(line) if config else None
        if secret and secret.group("value") and not CONFIG_REFERENCE.match(secret.group("value")):
            found.append(f"{path}:{number}: literal {secret.group(1).lower()} in a configuration file")
    return found


def repository_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, capture_output=True, check=True).stdout
    return sorted({name for name in listed.decode().split("\0") if name and (REPO / name).is_file()})


def test_no_secret_in_any_file_git_would_commit():
    files = repository_files()
    assert "churn_pipeline/storage.py" in files and "docker/.env.example" in files
    problems = []
    for name in files:
        data = (REPO / name).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        problems += findings(name, data.decode("utf-8", errors="replace"))
    assert not problems, "secrets in the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("path", "line", "flagged"),
    [
        ("app.py", "URL = 'mysql+pymysql://churn:" + "hunter2" + "@db:3306/churn'", True),
        ("README.md", "postgres://admin:" + "Xy9!kQ" + "@10.0.0.5/db", True),
        ("README.md", "mysql+pymysql://churn_writer:${CHURN_DB_PASSWORD}@127.0.0.1:3306/churn", False),
        ("docker/docker-compose.yml",
         "  URL: mysql+pymysql://${U:-w}:${P:?set P in docker/.env}@mysql:3306/${D:-churn}", False),
        ("Dockerfile", "# CHURN_DB_URL (mysql+pymysql://user:password@host:3306/churn)", False),
        ("README.md", "mysql+pymysql://root@127.0.0.1:3306 and http://127.0.0.1:3000/x", False),
        ("notes.txt", "key " + "AKIA" + "Q" * 16, True),
        ("id_rsa", "-----BEGIN " + "OPENSSH PRIVATE KEY-----", True),
        ("ci.sh", "token=" + "ghp_" + "a" * 36, True),
        ("docker/.env", "CHURN_WRITER_PASSWORD=" + "w7Kq2", True),
        ("docker/.env.example", "CHURN_WRITER_PASSWORD=change-me-writer", False),
        ("docker/dagster.yaml", "      password: {env: DAGSTER_MYSQL_PASSWORD}", False),
        ("docker/docker-compose.yml", "      MYSQL_ROOT_PASSWORD: ${MYSQL_ROOT_PASSWORD:?set it}", False),
        ("config.yaml", "api_key: " + "sk-live-123", True),
    ],
)
def test_the_scan_flags_credentials_and_passes_placeholders(path, line, flagged):
    assert bool(findings(path, line)) == flagged, findings(path, line)


@pytest.mark.parametrize("password", ["s3cret-Value", "p@ss:w/rd%", "ümlaut€", "***"])
def test_mask_url_never_shows_the_password(password):
    url = sa.engine.URL.create("mysql+pymysql", "churn", password, "db.example", 3306, "churn")
    masked = mask_url(url.render_as_string(hide_password=False))
    assert masked == "mysql+pymysql://churn:***@db.example:3306/churn"
    assert mask_url("not a url at all :// @") == "<unparsable database URL>"


@pytest.fixture
def password_url(mysql_url):
    """The test database through its own user with a random password, dropped afterwards."""
    user, password = f"churn_t_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    database = sa.engine.make_url(mysql_url).database
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE USER :user@'%' IDENTIFIED BY :password"), {"user": user, "password": password})
        conn.execute(sa.text(f"GRANT ALL ON `{database}`.* TO :user@'%'"), {"user": user})  # name: ours
    url = sa.engine.make_url(mysql_url).set(username=user, password=password)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP USER IF EXISTS :user@'%'"), {"user": user})
        admin.dispose()


@pytest.mark.mysql
def test_run_metadata_and_logs_never_show_the_database_password(tmp_path, password_url, monkeypatch, capfd, caplog):
    url, password = password_url
    monkeypatch.setenv("CHURN_DB_URL", url)
    settings = dataclasses.replace(Settings.from_env(), data_dir=tmp_path, landing_dir=tmp_path / "landing",
                                   model_dir=tmp_path / "models")
    assert settings.db_url_from_env
    write_snapshot(generate_customers(300, seed=4, malformed_rate=0.02), settings.landing_dir, DAY)
    result = dg.materialize([raw_customers, clean_customers], partition_key=DAY, resources=build_resources(settings))
    assert result.success

    metadata = {key: value.value for node in ("raw_customers", "clean_customers")
                for m in result.asset_materializations_for_node(node) for key, value in m.metadata.items()}
    assert metadata["database"] == mask_url(url) and ":***@" in metadata["database"]
    seen = [repr(event) for event in result.all_events] + [repr(metadata), caplog.text, *capfd.readouterr()]
    leaks = [text[:200] for text in seen if password in text]
    assert not leaks, leaks


@pytest.mark.mysql
def test_cli_output_never_shows_the_database_password(tmp_path, password_url):
    url, password = password_url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "DAGSTER_HOME"))}
    env.update(CHURN_DATA_DIR=str(tmp_path / "data"), CHURN_DB_URL=url)
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    (landing / f"customers_{DAY}.csv").write_text("customerID,gender\n")  # fails at once, after connecting
    script = Path(sys.executable).parent / "churn-pipeline"
    wrong = url.replace(password, password[::-1] + "x")
    runs = {
        "materialize": subprocess.run([str(script), "materialize", "--date", DAY], env=env, cwd=tmp_path,
                                      capture_output=True, text=True, timeout=300),
        "summary": subprocess.run([str(script), "summary"], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=300),
        "wrong password": subprocess.run([str(script), "summary"], env={**env, "CHURN_DB_URL": wrong}, cwd=tmp_path,
                                         capture_output=True, text=True, timeout=300),
    }
    assert runs["materialize"].returncode == 1 and "missing columns" in runs["materialize"].stderr
    assert mask_url(url) in runs["materialize"].stdout
    assert runs["summary"].returncode == 1 and mask_url(url) in runs["summary"].stderr
    assert runs["wrong password"].returncode == 1 and "Access denied" in runs["wrong password"].stderr
    assert "Traceback" not in runs["wrong password"].stderr
    for name, run in runs.items():
        for secret in (password, password[::-1] + "x"):
            assert secret not in run.stdout + run.stderr, (name, run.stdout[-500:], run.stderr[-2000:])
