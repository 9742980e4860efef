# tests/fuzz/ - libFuzzer targets, built with --enable-fuzz and CC=clang.
if FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz_token
# The code under test is compiled into the target, not taken from
# lib/libmailonce.a, so that libFuzzer sees its coverage.
tests_fuzz_fuzz_token_SOURCES = tests/fuzz/fuzz_token.c \
	lib/token.c lib/keyfile.c lib/alloc.c lib/log.c
tests_fuzz_fuzz_token_CPPFLAGS = $(AM_CPPFLAGS) $(CRYPTO_CFLAGS)
tests_fuzz_fuzz_token_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_token_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_token_LDADD = $(CRYPTO_LIBS)
endif
EXTRA_DIST += tests/fuzz/fuzz_token.c
