/* SPDX-License-Identifier: Apache-2.0 */
/* Default settings of the sanitizer runtimes, linked into every executable
 * of a SHOAL_SANITIZE or SHOAL_TSAN build, so that a test run by hand
 * behaves as under ctest. The runtimes call these functions at start-up;
 * their names are the sanitizers' interface. Owned by the robustness
 * tests. */

/* Criterion's runner (2.4.1, Debian 12) leaks 48 bytes in test_store_direct,
 * allocated inside libcriterion.so, not in our code. */
const char *__lsan_default_suppressions(void)
{
  return "leak:libcriterion.so\n";
}

/* A report without a stack trace is hard to act on in CI logs. */
const char *__ubsan_default_options(void)
{
  return "print_stacktrace=1";
}

/* liburcu is not built with ThreadSanitizer, so TSan cannot see that a
 * call_rcu() callback runs only after every reader passed a quiescent
 * state, and it reports each free in a callback as a race with the
 * readers' earlier accesses. Every such stack runs on liburcu's call_rcu
 * thread, whose frames come from the library. The readers' quiescent-state
 * counters, inlined from urcu/static/urcu-qsbr.h, use volatile accesses and
 * fences that TSan does not model either. Use-after-free across a grace
 * period remains covered by the AddressSanitizer build. */
const char *__tsan_default_suppressions(void)
{
  return "race:liburcu-qsbr.so\n"
         "race:urcu/static/urcu-qsbr.h\n";
}
