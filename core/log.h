/* SPDX-License-Identifier: Apache-2.0 */
/* Logging in nats-server's line format: "[pid] 2026/12/04 20:58:54.123456
 * [INF] text". Debug and trace lines are built only when their level is on,
 * because the macros test the level before evaluating their arguments. */
#ifndef SHOAL_LOG_H
#define SHOAL_LOG_H

#include <stdbool.h>

enum log_level {
  LOG_LEVEL_TRACE = 0, /* [TRC] */
  LOG_LEVEL_DEBUG,     /* [DBG] */
  LOG_LEVEL_INFO,      /* [INF] */
  LOG_LEVEL_WARN,      /* [WRN] */
  LOG_LEVEL_ERROR,     /* [ERR] */
  LOG_LEVEL_FATAL,     /* [FTL] */
};

extern bool log_debug_on;
extern bool log_trace_on;

/* Sets the levels and the output. path NULL means standard error. logtime
 * false drops the date and time, as nats-server's -T=false does. Returns 0
 * or a negative errno when the file cannot be opened. */
int log_setup(bool debug, bool trace, bool logtime, const char *path);

/* Reopens the log file after rotation (SIGUSR1). Returns 0 or -errno. */
int log_reopen(void);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_fatal(...) log_write(LOG_LEVEL_FATAL, __VA_ARGS__)
#define log_debug(...)                                                         \
  do {                                                                         \
    if (log_debug_on) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                 \
  } while (0)
#define log_trace(...)                                                         \
  do {                                                                         \
    if (log_trace_on) log_write(LOG_LEVEL_TRACE, __VA_ARGS__);                 \
  } while (0)

#endif
