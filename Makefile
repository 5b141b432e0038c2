# The two commands of the README. Both set up what they need on a fresh machine.
.PHONY: demo test bench mutation

demo:
	@scripts/bootstrap.sh demo
	.venv/bin/ykt demo

test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m pytest -q

# Every benchmark script: benchmarks/*.py but the helpers (names starting with _), as tests/test_benchmarks.py
# finds them. Options go through BENCH_ARGS, e.g. make bench BENCH_ARGS="--seconds 5" (or --near-limits).
BENCH_ARGS ?=
bench:
	@scripts/bootstrap.sh test
	@set -e; for script in benchmarks/[!_]*.py; do \
	  echo ".venv/bin/python $$script $(BENCH_ARGS)"; .venv/bin/python "$$script" $(BENCH_ARGS); \
	done

# Mutation testing of the validator with the terminal suite as the only test (mutmut; setup.cfg [mutmut]).
# Prints the mutation score and the survivors. MUTANTS='terminal_sim.recovery.x_within_window*' runs only
# those mutants. Not part of `make test`: the whole run takes tens of minutes.
MUTANTS ?=
mutation:
	@scripts/bootstrap.sh test
	scripts/mutation.sh $(MUTANTS)
