// SPDX-License-Identifier: Apache-2.0
// A key-value bucket of robot states: put, get, update against a revision,
// create, delete, keys, history and a watcher.

package jsclient

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	kvBucket  = "robots"
	kvHistory = 5

	// Bound on waiting for one watcher update.
	watchTimeout = 5 * time.Second
)

func TestKeyValue(t *testing.T) {
	_, js := connect(t, "key-value")
	if err := js.DeleteKeyValue(kvBucket); err != nil && !errors.Is(err, nats.ErrStreamNotFound) &&
		!errors.Is(err, nats.ErrBucketNotFound) {
		t.Fatalf("delete bucket %s: %v", kvBucket, err)
	}
	kv, err := js.CreateKeyValue(&nats.KeyValueConfig{
		Bucket:  kvBucket,
		History: kvHistory,
		Storage: nats.FileStorage,
	})
	if err != nil {
		t.Fatalf("create bucket %s: %v", kvBucket, err)
	}

	// Revisions are the sequences of the bucket's stream: 1, 2, 3, ...
	putExpect(t, kv, "r1.status", "idle", 1)
	checkEntry(t, kv, "r1.status", "idle", 1)

	revision, err := kv.Update("r1.status", []byte("busy"), 1)
	if err != nil || revision != 2 {
		t.Fatalf("update r1.status at revision 1: got revision %d and error %v, expected revision 2", revision, err)
	}
	_, err = kv.Update("r1.status", []byte("stale"), 1)
	checkAPIError(t, err, nats.JSErrCodeStreamWrongLastSequence, "update r1.status at old revision 1")
	_, err = kv.Create("r1.status", []byte("again"))
	if !errors.Is(err, nats.ErrKeyExists) {
		t.Errorf("create of existing key r1.status: error %v, expected %v", err, nats.ErrKeyExists)
	}
	checkEntry(t, kv, "r1.status", "busy", 2)

	revision, err = kv.Create("r2.status", []byte("charging"))
	if err != nil || revision != 3 {
		t.Fatalf("create r2.status: got revision %d and error %v, expected revision 3", revision, err)
	}
	if err := kv.Delete("r2.status"); err != nil {
		t.Fatalf("delete r2.status: %v", err)
	}
	if _, err := kv.Get("r2.status"); !errors.Is(err, nats.ErrKeyNotFound) {
		t.Errorf("get of deleted r2.status: error %v, expected %v", err, nats.ErrKeyNotFound)
	}

	keys, err := kv.Keys()
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	if len(keys) != 1 || keys[0] != "r1.status" {
		t.Errorf("keys %q, expected [r1.status]", keys)
	}

	checkHistory(t, kv, "r1.status", []historyEntry{
		{"idle", 1, nats.KeyValuePut}, {"busy", 2, nats.KeyValuePut}})
	checkHistory(t, kv, "r2.status", []historyEntry{
		{"charging", 3, nats.KeyValuePut}, {"", 4, nats.KeyValueDelete}})

	checkWatch(t, kv)
}

func putExpect(t *testing.T, kv nats.KeyValue, key, value string, want uint64) {
	t.Helper()
	revision, err := kv.PutString(key, value)
	if err != nil {
		t.Fatalf("put %s=%s: %v", key, value, err)
	}
	if revision != want {
		t.Fatalf("put %s=%s: revision %d, expected %d", key, value, revision, want)
	}
}

func checkEntry(t *testing.T, kv nats.KeyValue, key, value string, revision uint64) {
	t.Helper()
	entry, err := kv.Get(key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if string(entry.Value()) != value || entry.Revision() != revision {
		t.Errorf("get %s: %q at revision %d, expected %q at revision %d",
			key, entry.Value(), entry.Revision(), value, revision)
	}
	if entry.Key() != key || entry.Bucket() != kvBucket || entry.Operation() != nats.KeyValuePut {
		t.Errorf("get %s: entry %s/%s op %v, expected %s/%s op put",
			key, entry.Bucket(), entry.Key(), entry.Operation(), kvBucket, key)
	}
}

type historyEntry struct {
	value     string
	revision  uint64
	operation nats.KeyValueOp
}

func checkHistory(t *testing.T, kv nats.KeyValue, key string, want []historyEntry) {
	t.Helper()
	entries, err := kv.History(key)
	if err != nil {
		t.Fatalf("history of %s: %v", key, err)
	}
	if len(entries) != len(want) {
		t.Fatalf("history of %s: %d entries, expected %d", key, len(entries), len(want))
	}
	for i, entry := range entries {
		got := historyEntry{string(entry.Value()), entry.Revision(), entry.Operation()}
		if got != want[i] {
			t.Errorf("history of %s, entry %d: %+v, expected %+v", key, i, got, want[i])
		}
	}
}

// checkWatch watches every key: the watcher first gets the latest entry of
// each key, the delete marker of r2.status included, then nil, then each
// later change.
func checkWatch(t *testing.T, kv nats.KeyValue) {
	t.Helper()
	watcher, err := kv.WatchAll()
	if err != nil {
		t.Fatalf("watch all keys: %v", err)
	}
	defer watcher.Stop()

	var initial []historyEntry
	for {
		entry := nextUpdate(t, watcher)
		if entry == nil {
			break
		}
		initial = append(initial, historyEntry{string(entry.Value()), entry.Revision(), entry.Operation()})
		if len(initial) > 2 {
			t.Fatalf("watcher sent more than 2 initial entries: %+v", initial)
		}
	}
	sort.Slice(initial, func(i, j int) bool { return initial[i].revision < initial[j].revision })
	want := []historyEntry{{"busy", 2, nats.KeyValuePut}, {"", 4, nats.KeyValueDelete}}
	if len(initial) != len(want) || initial[0] != want[0] || initial[1] != want[1] {
		t.Errorf("watcher's initial entries %+v, expected %+v", initial, want)
	}

	putExpect(t, kv, "r3.status", "docked", 5)
	entry := nextUpdate(t, watcher)
	if entry == nil {
		t.Fatal("watcher sent nil after the initial entries")
	}
	if entry.Key() != "r3.status" || string(entry.Value()) != "docked" || entry.Revision() != 5 {
		t.Errorf("watcher update %s=%q at revision %d, expected r3.status=\"docked\" at revision 5",
			entry.Key(), entry.Value(), entry.Revision())
	}
}

func nextUpdate(t *testing.T, watcher nats.KeyWatcher) nats.KeyValueEntry {
	t.Helper()
	select {
	case entry, ok := <-watcher.Updates():
		if !ok {
			t.Fatal("watcher closed its updates channel")
		}
		return entry
	case <-time.After(watchTimeout):
		t.Fatalf("no watcher update within %v", watchTimeout)
	}
	return nil
}
