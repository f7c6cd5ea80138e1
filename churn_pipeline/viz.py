"""ROC, calibration and gains plots of a model's out-of-fold scores, as Markdown images for the UI."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def model_plots(evaluation: pd.DataFrame) -> dict[str, str]:
    """Base64 PNGs keyed by plot name, from columns churn_probability, churned, monthly_charges."""
    p = evaluation["churn_probability"].to_numpy(dtype="float64")
    y = evaluation["churned"].to_numpy(dtype=bool)
    monthly = evaluation["monthly_charges"].to_numpy(dtype="float64")
    plots = {}

    figure, axis = plt.subplots(figsize=(4, 3.2))
    fpr, tpr, _ = roc_curve(y, p)
    axis.plot(fpr, tpr, label="model")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="random")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (out-of-fold)")
    axis.legend(loc="lower right")
    plots["roc"] = _png(figure)

    figure, axis = plt.subplots(figsize=(4, 3.2))
    bins = pd.qcut(p, 10, duplicates="drop")
    table = pd.DataFrame({"p": p, "y": y}).groupby(bins, observed=True).mean()
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    axis.plot(table["p"], table["y"], "o-", label="model (deciles)")
    axis.set(xlabel="predicted probability", ylabel="observed churn rate", title="Calibration")
    axis.legend(loc="upper left")
    plots["calibration"] = _png(figure)

    figure, axis = plt.subplots(figsize=(4, 3.2))
    order = np.argsort(-(p * monthly), kind="stable")
    captured = np.cumsum((y * monthly)[order]) / max((y * monthly).sum(), 1e-9)
    share = np.arange(1, len(order) + 1) / len(order)
    axis.plot(share, captured, label="priority list (p x monthly)")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="random")
    axis.set(xlabel="share of customers contacted", ylabel="churned revenue captured", title="Gains")
    axis.legend(loc="lower right")
    plots["gains"] = _png(figure)
    return plots


def model_plots_markdown(evaluation: pd.DataFrame) -> str:
    return "\n\n".join(f"![{name}](data:image/png;base64,{data})" for name, data in model_plots(evaluation).items())
