// SPDX-License-Identifier: Apache-2.0
// A durable consumer that resumes after a server restart. TestRestartPrepare
// publishes, consumes and acknowledges half, then run.sh stops the server
// and starts it again on the same port and store directory, and
// TestRestartResume expects exactly the other half. A key-value entry
// written before the restart must keep its value and revision.

package jsclient

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
)

const (
	resumeStream   = "RESUME"
	resumeSubjects = "depot.*.events"
	resumeDurable  = "resumer"
	resumeMessages = 2000
	resumeBatch    = 100
	resumeHalf     = resumeMessages / 2

	resumeBucket = "settings"
)

func TestRestartPrepare(t *testing.T) {
	_, js := connect(t, "restart-prepare")
	deleteStreamIfPresent(t, js, resumeStream)

	_, err := js.AddStream(&nats.StreamConfig{
		Name:     resumeStream,
		Subjects: []string{resumeSubjects},
		Storage:  nats.FileStorage,
	})
	if err != nil {
		t.Fatalf("add stream %s: %v", resumeStream, err)
	}
	for seq := uint64(1); seq <= resumeMessages; seq++ {
		subject := fmt.Sprintf("depot.%d.events", seq%5)
		ack, err := js.Publish(subject, payload(seq))
		if err != nil {
			t.Fatalf("publish %d to %s: %v", seq, subject, err)
		}
		if ack.Sequence != seq {
			t.Fatalf("publish %d to %s: stream sequence %d", seq, subject, ack.Sequence)
		}
	}

	// The durable is created on its own, because nats.go deletes a
	// consumer that PullSubscribe created once that subscription ends.
	_, err = js.AddConsumer(resumeStream, &nats.ConsumerConfig{
		Durable:   resumeDurable,
		AckPolicy: nats.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("add consumer %s/%s: %v", resumeStream, resumeDurable, err)
	}
	sub, err := js.PullSubscribe(resumeSubjects, resumeDurable, nats.Bind(resumeStream, resumeDurable))
	if err != nil {
		t.Fatalf("bind to %s/%s: %v", resumeStream, resumeDurable, err)
	}

	// AckSync waits for the server's reply, so every acknowledgement has
	// arrived before run.sh stops the server.
	fetchSequence(t, sub, 1, resumeHalf, resumeBatch, ackSync)
	consumer := waitAckSettled(t, js, resumeStream, resumeDurable, resumeHalf)
	checkConsumerState(t, consumer, resumeHalf, resumeMessages-resumeHalf)

	kv := createSettingsBucket(t, js)
	putExpect(t, kv, "speed.max", "1.5", 1)
	putExpect(t, kv, "speed.max", "2.0", 2)
}

func TestRestartResume(t *testing.T) {
	_, js := connect(t, "restart-resume")

	stream, err := js.StreamInfo(resumeStream)
	if errors.Is(err, nats.ErrStreamNotFound) {
		t.Fatalf("stream %s not found: run TestRestartPrepare, restart the server, then this test", resumeStream)
	}
	if err != nil {
		t.Fatalf("stream info %s: %v", resumeStream, err)
	}
	if stream.State.Msgs != resumeMessages || stream.State.LastSeq != resumeMessages {
		t.Errorf("stream %s after restart: %d messages up to sequence %d, expected %d up to %d",
			resumeStream, stream.State.Msgs, stream.State.LastSeq, resumeMessages, resumeMessages)
	}

	// The consumer resumes where the acknowledgements left it.
	consumer, err := js.ConsumerInfo(resumeStream, resumeDurable)
	if err != nil {
		t.Fatalf("consumer info %s/%s after restart: %v", resumeStream, resumeDurable, err)
	}
	checkConsumerState(t, consumer, resumeHalf, resumeMessages-resumeHalf)

	sub, err := js.PullSubscribe(resumeSubjects, resumeDurable, nats.Bind(resumeStream, resumeDurable))
	if err != nil {
		t.Fatalf("bind to %s/%s after restart: %v", resumeStream, resumeDurable, err)
	}
	fetchSequence(t, sub, resumeHalf+1, resumeMessages-resumeHalf, resumeBatch, ackAsync)
	expectNoMessages(t, sub)
	consumer = waitAckSettled(t, js, resumeStream, resumeDurable, resumeMessages)
	checkConsumerState(t, consumer, resumeMessages, 0)

	// The stream numbers new messages after the restored ones.
	next := uint64(resumeMessages + 1)
	ack, err := js.Publish("depot.0.events", payload(next))
	if err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	if ack.Sequence != next {
		t.Fatalf("publish after restart: stream sequence %d, expected %d", ack.Sequence, next)
	}
	fetchSequence(t, sub, next, 1, 1, ackAsync)

	kv, err := js.KeyValue(resumeBucket)
	if err != nil {
		t.Fatalf("bind to bucket %s after restart: %v", resumeBucket, err)
	}
	entry, err := kv.Get("speed.max")
	if err != nil {
		t.Fatalf("get speed.max after restart: %v", err)
	}
	if string(entry.Value()) != "2.0" || entry.Revision() != 2 {
		t.Errorf("speed.max after restart: %q at revision %d, expected \"2.0\" at revision 2",
			entry.Value(), entry.Revision())
	}
	revision, err := kv.Update("speed.max", []byte("2.5"), 2)
	if err != nil || revision != 3 {
		t.Errorf("update speed.max at revision 2 after restart: got revision %d and error %v, expected revision 3",
			revision, err)
	}
}

func createSettingsBucket(t *testing.T, js nats.JetStreamContext) nats.KeyValue {
	t.Helper()
	if err := js.DeleteKeyValue(resumeBucket); err != nil && !errors.Is(err, nats.ErrStreamNotFound) &&
		!errors.Is(err, nats.ErrBucketNotFound) {
		t.Fatalf("delete bucket %s: %v", resumeBucket, err)
	}
	kv, err := js.CreateKeyValue(&nats.KeyValueConfig{Bucket: resumeBucket, Storage: nats.FileStorage})
	if err != nil {
		t.Fatalf("create bucket %s: %v", resumeBucket, err)
	}
	return kv
}
