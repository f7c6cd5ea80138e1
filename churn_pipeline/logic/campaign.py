"""Retention campaign planning: the expected profit of a contact and the most profitable list size.

Contacting customer i costs ``c`` and keeps them with probability ``s`` if they would have churned:
expected profit ``p·s·m·H − c``. Ranked by expected revenue loss ``p·m·H`` (the priority list) the
profit falls with the rank, so the best list is the top of the priority list down to the last
customer whose contact still pays. The Telco data has no record of past offers, so ``s`` is an
assumption to set (``CHURN_RETENTION_SUCCESS_RATE``), not an estimate of who is persuadable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CampaignPlan:
    list_size: int
    expected_profit: float


def contact_profit(expected_revenue_loss: np.ndarray, success_rate: float, contact_cost: float) -> np.ndarray:
    """Expected profit of contacting each customer."""
    if not 0 <= success_rate <= 1:
        raise ValueError(f"retention success rate must be within [0, 1], got {success_rate}")
    if contact_cost < 0:
        raise ValueError(f"contact cost must not be negative, got {contact_cost}")
    return success_rate * np.asarray(expected_revenue_loss, dtype="float64") - contact_cost


def best_campaign(profit_in_priority_order: np.ndarray) -> CampaignPlan:
    """The list size (top of the priority list) with the highest total expected profit; 0 if none pays."""
    cumulative = np.concatenate([[0.0], np.cumsum(profit_in_priority_order)])
    size = int(np.argmax(cumulative))
    return CampaignPlan(list_size=size, expected_profit=float(cumulative[size]))
