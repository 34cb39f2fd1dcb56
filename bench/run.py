"""`make bench`: the issue-19 figures in one bounded run (10-25 minutes: a 1,000-replica rollout
is one of them), each printed as a JSON
line with its baseline from ``bench/baseline.json`` and the ratio to it, so a regression shows
in one run. ``ratio_to_baseline`` > 1 is better for rates, < 1 is better for latencies and
sizes (``better`` says which); ``target`` and ``meets_target`` give the issue's goal for the
figure. Figures from a loaded machine move together: compare the ``ratio_to_framework``
figures (measured side by side) first.

Usage: python bench/run.py             (run and compare)
       python bench/run.py --record    (run and write the figures as the new baseline)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
#: (script, args, timeout seconds): bounded sizes; the full-size runs are the scripts' defaults
RUNS = [
    ("bench_write.py", ["150"], 900),
    ("bench_apply.py", ["30"], 600),
    ("bench_patch.py", [], 300),
    ("bench_load.py", ["5000", "200", "10"], 600),
    ("bench_api.py", ["300"], 600),
    ("bench_webhooks.py", ["150"], 600),
    # the processes as users run them: `vkube host start`, `vkube create`, kubectl
    ("bench_rollout.py", ["--replicas", "1000", "--nodes", "10"], 1500),
    ("bench_cli.py", ["--rounds", "3", "--many", "0"], 600),
]
#: the figure compared for each bench, and whether higher is better
METRICS = {"ops_per_s": True, "ratio_to_framework": True, "cpu_ratio_to_framework": True, "ratio_to_update": True,
           "p99_ms": False,
           "p50_ms": False, "seconds": False, "idle_rss_mb": False, "rss_mb": False, "errors": False,
           "events_trail": False, "ms": False, "rss_mib": False, "create_until_kubectl_ms": False}


#: issue 19's targets: (figure's key prefix, metric, comparison, value). A typical object is a
#: ConfigMap; the 40-container pod cases are shown against the framework but have no target.
TARGETS = [
    ("write:configmap_", "ratio_to_framework", ">=", 0.5),
    ("apply_40_containers", "ratio_to_update", ">=", 1 / 3),
    ("load_secrets", "p99_ms", "<", 10.0),
    ("load_secrets", "errors", "==", 0),
    ("rollout", "seconds", "<", 20.0),
    ("cli.idle_rss", "rss_mib", "<=", 40.0),
    ("cli.lifecycle", "create_until_kubectl_ms", "<", 300.0),
    ("cli.host_start", "ms", "<", 500.0),
]
_COMPARE = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
            "==": lambda a, b: a == b}


def key(line: dict) -> str:
    return ":".join(str(line[k]) for k in ("bench", "case") if k in line)


def run_all() -> list[dict]:
    out = []
    for script, args, limit in RUNS:
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True,
                              timeout=limit)
        if proc.returncode != 0:
            print(json.dumps({"bench": script, "error": proc.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        for raw in proc.stdout.splitlines():
            if raw.startswith("{"):
                line = json.loads(raw)
                line["script"] = script
                out.append(line)
        print(json.dumps({"bench": script, "wall_seconds": round(time.monotonic() - t0, 1)}), flush=True)
    return out


def compare(lines: list[dict], baseline: dict[str, dict]) -> None:
    for line in lines:
        base = baseline.get(key(line))
        row = dict(line)
        if base is None:  # said, not left out: a figure new since the baseline was recorded
            row["baseline"] = "none recorded: run `python bench/run.py --record` on a quiet machine"
            base = {}
        for metric, higher_better in METRICS.items():
            if metric in line and isinstance(base.get(metric), (int, float)) and base[metric]:
                row[f"baseline_{metric}"] = base[metric]
                row[f"{metric}_ratio_to_baseline"] = round(line[metric] / base[metric], 3)
                row.setdefault("better", {})[metric] = "higher" if higher_better else "lower"
        for prefix, metric, op, value in TARGETS:
            if key(line).startswith(prefix) and isinstance(line.get(metric), (int, float)):
                row.setdefault("target", {})[metric] = f"{op} {round(value, 3)}"
                row.setdefault("meets_target", {})[metric] = _COMPARE[op](line[metric], value)
        print(json.dumps(row), flush=True)


def main() -> None:
    lines = run_all()
    if "--record" in sys.argv:
        BASELINE.write_text(json.dumps({"figures": {key(ln): ln for ln in lines}}, indent=1) + "\n")
        print(json.dumps({"recorded": str(BASELINE), "figures": len(lines)}))
        return
    baseline = json.loads(BASELINE.read_text())["figures"] if BASELINE.exists() else {}
    compare(lines, baseline)


if __name__ == "__main__":
    main()
