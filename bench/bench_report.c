/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's summary: a few aligned text lines, or one JSON object with
 * the same figures for scripts (bench/compare.sh reads it). */
#include "bench/bench.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static const double percentiles[] = {50, 90, 99, 99.9};
static const char *const percentile_names[] = {"p50", "p90", "p99", "p99_9"};
#define PERCENTILES (sizeof(percentiles) / sizeof(percentiles[0]))

static double per_second(double count, double seconds)
{
  return seconds > 0 ? count / seconds : 0;
}

/* CPU per message divides by the larger of the published and received
 * counts: publishes for publish-only, deliveries for a fan-out. */
static uint64_t cpu_basis(const struct bench_result *r)
{
  return r->published.msgs > r->received.msgs ? r->published.msgs : r->received.msgs;
}

static const char *format_ns(uint64_t ns, char *buf, size_t size)
{
  if (ns < 10000) snprintf(buf, size, "%llu ns", (unsigned long long)ns);
  else if (ns < 10000000) snprintf(buf, size, "%.1f us", (double)ns / 1e3);
  else if (ns < 10000000000ull) snprintf(buf, size, "%.2f ms", (double)ns / 1e6);
  else snprintf(buf, size, "%.2f s", (double)ns / 1e9);
  return buf;
}

static void print_side(const char *label, const struct bench_side *side)
{
  if (side->msgs == 0) return;
  printf("%-10s %llu msgs in %.3f s: %.0f msgs/s, %.2f MB/s\n", label, (unsigned long long)side->msgs,
         side->seconds, per_second((double)side->msgs, side->seconds),
         per_second((double)side->bytes / 1e6, side->seconds));
}

static void print_text(const struct bench_opts *opts, const struct bench_result *r)
{
  printf("shoal-bench %s: %u pub, %u sub, %u B payload, subject %s\n", opts->scenario_name,
         opts->scenario == BENCH_SCENARIO_SUB ? 0 : opts->pubs,
         opts->scenario == BENCH_SCENARIO_PUB ? 0 : opts->subs, opts->size, opts->subject);
  printf("%-10s %s, version %s%s%s\n", "server", opts->url, r->server_version[0] ? r->server_version : "unknown",
         r->server_name[0] ? ", name " : "", r->server_name);
  print_side("published", &r->published);
  print_side("received", &r->received);

  const struct bench_hist *h = r->latency;
  if (h->count > 0) {
    char buf[32];
    char mean_buf[32];
    printf("%-10s", "latency");
    for (size_t i = 0; i < PERCENTILES; i++) {
      printf(" p%g %s,", percentiles[i], format_ns(bench_hist_percentile(h, percentiles[i]), buf, sizeof(buf)));
    }
    printf(" max %s, mean %s\n", format_ns(h->max, buf, sizeof(buf)),
           format_ns((uint64_t)bench_hist_mean(h), mean_buf, sizeof(mean_buf)));
    printf("%-10s %llu samples; percentiles within %.2f %% relative error\n", "",
           (unsigned long long)h->count, BENCH_HIST_REL_ERROR * 100);
  }

  printf("%-10s lost %llu, duplicated %llu, out of order %llu", "messages", (unsigned long long)r->lost,
         (unsigned long long)r->duplicated, (unsigned long long)r->out_of_order);
  if (r->beyond_window) printf(", older than the %llu-message window %llu",
                               (unsigned long long)BENCH_SEQ_WINDOW, (unsigned long long)r->beyond_window);
  if (r->foreign) printf(", foreign %llu", (unsigned long long)r->foreign);
  if (opts->scenario == BENCH_SCENARIO_QUEUE) {
    printf("; exactly once: %s", r->lost == 0 && r->duplicated == 0 ? "yes" : "NO");
  }
  printf("\n");

  double basis = (double)cpu_basis(r);
  printf("%-10s client %.2f s (%.0f ns/msg)", "cpu", r->client_cpu_s,
         basis > 0 ? r->client_cpu_s * 1e9 / basis : 0);
  if (r->cpu_server_known) {
    printf(", server %.2f s (%.0f ns/msg)", r->server_cpu_s, basis > 0 ? r->server_cpu_s * 1e9 / basis : 0);
  } else {
    printf(", server not measured (give --server-pid)");
  }
  printf("\n");
}

static void add_side(cJSON *root, const char *name, const struct bench_side *side)
{
  cJSON *o = cJSON_AddObjectToObject(root, name);
  cJSON_AddNumberToObject(o, "msgs", (double)side->msgs);
  cJSON_AddNumberToObject(o, "bytes", (double)side->bytes);
  cJSON_AddNumberToObject(o, "seconds", side->seconds);
  cJSON_AddNumberToObject(o, "msgs_per_s", per_second((double)side->msgs, side->seconds));
  cJSON_AddNumberToObject(o, "mb_per_s", per_second((double)side->bytes / 1e6, side->seconds));
}

static void add_latency(cJSON *root, const struct bench_hist *h)
{
  cJSON *o = cJSON_AddObjectToObject(root, "latency_ns");
  cJSON_AddNumberToObject(o, "count", (double)h->count);
  for (size_t i = 0; i < PERCENTILES; i++) {
    cJSON_AddNumberToObject(o, percentile_names[i], (double)bench_hist_percentile(h, percentiles[i]));
  }
  cJSON_AddNumberToObject(o, "max", (double)(h->count ? h->max : 0));
  cJSON_AddNumberToObject(o, "mean", bench_hist_mean(h));
  cJSON_AddNumberToObject(o, "relative_error", BENCH_HIST_REL_ERROR);
}

static void add_cpu(cJSON *root, const struct bench_result *r)
{
  double basis = (double)cpu_basis(r);
  cJSON *o = cJSON_AddObjectToObject(root, "cpu");
  cJSON_AddNumberToObject(o, "msgs", basis);
  cJSON_AddNumberToObject(o, "client_s", r->client_cpu_s);
  cJSON_AddNumberToObject(o, "client_ns_per_msg", basis > 0 ? r->client_cpu_s * 1e9 / basis : 0);
  if (r->cpu_server_known) {
    cJSON_AddNumberToObject(o, "server_s", r->server_cpu_s);
    cJSON_AddNumberToObject(o, "server_ns_per_msg", basis > 0 ? r->server_cpu_s * 1e9 / basis : 0);
  } else {
    cJSON_AddNullToObject(o, "server_s");
    cJSON_AddNullToObject(o, "server_ns_per_msg");
  }
}

static void print_json(const struct bench_opts *opts, const struct bench_result *r)
{
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "scenario", opts->scenario_name);
  cJSON_AddStringToObject(root, "url", opts->url);
  cJSON_AddStringToObject(root, "server_version", r->server_version);
  cJSON_AddStringToObject(root, "server_name", r->server_name);
  cJSON_AddNumberToObject(root, "size", opts->size);
  cJSON_AddNumberToObject(root, "pubs", opts->scenario == BENCH_SCENARIO_SUB ? 0 : opts->pubs);
  cJSON_AddNumberToObject(root, "subs", opts->scenario == BENCH_SCENARIO_PUB ? 0 : opts->subs);
  cJSON_AddNumberToObject(root, "rate", opts->rate);
  cJSON_AddNumberToObject(root, "warmup_s", opts->warmup_s);
  add_side(root, "published", &r->published);
  add_side(root, "received", &r->received);
  cJSON_AddNumberToObject(root, "sent_total", (double)r->sent_total);
  cJSON_AddNumberToObject(root, "received_total", (double)r->received_total);
  cJSON_AddNumberToObject(root, "lost", (double)r->lost);
  cJSON_AddNumberToObject(root, "duplicated", (double)r->duplicated);
  cJSON_AddNumberToObject(root, "out_of_order", (double)r->out_of_order);
  cJSON_AddNumberToObject(root, "beyond_window", (double)r->beyond_window);
  cJSON_AddNumberToObject(root, "foreign", (double)r->foreign);
  if (opts->scenario == BENCH_SCENARIO_QUEUE) {
    cJSON_AddBoolToObject(root, "exactly_once", r->lost == 0 && r->duplicated == 0);
  }
  add_latency(root, r->latency);
  add_cpu(root, r);

  char *text = cJSON_PrintUnformatted(root);
  if (text != NULL) printf("%s\n", text);
  free(text);
  cJSON_Delete(root);
}

void bench_report(const struct bench_opts *opts, const struct bench_result *r)
{
  if (opts->json) print_json(opts, r);
  else print_text(opts, r);
  fflush(stdout);
}
