/* SPDX-License-Identifier: Apache-2.0 */
/* Two tiers of assertions: ASSERT is always built and cheap; ASSERT_HOT is
 * built only in debug and sanitizer builds, for per-message or O(n) checks.
 * Never assert on bytes from the network or the disk. */
#ifndef SHOAL_ASSERT_H
#define SHOAL_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define ASSERT(cond)                                                            \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0)) {                                         \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                  \
    }                                                                           \
  } while (0)

#ifdef SHOAL_DEBUG_ASSERTS
#define ASSERT_HOT(cond) ASSERT(cond)
#else
#define ASSERT_HOT(cond) ((void)0)
#endif

#endif
