# tests/fuzz/ - libFuzzer targets, built with --enable-fuzz and CC=clang.
if FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz_token
tests_fuzz_fuzz_token_SOURCES = tests/fuzz/fuzz_token.c
tests_fuzz_fuzz_token_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_token_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_token_LDADD = $(MAILONCE_LIBS)
endif
EXTRA_DIST += tests/fuzz/fuzz_token.c
