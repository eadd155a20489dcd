/* SPDX-License-Identifier: Apache-2.0 */
/* Service manager notifications: systemd's sd_notify datagram protocol,
 * written without libsystemd, and the watchdog that pings only while every
 * shard loop is running. Owned by the deploy work. Every function here runs
 * on the main thread, and without NOTIFY_SOCKET all of them do nothing. */
#ifndef SHOAL_NOTIFY_H
#define SHOAL_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/* Opens an unbound datagram socket for messages to address, the value of
 * NOTIFY_SOCKET: an absolute path, or '@' and a name in the abstract
 * namespace. Replaces a socket opened before. Returns 0, -EINVAL when
 * address is empty or longer than a sockaddr_un can hold,
 * -EAFNOSUPPORT for other forms (systemd 253's "vsock:"), or the errno of
 * socket(2). */
int notify_open(const char *address);

/* Sends state, newline-separated VARIABLE=value assignments such as
 * "READY=1\nSTATUS=...", as one datagram. Returns 0 when sent or when no
 * socket is open, or the negative errno of sendmsg(2). */
int notify_send(const char *state);

/* Closes the socket opened by notify_open(). */
void notify_close(void);

/* Parses the watchdog interval that the service manager set from the values
 * of WATCHDOG_USEC (usec_text) and WATCHDOG_PID (pid_text). Returns the
 * interval in microseconds, or 0 when usec_text is NULL or pid_text names
 * another process than self. Returns -EINVAL when either value is not a
 * positive decimal number. */
int64_t notify_watchdog_usec(const char *usec_text, const char *pid_text, pid_t self);

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and opens the socket.
 * Invalid values are logged and turn the affected part off. Call once, after
 * logging is set up and before notify_ready(). Returns 0 or the error of
 * notify_open(). */
int notify_init(void);

/* Waits until every shard loop has run once, at most a few seconds, then
 * sends READY=1 with a STATUS= line naming the address, the shard count and
 * backend_name (copied), and starts the watchdog when one was set. Call
 * after the listeners are open and the shard threads started. */
void notify_ready(const char *backend_name);

/* Sends RELOADING=1 with MONOTONIC_USEC= before a SIGHUP reload. */
void notify_reloading(void);

/* Sends READY=1 and STATUS= after a SIGHUP reload. */
void notify_reloaded(void);

/* Sends STOPPING=1 with a STATUS= line, and stops the watchdog pings, at the
 * start of a graceful stop. */
void notify_stopping(void);

/* Sends a watchdog ping when one is due and every shard's heartbeat moved
 * since the last ping, and a new STATUS= line when the connection count
 * changed. now_ms is CLOCK_MONOTONIC time. Returns the milliseconds until
 * the next call is needed, or -1 when no call is needed. */
int notify_tick(int64_t now_ms);

#endif
