// SPDX-License-Identifier: Apache-2.0
// A work-queue stream of robot tasks shared by three pull workers on their
// own connections: each task must be processed once, and the stream must be
// empty once every task is acknowledged.

package jsclient

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	taskStream   = "TASKS"
	taskSubjects = "fleet.tasks.>"
	taskDurable  = "workers"
	taskMessages = 600
	taskWorkers  = 3
	taskBatch    = 10

	// Bounds on one worker: the time it keeps fetching, and its fetches
	// (enough to take every task alone in single messages).
	workerTimeout    = 60 * time.Second
	workerFetchesMax = taskMessages + 100
	workerFetchWait  = time.Second

	// nats-server 2.9.10's error code for a second consumer without a
	// filter subject on a work-queue stream.
	errCodeWorkQueueMultipleUnfiltered nats.ErrorCode = 10099
)

// taskLedger counts, across workers, how often each stream sequence was
// processed.
type taskLedger struct {
	mu        sync.Mutex
	processed map[uint64]int
	perWorker [taskWorkers]int
	problems  []string
}

func (l *taskLedger) record(worker int, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.processed[seq]++
	l.perWorker[worker]++
}

func (l *taskLedger) fail(format string, args ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *taskLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.processed)
}

func TestWorkQueue(t *testing.T) {
	_, js := connect(t, "workqueue-producer")
	deleteStreamIfPresent(t, js, taskStream)

	_, err := js.AddStream(&nats.StreamConfig{
		Name:      taskStream,
		Subjects:  []string{taskSubjects},
		Retention: nats.WorkQueuePolicy,
		Storage:   nats.FileStorage,
	})
	if err != nil {
		t.Fatalf("add work-queue stream %s: %v", taskStream, err)
	}
	_, err = js.AddConsumer(taskStream, &nats.ConsumerConfig{
		Durable:   taskDurable,
		AckPolicy: nats.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("add consumer %s/%s: %v", taskStream, taskDurable, err)
	}

	// A work queue takes one consumer per subject, and the durable above
	// has no filter, so it takes them all.
	_, err = js.AddConsumer(taskStream, &nats.ConsumerConfig{
		Durable:   "second",
		AckPolicy: nats.AckExplicitPolicy,
	})
	checkAPIError(t, err, errCodeWorkQueueMultipleUnfiltered,
		"second unfiltered consumer on a work-queue stream")

	for seq := uint64(1); seq <= taskMessages; seq++ {
		subject := fmt.Sprintf("fleet.tasks.robot%d", seq%7)
		ack, err := js.Publish(subject, payload(seq))
		if err != nil {
			t.Fatalf("publish task %d to %s: %v", seq, subject, err)
		}
		if ack.Sequence != seq {
			t.Fatalf("publish task %d: stream sequence %d", seq, ack.Sequence)
		}
	}

	ledger := &taskLedger{processed: make(map[uint64]int)}
	var wg sync.WaitGroup
	for worker := 0; worker < taskWorkers; worker++ {
		_, workerJS := connect(t, fmt.Sprintf("workqueue-worker-%d", worker))
		sub, err := workerJS.PullSubscribe(taskSubjects, taskDurable, nats.Bind(taskStream, taskDurable))
		if err != nil {
			t.Fatalf("worker %d: bind to %s/%s: %v", worker, taskStream, taskDurable, err)
		}
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			runWorker(worker, sub, ledger)
		}(worker)
	}
	wg.Wait()

	for _, problem := range ledger.problems {
		t.Error(problem)
	}
	checkEachTaskOnce(t, ledger)
	t.Logf("tasks per worker: %v", ledger.perWorker)

	consumer := waitAckSettled(t, js, taskStream, taskDurable, taskMessages)
	checkConsumerState(t, consumer, taskMessages, 0)
	checkQueueEmpty(t, js)
}

// runWorker fetches and acknowledges tasks until every task was processed by
// some worker, or its fetch count or time runs out.
func runWorker(worker int, sub *nats.Subscription, ledger *taskLedger) {
	deadline := time.Now().Add(workerTimeout)
	for fetches := 0; fetches < workerFetchesMax; fetches++ {
		if ledger.count() >= taskMessages {
			return
		}
		if time.Now().After(deadline) {
			ledger.fail("worker %d: stopped after %v with %d of %d tasks processed",
				worker, workerTimeout, ledger.count(), taskMessages)
			return
		}
		msgs, err := sub.Fetch(taskBatch, nats.MaxWait(workerFetchWait))
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			ledger.fail("worker %d: fetch: %v", worker, err)
			return
		}
		for _, msg := range msgs {
			meta, err := msg.Metadata()
			if err != nil {
				ledger.fail("worker %d: metadata of %s: %v", worker, msg.Subject, err)
				return
			}
			seq := meta.Sequence.Stream
			if string(msg.Data) != string(payload(seq)) {
				ledger.fail("worker %d: task %d: payload %q, expected %q",
					worker, seq, msg.Data, payload(seq))
			}
			ledger.record(worker, seq)
			if err := msg.Ack(); err != nil {
				ledger.fail("worker %d: ack of task %d: %v", worker, seq, err)
				return
			}
		}
	}
	ledger.fail("worker %d: stopped after %d fetches with %d of %d tasks processed",
		worker, workerFetchesMax, ledger.count(), taskMessages)
}

func checkEachTaskOnce(t *testing.T, ledger *taskLedger) {
	t.Helper()
	if len(ledger.processed) != taskMessages {
		t.Errorf("%d distinct tasks processed, expected %d", len(ledger.processed), taskMessages)
	}
	for seq := uint64(1); seq <= taskMessages; seq++ {
		if n := ledger.processed[seq]; n != 1 {
			t.Errorf("task %d processed %d times, expected once", seq, n)
		}
	}
}

// checkQueueEmpty waits, within settleTimeout, for the work-queue stream to
// drop every acknowledged task, then checks its state.
func checkQueueEmpty(t *testing.T, js nats.JetStreamContext) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	var info *nats.StreamInfo
	for {
		var err error
		info, err = js.StreamInfo(taskStream)
		if err != nil {
			t.Fatalf("stream info %s: %v", taskStream, err)
		}
		if info.State.Msgs == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(settlePause)
	}
	if info.State.Msgs != 0 {
		t.Errorf("work-queue stream contains %d messages after all were acknowledged, expected 0", info.State.Msgs)
	}
	if info.State.LastSeq != taskMessages {
		t.Errorf("work-queue last sequence %d, expected %d", info.State.LastSeq, taskMessages)
	}
	if info.State.FirstSeq != taskMessages+1 {
		t.Errorf("work-queue first sequence %d, expected %d", info.State.FirstSeq, taskMessages+1)
	}
}
