"""CEL benchmark (issue 13), in process: compiling the rules of bench_crd's CRD (30 properties,
3 rules: parse, type check, cost estimate) and validating one object against them (only the
fields each rule reads are converted for CEL). Prints JSON lines; best of 5 rounds.
Usage: python bench/bench_cel.py [N]   (default N=500 validations per round)
"""

from __future__ import annotations

import json
import sys
import time

from bench_crd import crd  # bench/ is the script's directory, first on sys.path

from vkube.api.cel import compile_rules

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 500


def best(fn, n: int) -> float:  # noqa: ANN001
    out = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out = min(out, (time.perf_counter() - t) / n)
    return out


def main() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules, causes = compile_rules(schema, "")  # the first compile also loads celpy
    assert not causes, causes
    obj = {"spec": {f"field{i}": f"v{i}-value" for i in range(30)} | {"field0": 1, "field1": 2}}
    assert rules.validate(obj) == []
    print(json.dumps({"bench": "cel_compile_30props_3rules", "ms": round(best(lambda: compile_rules(schema, ""), 20) * 1e3, 2)}))
    print(json.dumps({"bench": "cel_validate_30props_3rules", "n": N,
                      "us": round(best(lambda: rules.validate(obj), N) * 1e6, 1)}))


if __name__ == "__main__":
    main()
