# bench/ - benchmarks of mailonce; see bench/README.md. make check builds
# ledger_bench but never runs it: it measures, it does not test.
check_PROGRAMS += bench/ledger_bench
bench_ledger_bench_SOURCES = bench/ledger_bench.c
bench_ledger_bench_LDADD = $(MAILONCE_LIBS)
EXTRA_DIST += bench/README.md bench/RESULTS.md bench/benchlib.py bench/throughput.py \
	bench/latency.py bench/memory.py bench/run-all.sh
