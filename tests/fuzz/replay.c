/* SPDX-License-Identifier: Apache-2.0 */
/* Replays saved inputs through a fuzz target without libFuzzer, so every
 * build (GCC included) runs the seed corpora and the crash regressions as
 * an ordinary test. Owned by the robustness tests.
 *
 * Usage: replay_<target> PATH...  where each PATH is a file or a directory
 * whose regular files (names starting with '.' skipped) are inputs. A
 * missing directory counts as empty. Exits 0 after running every input, and
 * 1 when no input was found or a path cannot be read. A failing input aborts
 * inside the target, so the exit status shows the crash and the last
 * "replay:" line names the input. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs larger than this are rejected instead of replayed: libFuzzer's own
 * default -max_len is far below it, so such a file is a mistake. */
#define REPLAY_INPUT_MAX (16 * 1024 * 1024)

static int replay_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t *data = malloc(REPLAY_INPUT_MAX);
  if (data == NULL) {
    fclose(f);
    return -1;
  }
  size_t size = fread(data, 1, REPLAY_INPUT_MAX, f);
  bool too_big = size == REPLAY_INPUT_MAX && fgetc(f) != EOF;
  fclose(f);
  if (too_big) {
    fprintf(stderr, "replay: %s is larger than %d bytes\n", path, REPLAY_INPUT_MAX);
    free(data);
    return -1;
  }

  /* An exact-size copy, so that AddressSanitizer reports reads past the end. */
  uint8_t *exact = malloc(size ? size : 1);
  if (exact == NULL) {
    free(data);
    return -1;
  }
  memcpy(exact, data, size);
  free(data);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
  LLVMFuzzerTestOneInput(exact, size);
  free(exact);
  return 0;
}

static int compare_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of dir in name order, so runs repeat. Adds
 * the number replayed to *count. */
static int replay_dir(const char *dir, int *count)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? 0 : -1;
  char **names = NULL;
  size_t n = 0;
  int rc = 0;
  for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    char **grown = realloc(names, (n + 1) * sizeof *names);
    if (grown == NULL) {
      rc = -1;
      break;
    }
    names = grown;
    names[n] = strdup(e->d_name);
    if (names[n] == NULL) {
      rc = -1;
      break;
    }
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, compare_names);

  for (size_t i = 0; i < n && rc == 0; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    rc = replay_file(path);
    if (rc == 0)
      (*count)++;
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

int main(int argc, char **argv)
{
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize(&argc, &argv);

  int count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    int rc;
    if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode)) {
      rc = replay_file(argv[i]);
      count += rc == 0;
    } else {
      rc = replay_dir(argv[i], &count);
    }
    if (rc != 0) {
      fprintf(stderr, "replay: cannot read %s\n", argv[i]);
      return 1;
    }
  }
  if (count == 0) {
    fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  printf("replay: %d inputs ran without a failure\n", count);
  return 0;
}
