# The two commands of the README. Both set up what they need on a fresh machine.
.PHONY: demo test bench

demo:
	@scripts/bootstrap.sh demo
	.venv/bin/ykt demo

test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m pytest -q

bench:
	@scripts/bootstrap.sh test
	.venv/bin/python benchmarks/crypto.py
	.venv/bin/python benchmarks/card.py
	.venv/bin/python benchmarks/validator.py
	.venv/bin/python benchmarks/conformance.py
