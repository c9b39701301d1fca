"""`pond sql`: one SQL statement over named datasets, planned by pond, from the shell.

The same path as Airflow's PondSqlOperator and Prefect's run_sql (`pond_core.named_sql`): the
statement reads its inputs whole and pond places the exchanges. It prints the result as a table,
writes it as a Parquet dataset (`--output`), or shows the plan (`--explain`, nothing runs).
"""

from __future__ import annotations

import click

from pond_core.cli import render
from pond_core.cli.common import FAILED, CliError, executor_option, setting_option
from pond_core.errors import PondInputError, PondSqlError


def _inputs(pairs: tuple[str, ...]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise CliError(f"--input takes NAME=PATH (a table name and a Parquet path, glob or dataset), got {pair!r}")
        if name in inputs:
            raise CliError(f"--input {name} is given twice")
        inputs[name] = path
    if not inputs:
        raise CliError("give the statement's tables with --input NAME=PATH (one per table)")
    return inputs


@click.command("sql")
@click.argument("statement")
@click.option("-i", "--input", "input_pairs", multiple=True, metavar="NAME=PATH",
              help="A table the statement names: a Parquet file, glob, dataset directory or s3:// URL; repeat for several.")
@click.option("-o", "--output", metavar="PATH", help="Write the result as a Parquet dataset at PATH (must not hold data).")
@click.option("--explain", is_flag=True, help="Print the distributed plan and pond's stages; nothing runs.")
@click.option("-n", "--npartitions", type=click.IntRange(min=1), help="Partitions of the distributed steps. Default: from sizes and cores.")
@click.option("--strict", is_flag=True, help="Fail instead of running any part of the statement in one partition.")
@click.option("--limit", "max_rows", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Rows printed at most (without --output).")
@executor_option
@setting_option("data_root")
def sql_command(
    statement: str, input_pairs: tuple[str, ...], output: str | None, explain: bool, npartitions: int | None, strict: bool,
    max_rows: int, executor: str | None, data_root: str | None,
) -> None:
    """Run STATEMENT (one query) over the --input tables; pond plans the exchanges.

    \b
    Examples:
      pond sql "SELECT c_name, sum(o_totalprice) FROM orders JOIN customer ON o_custkey = c_custkey GROUP BY 1" \\
          -i orders=/data/orders -i customer=/data/customer
      pond sql "SELECT ..." -i t=/data/t --explain
      pond sql "SELECT ..." -i t=s3://bucket/t -o /data/out

    Exit codes: 0 ok; 1 the run failed; 2 the statement or an input is invalid (nothing ran).
    """
    import pond_core
    from pond_core.named_sql import named_sql

    inputs = _inputs(input_pairs)
    session = pond_core.init(data_root=data_root, executor=executor, job_name="pond-sql")
    try:
        try:
            frame = named_sql(session, statement, inputs, npartitions=npartitions, strict=strict or None)
        except (PondSqlError, PondInputError) as exc:  # found while planning (a bad statement, a missing input): nothing ran
            raise CliError(str(exc)) from None
        if explain:
            click.echo(frame.explain())  # explain() returns the text, printing nothing
            return
        if output:
            result = frame.write_parquet(output)
            click.echo(f"wrote {result.get('rows', '?')} rows to {output}", err=True)
            return
        table = frame.limit(max_rows + 1).to_arrow() if max_rows else frame.limit(1).to_arrow().slice(0, 0)
        rows = table.to_pylist()
        out = render.console()
        out.print(render.table(None, table.column_names, [[render.cell(r[c]) for c in table.column_names] for r in rows[:max_rows]]))
        if len(rows) > max_rows:
            out.print(f"(first {max_rows} rows; --limit N shows more, --output PATH writes all)")
    except PondSqlError as exc:
        raise CliError(str(exc), FAILED) from None
    finally:
        session.shutdown()
