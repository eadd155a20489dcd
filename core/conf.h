/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration file: nats-server 2.9.10's format parsed into a tree of
 * values tagged with file and line, and the mapping of that tree onto
 * struct opts. */
#ifndef SHOAL_CONF_H
#define SHOAL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/opts.h"

/* Nesting limits. nats-server 2.9.10's parser has none; these keep the
 * recursion bounded, so that an include loop is an error. */
#define CONF_DEPTH_MAX 64         /* blocks and arrays inside each other */
#define CONF_INCLUDE_DEPTH_MAX 16 /* include inside include */
#define CONF_FILE_SIZE_MAX (16 * 1024 * 1024)

enum conf_type {
  CONF_STRING = 1, /* quoted, unquoted or a ( ) block string */
  CONF_BOOL,       /* true/yes/on, false/no/off, unquoted */
  CONF_INTEGER,    /* unquoted; a size suffix is already applied */
  CONF_FLOAT,
  CONF_DATETIME,   /* 2006-01-02T15:04:05Z */
  CONF_ARRAY,
  CONF_MAP,        /* a { } block, or the whole file */
};

struct conf_entry;

struct conf_value {
  enum conf_type type;
  const char *file; /* the file the value was read from, owned by the conf_doc */
  int line;         /* 1-based */
  bool used;        /* referenced as a $variable, so not an unknown key */
  char *text;       /* source text of a bool, number or datetime ("1G"), else NULL */
  union {
    struct {
      char *bytes; /* NUL-terminated, but \x00 may put a NUL inside */
      size_t len;
    } string;
    bool boolean;
    int64_t integer;
    double number;
    int64_t unix_seconds; /* CONF_DATETIME */
    struct {
      struct conf_value **items;
      int count;
    } array;
    struct {
      struct conf_entry *entries; /* in file order of each key's last definition */
      int count;
    } map;
  } as;
};

/* One key of a block. Keys are unique within a block, because a later
 * definition replaces an earlier one as in nats-server. The parser compares
 * keys exactly, and the mapping onto options compares them without case. */
struct conf_entry {
  char *key;
  const char *file;
  int line; /* the key's line */
  struct conf_value *value;
};

/* A parsed file with its includes: the top-level block and the names of the
 * files read, which the values' file pointers refer to. */
struct conf_doc {
  struct conf_value *root; /* CONF_MAP */
  char **files;
  int file_count;
};

/* Parses the file at path, with its includes and variables resolved.
 * Returns the tree, owned by the caller (free it with conf_doc_free), or
 * NULL with "file:line: message" written to err (err_size bytes, always
 * NUL-terminated). */
struct conf_doc *conf_parse_file(const char *path, char *err, size_t err_size);

/* Parses text of len bytes as if read from a file named name; includes are
 * relative to name's directory. Returns as conf_parse_file does. */
struct conf_doc *conf_parse_text(const char *text, size_t len, const char *name, char *err,
                                 size_t err_size);

void conf_doc_free(struct conf_doc *doc);

/* Returns the value of key in the block map (exact match), or NULL. */
const struct conf_value *conf_map_get(const struct conf_value *map, const char *key);

/* Applies the top-level keys of doc to o, over the values o has already.
 * Unknown keys and accepted-but-ignored settings are logged with log_warn
 * (file and line) and counted in *warning_count when it is not NULL. An
 * invalid value stops at the first error: returns -1 with "file:line:
 * message" in err, and o may then be partly updated. Returns 0 otherwise.
 * Strings stored in o are malloc'd and replace (and free) earlier ones. */
int conf_apply(const struct conf_doc *doc, struct opts *o, char *err, size_t err_size,
               int *warning_count);

/* conf_parse_file then conf_apply. Returns 0, or -1 with the message in err. */
int conf_load(const char *path, struct opts *o, char *err, size_t err_size, int *warning_count);

/* conf_load for the server's -c and SIGHUP: the error, if any, is logged
 * with log_error. Returns 0, or -1 when the file cannot be read or parsed or
 * contains an invalid value. Call it on an opts_init'ed struct before the
 * command-line flags are applied, so flags override the file. */
int conf_load_file(const char *path, struct opts *o);

#endif
