"""Print the mutation score of a `make mutation` run and the mutants that survived it.

Inputs: mutmut's CI/CD stats (killed, survived, no tests, ...), `mutmut results --all true` (one line per
mutant: `name: status`) and the list of mutants judged equivalent (one `NAME  # why` a line: mutants that
no terminal can tell from the original, so no case can kill them). The score is killed / (killed +
survived + no tests + timeouts), first over all mutants, then over the non-equivalent ones (the target:
at least 90 %).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def equivalent(path: Path) -> dict[str, str]:
    out = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, why = line.partition("#")
        if name.strip():
            out[name.strip()] = why.strip()
    return out


def main(stats_path: str, results_path: str, equivalent_path: str) -> int:
    stats = json.loads(Path(stats_path).read_text(encoding="utf-8"))
    statuses = {}
    for line in Path(results_path).read_text(encoding="utf-8").splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    known = equivalent(Path(equivalent_path))
    alive = sorted(n for n, s in statuses.items() if s in ("survived", "no tests", "timeout", "suspicious"))
    killed = sum(1 for s in statuses.values() if s == "killed")
    judged = killed + len(alive)
    eq_alive = [n for n in alive if n in known]
    real = [n for n in alive if n not in known]
    not_run = sum(1 for s in statuses.values() if s in ("not checked", "skipped"))
    print(f"mutants: {judged} run of {stats['total']} ({killed} killed, {stats['survived']} survived, "
          f"{stats['no_tests']} not reached by the suite, {stats['timeout']} timed out; {not_run} not run)")
    if judged:
        print(f"mutation score: {100 * killed / judged:.1f} % ({killed}/{judged}) of all mutants")
        rest = judged - len(eq_alive)
        if rest:
            print(f"mutation score: {100 * killed / rest:.1f} % ({killed}/{rest}) of non-equivalent mutants "
                  f"({len(eq_alive)} equivalent, listed in {equivalent_path})")
    for name in real:
        print(f"survivor: {name} ({statuses[name]})  -> .venv/bin/mutmut show {name}")
    for name in eq_alive:
        print(f"equivalent: {name} ({known[name]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
