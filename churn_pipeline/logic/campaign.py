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

    def __add__(self, other: CampaignPlan) -> CampaignPlan:
        """The plan of two disjoint groups of customers (chunks of a day) together."""
        return CampaignPlan(self.list_size + other.list_size, self.expected_profit + other.expected_profit)


def contact_profit(expected_revenue_loss: np.ndarray, success_rate: float, contact_cost: float) -> np.ndarray:
    """Expected profit of contacting each customer."""
    if not 0 <= success_rate <= 1:
        raise ValueError(f"retention success rate must be within [0, 1], got {success_rate}")
    if contact_cost < 0:
        raise ValueError(f"contact cost must not be negative, got {contact_cost}")
    return success_rate * np.asarray(expected_revenue_loss, dtype="float64") - contact_cost


def best_campaign(profit: np.ndarray) -> CampaignPlan:
    """The most profitable contact list: every customer whose contact pays (profit > 0).

    Along the priority list the profit falls with the rank, so this is the top of the list down to
    the last contact that pays. The rule needs no order: chunks of a day arriving in any order are
    planned one by one and added (``CampaignPlan.__add__``)."""
    profit = np.asarray(profit, dtype="float64")
    pays = profit > 0
    return CampaignPlan(list_size=int(pays.sum()), expected_profit=float(profit[pays].sum()))
