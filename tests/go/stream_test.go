// SPDX-License-Identifier: Apache-2.0
// A file stream of robot telemetry read by one durable pull consumer, the
// way a collector written with nats.py's add_stream, publish,
// pull_subscribe, fetch and ack reads it.

package jsclient

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
)

const (
	telemetryStream   = "TELEMETRY"
	telemetrySubjects = "robot.*.telemetry"
	telemetryDurable  = "collector"
	telemetryMessages = 2000
	telemetryBatch    = 100
	telemetryRobots   = 10
)

func TestStreamWorkflow(t *testing.T) {
	_, js := connect(t, "stream-workflow")
	deleteStreamIfPresent(t, js, telemetryStream)

	info, err := js.AddStream(&nats.StreamConfig{
		Name:     telemetryStream,
		Subjects: []string{telemetrySubjects},
		Storage:  nats.FileStorage,
	})
	if err != nil {
		t.Fatalf("add stream %s: %v", telemetryStream, err)
	}
	if info.Config.Storage != nats.FileStorage {
		t.Errorf("stream storage %v, expected file", info.Config.Storage)
	}
	if len(info.Config.Subjects) != 1 || info.Config.Subjects[0] != telemetrySubjects {
		t.Errorf("stream subjects %q, expected [%s]", info.Config.Subjects, telemetrySubjects)
	}
	if info.State.Msgs != 0 {
		t.Errorf("new stream contains %d messages, expected 0", info.State.Msgs)
	}

	publishTelemetry(t, js)

	// PullSubscribe finds the stream by subject and creates the durable.
	sub, err := js.PullSubscribe(telemetrySubjects, telemetryDurable)
	if err != nil {
		t.Fatalf("pull subscribe %s as %s: %v", telemetrySubjects, telemetryDurable, err)
	}
	fetchSequence(t, sub, 1, telemetryMessages, telemetryBatch, ackAsync)
	expectNoMessages(t, sub)

	consumer := waitAckSettled(t, js, telemetryStream, telemetryDurable, telemetryMessages)
	checkConsumerState(t, consumer, telemetryMessages, 0)
	if consumer.Config.AckPolicy != nats.AckExplicitPolicy {
		t.Errorf("consumer ack policy %v, expected explicit", consumer.Config.AckPolicy)
	}
	if consumer.Config.FilterSubject != telemetrySubjects {
		t.Errorf("consumer filter %q, expected %q", consumer.Config.FilterSubject, telemetrySubjects)
	}

	// Acknowledging keeps messages in a limits stream.
	stream, err := js.StreamInfo(telemetryStream)
	if err != nil {
		t.Fatalf("stream info %s: %v", telemetryStream, err)
	}
	if stream.State.Msgs != telemetryMessages {
		t.Errorf("stream contains %d messages, expected %d", stream.State.Msgs, telemetryMessages)
	}
	if stream.State.FirstSeq != 1 || stream.State.LastSeq != telemetryMessages {
		t.Errorf("stream sequences %d..%d, expected 1..%d",
			stream.State.FirstSeq, stream.State.LastSeq, telemetryMessages)
	}
	if stream.State.Consumers != 1 {
		t.Errorf("stream has %d consumers, expected 1", stream.State.Consumers)
	}
}

// publishTelemetry publishes the telemetry messages from several robots, each
// with a publish acknowledgement, and checks that the stream numbered them
// 1..telemetryMessages in order.
func publishTelemetry(t *testing.T, js nats.JetStreamContext) {
	t.Helper()
	for seq := uint64(1); seq <= telemetryMessages; seq++ {
		subject := fmt.Sprintf("robot.%d.telemetry", seq%telemetryRobots)
		ack, err := js.Publish(subject, payload(seq))
		if err != nil {
			t.Fatalf("publish %d to %s: %v", seq, subject, err)
		}
		if ack.Stream != telemetryStream || ack.Sequence != seq || ack.Duplicate {
			t.Fatalf("publish %d to %s: ack %+v, expected stream %s sequence %d",
				seq, subject, *ack, telemetryStream, seq)
		}
	}
}
