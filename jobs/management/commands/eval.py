"""python manage.py eval [--json] RUN_ID

An eval run's leaderboard (jobs/runs/leaderboard.py), counted from its jobs
now: with --json the object GET /api/evals/{id} returns; without, a table per
grader, best first, each mean with its 95% bootstrap interval (ties marked =).
Start an eval with `manage.py submit --user U --eval DEF.yaml --file ROWS`."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from jobs.models import Run
from jobs.runs import leaderboard


def _figure(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if kind in ("check", "pairwise") else f"{value:.2f}"


class Command(BaseCommand):
    help = "Print an eval run's leaderboard (a table, or --json)."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int, help="the eval run's id (submit prints it)")
        parser.add_argument("--json", action="store_true", help="print the leaderboard as JSON")

    def handle(self, *args, run_id: int, json: bool = False, **options):
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"No run {run_id}.")
        if not run.evaluation:
            raise CommandError(f"Run {run_id} ({run.name}) is not an eval.")
        board = leaderboard.leaderboard(run)
        if json:
            self.stdout.write(_dumps(board.as_json()))
            return
        self.stdout.write(self._table(board))

    def _table(self, board: leaderboard.Leaderboard) -> str:
        state = "finished" if board.finished else f"{board.pending_jobs:,} jobs still running"
        lines = [
            f"{board.name} (run {board.run_id}): {board.rows:,} rows, {state}",
            f"95% percentile bootstrap intervals over the rows, {board.resamples:,} resamples, "
            f"seed {board.seed}; = marks ranks whose intervals overlap",
        ]
        for grader in board.graders:
            if grader["kind"] == "pairwise":
                continue
            lines.append(f"\n{grader['name']} ({grader['kind']})")
            for standing in board.standings:
                score = standing.scores[grader["name"]]
                rank = "" if score.rank is None else f"{'=' if score.tied else ''}{score.rank}"
                spread = (
                    f" ({_figure(score.kind, score.low)} to {_figure(score.kind, score.high)})"
                    if score.low is not None
                    else ""
                )
                lines.append(
                    f"  {rank:>3}  {standing.label:<28} {_figure(score.kind, score.mean)}{spread}"
                    f"  graded {score.graded}, ungraded {score.ungraded}, failed {standing.failed}"
                )
        for pair in board.pairs:
            score = pair.win_rate
            spread = (
                f" ({_figure('pairwise', score.low)} to {_figure('pairwise', score.high)})"
                if score.low is not None
                else ""
            )
            flips = f", flipped with the order on {pair.flips} of {pair.compared} rows"
            lines.append(
                f"\n{pair.grader}: {pair.first} beats {pair.second} "
                f"{_figure('pairwise', score.mean)}{spread}{flips}"
            )
        usage = board.usage
        lines.append(
            f"\ncost ${usage.cost_usd:.4f} (on standard ${usage.standard_cost_usd:.4f}), "
            f"{usage.jobs:,} jobs"
        )
        return "\n".join(lines)


def _dumps(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
