"""`clockface eval FOLDER`: recognition accuracy of the configured model on labelled photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from device.cli.context import config_of
from device.errors import ClockfaceCommand


def curve_lines(report) -> list[str]:
    """The TAR-at-FAR curve as lines (pure): one per strict FAR bound."""
    lines = []
    for point in report.curve:
        t = "-" if point.threshold is None else f"{point.threshold:.3f}"
        lines.append(f"TAR at FAR<={point.max_far:.0%}".ljust(19) + f"{point.true_accept_rate:.3f} (threshold {t})")
    return lines


def report_lines(model_name: str, metric: str, report, curve: bool = False) -> list[str]:
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
    if report.enrol_photos != 1 or report.templates != "mean":
        lines.insert(2, f"enrolment          {report.enrol_photos} photo(s) per person, templates: {report.templates}")
    if curve:
        lines += curve_lines(report)
    lines += [f"  enrolment failure: {failure}" for failure in report.enrolment_failures]
    return lines


@click.command("eval", cls=ClockfaceCommand)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold", type=float, help="Override the model's threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (it always carries the curve).")
@click.option("--curve", is_flag=True, help="Also print TAR at FAR 0, 1, 2, 5% and their thresholds.")
@click.option(
    "--enrol-photos",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Enrol each person from their first K photos (people with more than K photos; the rest are probes).",
)
@click.option(
    "--templates",
    type=click.Choice(["nearest", "mean"]),
    default="mean",
    show_default=True,
    help="With several enrolment photos: match their mean (as the terminal does), or the nearest one.",
)
@click.pass_context
def eval_command(
    ctx: click.Context,
    folder: Path,
    threshold: float | None,
    as_json: bool,
    curve: bool,
    enrol_photos: int,
    templates: str,
) -> None:
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
            enrol_photos=enrol_photos,
            templates="nearest" if templates == "nearest" else "mean",
        )
    if as_json:
        click.echo(json.dumps({"model": model.card.name, **report.to_dict()}, indent=2))
        return
    click.echo("\n".join(report_lines(model.card.name, model.card.metric, report, curve=curve)))
