#!/usr/bin/env bash
# `make mutation`: mutmut over the validator's flow, pre-check and recovery modules (terminal_sim/flows.py,
# prechecks.py, recovery.py and the transaction skeleton they share; setup.cfg [mutmut]) with the terminal
# suite as the only test, then the mutation score and the surviving mutants.
#   scripts/mutation.sh                      every mutant (tens of minutes on two cores)
#   scripts/mutation.sh 'GLOB' ...           only the mutants named, e.g. 'terminal_sim.recovery.x_within_window*'
# Runs in the current directory (its own mutants/ folder, started afresh); YKT_VENV names the venv.
set -euo pipefail
VENV=${YKT_VENV:-.venv}
rm -rf mutants
"$VENV/bin/mutmut" run "$@"
"$VENV/bin/mutmut" export-cicd-stats >/dev/null
"$VENV/bin/mutmut" results --all true > mutants/results.txt
"$VENV/bin/python" scripts/mutation_score.py mutants/mutmut-cicd-stats.json mutants/results.txt \
  tests/conformance/mutation_equivalent.txt
