/* SPDX-License-Identifier: Apache-2.0 */
/* Included before every source file of a SHOAL_TSAN build (-include), so
 * that ThreadSanitizer can follow liburcu's pointer publication. liburcu
 * 0.13 publishes with a fence and a volatile store (_rcu_set_pointer), and
 * TSan models neither, so it would report every read of a node published
 * with rcu_set_pointer() as a race. rcu_dereference() already compiles to
 * an __atomic_load with consume order under C11, which TSan treats as
 * acquire. With the store made a release store, the pair is one that TSan
 * understands. Only TSan builds include this header. Owned by the
 * robustness tests. */
#ifndef SHOAL_TSAN_URCU_H
#define SHOAL_TSAN_URCU_H

#include <urcu/pointer.h>

#undef _rcu_set_pointer
#define _rcu_set_pointer(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#endif
