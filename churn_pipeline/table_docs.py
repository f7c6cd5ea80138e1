"""Markdown reference of every output table, generated from the schemas.

    python -m churn_pipeline.table_docs > docs/tables.md

A test keeps ``docs/tables.md`` equal to this output, so the documentation cannot drift.
"""

from __future__ import annotations

from sqlalchemy.dialects import mysql

from churn_pipeline.schemas import TABLES
from churn_pipeline.storage import build_table


def render() -> str:
    import sqlalchemy as sa

    metadata = sa.MetaData()
    dialect = mysql.dialect()
    lines = ["# Output tables", "",
             "Generated from `churn_pipeline/schemas.py` by `python -m churn_pipeline.table_docs`; "
             "the same schemas create these tables in MySQL and SQLite. Per-day tables are replaced one "
             "`snapshot_date` at a time, in one transaction.", ""]
    for spec in TABLES.values():
        table = build_table(spec, metadata)
        per_day = f"yes, by `{spec.partition_column}`" if spec.partition_column else "no (append-only)"
        lines += [f"## `{spec.name}`", "", spec.description, "",
                  f"- Primary key: `{', '.join(spec.primary_key)}`", f"- Per day: {per_day}"]
        if spec.unique:
            lines.append("- Unique: " + "; ".join(f"`({', '.join(cols)})`" for cols in spec.unique))
        if spec.indexes:
            lines.append("- Indexes: " + "; ".join(f"`({', '.join(cols)})`" for cols in spec.indexes))
        lines += ["", "| column | MySQL type | null | meaning |", "|---|---|---|---|"]
        for column in table.columns:
            sql_type = column.type.compile(dialect=dialect)
            lines.append(f"| `{column.name}` | {sql_type} | {'yes' if column.nullable else 'no'} | "
                         f"{(column.comment or '').replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
