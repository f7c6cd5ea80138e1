"""The ``churn-pipeline`` console script, run as an operator would, in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from churn_pipeline.synthetic import generate_customers

SCRIPT = Path(sys.executable).parent / "churn-pipeline"


def _run(tmp_path: Path, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "DAGSTER_HOME"))}
    env["CHURN_DATA_DIR"] = str(tmp_path / "data")
    env["CHURN_MODEL_CANDIDATES"] = "logistic_regression,lightgbm"  # selection itself: test_modeling
    if db_url:
        env["CHURN_DB_URL"] = db_url
    return subprocess.run([str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_generate_then_materialize_prints_the_summary_and_exits_zero(tmp_path, mysql_url):
    generated = _run(tmp_path, "generate", "--customers", "2000", "--snapshot-date", "2024-05-01", "--seed", "3")
    assert generated.returncode == 0, generated.stderr
    landing = tmp_path / "data" / "landing" / "customers_2024-05-01.csv"
    assert landing.is_file() and len(pd.read_csv(landing)) == 2000

    run = _run(tmp_path, "materialize", "--date", "2024-05-01", db_url=mysql_url)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "succeeded" in run.stdout and "call first:" in run.stdout
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        scored = conn.execute(sa.text("SELECT COUNT(*) FROM scored_customers")).scalar()
        at_risk = conn.execute(sa.text("SELECT SUM(expected_revenue_loss) FROM scored_customers")).scalar()
    engine.dispose()
    assert f"customers scored (active): {scored:,}" in run.stdout
    assert f"${at_risk:,.2f}" in run.stdout
    assert "mysql+pymysql://root@127.0.0.1" in run.stdout  # the URL is shown, a password never would be

    summary = _run(tmp_path, "summary", db_url=mysql_url)
    assert summary.returncode == 0 and "Churn summary for 2024-05-01" in summary.stdout

    # `score` uses the champion on any Telco file; the Churn column is optional and ignored.
    newcomers = generate_customers(40, seed=99, id_offset=10_000).drop(columns="Churn")
    newcomers.to_csv(tmp_path / "new.csv", index=False)
    scored = _run(tmp_path, "score", "--input", "new.csv", "--output", "scores.csv", db_url=mysql_url)
    assert scored.returncode == 0, scored.stderr
    out = pd.read_csv(tmp_path / "scores.csv")
    assert out["customerID"].tolist() == newcomers["customerID"].tolist()
    assert out["churn_probability"].between(0, 1).all() and out["top_reasons"].str.len().gt(0).all()
    newcomers = newcomers.astype(str)
    newcomers.loc[3, "tenure"] = "-4"
    newcomers.to_csv(tmp_path / "bad.csv", index=False)
    refused = _run(tmp_path, "score", "--input", "bad.csv", "--output", "bad_scores.csv", db_url=mysql_url)
    assert refused.returncode == 2 and "line 5: tenure '-4'" in refused.stderr
    assert not (tmp_path / "bad_scores.csv").exists()


def test_materialize_exit_code_is_the_runs_outcome(tmp_path):
    missing = _run(tmp_path, "materialize", "--date", "2024-05-02")
    assert missing.returncode == 1
    assert "no snapshot file for 2024-05-02" in missing.stderr


def test_bad_arguments_are_refused_with_the_reason(tmp_path):
    bad = _run(tmp_path, "generate", "--snapshot-date", "2024-13-01")
    assert bad.returncode == 2 and "not a date in YYYY-MM-DD form" in bad.stderr
    bad = _run(tmp_path, "generate", "--customers", "0")
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr
