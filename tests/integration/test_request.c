/* SPDX-License-Identifier: Apache-2.0 */
/* Request-reply through libnats: a responder on another connection, many
 * requests from several threads, queue-group responders and the
 * no-responders status. Owned by the integration test suite. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(request, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

#define REQUEST_THREADS 4
#define REQUESTS_PER_THREAD 250
#define REQUEST_TIMEOUT_MS 5000

/* Replies with "re:" and the request payload. closure counts requests. */
static void on_echo_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                            void *closure) {
  char reply[256];
  int len = natsMsg_GetDataLength(msg);
  if (len > (int)sizeof(reply) - 3)
    len = (int)sizeof(reply) - 3;
  memcpy(reply, "re:", 3);
  memcpy(reply + 3, natsMsg_GetData(msg), (size_t)len);
  /* Count before replying, so the count is complete once the requester
   * has its reply. */
  atomic_fetch_add((atomic_int *)closure, 1);
  if (natsMsg_GetReply(msg))
    natsConnection_Publish(nc, natsMsg_GetReply(msg), reply, len + 3);
  natsMsg_Destroy(msg);
}

static natsSubscription *serve(natsConnection *nc, const char *subject, const char *queue,
                               atomic_int *counter) {
  natsSubscription *sub = NULL;
  natsStatus s = queue ? natsConnection_QueueSubscribe(&sub, nc, subject, queue, on_echo_request,
                                                       counter)
                       : natsConnection_Subscribe(&sub, nc, subject, on_echo_request, counter);
  cr_assert_eq(s, NATS_OK, "subscribe to %s failed: %s", subject, natsStatus_GetText(s));
  cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
  return sub;
}

struct requester {
  natsConnection *nc;
  const char *subject;
  int id;
  int count;
  int ok;               /* replies with the expected payload */
  natsStatus first_error;
  char first_mismatch[128];
};

/* Sends count requests and checks each reply. It runs on its own thread, so
 * it records failures instead of asserting. */
static void *run_requests(void *arg) {
  struct requester *r = arg;
  r->first_error = NATS_OK;
  for (int i = 0; i < r->count; i++) {
    char request[64], expected[80];
    int len = snprintf(request, sizeof(request), "t%d-%d", r->id, i);
    snprintf(expected, sizeof(expected), "re:%s", request);

    natsMsg *reply = NULL;
    natsStatus s =
        natsConnection_Request(&reply, r->nc, r->subject, request, len, REQUEST_TIMEOUT_MS);
    if (s != NATS_OK) {
      if (r->first_error == NATS_OK)
        r->first_error = s;
      continue;
    }
    int reply_len = natsMsg_GetDataLength(reply);
    if (reply_len == (int)strlen(expected) &&
        memcmp(natsMsg_GetData(reply), expected, (size_t)reply_len) == 0)
      r->ok++;
    else if (!r->first_mismatch[0])
      snprintf(r->first_mismatch, sizeof(r->first_mismatch), "\"%.*s\" for \"%s\"", reply_len,
               natsMsg_GetData(reply), request);
    natsMsg_Destroy(reply);
  }
  return NULL;
}

static void run_request_threads(natsConnection *nc, const char *subject) {
  struct requester requesters[REQUEST_THREADS];
  pthread_t threads[REQUEST_THREADS];
  for (int t = 0; t < REQUEST_THREADS; t++) {
    requesters[t] = (struct requester){.nc = nc, .subject = subject, .id = t,
                                       .count = REQUESTS_PER_THREAD};
    cr_assert_eq(pthread_create(&threads[t], NULL, run_requests, &requesters[t]), 0);
  }
  for (int t = 0; t < REQUEST_THREADS; t++)
    pthread_join(threads[t], NULL);

  for (int t = 0; t < REQUEST_THREADS; t++) {
    struct requester *r = &requesters[t];
    cr_assert_eq(r->first_error, NATS_OK, "thread %d: request failed: %s", t,
                 natsStatus_GetText(r->first_error));
    cr_assert_eq(r->first_mismatch[0], '\0', "thread %d: wrong reply %s", t, r->first_mismatch);
    cr_assert_eq(r->ok, REQUESTS_PER_THREAD, "thread %d: %d of %d replies correct", t, r->ok,
                 REQUESTS_PER_THREAD);
  }
}

HARNESS_TEST(request, reply_from_other_connection) {
  natsConnection *responder = harness_connect();
  static atomic_int handled;
  serve(responder, "svc.echo", NULL, &handled);
  natsConnection *requester = harness_connect();

  natsMsg *reply = NULL;
  natsStatus s = natsConnection_RequestString(&reply, requester, "svc.echo", "ping",
                                              REQUEST_TIMEOUT_MS);
  cr_assert_eq(s, NATS_OK, "request failed: %s", natsStatus_GetText(s));
  cr_assert_eq(natsMsg_GetDataLength(reply), 7);
  cr_assert(memcmp(natsMsg_GetData(reply), "re:ping", 7) == 0);
  natsMsg_Destroy(reply);
  cr_assert_eq(atomic_load(&handled), 1);
}

HARNESS_TEST(request, many_concurrent_requests) {
  natsConnection *responder = harness_connect();
  static atomic_int handled;
  serve(responder, "svc.many", NULL, &handled);
  natsConnection *requester = harness_connect();

  run_request_threads(requester, "svc.many");
  cr_assert_eq(atomic_load(&handled), REQUEST_THREADS * REQUESTS_PER_THREAD);
}

/* Three responders in one queue group: every request gets a reply, and the
 * requests handled add up to the requests sent. */
HARNESS_TEST(request, queue_group_responders) {
  static atomic_int handled;
  for (int i = 0; i < 3; i++)
    serve(harness_connect(), "svc.grouped", "responders", &handled);
  natsConnection *requester = harness_connect();

  run_request_threads(requester, "svc.grouped");
  cr_assert_eq(atomic_load(&handled), REQUEST_THREADS * REQUESTS_PER_THREAD);
}

HARNESS_TEST(request, no_responders_status) {
  natsConnection *requester = harness_connect();

  /* A 10 s timeout: a server without no_responders support would make this
   * return NATS_TIMEOUT instead. */
  for (int i = 0; i < 3; i++) {
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_RequestString(&reply, requester, "nobody.listens", "hello", 10000);
    cr_assert_eq(s, NATS_NO_RESPONDERS, "request %d returned %s, expected NATS_NO_RESPONDERS", i,
                 natsStatus_GetText(s));
    cr_assert_null(reply);
  }

  /* A responder that appears afterwards is reachable. */
  static atomic_int handled;
  serve(harness_connect(), "nobody.listens", NULL, &handled);
  natsMsg *reply = NULL;
  natsStatus s =
      natsConnection_RequestString(&reply, requester, "nobody.listens", "now", REQUEST_TIMEOUT_MS);
  cr_assert_eq(s, NATS_OK, "request failed: %s", natsStatus_GetText(s));
  natsMsg_Destroy(reply);
}

/* The no-responders message on the wire: an HMSG to the reply subject with
 * status 503 and no payload. */
HARNESS_TEST(request, no_responders_raw_hmsg) {
  struct raw_conn rc;
  int err = raw_connect(&rc, 0);
  cr_assert_eq(err, 0);
  cr_assert_eq(raw_send_str(&rc, "CONNECT {\"verbose\":false,\"headers\":true,"
                                 "\"no_responders\":true}\r\n"
                                 "SUB raw.inbox.1 5\r\n"
                                 "PUB nobody.here raw.inbox.1 2\r\nhi\r\nPING\r\n"),
               0);

  char line[256];
  cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
  int header_len = -1, total_len = -1;
  int fields = sscanf(line, "HMSG raw.inbox.1 5 %d %d", &header_len, &total_len);
  cr_assert_eq(fields, 2, "expected HMSG on the reply subject, got \"%s\"", line);
  cr_assert_eq(header_len, total_len, "the 503 status carries no payload: \"%s\"", line);
  cr_assert(header_len > 0 && header_len < 200, "header length %d", header_len);

  char block[256];
  cr_assert_eq(raw_read_exact(&rc, block, (size_t)header_len + 2, 5000), 0);
  block[header_len + 2] = '\0';
  cr_assert(strncmp(block, "NATS/1.0 503", 12) == 0, "status line in \"%s\"", block);
  cr_assert(strcmp(block + header_len - 4, "\r\n\r\n\r\n") == 0,
            "header block must end with an empty line and the message with CRLF");

  cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "PONG");
  raw_close(&rc);
}
