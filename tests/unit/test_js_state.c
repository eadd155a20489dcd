/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/js_state.c, the writer thread of consumer files. A
 * result comes back only through js_state_poll() on the submitting thread,
 * after the wake eventfd fired. Jobs land in submission order, so a
 * removal queued between two writes leaves only the second one's file.
 * Each test uses its own directory under /tmp and one fake shard. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/js_int.h"
#include "core/server.h"
#include "core/shard.h"

/* Results are waited for at most this long, so a lost wake fails the test
 * instead of hanging it. */
#define WAIT_MS 10000

static struct shard fake_shard;
static struct js_shard fake_js_shard;
static char root[64];

struct result {
  int calls;
  int res;
};

static void on_done(struct js_shard *jsh, void *ctx, int res) {
  cr_assert_eq(jsh, &fake_js_shard);
  struct result *r = ctx;
  r->calls++;
  r->res = res;
}

static void setup(void) {
  server.shard_count = 1;
  fake_shard.id = 0;
  fake_shard.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  cr_assert_geq(fake_shard.wake_fd, 0);
  fake_js_shard.shard = &fake_shard;
  fake_js_shard.id = 0;
  js.shards = &fake_js_shard;
  snprintf(root, sizeof root, "/tmp/shoal-js-state-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
}

static void teardown(void) {
  js_remove_tree(root);
  close(fake_shard.wake_fd);
}

/* Waits for the wake eventfd, then runs the finished jobs' callbacks,
 * until count callbacks have run in total. */
static void wait_for_results(const int *calls, int count) {
  for (int waited = 0; *calls < count && waited < WAIT_MS; waited += 10) {
    struct pollfd p = {.fd = fake_shard.wake_fd, .events = POLLIN};
    if (poll(&p, 1, 10) == 1) {
      uint64_t value;
      cr_assert_eq(read(fake_shard.wake_fd, &value, sizeof value), (ssize_t)sizeof value);
    }
    js_state_poll(&fake_js_shard);
  }
  cr_assert_eq(*calls, count, "results after %d ms", WAIT_MS);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  static char buf[256];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static bool exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

Test(js_state, write_makes_dir_and_file, .init = setup, .fini = teardown, .timeout = 30) {
  char dir[128], file[160], tmp[160];
  snprintf(dir, sizeof dir, "%s/obs/c1", root);
  snprintf(file, sizeof file, "%s/state.json", dir);
  snprintf(tmp, sizeof tmp, "%s/state.json.tmp", dir);
  struct result r = {0};
  cr_assert_eq(js_state_write(&fake_js_shard, dir, "state.json", strdup("{\"a\":1}"), true, on_done, &r), 0);

  /* The callback runs from js_state_poll() only. */
  cr_assert_eq(r.calls, 0);
  wait_for_results(&r.calls, 1);
  cr_assert_eq(r.res, 0);
  cr_assert_str_eq(read_text(file), "{\"a\":1}");
  cr_assert(!exists(tmp), "the temporary file was left behind");
}

Test(js_state, write_without_dir_fails, .init = setup, .fini = teardown, .timeout = 30) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/missing", root);
  struct result r = {0};
  cr_assert_eq(js_state_write(&fake_js_shard, dir, "state.json", strdup("{}"), false, on_done, &r), 0);
  wait_for_results(&r.calls, 1);
  cr_assert_eq(r.res, -ENOENT);
}

Test(js_state, jobs_run_in_order, .init = setup, .fini = teardown, .timeout = 30) {
  char dir[128], file[160];
  snprintf(dir, sizeof dir, "%s/obs/c2", root);
  snprintf(file, sizeof file, "%s/meta.json", dir);
  struct result first = {0}, removed = {0}, second = {0}, third = {0};

  /* A write, the removal of its directory, then two writes into a new
   * directory of the same name: only the last content may remain. */
  cr_assert_eq(js_state_write(&fake_js_shard, dir, "meta.json", strdup("old"), true, on_done, &first), 0);
  cr_assert_eq(js_state_remove(&fake_js_shard, dir, on_done, &removed), 0);
  cr_assert_eq(js_state_write(&fake_js_shard, dir, "meta.json", strdup("new"), true, on_done, &second), 0);
  cr_assert_eq(js_state_write(&fake_js_shard, dir, "meta.json", strdup("newer"), false, on_done, &third), 0);
  wait_for_results(&third.calls, 1);

  cr_assert_eq(first.calls, 1);
  cr_assert_eq(removed.calls, 1);
  cr_assert_eq(second.calls, 1);
  cr_assert_eq(first.res, 0);
  cr_assert_eq(removed.res, 0);
  cr_assert_eq(second.res, 0);
  cr_assert_eq(third.res, 0);
  cr_assert_str_eq(read_text(file), "newer");
}

Test(js_state, remove_deletes_tree, .init = setup, .fini = teardown, .timeout = 30) {
  char dir[128], file[160];
  snprintf(dir, sizeof dir, "%s/obs/c3", root);
  snprintf(file, sizeof file, "%s/state.json", dir);
  struct result written = {0}, removed = {0};
  cr_assert_eq(js_state_write(&fake_js_shard, dir, "state.json", strdup("x"), true, on_done, &written), 0);
  cr_assert_eq(js_state_remove(&fake_js_shard, dir, on_done, &removed), 0);
  wait_for_results(&removed.calls, 1);
  cr_assert_eq(written.res, 0);
  cr_assert_eq(removed.res, 0);
  cr_assert(!exists(dir), "the directory is still there");
}
