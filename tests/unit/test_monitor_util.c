/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of net/monitor_util.c: the time and duration formats that
 * nats-server's monitoring JSON uses (Go's RFC 3339 with nanoseconds,
 * time.Duration.String() and nats-server's uptime form). The expected
 * strings follow Go's formatting rules and nats-server 2.9.10's myUptime()
 * in server/monitor.go. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "net/monitor_int.h"

struct format_case {
  int64_t ns;
  const char *expected;
};

Test(monitor_util, go_duration) {
  static const struct format_case cases[] = {
      {0, "0s"},
      {-5, "0s"},
      {1, "1ns"},
      {999, "999ns"},
      {1000, "1µs"},
      {1500, "1.5µs"},
      {489123, "489.123µs"},
      {1000000, "1ms"},
      {12345678, "12.345678ms"},
      {1000000000, "1s"},
      {1500000000, "1.5s"},
      {61000000000, "1m1s"},
      {123500000000, "2m3.5s"},
      {3600000000000, "1h0m0s"},
      {3723000000001, "1h2m3.000000001s"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[64];
    monitor_format_go_duration(cases[i].ns, out, sizeof(out));
    cr_expect_str_eq(out, cases[i].expected, "%lld ns", (long long)cases[i].ns);
  }
}

Test(monitor_util, uptime) {
  static const int64_t s = 1000000000;
  static const struct format_case cases[] = {
      {0, "0s"},
      {999999999, "0s"},
      {59 * s, "59s"},
      {61 * s, "1m1s"},
      {3600 * s, "1h0m0s"},
      {(86400 + 3661) * s, "1d1h1m1s"},
      {(365 * 86400 + 86400 + 1) * s, "1y1d0h0m1s"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[64];
    monitor_format_uptime(cases[i].ns, out, sizeof(out));
    cr_expect_str_eq(out, cases[i].expected, "%lld ns", (long long)cases[i].ns);
  }
}

Test(monitor_util, rfc3339_time) {
  static const struct format_case cases[] = {
      {0, "1970-01-01T00:00:00Z"},
      {1796420733199250184, "2026-12-04T21:45:33.199250184Z"},
      {1796420733500000000, "2026-12-04T21:45:33.5Z"},
      {1796420733000000100, "2026-12-04T21:45:33.0000001Z"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[48];
    monitor_format_time(cases[i].ns, out, sizeof(out));
    cr_expect_str_eq(out, cases[i].expected, "%lld ns", (long long)cases[i].ns);
  }
}

Test(monitor_util, mono_to_wall_is_stable) {
  int64_t first = monitor_wall_from_mono(1000);
  int64_t again = monitor_wall_from_mono(1000);
  cr_expect_eq(first, again, "the same monotonic time must print the same way twice");
  cr_expect_eq(monitor_wall_from_mono(2000) - first, 1000000000LL);
}
