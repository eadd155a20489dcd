/* SPDX-License-Identifier: Apache-2.0 */
/* The runner behind criterion_shim/criterion/criterion.h: runs each
 * registered test in a forked child with its suite's and its own options,
 * and exits 1 when any test failed. Owned by the robustness tests. */
#include <criterion/criterion.h>

#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TESTS_MAX 512
#define SUITES_MAX 64
/* Criterion has no default timeout; a hang here would stall CI instead. */
#define DEFAULT_TIMEOUT_S 600

struct shim_test {
  const char *suite;
  const char *name;
  void (*fn)(void);
  const struct shim_options *opts;
};

struct shim_suite {
  const char *name;
  const struct shim_options *opts;
};

static struct shim_test tests[TESTS_MAX];
static int test_count;
static struct shim_suite suites[SUITES_MAX];
static int suite_count;
static bool current_failed; /* in the child: a cr_expect failed */

void shim_register_test(const char *suite, const char *name, void (*fn)(void),
                        const struct shim_options *opts)
{
  if (test_count == TESTS_MAX) {
    fprintf(stderr, "criterion shim: more than %d tests\n", TESTS_MAX);
    exit(2);
  }
  tests[test_count++] = (struct shim_test){suite, name, fn, opts};
}

void shim_register_suite(const char *suite, const struct shim_options *opts)
{
  if (suite_count == SUITES_MAX) {
    fprintf(stderr, "criterion shim: more than %d suites\n", SUITES_MAX);
    exit(2);
  }
  suites[suite_count++] = (struct shim_suite){suite, opts};
}

void shim_check(bool ok, bool fatal, const char *file, int line, const char *expr,
                const char *fmt, ...)
{
  if (ok)
    return;
  fprintf(stderr, "%s:%d: %s failed: %s", file, line, fatal ? "assertion" : "expectation", expr);
  if (fmt[0] != '\0') {
    fprintf(stderr, ": ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
  }
  fputc('\n', stderr);
  current_failed = true;
  if (fatal)
    exit(1);
}

void shim_log(const char *level, const char *fmt, ...)
{
  fprintf(stderr, "[%s] ", level);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* The test's options, each field taken from the test when set there and
 * from its suite otherwise. */
static struct shim_options merged_options(const struct shim_test *t)
{
  struct shim_options o = *t->opts;
  for (int i = 0; i < suite_count; i++) {
    if (strcmp(suites[i].name, t->suite) != 0)
      continue;
    const struct shim_options *s = suites[i].opts;
    if (o.init == NULL)
      o.init = s->init;
    if (o.fini == NULL)
      o.fini = s->fini;
    if (o.timeout == 0)
      o.timeout = s->timeout;
    o.disabled = o.disabled || s->disabled;
  }
  return o;
}

/* Runs one test in a child. Returns true when it passed. */
static bool run_test(const struct shim_test *t, const struct shim_options *o)
{
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return false;
  }
  if (pid == 0) {
    alarm((unsigned)(o->timeout > 0 ? o->timeout + 0.999 : DEFAULT_TIMEOUT_S));
    if (o->init != NULL)
      o->init();
    t->fn();
    if (o->fini != NULL)
      o->fini();
    exit(current_failed ? 1 : 0);
  }

  int status;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (o->signal != 0)
    return WIFSIGNALED(status) && WTERMSIG(status) == o->signal;
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "%s::%s: killed by signal %d%s\n", t->suite, t->name, WTERMSIG(status),
            WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == o->exit_code;
}

/* Returns the pattern of a --filter=PATTERN or --filter PATTERN argument,
 * as Criterion spells it, or "*" when there is none. Criterion's other
 * options, such as --jobs, are accepted and ignored. */
static const char *filter_pattern(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--filter=", 9) == 0)
      return argv[i] + 9;
    if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
      return argv[i + 1];
  }
  return "*";
}

int main(int argc, char **argv)
{
  const char *pattern = filter_pattern(argc, argv);
  int passed = 0, failed = 0, skipped = 0;
  for (int i = 0; i < test_count; i++) {
    char full_name[256];
    snprintf(full_name, sizeof full_name, "%s/%s", tests[i].suite, tests[i].name);
    struct shim_options o = merged_options(&tests[i]);
    if (o.disabled || fnmatch(pattern, full_name, FNM_EXTMATCH) != 0) {
      skipped++;
      continue;
    }
    bool ok = run_test(&tests[i], &o);
    printf("[%s] %s::%s\n", ok ? "PASS" : "FAIL", tests[i].suite, tests[i].name);
    ok ? passed++ : failed++;
  }
  printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Skipped: %d\n",
         passed + failed, passed, failed, skipped);
  return failed == 0 && passed > 0 ? 0 : 1;
}
