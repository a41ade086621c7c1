# The two Quickstart commands. Both set everything up first (idempotent, quick when already done).
.PHONY: setup demo test lint bench corpus

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python app.py

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .

bench: setup
	.venv/bin/python -m bench.corpus_throughput
	.venv/bin/python -m bench.corpus_wer
