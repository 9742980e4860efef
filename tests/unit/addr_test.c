/*
 * addr_test - unit tests for lib/addr.c: a table of valid addresses and
 * one of invalid addresses with the reason each must get.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

static void addr_valid_table(void **state)
{
	static const char *const valid[] = {
	        "rcpt-0001@example.test",
	        "a@b",
	        "first.last+tag@sub.example.test",
	        "!#$%&'*+-/=?^_`{|}~@example.test",
	        "\"john doe\"@example.test",
	        "\"a\\\"b\"@example.test",
	        "user@[192.0.2.1]",
	        "user@xn--mller-kva.example",
	        "user@a-b.example.test",
	        "0123456789012345678901234567890123456789012345678901234567890123@example.test",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const char *why = addr_check(valid[i]);

		if (why != NULL)
			fail_msg("%s: %s", valid[i], why);
	}
}

static void addr_invalid_table(void **state)
{
	static const struct {
		const char *addr, *reason;
	} cases[] = {
	        {"", "empty address"},
	        {"example.test", "missing @"},
	        {"@example.test", "missing local part"},
	        {"user@", "missing domain"},
	        {"us er@example.test", "space in the local part"},
	        {"<user@example.test>", "angle brackets in the address"},
	        {"user@example.test\r\nRCPT TO:<x@y>", "line break in the address"},
	        {"j\xc3\xb6rg@example.test", "non-ASCII address (SMTPUTF8 is not supported)"},
	        {".user@example.test", "local part starts with a dot"},
	        {"user.@example.test", "local part ends with a dot"},
	        {"us..er@example.test", "two dots in a row in the local part"},
	        {"us(er@example.test", "invalid character in the local part"},
	        {"a@b@example.test", "more than one @"},
	        {"\"open@example.test", "unterminated quoted local part"},
	        {"user@-example.test", "domain label starts with a hyphen"},
	        {"user@example-.test", "domain label ends with a hyphen"},
	        {"user@example..test", "empty domain label"},
	        {"user@example.test.", "empty domain label"},
	        {"user@exa_mple.test", "invalid character in the domain"},
	        {"user@[192.0.2.256]", "address literal octet out of range"},
	        {"user@[192.0.2]", "address literal is not an IPv4 address"},
	        {"user@[IPv6:::1]", "address literal is not an IPv4 address"},
	        {"01234567890123456789012345678901234567890123456789012345678901234@example.test",
	         "local part too long"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = addr_check(cases[i].addr);

		if (why == NULL)
			fail_msg("accepted: %s", cases[i].addr);
		if (strcmp(why, cases[i].reason) != 0)
			fail_msg("%s: got \"%s\", expected \"%s\"", cases[i].addr, why,
			         cases[i].reason);
	}
}

static void addr_length_limits(void **state)
{
	char label[64], domain[400], address[500];

	(void)state;

	/* A 64-octet label is one too many. */
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(address, sizeof(address), "u@%s.test", label);
	assert_null(addr_check(address));
	snprintf(address, sizeof(address), "u@%sa.test", label);
	assert_string_equal(addr_check(address), "domain label too long");

	/* 61 + 61 + 61 + 61 labels and dots: a 247-octet domain, total over 254. */
	snprintf(domain, sizeof(domain), "%.61s.%.61s.%.61s.%.61s", label, label, label, label);
	snprintf(address, sizeof(address), "user.name@%s", domain);
	assert_int_equal(strlen(address), 257);
	assert_string_equal(addr_check(address), "address too long");

	snprintf(domain, sizeof(domain), "%s.%s.%s.%s.%s", label, label, label, label, label);
	snprintf(address, sizeof(address), "u@%s", domain);
	assert_string_equal(addr_check(address), "domain too long");
}

static void addr_normalize_lowercases(void **state)
{
	char *n = addr_normalize("Rcpt-0001@Example.TEST");

	(void)state;
	assert_string_equal(n, "rcpt-0001@example.test");
	free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(addr_valid_table),
	        cmocka_unit_test(addr_invalid_table),
	        cmocka_unit_test(addr_length_limits),
	        cmocka_unit_test(addr_normalize_lowercases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
