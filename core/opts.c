/* SPDX-License-Identifier: Apache-2.0 */
/* Command-line flags with nats-server's names and forms: "-p 4222",
 * "-p=4222", "--port 4222"; booleans as "-D" or "-D=false". */
#include "core/opts.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"

/* The nats-server version whose behaviour shoal matches; clients switch
 * features on by it. */
#define OPTS_COMPAT_VERSION "2.9.10"

void opts_init(struct opts *o) {
  memset(o, 0, sizeof *o);
  o->host = strdup("0.0.0.0");
  o->port = OPTS_DEFAULT_PORT;
  o->max_connections = OPTS_DEFAULT_MAX_CONNECTIONS;
  o->max_control_line = OPTS_DEFAULT_MAX_CONTROL_LINE;
  o->max_payload = OPTS_DEFAULT_MAX_PAYLOAD;
  o->max_pending = OPTS_DEFAULT_MAX_PENDING;
  o->ping_interval_ms = OPTS_DEFAULT_PING_INTERVAL_MS;
  o->ping_max = OPTS_DEFAULT_PING_MAX;
  o->write_deadline_ms = OPTS_DEFAULT_WRITE_DEADLINE_MS;
  o->lame_duck_duration_ms = OPTS_DEFAULT_LAME_DUCK_DURATION_MS;
  o->lame_duck_grace_period_ms = OPTS_DEFAULT_LAME_DUCK_GRACE_MS;
  o->auth_timeout_ms = OPTS_DEFAULT_AUTH_TIMEOUT_MS;
  o->logtime = true;
  o->max_memory_store = -1;
  o->max_file_store = -1;
}

static void free_list(char **list) {
  if (list == NULL) return;
  for (char **p = list; *p != NULL; p++) free(*p);
  free(list);
}

void opts_free(struct opts *o) {
  free(o->host);
  free(o->server_name);
  free(o->http_host);
  free(o->logfile);
  free(o->pidfile);
  free(o->ports_file_dir);
  free(o->auth_token);
  free(o->auth_user);
  free(o->auth_password);
  for (int i = 0; i < o->user_count; i++) {
    struct opts_user *u = &o->users[i];
    free(u->user);
    free(u->password);
    free_list(u->pub_allow);
    free_list(u->pub_deny);
    free_list(u->sub_allow);
    free_list(u->sub_deny);
  }
  free(o->users);
  free(o->no_auth_user);
  free(o->store_dir);
  free(o->config_file);
  memset(o, 0, sizeof *o);
}

static const char usage_text[] =
    "Usage: shoal-server [options]\n"
    "\n"
    "Server Options:\n"
    "    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)\n"
    "    -p, --port <port>                Use port for clients (default: 4222, -1 picks one)\n"
    "    -n, --name, --server_name <name> Server name (default: the server ID)\n"
    "    -P, --pid <file>                 File to store the process ID\n"
    "    -m, --http_port <port>           Use port for HTTP monitoring\n"
    "    -c, --config <file>              Configuration file\n"
    "    -t                               Test the configuration and exit\n"
    "    --ports_file_dir <dir>           Write a ports file (<exe>_<pid>.ports) in this directory\n"
    "    -sl, --signal <cmd>[=<pid>]      Send a signal to a running server: stop, quit, term,\n"
    "                                     reopen, reload or ldm; <pid> may be a pid file\n"
    "    --shards <n>                     Number of shard threads (default: one per online CPU)\n"
    "    --backend <io_uring|epoll>       Event-loop backend (default: io_uring, epoll when\n"
    "                                     io_uring cannot be set up)\n"
    "\n"
    "Logging Options:\n"
    "    -l, --log <file>                 File to redirect log output\n"
    "    -T, --logtime                    Timestamp log entries (default: true)\n"
    "    -D, --debug                      Enable debugging output\n"
    "    -V, --trace                      Trace the raw protocol\n"
    "    -DV                              Debug and trace\n"
    "\n"
    "Authorization Options:\n"
    "    --user <user>                    User required for connections\n"
    "    --pass <password>                Password required for connections\n"
    "    --auth <token>                   Authorization token required for connections\n"
    "\n"
    "JetStream Options:\n"
    "    -js, --jetstream                 Enable JetStream\n"
    "    -sd, --store_dir <dir>           Set the storage directory\n"
    "\n"
    "Common Options:\n"
    "    -h, --help                       Show this message\n"
    "    -v, --version                    Show version\n";

enum flag_kind { FLAG_STRING, FLAG_INT, FLAG_BOOL };

struct flag {
  const char *names[4];
  enum flag_kind kind;
  int id;
};

enum {
  OPT_ADDR, OPT_PORT, OPT_NAME, OPT_PID, OPT_HTTP_PORT, OPT_CONFIG, OPT_TEST, OPT_SHARDS,
  OPT_BACKEND, OPT_LOG, OPT_LOGTIME, OPT_DEBUG, OPT_TRACE, OPT_DEBUG_TRACE, OPT_USER,
  OPT_PASS, OPT_AUTH, OPT_JETSTREAM, OPT_STORE_DIR, OPT_HELP, OPT_VERSION, OPT_SIGNAL,
  OPT_PORTS_FILE_DIR,
};

static const struct flag flags[] = {
    {{"a", "addr", "net"}, FLAG_STRING, OPT_ADDR},
    {{"p", "port"}, FLAG_INT, OPT_PORT},
    {{"n", "name", "server_name"}, FLAG_STRING, OPT_NAME},
    {{"P", "pid"}, FLAG_STRING, OPT_PID},
    {{"m", "http_port"}, FLAG_INT, OPT_HTTP_PORT},
    {{"c", "config"}, FLAG_STRING, OPT_CONFIG},
    {{"t"}, FLAG_BOOL, OPT_TEST},
    {{"shards"}, FLAG_INT, OPT_SHARDS},
    {{"backend"}, FLAG_STRING, OPT_BACKEND},
    {{"l", "log"}, FLAG_STRING, OPT_LOG},
    {{"T", "logtime"}, FLAG_BOOL, OPT_LOGTIME},
    {{"D", "debug"}, FLAG_BOOL, OPT_DEBUG},
    {{"V", "trace"}, FLAG_BOOL, OPT_TRACE},
    {{"DV"}, FLAG_BOOL, OPT_DEBUG_TRACE},
    {{"user"}, FLAG_STRING, OPT_USER},
    {{"pass"}, FLAG_STRING, OPT_PASS},
    {{"auth"}, FLAG_STRING, OPT_AUTH},
    {{"js", "jetstream"}, FLAG_BOOL, OPT_JETSTREAM},
    {{"sd", "store_dir"}, FLAG_STRING, OPT_STORE_DIR},
    {{"h", "help"}, FLAG_BOOL, OPT_HELP},
    {{"v", "version"}, FLAG_BOOL, OPT_VERSION},
    {{"sl", "signal"}, FLAG_STRING, OPT_SIGNAL},
    {{"ports_file_dir"}, FLAG_STRING, OPT_PORTS_FILE_DIR},
};

static const struct flag *find_flag(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    for (int k = 0; k < 4 && flags[i].names[k] != NULL; k++) {
      const char *n = flags[i].names[k];
      if (strlen(n) == len && memcmp(n, name, len) == 0) return &flags[i];
    }
  }
  return NULL;
}

static int parse_bool(const char *v, bool *out) {
  if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "t") == 0 ||
      strcmp(v, "T") == 0 || strcmp(v, "TRUE") == 0 || strcmp(v, "True") == 0) {
    *out = true;
    return 0;
  }
  if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "f") == 0 ||
      strcmp(v, "F") == 0 || strcmp(v, "FALSE") == 0 || strcmp(v, "False") == 0) {
    *out = false;
    return 0;
  }
  return -EINVAL;
}

static int parse_int(const char *v, long long *out) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0') return -EINVAL;
  *out = n;
  return 0;
}

static void set_string(char **slot, const char *v) {
  free(*slot);
  *slot = strdup(v);
}

/* The --signal commands, as nats-server names them. */
static const struct {
  const char *name;
  int sig;
} signal_commands[] = {
    {"stop", SIGKILL}, {"quit", SIGINT},    {"term", SIGTERM},
    {"reopen", SIGUSR1}, {"reload", SIGHUP}, {"ldm", SIGUSR2},
};

/* Returns the PID of the only running shoal-server other than us, 0 when
 * there is none, or -1 when there are several. */
static pid_t find_server_pid(void) {
  DIR *dir = opendir("/proc");
  if (dir == NULL) return 0;
  pid_t found = 0;
  int count = 0;
  struct dirent *d;
  while ((d = readdir(dir)) != NULL) {
    char *end;
    long pid = strtol(d->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == (long)getpid()) continue;
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    if (fgets(comm, sizeof comm, f) == NULL) comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    if (strcmp(comm, "shoal-server") != 0) continue;
    found = (pid_t)pid;
    count++;
  }
  closedir(dir);
  return count > 1 ? -1 : found;
}

/* Reads a PID from the text after '=': a number or a pid file's path. */
static pid_t parse_pid_target(const char *target) {
  char *end;
  long pid = strtol(target, &end, 10);
  if (*end == '\0' && pid > 0) return (pid_t)pid;
  FILE *f = fopen(target, "r");
  if (f == NULL) {
    fprintf(stderr, "cannot read pid file %s: %s\n", target, strerror(errno));
    return -1;
  }
  pid = 0;
  if (fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
    fprintf(stderr, "pid file %s holds no process id\n", target);
    pid = -1;
  }
  fclose(f);
  return (pid_t)pid;
}

/* Serves --signal COMMAND[=PID|PIDFILE]. Returns 0 or -1 after printing
 * an error. */
static int send_signal_command(const char *value) {
  const char *eq = strchr(value, '=');
  size_t name_len = eq ? (size_t)(eq - value) : strlen(value);
  int sig = 0;
  for (size_t i = 0; i < sizeof signal_commands / sizeof signal_commands[0]; i++) {
    if (strlen(signal_commands[i].name) == name_len &&
        memcmp(signal_commands[i].name, value, name_len) == 0)
      sig = signal_commands[i].sig;
  }
  if (sig == 0) {
    fprintf(stderr, "unknown signal \"%.*s\": expected stop, quit, term, reopen, reload or ldm\n",
            (int)name_len, value);
    return -1;
  }

  pid_t pid = eq ? parse_pid_target(eq + 1) : find_server_pid();
  if (pid == 0) {
    fprintf(stderr, "no shoal-server process is running\n");
    return -1;
  }
  if (pid < 0) {
    if (eq == NULL)
      fprintf(stderr, "several shoal-server processes are running: give one with --signal %.*s=PID\n",
              (int)name_len, value);
    return -1;
  }
  if (kill(pid, sig) != 0) {
    fprintf(stderr, "cannot signal process %d: %s\n", (int)pid, strerror(errno));
    return -1;
  }
  return 0;
}

/* Applies one flag. Returns 0, 1 to exit with success, or -1. */
static int apply_flag(struct opts *o, const struct flag *f, const char *value,
                      bool bool_value, long long int_value) {
  switch (f->id) {
  case OPT_ADDR: set_string(&o->host, value); break;
  case OPT_PORT: o->port = (int)int_value; break;
  case OPT_NAME: set_string(&o->server_name, value); break;
  case OPT_PID: set_string(&o->pidfile, value); break;
  case OPT_HTTP_PORT: o->http_port = (int)int_value; break;
  case OPT_CONFIG: set_string(&o->config_file, value); break;
  case OPT_TEST: o->config_test_only = bool_value; break;
  case OPT_SHARDS:
    if (int_value < 1 || int_value > 256) {
      fprintf(stderr, "invalid value %lld for --shards: expected 1 to 256\n", int_value);
      return -1;
    }
    o->shard_count = (int)int_value;
    break;
  case OPT_BACKEND:
    if (strcmp(value, "io_uring") == 0 || strcmp(value, "uring") == 0) {
      o->backend = OPTS_BACKEND_URING;
    } else if (strcmp(value, "epoll") == 0) {
      o->backend = OPTS_BACKEND_EPOLL;
    } else {
      fprintf(stderr, "invalid value \"%s\" for --backend: expected io_uring or epoll\n", value);
      return -1;
    }
    break;
  case OPT_LOG: set_string(&o->logfile, value); break;
  case OPT_LOGTIME: o->logtime = bool_value; break;
  case OPT_DEBUG: o->debug = bool_value; break;
  case OPT_TRACE: o->trace = bool_value; break;
  case OPT_DEBUG_TRACE: o->debug = o->trace = bool_value; break;
  case OPT_USER: set_string(&o->auth_user, value); break;
  case OPT_PASS: set_string(&o->auth_password, value); break;
  case OPT_AUTH: set_string(&o->auth_token, value); break;
  case OPT_JETSTREAM: o->jetstream = bool_value; break;
  case OPT_STORE_DIR: set_string(&o->store_dir, value); break;
  case OPT_HELP:
    fputs(usage_text, stdout);
    return 1;
  case OPT_VERSION:
    printf("nats-server: v%s (shoal-server %s)\n", OPTS_COMPAT_VERSION, SHOAL_VERSION);
    return 1;
  case OPT_PORTS_FILE_DIR: set_string(&o->ports_file_dir, value); break;
  case OPT_SIGNAL:
    return send_signal_command(value) == 0 ? 1 : -1;
  }
  return 0;
}

/* Walks argv. With only_config set, it applies -c and -t alone, so that the
 * file can be loaded before the other flags override it. */
static int walk_args(struct opts *o, int argc, char **argv, bool only_config) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-' || arg[1] == '\0') {
      fprintf(stderr, "unexpected argument \"%s\"; see shoal-server --help\n", arg);
      return -1;
    }
    const char *name = arg + 1 + (arg[1] == '-');
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    const struct flag *f = find_flag(name, name_len);
    if (f == NULL) {
      fprintf(stderr, "flag provided but not defined: -%.*s\n", (int)name_len, name);
      fputs(usage_text, stderr);
      return -1;
    }

    const char *value = eq ? eq + 1 : NULL;
    if (value == NULL && f->kind != FLAG_BOOL) {
      if (i + 1 >= argc) {
        fprintf(stderr, "flag needs an argument: -%s\n", name);
        return -1;
      }
      value = argv[++i];
    }

    bool bool_value = true;
    long long int_value = 0;
    if (f->kind == FLAG_BOOL && value != NULL && parse_bool(value, &bool_value) != 0) {
      fprintf(stderr, "invalid boolean value \"%s\" for -%.*s: expected true or false\n",
              value, (int)name_len, name);
      return -1;
    }
    if (f->kind == FLAG_INT && parse_int(value, &int_value) != 0) {
      fprintf(stderr, "invalid value \"%s\" for -%.*s: expected an integer\n", value,
              (int)name_len, name);
      return -1;
    }

    bool is_config = f->id == OPT_CONFIG || f->id == OPT_TEST;
    if (is_config != only_config) continue;
    int rc = apply_flag(o, f, value, bool_value, int_value);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Checks what nats-server checks once flags and the configuration file are
 * combined, with its message. Returns 0 or -1. */
static int validate(const struct opts *o) {
  if (o->max_payload > o->max_pending) {
    fprintf(stderr, "nats-server: max_payload (%" PRId64 ") cannot be higher than max_pending (%" PRId64 ")\n",
            o->max_payload, o->max_pending);
    return -1;
  }
  return 0;
}

int opts_parse_args(struct opts *o, int argc, char **argv) {
  int rc = walk_args(o, argc, argv, true);
  if (rc != 0) return rc;
  if (o->config_file != NULL && conf_load_file(o->config_file, o) != 0) return -1;
  rc = walk_args(o, argc, argv, false);
  if (rc != 0) return rc;
  /* nats-server -t parses the file only, so it does not check these. */
  return o->config_test_only ? 0 : validate(o);
}
