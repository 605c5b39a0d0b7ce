"""`clockface eval FOLDER`: recognition accuracy of the configured model on labelled photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from device.cli.context import config_of
from device.errors import ClockfaceCommand


def report_lines(model_name: str, metric: str, report) -> list[str]:
    """The human form of an evaluation report (pure)."""
    g = report.genuine_outcomes
    best = "-" if report.best_threshold_far_1pct is None else f"{report.best_threshold_far_1pct:.3f}"
    lines = [
        f"model              {model_name} ({metric}, threshold {report.threshold:g})",
        f"people enrolled    {report.people_enrolled} (enrolment failures: {len(report.enrolment_failures)})",
        f"strangers          {report.strangers}",
        f"genuine probes     {report.genuine_probes}: {g['correct']} correct, {g['wrong']} wrong, "
        f"{g['rejected']} rejected, {g['no face']} no face",
        f"true accept rate   {report.true_accept_rate:.3f}",
        f"impostor trials    {report.impostor_trials}, false accepts {report.false_accepts}",
        f"false accept rate  {report.false_accept_rate:.3f}",
        f"TAR at FAR<=1%     {report.tar_at_far_1pct:.3f} (threshold {best})",
        f"seconds per image  {report.seconds_per_image:.3f}",
    ]
    lines += [f"  enrolment failure: {failure}" for failure in report.enrolment_failures]
    return lines


@click.command("eval", cls=ClockfaceCommand)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold", type=float, help="Override the model's threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def eval_command(ctx: click.Context, folder: Path, threshold: float | None, as_json: bool) -> None:
    """Measure recognition accuracy on FOLDER/<person>/<photos> (notes/eval-protocol.md)."""
    from tqdm import tqdm

    from device.evaluate import evaluate, people_folders
    from device.terminal.assembly import load_model

    config = config_of(ctx)
    model = load_model(config)
    total = sum(len(files) for files in people_folders(folder).values())
    with tqdm(total=total, unit="photo", desc="eval", disable=None, file=sys.stderr) as bar:
        report = evaluate(
            folder,
            model.pipeline,
            model.card.metric,
            threshold if threshold is not None else model.threshold,
            config.enrol,
            progress=lambda _: bar.update(),
        )
    if as_json:
        click.echo(json.dumps({"model": model.card.name, **report.to_dict()}, indent=2))
        return
    click.echo("\n".join(report_lines(model.card.name, model.card.metric, report)))
