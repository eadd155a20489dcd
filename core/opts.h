/* SPDX-License-Identifier: Apache-2.0 */
/* Server options: nats-server's defaults, then the configuration file, then
 * command-line flags, each overriding the one before. */
#ifndef SHOAL_OPTS_H
#define SHOAL_OPTS_H

#include <stdbool.h>
#include <stdint.h>

/* nats-server 2.9 defaults. */
#define OPTS_DEFAULT_PORT 4222
#define OPTS_DEFAULT_MAX_PAYLOAD (1024 * 1024)
#define OPTS_DEFAULT_MAX_CONTROL_LINE 4096
#define OPTS_DEFAULT_MAX_PENDING (64LL * 1024 * 1024)
#define OPTS_DEFAULT_PING_INTERVAL_MS (2 * 60 * 1000)
#define OPTS_DEFAULT_PING_MAX 2
#define OPTS_DEFAULT_WRITE_DEADLINE_MS (10 * 1000)
#define OPTS_DEFAULT_MAX_CONNECTIONS (64 * 1024)
#define OPTS_DEFAULT_AUTH_TIMEOUT_MS (2 * 1000)
#define OPTS_DEFAULT_LAME_DUCK_DURATION_MS (2 * 60 * 1000)
#define OPTS_DEFAULT_LAME_DUCK_GRACE_MS (10 * 1000)

enum opts_backend {
  OPTS_BACKEND_AUTO = 0, /* io_uring, or epoll when io_uring cannot be set up */
  OPTS_BACKEND_URING,
  OPTS_BACKEND_EPOLL,
};

/* One user of an authorization users list; the permission lists are
 * NULL-terminated arrays of subjects, NULL when absent. */
struct opts_user {
  char *user;
  char *password;        /* plain text or a bcrypt hash ("$2a$...") */
  char **pub_allow;
  char **pub_deny;
  char **sub_allow;
  char **sub_deny;
  bool allow_responses;
  int64_t responses_max;
  int64_t responses_expires_ms;
};

struct opts {
  /* Listening. */
  char *host;            /* "0.0.0.0" by default */
  int port;              /* -1 picks a random port, as nats-server does */
  char *server_name;
  char *http_host;
  int http_port;         /* 0 = monitoring off */

  /* Limits. */
  int64_t max_connections;
  int64_t max_control_line;
  int64_t max_payload;
  int64_t max_pending;
  int64_t max_subscriptions; /* 0 = no limit */
  int64_t ping_interval_ms;
  int64_t ping_max;
  int64_t write_deadline_ms;
  int64_t lame_duck_duration_ms;
  int64_t lame_duck_grace_period_ms;

  /* Logging. */
  bool debug;
  bool trace;
  bool logtime;
  char *logfile;
  char *pidfile;
  char *ports_file_dir;

  /* Authorization. */
  char *auth_token;
  char *auth_user;
  char *auth_password;
  struct opts_user *users;
  int user_count;
  char *no_auth_user;
  int64_t auth_timeout_ms;

  /* JetStream. */
  bool jetstream;
  char *store_dir;
  int64_t max_memory_store; /* bytes, -1 = no limit */
  int64_t max_file_store;   /* bytes, -1 = no limit */
  /* jetstream sync_interval in ms. 0 ("always", shoal's default) acks a
   * publish after the fdatasync that covers it. Above 0, the ack follows
   * the write, and an fdatasync runs at most this long later. */
  int64_t sync_interval_ms;

  /* shoal's own. */
  int shard_count;          /* 0 = one per online CPU */
  enum opts_backend backend;
  char *config_file;
  bool config_test_only;    /* -t */
};

/* Fills o with nats-server's defaults. */
void opts_init(struct opts *o);

/* Frees the strings o owns. */
void opts_free(struct opts *o);

/* Parses argv into o, which holds defaults or a configuration already.
 * Returns 0 to run, 1 when a flag such as -h or -v was served and the
 * program should exit with status 0, or -1 after printing an error. */
int opts_parse_args(struct opts *o, int argc, char **argv);

#endif
