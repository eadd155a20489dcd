// SPDX-License-Identifier: Apache-2.0
// JetStream through nats.js's @nats-io/jetstream: streams, publish
// acknowledgements, de-duplication, message reads, pull and push consumers,
// acknowledgements and redelivery, a workqueue shared by two workers, and a
// restart that must keep streams, messages and a durable consumer's place.
// Each test starts its own server with -js and a fresh store directory, so
// the suite runs the same against nats-server and shoal.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import {
  AckPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { collect, connectTo, startServer } from "./server.mjs";

const storeDirs = [];
let server;
let nc;

function newStoreDir() {
  const dir = mkdtempSync(join(tmpdir(), "shoal-js-"));
  storeDirs.push(dir);
  return dir;
}

// A restart takes a new port. On the same port, shoal on io_uring reset or
// refused the first connections after a restart in about 4 of 10 runs,
// most likely because the dead server's listening socket stays in the
// port's SO_REUSEPORT group until the kernel tears its io_uring down.
async function startJetStream(storeDir = newStoreDir()) {
  server = await startServer({ args: ["-js", "-sd", storeDir] });
  nc = await connectTo(server);
  return { storeDir, jsm: await jetstreamManager(nc), js: jetstream(nc) };
}

afterEach(async () => {
  await nc?.close();
  nc = undefined;
  await server?.stop();
  server = undefined;
});

after(() => {
  for (const dir of storeDirs) rmSync(dir, { recursive: true, force: true });
});

// Resolves with the API error a promise rejects with.
async function apiError(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof JetStreamApiError, `not an API error: ${err}`);
    return err.apiError();
  }
  assert.fail("the request succeeded");
}

// Fetches up to max messages and returns them, waiting at most expires ms.
async function fetchAll(consumer, max, expires = 1000) {
  const out = [];
  const iter = await consumer.fetch({ max_messages: max, expires });
  for await (const m of iter) out.push(m);
  return out;
}

describe("jetstream streams", () => {
  test("create, info, names and delete", async () => {
    const { jsm } = await startJetStream();
    const info = await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
    assert.equal(info.config.name, "ORDERS");
    assert.deepEqual(info.config.subjects, ["orders.>"]);
    assert.equal(info.config.storage, StorageType.File);
    assert.equal(info.config.retention, RetentionPolicy.Limits);
    assert.equal(info.config.duplicate_window, 120_000_000_000);
    assert.equal(info.state.messages, 0);

    await jsm.streams.add({ name: "EVENTS", subjects: ["events.*"], storage: StorageType.Memory });
    const names = [];
    for await (const name of jsm.streams.names()) names.push(name);
    assert.deepEqual(names.sort(), ["EVENTS", "ORDERS"]);

    const account = await jsm.getAccountInfo();
    assert.equal(account.streams, 2);

    assert.equal(await jsm.streams.delete("EVENTS"), true);
    const err = await apiError(jsm.streams.info("EVENTS"));
    assert.equal(err.code, 404);
    assert.equal(err.err_code, 10059);
  });

  test("name in use and overlapping subjects", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "A", subjects: ["a.>"] });
    const inUse = await apiError(jsm.streams.add({ name: "A", subjects: ["b.>"] }));
    assert.equal(inUse.err_code, 10058);
    const overlap = await apiError(jsm.streams.add({ name: "B", subjects: ["a.b"] }));
    assert.equal(overlap.err_code, 10065);
    const same = await jsm.streams.add({ name: "A", subjects: ["a.>"] });
    assert.equal(same.config.name, "A");
  });

  test("publish acks, duplicates and expectations", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "T", subjects: ["t.*"] });
    const first = await js.publish("t.1", "one", { msgID: "id-1" });
    assert.equal(first.stream, "T");
    assert.equal(first.seq, 1);
    assert.equal(first.duplicate, false);
    const again = await js.publish("t.1", "one", { msgID: "id-1" });
    assert.equal(again.seq, 1);
    assert.equal(again.duplicate, true);
    const second = await js.publish("t.2", "two", { expect: { lastSequence: 1 } });
    assert.equal(second.seq, 2);
    const wrong = await apiError(js.publish("t.2", "x", { expect: { lastSequence: 1 } }));
    assert.equal(wrong.err_code, 10071);

    const info = await jsm.streams.info("T");
    assert.equal(info.state.messages, 2);
    assert.equal(info.state.first_seq, 1);
    assert.equal(info.state.last_seq, 2);
  });

  // Regression: publishes beyond the store's write buffers (4 MiB while a
  // write is in flight) were rejected with "Resource temporarily unavailable".
  test("burst of large publishes all stored", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "BURST", subjects: ["burst"] });
    const payload = new Uint8Array(32 * 1024);
    const count = 1000;
    const acks = await Promise.all(
      Array.from({ length: count }, () => js.publish("burst", payload, { timeout: 30_000 })),
    );
    const seqs = acks.map((a) => a.seq).sort((a, b) => a - b);
    assert.equal(seqs[0], 1);
    assert.equal(seqs[count - 1], count);
    assert.equal(new Set(seqs).size, count);
    assert.equal((await jsm.streams.info("BURST")).state.messages, count);
  });

  test("get message by sequence and last subject", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "G", subjects: ["g.*"] });
    await js.publish("g.a", "a1");
    await js.publish("g.b", "b1");
    await js.publish("g.a", "a2");
    const bySeq = await jsm.streams.getMessage("G", { seq: 2 });
    assert.equal(bySeq.subject, "g.b");
    assert.equal(bySeq.string(), "b1");
    const last = await jsm.streams.getMessage("G", { last_by_subj: "g.a" });
    assert.equal(last.seq, 3);
    assert.equal(last.string(), "a2");
  });

  test("update changes subjects and limits", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "U", subjects: ["u.a"] });
    await js.publish("u.a", "1");
    const updated = await jsm.streams.update("U", { subjects: ["u.a", "u.b"], max_msgs: 2 });
    assert.deepEqual(updated.config.subjects, ["u.a", "u.b"]);
    assert.equal(updated.config.max_msgs, 2);
    const ack = await js.publish("u.b", "2");
    assert.equal(ack.seq, 2);
    await js.publish("u.b", "3");
    const info = await jsm.streams.info("U");
    assert.equal(info.state.messages, 2);
    assert.equal(info.state.first_seq, 2);

    // Without a stream on u.a the publish meets no responders, which
    // nats.js reports as "jetstream is not enabled".
    await jsm.streams.update("U", { subjects: ["u.b"] });
    await assert.rejects(js.publish("u.a", "4"), /jetstream is not enabled|no responders/);
    assert.equal((await jsm.streams.info("U")).state.last_seq, 3);
  });

  test("max_age removes old messages", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "AGE", subjects: ["age"], max_age: 1_000_000_000 });
    await js.publish("age", "short-lived");
    assert.equal((await jsm.streams.info("AGE")).state.messages, 1);
    let messages = 1;
    for (let i = 0; i < 50 && messages > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      messages = (await jsm.streams.info("AGE")).state.messages;
    }
    assert.equal(messages, 0, "the message outlived max_age by 4 s");
  });

  test("memory stream keeps max_msgs", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "M", subjects: ["m"], storage: StorageType.Memory, max_msgs: 3 });
    for (let i = 1; i <= 5; i++) await js.publish("m", `v${i}`);
    const info = await jsm.streams.info("M");
    assert.equal(info.state.messages, 3);
    assert.equal(info.state.first_seq, 3);
    assert.equal(info.state.last_seq, 5);
    const purged = await jsm.streams.purge("M");
    assert.equal(purged.purged, 3);
  });
});

describe("jetstream consumers", () => {
  test("durable pull consumer fetch and ack", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "P", subjects: ["p.*"] });
    for (let i = 1; i <= 3; i++) await js.publish(`p.${i}`, `m${i}`);
    await jsm.consumers.add("P", { durable_name: "worker", ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get("P", "worker");

    const msgs = await fetchAll(consumer, 2);
    assert.deepEqual(msgs.map((m) => m.subject), ["p.1", "p.2"]);
    assert.deepEqual(msgs.map((m) => m.seq), [1, 2]);
    for (const m of msgs) await m.ackAck();

    const info = await consumer.info();
    assert.equal(info.delivered.stream_seq, 2);
    assert.equal(info.ack_floor.stream_seq, 2);
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 1);

    const rest = await fetchAll(consumer, 5);
    assert.deepEqual(rest.map((m) => m.string()), ["m3"]);
  });

  test("fetch stops at max_bytes", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "MB", subjects: ["mb"] });
    for (let i = 0; i < 5; i++) await js.publish("mb", "x".repeat(100));
    await jsm.consumers.add("MB", { durable_name: "d", ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get("MB", "d");
    // Each message costs its subject, ack subject and payload: about 150
    // bytes, so 250 bytes hold one.
    // The 409 status that ends the request surfaces as an error.
    const msgs = [];
    await assert.rejects(async () => {
      for await (const m of await consumer.fetch({ max_bytes: 250, expires: 1000 })) msgs.push(m);
    }, /message size exceeds maxbytes/);
    assert.deepEqual(msgs.map((m) => m.seq), [1]);
  });

  test("filtered consumer gets every matching message", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "FI", subjects: ["fi.*"] });
    for (let i = 0; i < 150; i++) await js.publish(i % 3 === 0 ? "fi.a" : "fi.b", `${i}`);
    await jsm.consumers.add("FI", {
      durable_name: "a",
      ack_policy: AckPolicy.Explicit,
      filter_subject: "fi.a",
    });
    const consumer = await js.consumers.get("FI", "a");
    const info = await consumer.info();
    assert.equal(info.num_pending, 50);
    const got = [];
    for (let round = 0; round < 5 && got.length < 50; round++) {
      for (const m of await fetchAll(consumer, 20)) {
        got.push(Number(m.string()));
        m.ack();
      }
    }
    assert.equal(got.length, 50);
    assert.ok(got.every((v) => v % 3 === 0), "a message outside the filter was delivered");
    assert.equal(got.at(-1), 147);
  });

  test("nak redelivers the message", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "N", subjects: ["n"] });
    await js.publish("n", "retry me");
    await jsm.consumers.add("N", { durable_name: "d", ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get("N", "d");
    const [first] = await fetchAll(consumer, 1);
    assert.equal(first.info.deliveryCount, 1);
    first.nak();
    const [second] = await fetchAll(consumer, 1, 3000);
    assert.ok(second, "no redelivery after -NAK");
    assert.equal(second.seq, 1);
    assert.equal(second.info.deliveryCount, 2);
    assert.equal(second.redelivered, true);
    await second.ackAck();
  });

  test("ack_wait expiry redelivers", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "W", subjects: ["w"] });
    await js.publish("w", "slow");
    await jsm.consumers.add("W", {
      durable_name: "d",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 1_000_000_000,
    });
    const consumer = await js.consumers.get("W", "d");
    const [first] = await fetchAll(consumer, 1);
    assert.equal(first.seq, 1);
    // Not acknowledged: after ack_wait the message comes again.
    const [again] = await fetchAll(consumer, 1, 5000);
    assert.ok(again, "no redelivery after ack_wait");
    assert.equal(again.seq, 1);
    assert.equal(again.info.deliveryCount, 2);
  });

  test("backoff sets the ack wait of each delivery", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "BO", subjects: ["bo"] });
    const info = await jsm.consumers.add("BO", {
      durable_name: "b",
      ack_policy: AckPolicy.Explicit,
      max_deliver: 5,
      backoff: [1_000_000_000, 2_000_000_000],
    });
    assert.deepEqual(info.config.backoff, [1_000_000_000, 2_000_000_000]);
    assert.equal(info.config.ack_wait, 1_000_000_000);
  });

  test("max_deliver stops redelivery", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "MD", subjects: ["md"] });
    await js.publish("md", "poison");
    await js.publish("md", "fine");
    await jsm.consumers.add("MD", {
      durable_name: "d",
      ack_policy: AckPolicy.Explicit,
      max_deliver: 2,
    });
    const consumer = await js.consumers.get("MD", "d");
    const counts = [];
    for (let round = 0; round < 5; round++) {
      for (const m of await fetchAll(consumer, 2)) {
        if (m.seq === 1) {
          counts.push(m.info.deliveryCount);
          m.nak();
        } else {
          await m.ackAck();
        }
      }
    }
    assert.deepEqual(counts, [1, 2]);
  });

  test("workqueue shared by two workers", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({
      name: "Q",
      subjects: ["jobs.*"],
      retention: RetentionPolicy.Workqueue,
    });
    const total = 20;
    for (let i = 0; i < total; i++) await js.publish(`jobs.${i % 4}`, `job-${i}`);
    await jsm.consumers.add("Q", { durable_name: "workers", ack_policy: AckPolicy.Explicit });
    const a = await js.consumers.get("Q", "workers");
    const b = await js.consumers.get("Q", "workers");
    const seen = [];
    for (let round = 0; round < 20 && seen.length < total; round++) {
      const batches = await Promise.all([fetchAll(a, 3), fetchAll(b, 3)]);
      for (const m of batches.flat()) {
        seen.push(m.string());
        await m.ackAck();
      }
    }
    assert.equal(seen.length, total);
    assert.equal(new Set(seen).size, total, "a job was delivered twice");
    const info = await jsm.streams.info("Q");
    assert.equal(info.state.messages, 0);
  });

  test("workqueue redelivers a dead worker's jobs", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "WD", subjects: ["wd.*"], retention: RetentionPolicy.Workqueue });
    const total = 12;
    for (let i = 0; i < total; i++) await js.publish(`wd.${i % 3}`, `job-${i}`);
    await jsm.consumers.add("WD", {
      durable_name: "workers",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 2_000_000_000,
    });

    // The first worker takes 4 jobs and its connection drops before it acks.
    const other = await connectTo(server);
    const dying = await jetstream(other).consumers.get("WD", "workers");
    const taken = await fetchAll(dying, 4);
    assert.equal(taken.length, 4);
    const lost = new Set(taken.map((m) => m.seq));
    await other.close();

    // The second worker gets every job, the 4 again after ack_wait. Its
    // fetches end within 1 s, before its own jobs' ack_wait.
    const worker = await js.consumers.get("WD", "workers");
    const done = new Map();
    for (let round = 0; round < 30 && done.size < total; round++) {
      for (const m of await fetchAll(worker, 5, 1000)) {
        assert.ok(!done.has(m.seq), `job ${m.seq} was processed twice`);
        done.set(m.seq, m.info.deliveryCount);
        await m.ackAck();
      }
    }
    assert.equal(done.size, total);
    for (const seq of lost) assert.equal(done.get(seq), 2, `job ${seq} was not redelivered once`);
    assert.equal((await jsm.streams.info("WD")).state.messages, 0);
  });

  test("interest stream keeps messages until every consumer acks", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "I", subjects: ["i.*"], retention: RetentionPolicy.Interest });
    await js.publish("i.1", "nobody listens");
    assert.equal((await jsm.streams.info("I")).state.messages, 0);

    await jsm.consumers.add("I", { durable_name: "all", ack_policy: AckPolicy.Explicit });
    await jsm.consumers.add("I", {
      durable_name: "twos",
      ack_policy: AckPolicy.Explicit,
      filter_subject: "i.2",
    });
    await js.publish("i.1", "one");
    await js.publish("i.2", "two");
    assert.equal((await jsm.streams.info("I")).state.messages, 2);

    const all = await js.consumers.get("I", "all");
    for (const m of await fetchAll(all, 2)) await m.ackAck();
    // i.1 had only "all" interested; i.2 still waits for "twos".
    assert.equal((await jsm.streams.info("I")).state.messages, 1);

    const twos = await js.consumers.get("I", "twos");
    const [two] = await fetchAll(twos, 1);
    assert.equal(two.subject, "i.2");
    await two.ackAck();
    assert.equal((await jsm.streams.info("I")).state.messages, 0);
  });

  test("push consumer delivers to its subject", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "PUSH", subjects: ["push.in"] });
    const inbox = collect(nc, "push.out");
    await nc.flush();
    await jsm.consumers.add("PUSH", {
      durable_name: "pusher",
      deliver_subject: "push.out",
      ack_policy: AckPolicy.None,
    });
    await js.publish("push.in", "hello");
    await js.publish("push.in", "world");
    const got = await inbox.waitFor(2);
    assert.deepEqual(got.map((m) => m.string()), ["hello", "world"]);
    assert.deepEqual(got.map((m) => m.subject), ["push.in", "push.in"]);
  });

  test("push consumer with deliver_group reaches one member", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "PQ", subjects: ["pq.in"] });
    const other = await connectTo(server);
    try {
      const a = collect(nc, "pq.out", { queue: "workers" });
      const b = collect(other, "pq.out", { queue: "workers" });
      await nc.flush();
      await other.flush();
      await jsm.consumers.add("PQ", {
        durable_name: "pq",
        deliver_subject: "pq.out",
        deliver_group: "workers",
        ack_policy: AckPolicy.None,
      });
      const total = 40;
      for (let i = 0; i < total; i++) await js.publish("pq.in", `m${i}`);
      const seen = () => [...a.messages, ...b.messages].map((m) => m.string());
      for (let i = 0; i < 50 && seen().length < total; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(seen().length, total);
      assert.equal(new Set(seen()).size, total, "a message reached two members");
    } finally {
      await other.close();
    }
  });

  test("consumer errors", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "E", subjects: ["e"] });
    const missing = await apiError(jsm.consumers.info("E", "nope"));
    assert.equal(missing.err_code, 10014);
    const noStream = await apiError(jsm.consumers.info("NOPE", "x"));
    assert.equal(noStream.err_code, 10059);
  });
});

// Raw API requests with their error objects as nats-server 2.9.10 sends
// them; [subject, body, code, err_code, description].
const BAD_REQUESTS = [
  ["$JS.API.STREAM.CREATE.S3", { name: "S4", subjects: ["c"] }, 400, 10056,
    "stream name in subject does not match request"],
  ["$JS.API.STREAM.CREATE.S3", "{bad", 400, 10025, "invalid JSON"],
  ["$JS.API.STREAM.CREATE.B1", { name: "B1", retention: "bogus" }, 400, 10025, "invalid JSON"],
  ["$JS.API.STREAM.CREATE.B2", { name: "B2", num_replicas: 3 }, 500, 10074,
    "replicas > 1 not supported in non-clustered mode"],
  ["$JS.API.STREAM.CREATE.B3", { name: "B3", subjects: ["b3.>.x"] }, 500, 10052, "invalid subject"],
  ["$JS.API.STREAM.CREATE.B6", { name: "B6", subjects: ["$JS.API.>"] }, 500, 10052,
    "subjects overlap with jetstream api"],
  ["$JS.API.STREAM.CREATE.B7", { name: "B7", max_age: -5 }, 500, 10052,
    "duplicates window can not be negative"],
  ["$JS.API.STREAM.CREATE.B8", { name: "B8", sealed: true }, 500, 10052,
    "stream configuration for create can not be sealed"],
  ["$JS.API.STREAM.INFO.NOPE", "", 404, 10059, "stream not found"],
  ["$JS.API.STREAM.UPDATE.NOPE", { name: "NOPE" }, 404, 10059, "stream not found"],
  ["$JS.API.STREAM.UPDATE.D", { name: "D", subjects: ["d.*"], storage: "memory" }, 500, 10052,
    "stream configuration update can not change storage type"],
  ["$JS.API.STREAM.MSG.GET.D", {}, 400, 10003, "bad request"],
  ["$JS.API.STREAM.MSG.GET.D", { seq: 9 }, 404, 10037, "no message found"],
  ["$JS.API.STREAM.PURGE.D", "", 500, 10110, "stream purge not permitted"],
  ["$JS.API.STREAM.MSG.DELETE.D", { seq: 1 }, 500, 10057, "message delete not permitted"],
  ["$JS.API.STREAM.PURGE.SE", "", 400, 10109, "invalid operation on sealed stream"],
  ["$JS.API.STREAM.MSG.DELETE.SE", { seq: 1 }, 400, 10109, "invalid operation on sealed stream"],
  ["$JS.API.STREAM.MSG.DELETE.WQ", { seq: 99 }, 500, 10057, "stream store EOF"],
  ["$JS.API.STREAM.MSG.DELETE.MD", { seq: 1 }, 400, 10043, "sequence 1 not found"],
  ["$JS.API.STREAM.MSG.DELETE.MD", { seq: 3 }, 400, 10043, "sequence 3 not found"],
  ["$JS.API.STREAM.MSG.DELETE.MD", { seq: 99 }, 400, 10043, "sequence 99 not found"],
  ["$JS.API.STREAM.MSG.DELETE.FD", { seq: 3 }, 400, 10043, "sequence 3 not found"],
  ["$JS.API.STREAM.MSG.DELETE.FD", { seq: 1 }, 500, 10057, "no message found"],
  ["$JS.API.CONSUMER.INFO.D.nope", "", 404, 10014, "consumer not found"],
  ["$JS.API.CONSUMER.CREATE.D", { stream_name: "D", config: { description: "x".repeat(4097), ack_policy: "explicit" } },
    400, 10107, "consumer description is too long, maximum allowed is 4096"],
  ["$JS.API.CONSUMER.CREATE.D", { stream_name: "D", config: { deliver_subject: "fc", flow_control: true } },
    400, 10108, "consumer with flow control also needs heartbeats"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.WQ.b", { stream_name: "WQ", config: { durable_name: "b", ack_policy: "explicit" } },
    400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.WQ.c",
    { stream_name: "WQ", config: { durable_name: "c", ack_policy: "explicit", filter_subject: "wq.x" } },
    400, 10100, "filtered consumer not unique on workqueue stream"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.WQ.d",
    { stream_name: "WQ", config: { durable_name: "d", ack_policy: "none", filter_subject: "wq.y" } },
    400, 10084, "consumer in pull mode requires ack policy"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.D.f", { stream_name: "D", config: { durable_name: "g" } },
    400, 10017, "consumer name in subject does not match durable name in request"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.D.bo",
    { stream_name: "D", config: { durable_name: "bo", ack_policy: "explicit", backoff: [1e9, 2e9] } },
    400, 10116, "max deliver is required to be > length of backoff values"],
  ["$JS.API.CONSUMER.CREATE.D", { stream_name: "D", config: { filter_subject: "zz", ack_policy: "explicit" } },
    400, 10093, "consumer filter subject is not a valid subset of the interest subjects"],
  ["$JS.API.CONSUMER.CREATE.D",
    { stream_name: "D", config: { deliver_policy: "by_start_sequence", ack_policy: "explicit" } },
    400, 10094, "consumer delivery policy is deliver by start sequence, but optional start sequence is not set"],
];

// Sends a raw API request and returns the parsed reply.
async function apiRequest(subject, body) {
  return (await nc.request(subject, JSON.stringify(body))).json();
}

describe("jetstream consumer settings", () => {
  test("replay_policy and mem_storage kept", async () => {
    await startJetStream();
    await apiRequest("$JS.API.STREAM.CREATE.R", { name: "R", subjects: ["r"] });
    const created = await apiRequest("$JS.API.CONSUMER.DURABLE.CREATE.R.orig", {
      stream_name: "R",
      config: { durable_name: "orig", ack_policy: "explicit", replay_policy: "original", mem_storage: true },
    });
    assert.equal(created.error, undefined, JSON.stringify(created.error));
    assert.equal(created.config.replay_policy, "original");
    assert.equal(created.config.mem_storage, true);
    const info = await apiRequest("$JS.API.CONSUMER.INFO.R.orig", {});
    assert.equal(info.config.replay_policy, "original");
    assert.equal(info.config.mem_storage, true);
  });

  test("pull over consumer limits gets 409", async () => {
    await startJetStream();
    await apiRequest("$JS.API.STREAM.CREATE.L", { name: "L", subjects: ["l"] });
    await nc.request("l", "one");
    const created = await apiRequest("$JS.API.CONSUMER.DURABLE.CREATE.L.lim", {
      stream_name: "L",
      config: { durable_name: "lim", ack_policy: "explicit", max_batch: 2, max_expires: 1500000000, max_bytes: 1000 },
    });
    assert.equal(created.error, undefined, JSON.stringify(created.error));
    const cases = [
      [{ batch: 3, expires: 500000000 }, "Exceeded MaxRequestBatch of 2"],
      [{ batch: 1, expires: 5000000000 }, "Exceeded MaxRequestExpires of 1.5s"],
      [{ batch: 1, expires: 500000000, max_bytes: 2000 }, "Exceeded MaxRequestMaxBytes of 1000"],
    ];
    for (const [body, description] of cases) {
      const reply = await nc.request("$JS.API.CONSUMER.MSG.NEXT.L.lim", JSON.stringify(body));
      assert.equal(reply.headers?.code, 409, JSON.stringify(body));
      assert.equal(reply.headers?.description, description);
    }
  });

  test("headers_only sends Nats-Msg-Size", async () => {
    await startJetStream();
    await apiRequest("$JS.API.STREAM.CREATE.H", { name: "H", subjects: ["h"] });
    await nc.request("h", "hello");
    const inbox = collect(nc, "h.out");
    await nc.flush();
    const created = await apiRequest("$JS.API.CONSUMER.DURABLE.CREATE.H.ho", {
      stream_name: "H",
      config: { durable_name: "ho", deliver_subject: "h.out", ack_policy: "none", headers_only: true },
    });
    assert.equal(created.error, undefined, JSON.stringify(created.error));
    const [msg] = await inbox.waitFor(1);
    assert.equal(msg.data.length, 0);
    assert.equal(msg.headers?.get("Nats-Msg-Size"), "5");
  });
});

describe("jetstream ephemeral consumers", () => {
  test("push consumer without interest expires", async () => {
    await startJetStream();
    await apiRequest("$JS.API.STREAM.CREATE.EP", { name: "EP", subjects: ["ep"] });
    const other = await connectTo(server);
    try {
      other.subscribe("ep.out");
      await other.flush();
      const created = await apiRequest("$JS.API.CONSUMER.CREATE.EP", {
        stream_name: "EP",
        config: { deliver_subject: "ep.out", ack_policy: "explicit", inactive_threshold: 500000000 },
      });
      assert.equal(created.error, undefined, JSON.stringify(created.error));
      const info = await apiRequest(`$JS.API.CONSUMER.INFO.EP.${created.name}`, {});
      assert.equal(info.error, undefined, "consumer gone while its subscriber is connected");
      await other.close();
      // Polls for up to 10 s: nats-server removes it after the 0.5 s threshold.
      let reply;
      for (let i = 0; i < 100; i++) {
        reply = await apiRequest(`$JS.API.CONSUMER.INFO.EP.${created.name}`, {});
        if (reply.error !== undefined) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(reply.error, { code: 404, err_code: 10014, description: "consumer not found" });
    } finally {
      await other.close();
    }
  });
});

describe("jetstream republish", () => {
  test("stored messages republished with headers", async () => {
    await startJetStream();
    const out = collect(nc, "rp.>");
    await nc.flush();
    const streams = [
      { name: "R", subjects: ["r.>"], republish: { src: "r.>", dest: "rp.>" } },
      { name: "R2", subjects: ["x.*.*"], republish: { src: "x.*.*", dest: "rp.x.$2.$1" } },
      { name: "R3", subjects: ["y"], republish: { src: "y", dest: "rp.y", headers_only: true } },
    ];
    for (const config of streams) {
      const reply = await apiRequest(`$JS.API.STREAM.CREATE.${config.name}`, config);
      assert.equal(reply.error, undefined, JSON.stringify(reply.error));
      assert.deepEqual(reply.config.republish, config.republish);
    }
    const h = headers();
    h.set("Foo", "bar");
    await nc.request("r.a", "one", { headers: h });
    await nc.request("r.b", "two");
    await nc.request("r.a", "three");
    await nc.request("x.a.b", "four");
    await nc.request("y", "five");
    const got = await out.waitFor(5);
    const summary = got.map((m) => [
      m.subject,
      m.string(),
      m.headers?.get("Foo") ?? "",
      m.headers?.get("Nats-Stream"),
      m.headers?.get("Nats-Subject"),
      m.headers?.get("Nats-Sequence"),
      m.headers?.get("Nats-Last-Sequence"),
      m.headers?.get("Nats-Msg-Size") ?? "",
    ]);
    assert.deepEqual(summary, [
      ["rp.a", "one", "bar", "R", "r.a", "1", "0", ""],
      ["rp.b", "two", "", "R", "r.b", "2", "0", ""],
      ["rp.a", "three", "", "R", "r.a", "3", "1", ""],
      ["rp.x.b.a", "four", "", "R2", "x.a.b", "1", "0", ""],
      ["rp.y", "", "", "R3", "y", "1", "0", "4"],
    ]);
  });

  test("invalid republish rejected", async () => {
    await startJetStream();
    const cases = [
      [{ name: "B1", subjects: ["z.>"], republish: { src: "z.>", dest: "z.>" } },
        "stream configuration for republish destination forms a cycle"],
      [{ name: "B2", subjects: ["w.>"], republish: { src: "q.>", dest: "rp.>" } },
        "stream configuration for republish source is not valid subset of subjects"],
      [{ name: "B3", subjects: ["t.*"], republish: { src: "t.*", dest: "rp.t" } },
        "stream configuration for republish not valid"],
      [{ name: "B4", subjects: ["s.*"], republish: { src: "s.*", dest: "rp.s.$3" } },
        "stream configuration for republish not valid"],
      [{ name: "B5", subjects: ["y"], republish: { dest: "rp.y" } },
        "stream configuration for republish not valid"],
    ];
    for (const [config, description] of cases) {
      const reply = await apiRequest(`$JS.API.STREAM.CREATE.${config.name}`, config);
      assert.deepEqual(reply.error, { code: 500, err_code: 10052, description }, config.name);
    }
  });
});

describe("jetstream stream state", () => {
  test("bytes counted as nats-server does", async () => {
    await startJetStream();
    await apiRequest("$JS.API.STREAM.CREATE.M", { name: "M", subjects: ["m.a"], storage: "memory" });
    await apiRequest("$JS.API.STREAM.CREATE.F", { name: "F", subjects: ["f"] });
    for (let i = 0; i < 3; i++) {
      await nc.request("m.a", "hello");
      await nc.request("f", "hello");
    }
    // Memory: subject + payload + 16 per message; file: the same + 30.
    assert.equal((await apiRequest("$JS.API.STREAM.INFO.M", {})).state.bytes, 3 * (3 + 5 + 16));
    assert.equal((await apiRequest("$JS.API.STREAM.INFO.F", {})).state.bytes, 3 * (1 + 5 + 30));
  });
});

describe("jetstream errors", () => {
  test("bad requests get nats-server's errors", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "D", subjects: ["d.*"], deny_purge: true, deny_delete: true });
    await jsm.streams.add({ name: "WQ", subjects: ["wq.*"], retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add("WQ", { durable_name: "a", ack_policy: AckPolicy.Explicit });
    await jsm.streams.add({ name: "SE", subjects: ["se"] });
    await nc.request("se", "kept");
    await jsm.streams.update("SE", { subjects: ["se"], sealed: true });
    // MD (memory) and FD (file) hold sequences 1 to 4 with 1 and 3 deleted.
    for (const [name, storage] of [["MD", StorageType.Memory], ["FD", StorageType.File]]) {
      await jsm.streams.add({ name, subjects: [name.toLowerCase()], storage });
      for (let i = 0; i < 4; i++) await nc.request(name.toLowerCase(), "x");
      await jsm.streams.deleteMessage(name, 1, false);
      await jsm.streams.deleteMessage(name, 3, false);
    }
    for (const [subject, body, code, errCode, description] of BAD_REQUESTS) {
      const payload = typeof body === "string" ? body : JSON.stringify(body);
      const reply = (await nc.request(subject, payload)).json();
      assert.deepEqual(reply.error, { code, err_code: errCode, description }, `${subject} ${payload}`);
    }
  });

  test("publish errors", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "E", subjects: ["e.*"], max_msg_size: 64 });
    await js.publish("e.1", "x", { msgID: "a" });
    const cases = [
      [{ expect: { streamName: "Q" } }, "x", 10060, "expected stream does not match"],
      [{ expect: { lastMsgID: "zz" } }, "x", 10070, "wrong last msg ID: a"],
      [{ expect: { lastSubjectSequence: 9 } }, "x", 10071, "wrong last sequence: 1"],
      [{}, "x".repeat(100), 10054, "message size exceeds maximum allowed"],
    ];
    for (const [options, data, errCode, description] of cases) {
      const err = await apiError(js.publish("e.1", data, options));
      assert.equal(err.err_code, errCode, `${description}: got ${JSON.stringify(err)}`);
      assert.equal(err.description, description);
    }
  });
});

describe("jetstream limits", () => {
  test("max_file_store rejects publishes once used up", async () => {
    const storeDir = newStoreDir();
    const config = join(storeDir, "server.conf");
    writeFileSync(config, `jetstream {\n  store_dir: "${storeDir}"\n  max_file_store: 10000\n}\n`);
    server = await startServer({ args: ["-c", config] });
    nc = await connectTo(server);
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const tooBig = await apiError(jsm.streams.add({ name: "BIG", subjects: ["big"], max_bytes: 20000 }));
    assert.equal(tooBig.err_code, 10047);
    await jsm.streams.add({ name: "F", subjects: ["f"] });
    const payload = "x".repeat(3000);
    const accepted = [];
    let rejected;
    for (let i = 0; i < 10 && !rejected; i++) {
      try {
        accepted.push((await js.publish("f", payload)).seq);
      } catch (err) {
        rejected = err.apiError();
      }
    }
    assert.deepEqual(accepted, [1, 2, 3, 4]);
    assert.equal(rejected?.err_code, 10023);
    assert.equal(rejected?.description, "insufficient resources");
  });
});

describe("jetstream restart", () => {
  test("stream, messages and durable consumer survive", async () => {
    const first = await startJetStream();
    await first.jsm.streams.add({ name: "R", subjects: ["r.*"] });
    for (let i = 1; i <= 4; i++) await first.js.publish(`r.${i}`, `v${i}`, { msgID: `m${i}` });
    await first.jsm.consumers.add("R", { durable_name: "keep", ack_policy: AckPolicy.Explicit });
    const consumer = await first.js.consumers.get("R", "keep");
    const early = await fetchAll(consumer, 2);
    assert.deepEqual(early.map((m) => m.seq), [1, 2]);
    for (const m of early) await m.ackAck();

    await nc.close();
    await server.stop();
    const { jsm, js } = await startJetStream(first.storeDir);

    const info = await jsm.streams.info("R");
    assert.equal(info.state.messages, 4);
    assert.equal(info.state.last_seq, 4);
    const msg = await jsm.streams.getMessage("R", { seq: 3 });
    assert.equal(msg.string(), "v3");

    // The duplicate window still contains ids stored before the restart.
    const dup = await js.publish("r.1", "v1", { msgID: "m1" });
    assert.equal(dup.duplicate, true);
    assert.equal(dup.seq, 1);

    const resumed = await js.consumers.get("R", "keep");
    const rest = await fetchAll(resumed, 5);
    assert.deepEqual(rest.map((m) => m.seq), [3, 4]);
  });

  test("acknowledged messages survive kill -9", async () => {
    const first = await startJetStream();
    await first.jsm.streams.add({ name: "K", subjects: ["k.*"] });
    const total = 200;
    const acks = await Promise.all(
      Array.from({ length: total }, (_, i) => first.js.publish(`k.${i % 7}`, `v${i}`)),
    );
    assert.equal(new Set(acks.map((a) => a.seq)).size, total);

    process.kill(server.pid, "SIGKILL");
    await server.exited;
    await nc.close().catch(() => {});
    const { jsm } = await startJetStream(first.storeDir);

    const info = await jsm.streams.info("K");
    assert.equal(info.state.messages, total);
    assert.equal(info.state.last_seq, total);
    const last = await jsm.streams.getMessage("K", { seq: total });
    assert.match(last.string(), /^v\d+$/);
  });

  test("unacknowledged message comes again after restart", async () => {
    const first = await startJetStream();
    await first.jsm.streams.add({ name: "U", subjects: ["u"] });
    await first.js.publish("u", "first");
    await first.js.publish("u", "second");
    await first.jsm.consumers.add("U", {
      durable_name: "slow",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 1_000_000_000,
    });
    const consumer = await first.js.consumers.get("U", "slow");
    const [acked, dropped] = await fetchAll(consumer, 2);
    await acked.ackAck();
    assert.equal(dropped.seq, 2);

    await nc.close();
    await server.stop();
    const { js } = await startJetStream(first.storeDir);

    const resumed = await js.consumers.get("U", "slow");
    const info = await resumed.info();
    assert.equal(info.ack_floor.stream_seq, 1);
    assert.equal(info.num_ack_pending, 1);
    const [again] = await fetchAll(resumed, 1, 5000);
    assert.ok(again, "the unacknowledged message did not come again");
    assert.equal(again.seq, 2);
    assert.equal(again.info.deliveryCount, 2);
  });
});
