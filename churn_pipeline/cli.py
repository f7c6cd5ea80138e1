"""``churn-pipeline``: generate a snapshot, materialize the graph for a day, print the summary.

    churn-pipeline generate --customers 20000 --snapshot-date 2026-11-26 --seed 7
    churn-pipeline materialize --date 2026-11-26      # exit code = the run's outcome
    churn-pipeline summary --date 2026-11-26
    churn-pipeline score --input customers.csv --output scores.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from churn_pipeline.settings import Settings, mask_url


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _date(value: str) -> str:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD form") from None
    return value


def _rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a fraction in [0, 1)")
    return rate


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from churn_pipeline.synthetic import generate_customers, write_snapshot

    frame = generate_customers(args.customers, seed=args.seed, duplicate_rate=args.duplicate_rate,
                               malformed_rate=args.malformed_rate)
    path = write_snapshot(frame, args.landing_dir or settings.landing_dir, args.snapshot_date)
    print(f"wrote {len(frame):,} customers to {path}")
    return 0


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    import dagster as dg

    from churn_pipeline.definitions import defs

    instance = dg.DagsterInstance.get() if _has_dagster_home() else dg.DagsterInstance.ephemeral()
    print(f"materializing the churn graph for {args.date} into {mask_url(settings.db_url)}", flush=True)
    result = defs.resolve_job_def("churn_nightly").execute_in_process(
        partition_key=args.date, instance=instance, raise_on_error=False,
        tags={"churn/trigger": "cli"},
        run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
    )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
        print(f"run {result.run_id} failed", file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded")
    if not args.quiet:
        _print_summary(settings, args.date)
    return 0


def _has_dagster_home() -> bool:
    return bool(os.environ.get("DAGSTER_HOME"))


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    return _print_summary(settings, args.date)


def _print_summary(settings: Settings, day: str | None) -> int:
    from churn_pipeline.summary import load_summary

    summary = load_summary(settings.db_url, day)
    if summary is None:
        print(f"no KPIs stored{' for ' + day if day else ''} in {mask_url(settings.db_url)}", file=sys.stderr)
        return 1
    print(summary.render())
    return 0


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from churn_pipeline.logic.serving import BadCustomerRows, score_telco_frame
    from churn_pipeline.model_runs import ModelRegistry

    model = ModelRegistry(settings.db_url, settings.model_dir).champion()
    if model is None:
        print(f"no champion model registered in {mask_url(settings.db_url)}: run `churn-pipeline materialize` first",
              file=sys.stderr)
        return 1
    try:
        records = pd.read_csv(args.input, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError) as error:
        print(f"cannot read {args.input}: {error}", file=sys.stderr)
        return 2
    try:
        scored = score_telco_frame(records, model, settings.horizon_months, first_row_number=2, row_label="line")
    except BadCustomerRows as error:
        print(f"{args.input}: {error}", file=sys.stderr)
        return 2
    temporary = Path(f"{args.output}.tmp")
    scored.to_csv(temporary, index=False)
    temporary.replace(args.output)
    print(f"scored {len(scored):,} customers with model {model.version} into {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churn-pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a deterministic synthetic snapshot to the landing folder")
    generate.add_argument("--customers", type=_positive, default=20_000)
    generate.add_argument("--snapshot-date", type=_date, default=_today())
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--duplicate-rate", type=_rate, default=0.0)
    generate.add_argument("--malformed-rate", type=_rate, default=0.0)
    generate.add_argument("--landing-dir", help="default: CHURN_LANDING_DIR or data/landing")
    generate.set_defaults(handler=cmd_generate)

    materialize = commands.add_parser("materialize", help="run the whole graph for one snapshot day")
    materialize.add_argument("--date", type=_date, default=_today(), help="partition (snapshot date)")
    materialize.add_argument("--quiet", action="store_true", help="do not print the summary")
    materialize.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                             help="Dagster event log level on the console")
    materialize.set_defaults(handler=cmd_materialize)

    score = commands.add_parser("score", help="score a CSV of customers (Telco schema) with the champion model")
    score.add_argument("--input", required=True, help="CSV in the Telco schema (a Churn column is ignored)")
    score.add_argument("--output", required=True, help="CSV to write: customerID, probability, tier, loss, reasons")
    score.set_defaults(handler=cmd_score)

    summary = commands.add_parser("summary", help="print the day's KPIs and whom to call first")
    summary.add_argument("--date", type=_date, default=None, help="default: the latest day stored")
    summary.set_defaults(handler=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        print(f"churn-pipeline: {error}", file=sys.stderr)
        return 2
    from churn_pipeline.model_store import ModelStoreError
    from churn_pipeline.storage import StorageError

    try:
        return args.handler(args, settings)
    except (StorageError, ModelStoreError) as error:
        print(f"churn-pipeline: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
