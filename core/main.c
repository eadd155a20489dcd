/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-server: a NATS-compatible message broker. */
#include <stdio.h>

#include "core/opts.h"
#include "core/server.h"

int main(int argc, char **argv) {
  opts_init(&server.opts);
  server.argc = argc;
  server.argv = argv;
  int rc = opts_parse_args(&server.opts, argc, argv);
  if (rc != 0) return rc > 0 ? 0 : 1;
  if (server.opts.config_test_only) {
    /* The texts nats-server prints, which deployment scripts look for. */
    if (server.opts.config_file == NULL) {
      fprintf(stderr, "nats-server: must specify [-c, --config] option to check configuration "
                      "file syntax\n");
      return 1;
    }
    printf("nats-server: configuration file %s is valid\n", server.opts.config_file);
    return 0;
  }
  return server_run();
}
