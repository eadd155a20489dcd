/* SPDX-License-Identifier: Apache-2.0 */
/* Included before every source file of a SHOAL_TSAN build (-include), so
 * that ThreadSanitizer can follow liburcu, which Debian does not build with
 * TSan. Only TSan builds include this header. Owned by the robustness
 * tests.
 *
 * Publication: liburcu 0.13 publishes with a fence and a volatile store
 * (_rcu_set_pointer), and TSan models neither, so it would report every
 * read of a node published with rcu_set_pointer() as a race.
 * rcu_dereference() already compiles to an __atomic_load with consume
 * order under C11, which TSan treats as acquire. With the store made a
 * release store, the pair is one that TSan understands.
 *
 * Reclamation: a call_rcu() callback runs only after every registered
 * thread passed a quiescent state or went offline, but that wait happens
 * inside the library, out of TSan's sight. Each thread therefore releases
 * one shared address just before it reports a quiescent state, goes
 * offline or unregisters, and each callback (and each return from
 * synchronize_rcu()) acquires it. That is the ordering the grace period
 * guarantees, so a free in a callback is not reported against the readers'
 * earlier accesses.
 *
 * NOTE: one shared address orders more than the grace period does: a
 * reader's accesses up to its latest quiescent state before the callback
 * all count as earlier. A stale pointer used after a quiescent state but
 * before the free therefore goes unreported here; the AddressSanitizer
 * build reports such a use when the free comes first. */
#ifndef SHOAL_TSAN_URCU_H
#define SHOAL_TSAN_URCU_H

#include <sanitizer/tsan_interface.h>
#include <stdlib.h>
/* The form that also defines the short names (call_rcu, rcu_barrier):
 * included here first, later includes of either form add nothing. */
#include <urcu-qsbr.h>

#undef _rcu_set_pointer
#define _rcu_set_pointer(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* The address released and acquired; defined in defaults.c. */
extern char shoal_tsan_grace_period;

/* A callback wrapped so that it acquires before running. */
struct shoal_tsan_rcu {
  struct rcu_head head;
  struct rcu_head *user_head;
  void (*user_fn)(struct rcu_head *head);
};

static inline void shoal_tsan_rcu_run(struct rcu_head *head)
{
  struct shoal_tsan_rcu *w = caa_container_of(head, struct shoal_tsan_rcu, head);
  __tsan_acquire(w); /* the queue inside liburcu handed w over */
  struct rcu_head *user_head = w->user_head;
  void (*user_fn)(struct rcu_head *) = w->user_fn;
  free(w);
  __tsan_acquire(&shoal_tsan_grace_period);
  user_fn(user_head);
}

/* The wrappers call the library's functions by their names, which the
 * macros below rename only after these definitions. */
static inline void shoal_tsan_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *head))
{
  struct shoal_tsan_rcu *w = malloc(sizeof *w);
  if (w == NULL) {
    urcu_qsbr_call_rcu(head, fn); /* unannotated, which can only add a report */
    return;
  }
  w->user_head = head;
  w->user_fn = fn;
  __tsan_release(w);
  urcu_qsbr_call_rcu(&w->head, shoal_tsan_rcu_run);
}

static inline void shoal_tsan_quiescent_state(void)
{
  __tsan_release(&shoal_tsan_grace_period);
  _urcu_qsbr_quiescent_state();
}

static inline void shoal_tsan_thread_offline(void)
{
  __tsan_release(&shoal_tsan_grace_period);
  _urcu_qsbr_thread_offline();
}

static inline void shoal_tsan_unregister_thread(void)
{
  __tsan_release(&shoal_tsan_grace_period);
  urcu_qsbr_unregister_thread();
}

static inline void shoal_tsan_synchronize_rcu(void)
{
  __tsan_release(&shoal_tsan_grace_period);
  urcu_qsbr_synchronize_rcu();
  __tsan_acquire(&shoal_tsan_grace_period);
}

#define urcu_qsbr_call_rcu shoal_tsan_call_rcu
#undef urcu_qsbr_quiescent_state
#define urcu_qsbr_quiescent_state shoal_tsan_quiescent_state
#undef urcu_qsbr_thread_offline
#define urcu_qsbr_thread_offline shoal_tsan_thread_offline
#define urcu_qsbr_unregister_thread shoal_tsan_unregister_thread
#define urcu_qsbr_synchronize_rcu shoal_tsan_synchronize_rcu

#endif
