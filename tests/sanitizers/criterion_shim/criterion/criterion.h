/* SPDX-License-Identifier: Apache-2.0 */
/* A stand-in for the part of Criterion's API that the unit tests use, for
 * the ThreadSanitizer build: Criterion 2.4 aborts at start-up under TSan
 * ("Could not initialize inheritable arena", Criterion issue 274), so the
 * TSan build compiles chosen unit test files against this header instead.
 * Owned by the robustness tests.
 *
 * Supported: Test() and TestSuite() with .init, .fini, .timeout, .signal,
 * .exit_code and .disabled; cr_assert* (end the test) and cr_expect* (mark
 * it failed and go on) with an optional printf-style message; cr_log_*.
 * criterion_shim.c runs each test in a forked child, as Criterion does. */
#ifndef SHOAL_CRITERION_SHIM_H
#define SHOAL_CRITERION_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct shim_options {
  void (*init)(void);
  void (*fini)(void);
  double timeout;     /* seconds; 0 means the runner's default */
  int signal;         /* the test passes when it dies of this signal */
  int exit_code;      /* the test passes when it exits with this code */
  bool disabled;
  const char *description;
};

void shim_register_test(const char *suite, const char *name, void (*fn)(void),
                        const struct shim_options *opts);
void shim_register_suite(const char *suite, const struct shim_options *opts);
void shim_check(bool ok, bool fatal, const char *file, int line, const char *expr,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void shim_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define Test(suite, name, ...)                                                                     \
  static void suite##_##name##_body(void);                                                         \
  static const struct shim_options suite##_##name##_options = {__VA_ARGS__};                       \
  __attribute__((constructor)) static void suite##_##name##_register(void)                         \
  {                                                                                                \
    shim_register_test(#suite, #name, suite##_##name##_body, &suite##_##name##_options);           \
  }                                                                                                \
  static void suite##_##name##_body(void)

#define TestSuite(suite, ...)                                                                      \
  static const struct shim_options suite##_suite_options = {__VA_ARGS__};                          \
  __attribute__((constructor)) static void suite##_suite_register(void)                            \
  {                                                                                                \
    shim_register_suite(#suite, &suite##_suite_options);                                           \
  }

/* The message arguments are optional; "" before them makes an empty list
 * a valid format, which GCC would warn about as a zero-length format. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"
#define SHIM_CHECK(ok, fatal, expr, ...)                                                           \
  shim_check((ok), (fatal), __FILE__, __LINE__, (expr), "" __VA_ARGS__)

#define cr_assert(c, ...) SHIM_CHECK(!!(c), true, #c, __VA_ARGS__)
#define cr_assert_not(c, ...) SHIM_CHECK(!(c), true, "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK((a) == (b), true, #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK((a) != (b), true, #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK((a) < (b), true, #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK((a) <= (b), true, #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK((a) > (b), true, #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) SHIM_CHECK((a) >= (b), true, #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) SHIM_CHECK((p) == NULL, true, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) SHIM_CHECK((p) != NULL, true, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                                \
  SHIM_CHECK(strcmp((a), (b)) == 0, true, #a " equals " #b, __VA_ARGS__)

#define cr_expect(c, ...) SHIM_CHECK(!!(c), false, #c, __VA_ARGS__)
#define cr_expect_not(c, ...) SHIM_CHECK(!(c), false, "!(" #c ")", __VA_ARGS__)
#define cr_expect_eq(a, b, ...) SHIM_CHECK((a) == (b), false, #a " == " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) SHIM_CHECK((a) != (b), false, #a " != " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) SHIM_CHECK((a) < (b), false, #a " < " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) SHIM_CHECK((a) <= (b), false, #a " <= " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) SHIM_CHECK((a) > (b), false, #a " > " #b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) SHIM_CHECK((a) >= (b), false, #a " >= " #b, __VA_ARGS__)
#define cr_expect_null(p, ...) SHIM_CHECK((p) == NULL, false, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) SHIM_CHECK((p) != NULL, false, #p " != NULL", __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)                                                                \
  SHIM_CHECK(strcmp((a), (b)) == 0, false, #a " equals " #b, __VA_ARGS__)

#define cr_log_info(...) shim_log("INFO", __VA_ARGS__)
#define cr_log_warn(...) shim_log("WARN", __VA_ARGS__)
#define cr_log_error(...) shim_log("ERR", __VA_ARGS__)

#endif
