"""Read-only SQLAlchemy Core queries over the output tables, for the API and the dashboard.

Every value travels as a bound parameter; tables and columns come from the pandera schemas (via
:class:`TableStore`), never from request text. Lists are paged in the database (``LIMIT``/``OFFSET``
or keyset on ``priority_rank``, which the ``(snapshot_date, risk_tier | contract, priority_rank)``
indexes serve), so no request reads a whole day of customers. A page and its total are read in one
transaction: both describe the same version of the day even if the nightly run replaces it meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from churn_pipeline.storage import TableStore

KPI_COLUMNS = ("snapshot_date", "active_customers", "predicted_churners", "predicted_churn_rate", "actual_churn_rate",
               "monthly_revenue", "revenue_at_risk", "revenue_at_risk_high", "revenue_at_risk_medium",
               "revenue_at_risk_low", "high_risk_customers", "average_probability", "horizon_months",
               "campaign_list_size", "campaign_expected_profit", "model_version")
SEGMENT_COLUMNS = ("segment_type", "segment_value", "active_customers", "predicted_churners", "predicted_churn_rate",
                   "actual_churn_rate", "revenue_at_risk", "average_probability")
MODEL_COLUMNS = ("model_version", "algorithm", "snapshot_date", "trained_at", "training_rows", "roc_auc",
                 "roc_auc_std", "pr_auc", "brier", "predicted_to_actual", "tier_medium_threshold",
                 "tier_high_threshold")
SCORE_COLUMNS = ("snapshot_date", "customer_id", "priority_rank", "churn_probability", "risk_tier", "monthly_charges",
                 "expected_revenue_loss", "expected_contact_profit", "contract", "tenure_band", "internet_service",
                 "payment_method", "top_reasons", "score_source", "model_version")
HISTORY_COLUMNS = ("snapshot_date", "churn_probability", "risk_tier", "expected_revenue_loss", "priority_rank",
                   "model_version")
FILTER_COLUMNS = ("risk_tier", "contract", "tenure_band", "internet_service", "payment_method")
READ_TABLES = ("business_kpis", "segment_kpis", "scored_customers", "model_runs")
CSV_CHUNK_ROWS = 5_000


class NotFound(LookupError):
    """The request names data that is not stored (a day, a customer): HTTP 404."""


class Reader:
    """The queries, over one database. Tables are built once, up front (SQLAlchemy metadata is not
    safe to extend from several request threads at once)."""

    def __init__(self, store: TableStore):
        self.store = store
        self.engine = store.engine
        self.t = {name: store.table(name) for name in READ_TABLES}

    def ping(self) -> None:
        """Raise unless the output tables can be read (server up, database there, pipeline has run)."""
        with self.engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1)).select_from(self.t["business_kpis"]).limit(1)).all()

    # ---- helpers -------------------------------------------------------------------------------

    def _day(self, conn: Connection, table: str, day: date | None, what: str) -> date:
        """``day`` if the table holds it, else (None) its newest day; NotFound otherwise."""
        t = self.t[table]
        if day is None:
            newest = conn.execute(sa.select(sa.func.max(t.c.snapshot_date))).scalar()
            if newest is None:
                raise NotFound(f"no {what} stored yet: the pipeline has not run on this database")
            return _as_date(newest)
        found = conn.execute(sa.select(t.c.snapshot_date).where(t.c.snapshot_date == day).limit(1)).first()
        if found is None:
            raise NotFound(f"no {what} stored for {day.isoformat()}")
        return day

    def _select(self, table: str, columns: tuple[str, ...]):
        t = self.t[table]
        return sa.select(*[t.c[c] for c in columns])

    # ---- KPIs, segments, models ----------------------------------------------------------------

    def kpis(self, day: date | None, history_days: int) -> tuple[dict, list[dict], dict | None]:
        t = self.t["business_kpis"]
        with self.engine.connect() as conn:
            day = self._day(conn, "business_kpis", day, "KPIs")
            history = conn.execute(
                self._select("business_kpis", KPI_COLUMNS).where(t.c.snapshot_date <= day)
                .order_by(t.c.snapshot_date.desc()).limit(history_days)
            ).mappings().all()
            history = [_row(r) for r in reversed(history)]
            latest = history[-1]
            model = self._model(conn, latest["model_version"])
        return latest, history, model

    def _model(self, conn: Connection, version: str) -> dict | None:
        t = self.t["model_runs"]
        row = conn.execute(self._select("model_runs", MODEL_COLUMNS).where(t.c.model_version == version)
                           .order_by(t.c.trained_at.desc()).limit(1)).mappings().first()
        return None if row is None else {**_row(row), "version": row["model_version"]}

    def segments(self, day: date | None, segment_type: str | None) -> tuple[date, list[dict]]:
        t = self.t["segment_kpis"]
        with self.engine.connect() as conn:
            day = self._day(conn, "segment_kpis", day, "segment KPIs")
            query = self._select("segment_kpis", SEGMENT_COLUMNS).where(t.c.snapshot_date == day)
            if segment_type is not None:
                query = query.where(t.c.segment_type == segment_type)
            rows = conn.execute(query.order_by(t.c.segment_type, t.c.revenue_at_risk.desc(), t.c.segment_value))
            return day, [_row(r) for r in rows.mappings()]

    # ---- customers -----------------------------------------------------------------------------

    def _conditions(self, day: date, filters: dict[str, str]) -> list:
        t = self.t["scored_customers"]
        return [t.c.snapshot_date == day, *[t.c[column] == value for column, value in filters.items()]]

    def at_risk(self, day: date | None, filters: dict[str, str], limit: int, offset: int,
                after_rank: int | None) -> tuple[date, int, list[dict]]:
        """One page of the call list in priority order, and how many customers match in all."""
        t = self.t["scored_customers"]
        with self.engine.connect() as conn:
            day = self._day(conn, "scored_customers", day, "scored customers")
            conditions = self._conditions(day, filters)
            total = conn.execute(sa.select(sa.func.count()).select_from(t).where(*conditions)).scalar()
            query = self._select("scored_customers", SCORE_COLUMNS).where(*conditions)
            if after_rank is not None:
                query = query.where(t.c.priority_rank > after_rank)
            rows = conn.execute(query.order_by(t.c.priority_rank).limit(limit).offset(offset)).mappings().all()
            return day, int(total), [_row(r) for r in rows]

    def at_risk_stream(self, day: date | None, filters: dict[str, str], limit: int) -> tuple[date, Iterator[dict]]:
        """The whole filtered call list (up to ``limit`` rows), read in keyset chunks inside ONE transaction.

        The day and the first chunk are read before returning, so a database failure is an HTTP error,
        not a cut-off download; the rest streams from the same snapshot of the table.
        """
        t = self.t["scored_customers"]
        conn = self.engine.connect()
        try:
            day = self._day(conn, "scored_customers", day, "scored customers")
            conditions = self._conditions(day, filters)
            base = self._select("scored_customers", SCORE_COLUMNS).where(*conditions).order_by(t.c.priority_rank)

            def chunk(after: int, size: int) -> list[dict]:
                return [_row(r) for r in conn.execute(
                    base.where(t.c.priority_rank > after).limit(size)).mappings().all()]

            first = chunk(0, min(limit, CSV_CHUNK_ROWS))
        except BaseException:
            conn.close()
            raise

        def rows() -> Iterator[dict]:
            try:
                rows_left, current = limit, first
                while current:
                    yield from current
                    rows_left -= len(current)
                    if rows_left <= 0 or len(current) < CSV_CHUNK_ROWS:
                        break
                    current = chunk(current[-1]["priority_rank"], min(rows_left, CSV_CHUNK_ROWS))
            finally:
                conn.close()

        return day, rows()

    def customer(self, customer_id: str, history_days: int) -> tuple[list[dict], date]:
        """A customer's newest scores (full rows, oldest first) and the newest scored day overall."""
        t = self.t["scored_customers"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._select("scored_customers", SCORE_COLUMNS).where(t.c.customer_id == customer_id)
                .order_by(t.c.snapshot_date.desc()).limit(history_days)
            ).mappings().all()
            if not rows:
                raise NotFound(f"customer {customer_id!r} has no stored score")
            newest_day = _as_date(conn.execute(sa.select(sa.func.max(t.c.snapshot_date))).scalar())
        return [_row(r) for r in reversed(rows)], newest_day


def _as_date(value) -> date:
    if isinstance(value, str):  # SQLite aggregates lose the column type
        return date.fromisoformat(value[:10])
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def _row(row) -> dict:
    out = dict(row)
    for key in ("snapshot_date",):
        if key in out and out[key] is not None:
            out[key] = _as_date(out[key])
    if "top_reasons" in out:
        out["top_reasons"] = [part for part in (out["top_reasons"] or "").split("; ") if part]
    return out

