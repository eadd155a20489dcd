/* SPDX-License-Identifier: Apache-2.0 */
/* Shard start-up and shutdown test. Owned by the robustness tests.
 *
 * Method: STARTSTOP_CYCLES times, start the server with the shards and
 * backend of SHOAL_TEST_SERVER_ARGS. Connect CLIENTS clients at once, so
 * that the shards take them while starting. Half of them subscribe, the
 * other half publish a burst that crosses shards, and SIGTERM goes out
 * while all but one subscriber still have the burst unread. Each cycle
 * checks that every client was accepted and got its PONG, that the one
 * subscriber that reads got every message before the PONG that follows
 * them, that every client is disconnected, and that the server exits with
 * status 0 within 10 s. In the ThreadSanitizer build a race report makes
 * the server exit with another status, as a leak does in the
 * AddressSanitizer build, so both fail the cycle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soak_util.h"

#define STARTSTOP_CYCLES 20
#define CLIENTS 32
#define BURST_MSGS 2000
#define READ_TIMEOUT_MS 10000

static int failures;

static void expect(bool ok, int cycle, const char *description)
{
  if (!ok) {
    fprintf(stderr, "startstop: FAILED: cycle %d: %s\n", cycle, description);
    failures++;
  }
}

/* Reads lines until PONG; counts MSG lines in *msgs. Returns false on
 * timeout or close. */
static bool read_to_pong(struct soak_reader *r, int *msgs)
{
  char line[1024];
  for (;;) {
    int n = soak_read_line(r, line, sizeof line, READ_TIMEOUT_MS);
    if (n < 0)
      return false;
    if (strcmp(line, "PONG") == 0)
      return true;
    if (strncmp(line, "MSG ", 4) == 0)
      (*msgs)++;
  }
}

static void run_cycle(int cycle)
{
  struct soak_server srv;
  expect(soak_server_start(&srv, NULL) == 0, cycle, "the server did not start");
  if (srv.pid <= 0)
    return;

  /* Connect everyone at once, before reading any INFO. */
  struct soak_reader *clients[CLIENTS] = {0};
  for (int i = 0; i < CLIENTS; i++) {
    int fd = soak_connect(srv.port, 0);
    expect(fd >= 0, cycle, "a connect failed");
    if (fd < 0)
      continue;
    clients[i] = calloc(1, sizeof *clients[i]);
    if (clients[i] == NULL)
      abort();
    clients[i]->fd = fd;
  }

  /* Even clients subscribe, odd ones publish; both PING so that the
   * subscriptions are in place before the burst. */
  int ready = 0;
  for (int i = 0; i < CLIENTS; i++) {
    if (clients[i] == NULL)
      continue;
    char setup[160];
    snprintf(setup, sizeof setup, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n%sPING\r\n",
             i % 2 == 0 ? "SUB cycle.> 1\r\n" : "");
    int msgs = 0;
    if (soak_send_all(clients[i]->fd, setup, strlen(setup)) == 0 && read_to_pong(clients[i], &msgs))
      ready++;
  }
  expect(ready == CLIENTS, cycle, "not every client got its PONG after start-up");

  /* A burst from every publisher, each followed by a PING: its PONG comes
   * once the burst sits in the subscribers' output, on every shard. Then
   * the first subscriber's PING must come after all of it. */
  static char burst[BURST_MSGS * 32];
  size_t len = 0;
  for (int m = 0; m < BURST_MSGS; m++)
    len += (size_t)snprintf(burst + len, sizeof burst - len, "PUB cycle.%d 5\r\nhello\r\n", m % 7);
  len += (size_t)snprintf(burst + len, sizeof burst - len, "PING\r\n");
  int publishers = 0;
  for (int i = 1; i < CLIENTS; i += 2) {
    if (clients[i] != NULL && soak_send_all(clients[i]->fd, burst, len) == 0)
      publishers++;
  }
  for (int i = 1; i < CLIENTS; i += 2) {
    int ignored = 0;
    if (clients[i] != NULL)
      expect(read_to_pong(clients[i], &ignored), cycle,
             "no PONG to a publisher's PING after its burst");
  }
  int delivered = 0;
  if (clients[0] != NULL) {
    soak_send_all(clients[0]->fd, "PING\r\n", 6);
    read_to_pong(clients[0], &delivered);
  }
  expect(delivered == publishers * BURST_MSGS, cycle,
         "the first subscriber did not get every message before its PONG");

  /* Stop while the rest of the burst is still being delivered. */
  expect(soak_server_stop(&srv) == 0, cycle, "the server did not stop cleanly");
  for (int i = 0; i < CLIENTS; i++) {
    if (clients[i] == NULL)
      continue;
    expect(soak_read_until_closed(clients[i], READ_TIMEOUT_MS, NULL) == 0, cycle,
           "a client was not disconnected at shutdown");
    close(clients[i]->fd);
    free(clients[i]);
  }
  printf("startstop: cycle %d: %d clients ready, %d of %d messages before the PONG\n", cycle,
         ready, delivered, publishers * BURST_MSGS);
}

int main(void)
{
  for (int cycle = 1; cycle <= STARTSTOP_CYCLES; cycle++)
    run_cycle(cycle);
  printf("startstop: %s\n", failures == 0 ? "passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}
