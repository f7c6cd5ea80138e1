"""Per-customer reasons: the features pushing a score up most, in words a retention agent uses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn_pipeline.schemas import FEATURE_COLUMNS

TOP_REASONS = 3
NO_REASON = "no strong risk factor"


def _money(values: pd.Series) -> pd.Series:
    return "$" + values.round(2).map("{:,.2f}".format)


def _yes_no(when_one: str, when_zero: str) -> Callable[[pd.Series], pd.Series]:
    return lambda v: pd.Series(np.where(v >= 0.5, when_one, when_zero), index=v.index)


def _tenure(v: pd.Series) -> pd.Series:
    months = v.astype(int).astype(str)
    return pd.Series(
        np.select([v < 6, v < 12, v < 24], ["tenure under 6 months", "tenure under a year", "tenure under 2 years"],
                  default="tenure of " + months + " months"),
        index=v.index,
    )


PHRASES: dict[str, Callable[[pd.Series], pd.Series]] = {
    "tenure_months": _tenure,
    "monthly_charges": lambda v: "monthly bill of " + _money(v),
    "total_charges": lambda v: "only " + _money(v) + " billed to date",
    "avg_monthly_billed": lambda v: "average bill of " + _money(v),
    "charge_increase_ratio": lambda v: pd.Series(
        np.where(v > 1.05, "bill up " + ((v - 1) * 100).round().astype(int).astype(str) + "% on its average",
                 "bill level vs. its average"), index=v.index),
    "service_count": lambda v: "takes " + v.astype(int).astype(str) + " services",
    "log_tenure": lambda v: _tenure(np.expm1(v).round()),
    "log_total_charges": lambda v: "only " + _money(np.expm1(v)) + " billed to date",
    "new_customer": _yes_no("new customer (under 6 months)", "not a new customer"),
    "month_to_month_tenure": lambda v: pd.Series(
        np.where(v > 0, "month-to-month contract", "on a term contract"), index=v.index),
    "senior_citizen": _yes_no("senior citizen", "not a senior citizen"),
    "is_male": _yes_no("gender: male", "gender: female"),
    "partner": _yes_no("has a partner", "no partner"),
    "dependents": _yes_no("has dependents", "no dependents"),
    "phone_service": _yes_no("has phone service", "no phone service"),
    "multiple_lines": _yes_no("multiple phone lines", "single phone line"),
    "internet_dsl": _yes_no("DSL internet", "no DSL internet"),
    "internet_fiber": _yes_no("fiber-optic internet", "no fiber-optic internet"),
    "online_security": _yes_no("has online security", "no online security"),
    "online_backup": _yes_no("has online backup", "no online backup"),
    "device_protection": _yes_no("has device protection", "no device protection"),
    "tech_support": _yes_no("has tech support", "no tech support"),
    "streaming_tv": _yes_no("streams TV", "no TV streaming"),
    "streaming_movies": _yes_no("streams movies", "no movie streaming"),
    "contract_one_year": _yes_no("one-year contract", "no one-year contract"),
    "contract_two_year": _yes_no("two-year contract", "no two-year contract"),
    "paperless_billing": _yes_no("paperless billing", "paper billing"),
    "pay_electronic_check": _yes_no("pays by electronic check", "does not pay by electronic check"),
    "pay_mailed_check": _yes_no("pays by mailed check", "does not pay by mailed check"),
    "pay_automatic": _yes_no("automatic payment", "no automatic payment"),
    "month_to_month_echeck": _yes_no("month-to-month contract paid by electronic check",
                                     "not month-to-month with electronic check"),
    "fiber_without_support": _yes_no("fiber internet without tech support or security",
                                     "support or security on the line"),
}
# Two one-hot contract flags at 0 both mean month-to-month: say it once, in the agent's words.
_MONTH_TO_MONTH = {"contract_one_year", "contract_two_year"}
assert set(PHRASES) == set(FEATURE_COLUMNS), "every feature needs a phrase"


def top_reasons(features: pd.DataFrame, contributions: np.ndarray, top: int = TOP_REASONS) -> pd.Series:
    """For each row, the ``top`` features with the largest positive contribution, as '; '-joined words."""
    names = list(FEATURE_COLUMNS)
    n_rows = len(features)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, : top + 1]
    picked = np.take_along_axis(contributions, order, axis=1) > 0
    phrases = np.full(order.shape, "", dtype=object)
    for j, name in enumerate(names):
        rows, slots = np.nonzero((order == j) & picked)
        if len(rows):
            values = features[name].iloc[rows].astype("float64").reset_index(drop=True)
            phrases[rows, slots] = PHRASES[name](values).to_numpy()
    month_to_month = (features["contract_one_year"].to_numpy() == 0) & (features["contract_two_year"].to_numpy() == 0)
    contract_slots = np.isin(order, [names.index(n) for n in _MONTH_TO_MONTH]) & picked
    phrases[contract_slots & month_to_month[:, None]] = "month-to-month contract"
    out = np.empty(n_rows, dtype=object)
    for i in range(n_rows):
        seen: list[str] = []
        for phrase in phrases[i]:
            if phrase and phrase not in seen:
                seen.append(phrase)
        out[i] = "; ".join(seen[:top]) if seen else NO_REASON
    return pd.Series(out, index=features.index)
