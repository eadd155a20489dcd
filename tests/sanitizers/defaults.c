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

/* The address that tsan_urcu.h releases at every quiescent state and
 * acquires in every call_rcu() callback. */
char shoal_tsan_grace_period;

/* Two kinds of reports about liburcu, which is not built with TSan. Its
 * own allocations travel between threads through its lock-free queues,
 * such as the completion that rcu_barrier() allocates and the call_rcu
 * thread frees, so TSan ignores the calls that the library itself makes
 * (called_from_lib). And its readers keep their quiescent-state counters
 * with volatile accesses and fences inlined from urcu/static/urcu-qsbr.h,
 * which TSan does not model, so it would report a counter's update against
 * the wake-up check of another reader. */
const char *__tsan_default_suppressions(void)
{
  return "called_from_lib:liburcu-qsbr.so\n"
         "race:urcu/static/urcu-qsbr.h\n";
}
