/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's command line: parses and checks the options, runs the
 * scenario and maps the outcome to the exit status. */
#include "bench/bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_RUN_FAILED 1
#define EXIT_USAGE 2
#define EXIT_MESSAGES_MISSING 3
#define WINDOW_BYTES_DEFAULT (16u << 20)
/* JetStream scenarios: unacknowledged publishes and pull batch size. */
#define JS_WINDOW_DEFAULT 256

static const struct {
  const char *name;
  enum bench_scenario scenario;
} scenarios[] = {
    {"pub", BENCH_SCENARIO_PUB},
    {"sub", BENCH_SCENARIO_SUB},
    {"pubsub", BENCH_SCENARIO_PUBSUB},
    {"queue", BENCH_SCENARIO_QUEUE},
    {"reqrep", BENCH_SCENARIO_REQREP},
    {"js-pub", BENCH_SCENARIO_JS_PUB},
    {"js-async-pub", BENCH_SCENARIO_JS_ASYNC_PUB},
    {"js-consume", BENCH_SCENARIO_JS_CONSUME},
};

static void usage(FILE *out)
{
  fprintf(out,
          "usage: shoal-bench SCENARIO [options]\n"
          "\n"
          "A load generator for NATS servers (shoal-server, nats-server).\n"
          "\n"
          "Scenarios:\n"
          "  pub       --pubs publishers send to --subject; nobody subscribes\n"
          "  sub       --subs subscribers count what other clients publish, for example\n"
          "            one other shoal-bench running pub; --msgs is per subscriber\n"
          "  pubsub    --pubs publishers to --subs subscribers, every subscriber gets\n"
          "            every message (1:N with --pubs 1, N:M otherwise)\n"
          "  queue     --pubs publishers to a queue group of --subs members (default 2);\n"
          "            checks that each message arrives exactly once\n"
          "  reqrep    --pubs requesters, each with one request in flight (or paced by\n"
          "            --rate), answered by --subs responders in a queue group\n"
          "  js-pub    synchronous JetStream publish: each publish waits for its ack;\n"
          "            latency is publish to ack\n"
          "  js-async-pub\n"
          "            JetStream publish with up to --window publishes unacknowledged;\n"
          "            checks that every publish is acked once, in stream order\n"
          "  js-consume\n"
          "            publishes --msgs messages (or for --duration) with acks, then a\n"
          "            durable pull consumer fetches batches of --window and acks each\n"
          "            message; latency is fetch request to delivery\n"
          "            The JetStream scenarios use one connection (--pubs, --subs,\n"
          "            --rate, --warmup and --batch do not apply), delete and create\n"
          "            --stream on --subject first and delete it at the end. \"received\"\n"
          "            counts publish acks in js-pub and js-async-pub.\n"
          "\n"
          "Options:\n"
          "  --url URL          server address, nats://[USER:PASS@]HOST:PORT (default\n"
          "                     nats://127.0.0.1:4222)\n"
          "  --user U, --pass P user and password for the server's authorization\n"
          "  --token T          authorization token\n"
          "  --msgs N           messages to measure over all publishers (default: run\n"
          "                     for --duration)\n"
          "  --duration S       seconds to measure when --msgs is not given (default 5)\n"
          "  --size B           payload bytes, at least %d (default 16)\n"
          "  --pubs N           publishers or requesters (default 1)\n"
          "  --subs M           subscribers, queue members or responders (default 1)\n"
          "  --subject S        subject to publish on (default shoal.bench)\n"
          "  --queue NAME       queue group name of the queue scenario (default shoal_bench_q)\n"
          "  --rate R           messages per second over all publishers (default: unpaced)\n"
          "  --warmup S         seconds of traffic before measuring (default 0)\n"
          "  --timeout S        hard limit on the whole run in seconds (default: warm-up\n"
          "                     plus duration plus 30, or 300 with --msgs)\n"
          "  --window N         messages published and not yet received at most, so no\n"
          "                     subscriber becomes a slow consumer (default: 16 MiB of\n"
          "                     frames)\n"
          "                     JetStream scenarios: unacknowledged publishes and the\n"
          "                     pull batch size (default 256)\n"
          "  --batch BYTES      output bytes a publisher builds before each write\n"
          "                     (default 262144)\n"
          "  --stream NAME      JetStream stream name (default SHOAL_BENCH)\n"
          "  --js-storage T     stream storage, file or memory (default file)\n"
          "  --server-pid PID   measure this process's CPU time as the server's\n"
          "  --json             print the summary as one JSON object\n"
          "  --no-live          no per-second line on stderr (default: on when stderr\n"
          "                     is a terminal)\n"
          "  --help             show this text\n"
          "\n"
          "Exit status: 0 on success, 1 when the run failed (server unreachable,\n"
          "authorization failed, -ERR, connection closed, timeout), 2 for invalid\n"
          "options, 3 when messages were lost or duplicated.\n",
          BENCH_PAYLOAD_MIN);
}

static int bad_option(const char *name, const char *value, const char *expected)
{
  fprintf(stderr, "shoal-bench: invalid %s '%s': expected %s\n", name, value, expected);
  return -EINVAL;
}

/* Parses a non-negative number; "1e6" and "2.5" are accepted. */
static int parse_number(const char *name, const char *value, double min, double max, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(value, &end);
  if (errno != 0 || end == value || *end != '\0' || !isfinite(v) || v < min || v > max) {
    char expected[96];
    snprintf(expected, sizeof(expected), "a number from %g to %g", min, max);
    return bad_option(name, value, expected);
  }
  *out = v;
  return 0;
}

static int parse_count(const char *name, const char *value, double min, double max, uint64_t *out)
{
  double v;
  int rc = parse_number(name, value, min, max, &v);
  if (rc < 0) return rc;
  if (v != floor(v)) return bad_option(name, value, "a whole number");
  *out = (uint64_t)v;
  return 0;
}

static int parse_scenario(const char *name, struct bench_opts *opts)
{
  for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
    if (strcmp(name, scenarios[i].name) == 0) {
      opts->scenario = scenarios[i].scenario;
      opts->scenario_name = scenarios[i].name;
      return 0;
    }
  }
  return bad_option("scenario", name, "pub, sub, pubsub, queue, reqrep, js-pub, js-async-pub or js-consume");
}

static int copy_text(const char *name, const char *value, char *dst, size_t size)
{
  if (value[0] == '\0' || strlen(value) >= size || strpbrk(value, " \t\r\n") != NULL) {
    return bad_option(name, value, "a non-empty token without spaces");
  }
  strcpy(dst, value);
  return 0;
}

/* Takes host, port and any user:pass from url; the printed URL drops the
 * password so it never reaches the summary. */
static int apply_url(const char *url, struct bench_opts *opts)
{
  char userinfo[256];
  if (bench_conn_parse_url(url, opts->host, sizeof(opts->host), &opts->port, userinfo, sizeof(userinfo)) < 0) {
    return bad_option("--url", url, "nats://[USER:PASS@]HOST:PORT");
  }
  if (userinfo[0]) {
    char *colon = strchr(userinfo, ':');
    if (colon != NULL) *colon = '\0';
    if (strlen(userinfo) >= sizeof(opts->user) || (colon && strlen(colon + 1) >= sizeof(opts->pass))) {
      return bad_option("--url", "(credentials)", "a user and password under 128 bytes each");
    }
    strcpy(opts->user, userinfo);
    if (colon != NULL) strcpy(opts->pass, colon + 1);
  }
  snprintf(opts->url, sizeof(opts->url), "nats://%s:%u", opts->host, opts->port);
  return 0;
}

/* Copies a credential: any bytes but NUL, up to size - 1. */
static int copy_secret(const char *name, const char *value, char *dst, size_t size)
{
  if (strlen(value) >= size) return bad_option(name, "(hidden)", "a shorter value");
  strcpy(dst, value);
  return 0;
}

enum {
  OPT_URL = 256, OPT_USER, OPT_PASS, OPT_TOKEN, OPT_MSGS, OPT_DURATION, OPT_SIZE, OPT_PUBS, OPT_SUBS, OPT_SUBJECT, OPT_QUEUE,
  OPT_RATE, OPT_WARMUP, OPT_TIMEOUT, OPT_WINDOW, OPT_BATCH, OPT_SERVER_PID, OPT_STREAM, OPT_JS_STORAGE, OPT_JSON, OPT_NO_LIVE,
  OPT_HELP,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"user", required_argument, NULL, OPT_USER},
    {"pass", required_argument, NULL, OPT_PASS},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"msgs", required_argument, NULL, OPT_MSGS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"size", required_argument, NULL, OPT_SIZE},
    {"pubs", required_argument, NULL, OPT_PUBS},
    {"subs", required_argument, NULL, OPT_SUBS},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"stream", required_argument, NULL, OPT_STREAM},
    {"js-storage", required_argument, NULL, OPT_JS_STORAGE},
    {"json", no_argument, NULL, OPT_JSON},
    {"no-live", no_argument, NULL, OPT_NO_LIVE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Applies one option. Returns 0, 1 after --help, or -EINVAL. */
static int apply_option(int opt, const char *arg, struct bench_opts *opts, bool *subs_given)
{
  uint64_t n;
  int rc = 0;
  switch (opt) {
  case OPT_URL:
    return apply_url(arg, opts);
  case OPT_USER: return copy_secret("--user", arg, opts->user, sizeof(opts->user));
  case OPT_PASS: return copy_secret("--pass", arg, opts->pass, sizeof(opts->pass));
  case OPT_TOKEN: return copy_secret("--token", arg, opts->token, sizeof(opts->token));
  case OPT_MSGS: return parse_count("--msgs", arg, 1, 1e15, &opts->msgs);
  case OPT_DURATION: return parse_number("--duration", arg, 0.001, 86400, &opts->duration_s);
  case OPT_SIZE:
    rc = parse_count("--size", arg, BENCH_PAYLOAD_MIN, BENCH_CONN_BUFFER_MAX / 2, &n);
    opts->size = (uint32_t)n;
    return rc;
  case OPT_PUBS:
    rc = parse_count("--pubs", arg, 1, BENCH_CLIENTS_MAX, &n);
    opts->pubs = (uint32_t)n;
    return rc;
  case OPT_SUBS:
    rc = parse_count("--subs", arg, 1, BENCH_CLIENTS_MAX, &n);
    opts->subs = (uint32_t)n;
    *subs_given = true;
    return rc;
  case OPT_SUBJECT: return copy_text("--subject", arg, opts->subject, sizeof(opts->subject));
  case OPT_QUEUE: return copy_text("--queue", arg, opts->queue, sizeof(opts->queue));
  case OPT_RATE: return parse_number("--rate", arg, 0, 1e9, &opts->rate);
  case OPT_WARMUP: return parse_number("--warmup", arg, 0, 3600, &opts->warmup_s);
  case OPT_TIMEOUT: return parse_number("--timeout", arg, 1, 86400, &opts->timeout_s);
  case OPT_WINDOW: return parse_count("--window", arg, 1, 1e12, &opts->window_msgs);
  case OPT_BATCH:
    rc = parse_count("--batch", arg, 1, 64 << 20, &n);
    opts->batch_bytes = (uint32_t)n;
    return rc;
  case OPT_SERVER_PID:
    rc = parse_count("--server-pid", arg, 1, 1 << 30, &n);
    opts->server_pid = (int)n;
    return rc;
  case OPT_STREAM:
    /* A dot would split the name over several tokens of the API subject, and
     * nats-server sends no reply; '*' and '>' are left for the server to
     * reject. */
    if (strchr(arg, '.') != NULL) return bad_option("--stream", arg, "a name without '.'");
    return copy_text("--stream", arg, opts->stream, sizeof(opts->stream));
  case OPT_JS_STORAGE:
    if (strcmp(arg, "file") != 0 && strcmp(arg, "memory") != 0) return bad_option("--js-storage", arg, "file or memory");
    opts->js_memory = strcmp(arg, "memory") == 0;
    return 0;
  case OPT_JSON: opts->json = true; return 0;
  case OPT_NO_LIVE: opts->live = false; return 0;
  case OPT_HELP: usage(stdout); return 1;
  default: usage(stderr); return -EINVAL;
  }
}

static void set_defaults(struct bench_opts *opts)
{
  memset(opts, 0, sizeof(*opts));
  snprintf(opts->url, sizeof(opts->url), "nats://127.0.0.1:4222");
  snprintf(opts->host, sizeof(opts->host), "127.0.0.1");
  opts->port = 4222;
  opts->duration_s = 5;
  opts->size = 16;
  opts->pubs = 1;
  opts->subs = 1;
  snprintf(opts->subject, sizeof(opts->subject), "shoal.bench");
  snprintf(opts->queue, sizeof(opts->queue), "shoal_bench_q");
  snprintf(opts->stream, sizeof(opts->stream), "SHOAL_BENCH");
  opts->batch_bytes = 256 << 10;
  opts->live = isatty(STDERR_FILENO);
}

/* Fills the defaults that depend on other options and checks combinations. */
static int finish_options(struct bench_opts *opts, bool subs_given)
{
  if (opts->scenario == BENCH_SCENARIO_QUEUE && !subs_given) opts->subs = 2;
  if (opts->pubs + opts->subs > BENCH_CLIENTS_MAX) {
    fprintf(stderr, "shoal-bench: --pubs plus --subs is %u, over the limit of %d connections\n",
            opts->pubs + opts->subs, BENCH_CLIENTS_MAX);
    return -EINVAL;
  }
  if (opts->scenario >= BENCH_SCENARIO_JS_PUB) {
    opts->pubs = 1;
    opts->subs = opts->scenario == BENCH_SCENARIO_JS_CONSUME ? 1 : 0;
    if (opts->window_msgs == 0) opts->window_msgs = JS_WINDOW_DEFAULT;
  }
  if (opts->window_msgs == 0) {
    uint64_t frame = opts->size + strlen(opts->subject) + 32;
    opts->window_msgs = WINDOW_BYTES_DEFAULT / frame;
    if (opts->window_msgs < 16) opts->window_msgs = 16;
  }
  if (opts->timeout_s == 0) opts->timeout_s = opts->msgs ? 300 : opts->warmup_s + opts->duration_s + 30;
  return 0;
}

int main(int argc, char **argv)
{
  struct bench_opts opts;
  set_defaults(&opts);
  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
      usage(stdout);
      return 0;
    }
    fprintf(stderr, "shoal-bench: missing the scenario (pub, sub, pubsub, queue or reqrep); see --help\n");
    return EXIT_USAGE;
  }
  if (parse_scenario(argv[1], &opts) < 0) return EXIT_USAGE;

  bool subs_given = false;
  int opt;
  optind = 2;
  while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    int rc = apply_option(opt, optarg, &opts, &subs_given);
    if (rc > 0) return 0;
    if (rc < 0) return EXIT_USAGE;
  }
  if (optind < argc) {
    fprintf(stderr, "shoal-bench: unexpected argument '%s'; see --help\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (finish_options(&opts, subs_given) < 0) return EXIT_USAGE;

  struct bench_result result = {0};
  int rc = bench_run(&opts, &result);
  if (rc < 0) {
    free(result.latency);
    return EXIT_RUN_FAILED;
  }
  bench_report(&opts, &result);
  free(result.latency);
  if (result.lost > 0 || result.duplicated > 0) {
    fprintf(stderr, "shoal-bench: %llu messages lost and %llu duplicated\n", (unsigned long long)result.lost,
            (unsigned long long)result.duplicated);
    return EXIT_MESSAGES_MISSING;
  }
  return 0;
}
