// SPDX-License-Identifier: Apache-2.0
// Test helpers: the server address, connections, fetching a known number of
// messages, and waiting for a consumer's acknowledgements to settle.

package jsclient

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// Connection attempts and the pause between them. The nats.js tests
	// saw shoal on io_uring reset the first connections after a restart
	// on the same port, so a connection is tried a bounded number of times.
	connectAttempts = 20
	connectPause    = 250 * time.Millisecond

	// Bound on a single JetStream API request and on one Fetch.
	apiTimeout   = 10 * time.Second
	fetchTimeout = 5 * time.Second

	// Bound on waiting for acknowledgements, which nats.go sends without
	// a reply, to show in the consumer's state.
	settleTimeout = 10 * time.Second
	settlePause   = 50 * time.Millisecond

	// Time a Fetch waits when it is expected to return nothing.
	emptyFetchWait = time.Second
)

// serverURL returns the server address from SHOAL_GO_URL. It fails the test
// unless the address is a loopback IP, because the tests publish thousands of
// messages and must never reach another host.
func serverURL(t *testing.T) string {
	t.Helper()
	raw := os.Getenv("SHOAL_GO_URL")
	if raw == "" {
		t.Fatal("SHOAL_GO_URL is not set: run the tests through run.sh, " +
			"which starts a server and sets it")
	}
	parsed, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("SHOAL_GO_URL %q is invalid: %v", raw, err)
	}
	ip := net.ParseIP(parsed.Hostname())
	if ip == nil || !ip.IsLoopback() {
		t.Fatalf("SHOAL_GO_URL %q is not a loopback IP address such as 127.0.0.1", raw)
	}
	return raw
}

// connect opens a connection with the client name name and returns it with
// its JetStream context. The connection is closed when the test ends.
func connect(t *testing.T, name string) (*nats.Conn, nats.JetStreamContext) {
	t.Helper()
	address := serverURL(t)
	var nc *nats.Conn
	var err error
	for attempt := 1; attempt <= connectAttempts; attempt++ {
		nc, err = nats.Connect(address, nats.Name(name), nats.Timeout(apiTimeout))
		if err == nil {
			if attempt > 1 {
				t.Logf("connected to %s at attempt %d", address, attempt)
			}
			break
		}
		time.Sleep(connectPause)
	}
	if err != nil {
		t.Fatalf("connect to %s failed after %d attempts: %v", address, connectAttempts, err)
	}
	t.Cleanup(nc.Close)

	js, err := nc.JetStream(nats.MaxWait(apiTimeout))
	if err != nil {
		t.Fatalf("JetStream context: %v", err)
	}
	return nc, js
}

// deleteStreamIfPresent removes a stream left by an earlier run against the
// same server, so each test starts from an empty stream.
func deleteStreamIfPresent(t *testing.T, js nats.JetStreamContext, name string) {
	t.Helper()
	err := js.DeleteStream(name)
	if err != nil && !errors.Is(err, nats.ErrStreamNotFound) {
		t.Fatalf("delete stream %s: %v", name, err)
	}
}

// payload returns the body published with stream sequence seq, so a
// consumer checks each message against its sequence.
func payload(seq uint64) []byte {
	return []byte(fmt.Sprintf("reading %d", seq))
}

// fetchSequence fetches count messages in batches of batch from sub, checks
// that they carry stream sequences first, first+1, ... in that order, each
// delivered once and with its own payload, and acknowledges each with ack.
func fetchSequence(t *testing.T, sub *nats.Subscription, first uint64, count, batch int,
	ack func(*nats.Msg) error) {
	t.Helper()
	want := first
	for fetched := 0; fetched < count; {
		msgs, err := sub.Fetch(batch, nats.MaxWait(fetchTimeout))
		if err != nil {
			t.Fatalf("fetch of %d after stream sequence %d: %v", batch, want-1, err)
		}
		if len(msgs) != batch {
			t.Fatalf("fetch of %d after stream sequence %d returned %d messages",
				batch, want-1, len(msgs))
		}
		for _, msg := range msgs {
			checkDelivery(t, msg, want)
			if err := ack(msg); err != nil {
				t.Fatalf("ack of stream sequence %d: %v", want, err)
			}
			want++
		}
		fetched += len(msgs)
	}
}

// ackAsync acknowledges msg without waiting for the server, as nats.py's
// ack does.
func ackAsync(msg *nats.Msg) error { return msg.Ack() }

// ackSync acknowledges msg and waits for the server's reply.
func ackSync(msg *nats.Msg) error { return msg.AckSync() }

// checkDelivery checks that msg is the first delivery of stream sequence want.
func checkDelivery(t *testing.T, msg *nats.Msg, want uint64) {
	t.Helper()
	meta, err := msg.Metadata()
	if err != nil {
		t.Fatalf("metadata of message on %s (reply %q): %v", msg.Subject, msg.Reply, err)
	}
	if meta.Sequence.Stream != want {
		t.Fatalf("got stream sequence %d, expected %d", meta.Sequence.Stream, want)
	}
	if meta.NumDelivered != 1 {
		t.Fatalf("stream sequence %d: delivery count %d, expected 1", want, meta.NumDelivered)
	}
	if string(msg.Data) != string(payload(want)) {
		t.Fatalf("stream sequence %d: payload %q, expected %q", want, msg.Data, payload(want))
	}
}

// expectNoMessages fetches once more and expects the consumer to have
// nothing left: nats.go returns ErrTimeout when no message came.
func expectNoMessages(t *testing.T, sub *nats.Subscription) {
	t.Helper()
	msgs, err := sub.Fetch(10, nats.MaxWait(emptyFetchWait))
	if len(msgs) != 0 {
		meta, _ := msgs[0].Metadata()
		t.Fatalf("fetch on a drained consumer returned %d messages, the first %+v",
			len(msgs), meta)
	}
	if !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("fetch on a drained consumer: error %v, expected %v", err, nats.ErrTimeout)
	}
}

// waitAckSettled polls the consumer's info until no delivered message waits
// for an acknowledgement and its ack floor reached ackFloor, then returns
// that info. On timeout it returns the last info it read, for the caller's
// checks to report.
func waitAckSettled(t *testing.T, js nats.JetStreamContext, stream, consumer string,
	ackFloor uint64) *nats.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		info, err := js.ConsumerInfo(stream, consumer)
		if err != nil {
			t.Fatalf("consumer info %s/%s: %v", stream, consumer, err)
		}
		settled := info.NumAckPending == 0 && info.AckFloor.Stream >= ackFloor
		if settled || time.Now().After(deadline) {
			return info
		}
		time.Sleep(settlePause)
	}
}

// checkConsumerState checks the consumer's counters once its acknowledgements
// settled: delivered and acknowledged up to stream sequence done, pending
// messages left to deliver, none waiting for an acknowledgement.
func checkConsumerState(t *testing.T, info *nats.ConsumerInfo, done, pending uint64) {
	t.Helper()
	name := info.Stream + "/" + info.Name
	if info.NumAckPending != 0 {
		t.Errorf("%s: num_ack_pending %d, expected 0", name, info.NumAckPending)
	}
	if info.NumPending != pending {
		t.Errorf("%s: num_pending %d, expected %d", name, info.NumPending, pending)
	}
	if info.Delivered.Stream != done {
		t.Errorf("%s: delivered.stream_seq %d, expected %d", name, info.Delivered.Stream, done)
	}
	if info.AckFloor.Stream != done {
		t.Errorf("%s: ack_floor.stream_seq %d, expected %d", name, info.AckFloor.Stream, done)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%s: num_redelivered %d, expected 0", name, info.NumRedelivered)
	}
}

// checkAPIError checks that err is a JetStream API error with error code
// want. The request argument names the request in failure messages.
func checkAPIError(t *testing.T, err error, want nats.ErrorCode, request string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, expected API error %d", request, want)
		return
	}
	var apiErr *nats.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("%s: error %v, expected API error %d", request, err, want)
		return
	}
	if apiErr.ErrorCode != want {
		t.Errorf("%s: API error %d %q, expected error code %d",
			request, apiErr.ErrorCode, apiErr.Description, want)
	}
}
