"""Scoring customers outside the nightly graph (the ``score`` command, the API) with the same
cleaning, features and model code as the graph, so serving and training cannot drift.

Input is the Telco schema as text (``Churn`` optional and ignored). A bad row is never guessed
around: :class:`BadCustomerRows` names every rejected row with its column and problem.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from churn_pipeline.constants import TELCO_COLUMNS
from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.logic.scoring import score_customers

OUTPUT_COLUMNS = ["customerID", "churn_probability", "risk_tier", "expected_revenue_loss", "priority_rank",
                  "top_reasons", "model_version"]


class BadCustomerRows(ValueError):
    """Some input rows cannot be scored; ``problems`` lists (row number, reason codes, reasons)."""

    def __init__(self, problems: list[tuple[int, str, str]], row_label: str = "row"):
        self.problems = problems
        lines = [f"{row_label} {row}: {reasons}" for row, _, reasons in problems[:20]]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} input rows cannot be scored:\n" + "\n".join(lines) + more)


def score_telco_frame(records: pd.DataFrame, model: ChurnModel, horizon_months: float,
                      first_row_number: int = 1, row_label: str = "row") -> pd.DataFrame:
    """Probability, tier, expected revenue loss, priority and reasons per input row, in input order.

    ``first_row_number`` is the number reported for the first record in errors (2 for a CSV line
    after its header, 0 for a JSON array index).
    """
    missing = [c for c in TELCO_COLUMNS if c != "Churn" and c not in records.columns]
    if missing:
        raise BadCustomerRows([(first_row_number, "missing_column", f"missing columns {missing}")], row_label)
    text = records.reindex(columns=list(TELCO_COLUMNS)).fillna("").astype(str).assign(Churn="")
    today = datetime.now(UTC).date()
    raw = pd.concat([
        pd.DataFrame({
            "snapshot_date": pd.Series(pd.Timestamp(today), index=text.index, dtype="datetime64[ns]"),
            "source_line": range(first_row_number, first_row_number + len(text)),
            "source_file": "request",
            "loaded_at": pd.Series(pd.Timestamp.now(), index=text.index, dtype="datetime64[ns]"),
        }),
        text,
    ], axis=1).reset_index(drop=True)
    clean, rejected = clean_snapshot(raw)
    if len(rejected):
        raise BadCustomerRows(list(zip(rejected["source_line"], rejected["reason_codes"], rejected["reasons"])),
                              row_label)
    scored = score_customers(clean, build_features(clean), model, model_version=model.version or "unversioned",
                             horizon_months=horizon_months, cross_fit=True)
    order = pd.Series(range(len(clean)), index=clean["customer_id"])
    scored = scored.iloc[order[scored["customer_id"]].argsort().to_numpy()]
    return scored.rename(columns={"customer_id": "customerID"})[OUTPUT_COLUMNS].reset_index(drop=True)
