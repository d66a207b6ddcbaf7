"""The champion/challenger comparison: which guarded metric blocks a promotion, and the report files.

`compare()` is pure (scores in, verdicts out); `write_report()` writes the JSON and a Markdown table
to ARTIFACTS_DIR/retrain/ (one pair per retrain, plus `latest.json` / `latest.md`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from intent_pipeline.artifacts import RETRAIN_REPORTS_DIR
from intent_pipeline.files import write_json_atomic, write_text_atomic

# Below this many messages one answer moves a metric by over 10 points: reported, never guarded.
MIN_GUARDED_ROWS = 10


def compare(champion: Mapping[str, dict], challenger: Mapping[str, dict], guarded: Sequence[str],
            tolerance: float) -> dict:
    """Per metric: both values, delta and verdict; `blocked` lists the guarded metrics that dropped too far.

    Every metric is higher-is-better. Without a champion nothing can block (a first release).
    """
    rows, blocked = [], []
    for metric in sorted(set(champion) | set(challenger)):
        old, new = champion.get(metric, {}).get("value"), challenger.get(metric, {}).get("value")
        n = (challenger.get(metric) or champion.get(metric) or {}).get("n", 0)
        delta = None if old is None or new is None else new - old
        if metric not in guarded:
            verdict = "reported"
        elif delta is None:
            verdict = "not compared"
        elif n < MIN_GUARDED_ROWS:
            verdict = f"not guarded (n<{MIN_GUARDED_ROWS})"
        elif delta < -tolerance:
            verdict = "BLOCKS"
            blocked.append(metric)
        else:
            verdict = "ok"
        rows.append({"metric": metric, "n": n, "champion": old, "challenger": new, "delta": delta,
                     "guarded": metric in guarded, "verdict": verdict})
    missing = [m for m in guarded if m not in champion and m not in challenger]
    return {"metrics": rows, "blocked": blocked, "tolerance": tolerance, "guarded": list(guarded),
            "guarded_without_data": missing}


def summary_line(report: Mapping) -> str:
    if report["decision"] == "published":
        return (f"published {report.get('published_version')}: no guarded metric dropped by more than "
                f"{report['tolerance']:.3f}" + ("" if report.get("champion") else " (first release)"))
    worst = [row for row in report["metrics"] if row["verdict"] == "BLOCKS"]
    why = ", ".join(f"{row['metric']} {row['champion']:.4f} -> {row['challenger']:.4f} ({row['delta']:+.4f})"
                    for row in worst)
    return (f"kept the champion {report['champion']['version']}: the challenger dropped {why} "
            f"(tolerance {report['tolerance']:.3f})")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def markdown(report: Mapping) -> str:
    champion = report.get("champion") or {}
    challenger = report.get("challenger") or {}
    lines = [
        f"# Retrain {report['created_at']}: {report['decision'].replace('_', ' ')}",
        "",
        summary_line(report),
        "",
        f"- approved corrections since the serving release: {report['new_corrections']} "
        f"(threshold {report['min_corrections']})",
        f"- champion: {champion.get('version', 'none')} ({champion.get('model_version', '-')})",
        f"- challenger: {challenger.get('model_version', '-')}, MLflow run "
        f"{(challenger.get('mlflow') or {}).get('run_id', '-')}",
        "- evaluation sets (rows): " + ", ".join(f"{k} {v}" for k, v in report["sets"].items()),
        f"- guarded: {', '.join(report['guarded'])}; tolerance {report['tolerance']}",
        "",
        "| metric | n | champion | challenger | delta | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in report["metrics"]:
        lines.append(f"| {row['metric']} | {row['n']} | {_num(row['champion'])} | {_num(row['challenger'])} | "
                     f"{_delta(row['delta'])} | {row['verdict']} |")
    if report.get("guarded_without_data"):
        lines += ["", "Guarded metrics with no data this time: " + ", ".join(report["guarded_without_data"])]
    return "\n".join(lines) + "\n"


def write_report(report: Mapping, artifacts_dir: Path) -> list[Path]:
    """report-<timestamp>.json/.md under ARTIFACTS_DIR/retrain/, copied to latest.json/.md; returns the pair."""
    folder = artifacts_dir / RETRAIN_REPORTS_DIR
    stamp = report["created_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    json_path, md_path = folder / f"report-{stamp}.json", folder / f"report-{stamp}.md"
    text = markdown(report)
    for path in (json_path, folder / "latest.json"):
        write_json_atomic(path, report)
    for path in (md_path, folder / "latest.md"):
        write_text_atomic(path, text)
    return [json_path, md_path]
