"""Deterministic synthetic customers in the IBM Telco churn schema.

Generative model, sampled ancestrally and fully vectorised:

* demographics; Contract by multinomial logit (partners and families commit longer, seniors less);
* InternetService by contract (seniors favour fiber); only DSL customers may lack PhoneService;
  MultipleLines and the six add-ons by internet type and contract, plus a per-customer
  engagement effect so that add-ons cluster;
* tenure ~ Beta by contract (month-to-month short, two-year long); a few new two-year customers
  have tenure 0 and no bill yet; PaperlessBilling and PaymentMethod by contract;
* MonthlyCharges: price list of the services (phone 20, extra lines 5, DSL 25, fiber 50, add-on 5,
  streaming 10) plus noise; TotalCharges ~ MonthlyCharges * tenure with price-history noise;
* Churn ~ Bernoulli(sigmoid(score)), the score linear in contract, log tenure, fiber, electronic
  check, missing security / support, senior, paperless, partner, dependents and charges plus an
  unobserved Gaussian term, tuned so churn rate (~26.5%), segment rates and attainable ROC-AUC
  (~0.84) resemble the public IBM sample.

Rows come in blocks of absolute indices (row + id_offset), each block from its own stream
``default_rng([seed, 0, block])``, so a customer depends only on (seed, absolute index):
``generate_customers(n)[:k]`` equals ``generate_customers(k)`` and ``generate_customers(n,
id_offset=k)`` equals ``generate_customers(n + k)[k:]``, unless duplicate or malformed rows are
requested (those are drawn over the whole frame).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from churn_pipeline.constants import (
    CONTRACTS,
    GENDERS,
    INTERNET_ADDON_COLUMNS,
    INTERNET_ADDONS,
    INTERNET_SERVICES,
    MULTIPLE_LINES,
    PAYMENT_METHODS,
    TELCO_COLUMNS,
    YES_NO,
    snapshot_file_name,
)

_BLOCK = 1 << 16
_ID_DIGITS, _ID_LETTERS = 10_000, 26**5  # IDs are unique for absolute indices < 10^4 * 26^5
# Rows: contract (Month-to-month, One year, Two year); columns follow the constants' order.
_INTERNET_BY_CONTRACT = np.log([[0.34, 0.49, 0.17], [0.40, 0.32, 0.28], [0.38, 0.21, 0.41]])
_PAYMENT_BY_CONTRACT = np.log([[0.44, 0.25, 0.16, 0.15], [0.24, 0.22, 0.27, 0.27],
                               [0.10, 0.23, 0.33, 0.34]])
_TENURE_BETA = np.array([[0.535, 1.6], [1.52, 1.06], [1.30, 0.36]])
# Add-on logits (OnlineSecurity .. StreamingMovies) for DSL and fiber customers.
_ADDON_LOGIT = np.array([[-0.85, -0.8, -1.2, -0.95, -1.15, -1.05],
                         [-1.6, -0.8, -0.75, -1.65, -0.1, -0.1]])
_CENT_SUFFIX = np.array(["" if c == 0 else f".{c:02d}".rstrip("0") for c in range(100)], dtype=object)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    cum = np.cumsum(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)
    u = rng.random(len(cum))[:, None] * cum[:, -1:]
    return (u >= cum).sum(axis=1)


def _block(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    def bern(p):
        return rng.random(size) < p

    male = bern(0.505)
    senior = bern(0.162)
    partner = bern(0.48)
    dependents = bern(np.where(partner, 0.56, 0.14) * np.where(senior, 0.25, 1.0))
    contract = _categorical(rng, np.column_stack([
        np.zeros(size),
        -1.2 + 0.5 * partner + 0.3 * dependents - 0.4 * senior,
        -1.45 + 0.95 * partner + 0.6 * dependents - 0.5 * senior,
    ]))
    internet = _categorical(rng, _INTERNET_BY_CONTRACT[contract] + np.outer(senior, [0.0, 1.0, -1.6]))
    has_net = internet != 2
    phone = (internet != 0) | bern(0.72)
    multi = phone & bern(_sigmoid(np.array([-0.6, 0.45, -1.5])[internet]
                                  + np.array([0.0, 0.2, 0.5])[contract]))
    addon_logit = (_ADDON_LOGIT[np.minimum(internet, 1)] + np.array([0.0, 1.1, 2.0])[contract, None]
                   + rng.normal(0.0, 0.8, (size, 1)))
    addons = has_net[:, None] & (rng.random((size, 6)) < _sigmoid(addon_logit))
    a, b = _TENURE_BETA[contract].T
    tenure = 1 + np.minimum(rng.beta(a, b) * 72, 71).astype(np.int64)
    tenure[(contract == 2) & bern(0.006)] = 0
    paperless = bern(_sigmoid(0.5 + np.array([0.0, -0.5, -0.8])[contract]
                              + np.array([0.0, 0.95, -1.05])[internet]))
    payment = _categorical(rng, _PAYMENT_BY_CONTRACT[contract] + np.outer(paperless, [0.3, -0.5, 0, 0])
                           + np.outer(~paperless, [-0.3, 0.4, 0, 0]))
    price = (20.0 * phone + 5.0 * multi + np.array([25.0, 50.0, 0.0])[internet]
             + 5.0 * addons[:, :4].sum(axis=1) + 10.0 * addons[:, 4:].sum(axis=1))
    charges = price + rng.normal(0.0, 1.0, size) * (0.3 + 0.01 * price)
    charges = np.round(np.clip(charges, 18.25, 118.75) * 20) / 20  # real prices are multiples of 5 cents
    history = rng.normal(0.0, 0.18, size) / np.sqrt(np.maximum(tenure, 1))
    history = np.where(tenure > 1, np.clip(history, -0.3, 0.5), 0.0)
    total_cents = np.round(charges * tenure * (1 + history) * 20).astype(np.int64) * 5
    score = (-1.16 + 0.75 * (contract == 0) - 0.9 * (contract == 2) - 0.62 * np.log1p(tenure)
             + 0.25 * tenure / 72 + 0.8 * (internet == 1) - 0.1 * ~has_net - 0.25 * phone
             + 0.5 * (payment == 0)
             + 0.55 * (has_net & ~addons[:, 0]) + 0.45 * (has_net & ~addons[:, 3])
             + 0.15 * (has_net & ~addons[:, 1]) + 0.15 * (has_net & ~addons[:, 2]) + 0.25 * senior
             + 0.35 * paperless - 0.15 * partner - 0.3 * dependents + 0.005 * (charges - 65)
             + rng.normal(0.0, 0.7, size))  # unobserved causes keep the best ROC-AUC near 0.85
    churn = (rng.random(size) < _sigmoid(score)) & (tenure > 0)  # nobody leaves before the first bill
    return dict(male=male, senior=senior, partner=partner, dependents=dependents,
                contract=contract, internet=internet, phone=phone, multi=multi, addons=addons,
                tenure=tenure, paperless=paperless, payment=payment, charges=charges,
                total_cents=total_cents, churn=churn)


def _customer_ids(index: np.ndarray, seed: int) -> np.ndarray:
    # A keyed Feistel network on (digits, letters) is a bijection, so distinct indices < 10^4 * 26^5
    # always give distinct IDs, while consecutive indices still look unrelated.
    keys = np.random.SeedSequence([seed, 1]).generate_state(4, np.uint64)
    digits, letters = (index % _ID_DIGITS).astype(np.uint64), (index // _ID_DIGITS).astype(np.uint64)

    def mix(x, key):
        z = (x + key) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        return z ^ (z >> np.uint64(31))

    for r, key in enumerate(keys):
        if r % 2 == 0:
            letters = (letters + mix(digits, key) % np.uint64(_ID_LETTERS)) % np.uint64(_ID_LETTERS)
        else:
            digits = (digits + mix(letters, key) % np.uint64(_ID_DIGITS)) % np.uint64(_ID_DIGITS)
    chars = np.empty((len(index), 10), dtype=np.uint8)
    chars[:, 4] = ord("-")
    for pos in range(3, -1, -1):
        chars[:, pos] = ord("0") + digits % np.uint64(10)
        digits //= np.uint64(10)
    for pos in range(9, 4, -1):
        chars[:, pos] = ord("A") + letters % np.uint64(26)
        letters //= np.uint64(26)
    return chars.view("S10").ravel().astype("U10").astype(object)


def _labels(values: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[codes.astype(np.intp)]


def _clean_frame(n: int, seed: int, id_offset: int) -> pd.DataFrame:
    first = id_offset // _BLOCK
    last = max(first, (id_offset + n - 1) // _BLOCK)
    blocks = [_block(np.random.default_rng([seed, 0, b]), _BLOCK) for b in range(first, last + 1)]
    start = id_offset - first * _BLOCK
    g = {k: np.concatenate([blk[k] for blk in blocks])[start:start + n] for k in blocks[0]}
    has_net = g["internet"] != 2
    dollars = pd.Series(g["total_cents"] // 100).astype(str).to_numpy(dtype=object)
    total = np.where(g["tenure"] > 0, dollars + _CENT_SUFFIX[g["total_cents"] % 100], "").astype(object)
    cols = {
        "customerID": _customer_ids(np.arange(id_offset, id_offset + n, dtype=np.int64), seed),
        "gender": _labels(GENDERS, g["male"]),
        "SeniorCitizen": g["senior"].astype(np.int64),
        "Partner": _labels(YES_NO, g["partner"]),
        "Dependents": _labels(YES_NO, g["dependents"]),
        "tenure": g["tenure"].astype(np.int64),
        "PhoneService": _labels(YES_NO, g["phone"]),
        "MultipleLines": _labels(MULTIPLE_LINES, np.where(g["phone"], g["multi"], 2)),
        "InternetService": _labels(INTERNET_SERVICES, g["internet"]),
        **{c: _labels(INTERNET_ADDONS, np.where(has_net, g["addons"][:, i], 2))
           for i, c in enumerate(INTERNET_ADDON_COLUMNS)},
        "Contract": _labels(CONTRACTS, g["contract"]),
        "PaperlessBilling": _labels(YES_NO, g["paperless"]),
        "PaymentMethod": _labels(PAYMENT_METHODS, g["payment"]),
        "MonthlyCharges": g["charges"].astype(np.float64),
        "TotalCharges": total,
        "Churn": _labels(YES_NO, g["churn"]),
    }
    return pd.DataFrame({c: cols[c] for c in TELCO_COLUMNS})


def _add_duplicates(frame: pd.DataFrame, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    k = int(round(rate * len(frame)))
    if k == 0:
        return frame
    extra = frame.iloc[rng.choice(len(frame), k, replace=False)].copy()
    conflict = np.arange(k) < k // 2
    charges = extra["MonthlyCharges"].to_numpy()
    delta = rng.integers(1, 201, k) * 0.05
    delta = np.where(charges + delta > 118.75, -delta, delta)
    extra["MonthlyCharges"] = np.where(conflict, np.round(charges + delta, 2), charges)
    both = pd.concat([frame, extra], ignore_index=True)
    return both.iloc[rng.permutation(len(both))].reset_index(drop=True)


def _add_malformed(frame: pd.DataFrame, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    tenure = frame["tenure"].to_numpy()
    eligible = np.flatnonzero(tenure > 0)  # so a blank TotalCharges is always an error
    m = min(int(round(rate * len(frame))), len(eligible))
    if m == 0:
        return frame
    frame = frame.copy()
    rows = rng.choice(eligible, m, replace=False)
    kind = np.arange(m) % 6
    frame["tenure"] = frame["tenure"].astype(str).astype(object)
    frame["MonthlyCharges"] = frame["MonthlyCharges"].astype(str).astype(object)
    at = frame.columns.get_loc
    frame.iloc[rows[kind == 0], at("MonthlyCharges")] = "abc"
    frame.iloc[rows[kind == 1], at("tenure")] = (-tenure[rows[kind == 1]]).astype(str)
    frame.iloc[rows[kind == 2], at("TotalCharges")] = ""
    frame.iloc[rows[kind == 3], at("Contract")] = "Weekly"
    frame.iloc[rows[kind == 4], at("customerID")] = ""
    frame.iloc[rows[kind == 5], at("Churn")] = "Maybe"
    return frame


def generate_customers(n: int, *, seed: int = 0, duplicate_rate: float = 0.0,
                       malformed_rate: float = 0.0, id_offset: int = 0) -> pd.DataFrame:
    """Return ``n`` synthetic customers (columns ``TELCO_COLUMNS``, values as in the Telco CSV).

    Deterministic in all arguments; row ``i`` is customer ``i + id_offset`` of ``seed`` and its
    customerID ("1234-ABCDE") is unique within a seed for absolute indices below 10^4 * 26^5.
    ``duplicate_rate`` appends ``round(rate * n)`` rows repeating existing customerIDs (half exact
    copies, half with a different MonthlyCharges) and then shuffles all rows. ``malformed_rate``
    gives ``round(rate * rows)`` rows (with tenure > 0) one bad value each, cycling through:
    MonthlyCharges "abc", negative tenure, blank TotalCharges, Contract "Weekly", blank
    customerID, Churn "Maybe"; tenure and MonthlyCharges then become string columns.
    """
    if n < 0 or seed < 0 or id_offset < 0:
        raise ValueError(f"n, seed and id_offset must be >= 0, got {n}, {seed}, {id_offset}")
    if id_offset + n > _ID_DIGITS * _ID_LETTERS:
        raise ValueError(f"id_offset + n = {id_offset + n} exceeds the customerID space")
    for name, rate in (("duplicate_rate", duplicate_rate), ("malformed_rate", malformed_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate!r}")
    frame = _clean_frame(n, seed, id_offset)
    rng = np.random.default_rng([seed, 2, n, id_offset])
    frame = _add_duplicates(frame, duplicate_rate, rng)
    return _add_malformed(frame, malformed_rate, rng)


def write_snapshot(frame: pd.DataFrame, landing_dir: str | Path, snapshot_date: str) -> Path:
    """Write ``frame`` to ``landing_dir/customers_<snapshot_date>.csv`` atomically; return the path.

    ``snapshot_date`` must be a real calendar date written YYYY-MM-DD. The file appears complete or
    not at all: it is written to a temporary file in the same directory and renamed into place.
    """
    try:
        valid = bool(re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", snapshot_date))
        valid = valid and dt.date.fromisoformat(snapshot_date) is not None
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"snapshot_date must be a date written YYYY-MM-DD, got {snapshot_date!r}")
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    target = landing / snapshot_file_name(snapshot_date)
    fd, tmp = tempfile.mkstemp(dir=landing, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; readers may run as other users
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
