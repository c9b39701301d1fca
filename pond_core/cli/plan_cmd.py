"""`pond plan`: compile a pipeline (nothing runs) and show it as text, JSON, Mermaid or SVG."""

from __future__ import annotations

import os

import click

from pond_core.cli import graph
from pond_core.cli.common import CliError, param_option
from pond_core.cli.run_cmds import load_plan
from pond_core.plan.physical import PhysicalPlan

FORMATS = ("text", "json", "mermaid", "svg")


def render_plan(plan: PhysicalPlan, fmt: str) -> str:
    if fmt == "json":
        return plan.to_json(indent=2) + "\n"
    if fmt == "mermaid":
        return graph.to_mermaid(plan)
    if fmt == "svg":
        return graph.to_svg(plan)
    params = " ".join(f"{k}={v}" for k, v in sorted(plan.params.items()))
    head = f"pipeline {plan.pipeline or '-'}  params {params or '-'}\nplan {plan.fingerprint}, {len(plan.stages)} stages\n\n"
    return head + plan.render() + "\n"


@click.command("plan")
@click.argument("pipeline", required=False)
@param_option
@click.option("--plan", "plan_file", metavar="FILE", help="Show a plan JSON file instead (checked: version and checksum).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text; json (the plan `pond run --plan` takes); mermaid (a flowchart); svg (an image of that graph).")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--data-root", metavar="DIR", help="Storage root the plan is compiled for. Default: $POND_DATA_ROOT.")
def plan_command(pipeline: str | None, params: tuple[str, ...], plan_file: str | None, fmt: str, output: str | None, data_root: str | None) -> None:
    """Compile PIPELINE with its parameters and print its stages; reads no data, runs nothing.

    \b
    Examples:
      pond plan pond_core.examples:daily_revenue -p ds=2026-11-20 -p source_root=/data/shop -p output_root=/data/revenue
      pond plan ... --format json -o plan.json && pond run --plan plan.json
      pond plan ... --format mermaid        # paste into any Markdown that renders Mermaid
      pond plan ... --format svg -o plan.svg
    """
    text = render_plan(load_plan(pipeline, plan_file, params, data_root), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        parent = os.path.dirname(os.path.abspath(output))
        os.makedirs(parent, exist_ok=True)
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {fmt} plan to {output}", err=True)
