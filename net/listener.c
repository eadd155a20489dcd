/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets. */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The accept backlog; the kernel caps it at net.core.somaxconn. */
#define LISTENER_BACKLOG 4096

int listener_open(const char *host, int port, int *bound_port, char *why, unsigned why_len) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", port);
  const char *node = (host == NULL || host[0] == '\0') ? NULL : host;
  int rc = getaddrinfo(node, port_text, &hints, &res);
  if (rc != 0) {
    snprintf(why, why_len, "cannot resolve listen address \"%s\": %s", host, gai_strerror(rc));
    return -EINVAL;
  }

  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    snprintf(why, why_len, "socket() failed: %s", strerror(errno));
    freeaddrinfo(res);
    return rc;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
    rc = -errno;
    snprintf(why, why_len, "cannot bind %s:%d: %s", host, port, strerror(errno));
    goto fail;
  }
  if (listen(fd, LISTENER_BACKLOG) != 0) {
    rc = -errno;
    snprintf(why, why_len, "listen on %s:%d failed: %s", host, port, strerror(errno));
    goto fail;
  }

  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  freeaddrinfo(res);
  return fd;

fail:
  close(fd);
  freeaddrinfo(res);
  return rc;
}
