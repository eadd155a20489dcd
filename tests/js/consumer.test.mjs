// SPDX-License-Identifier: Apache-2.0
// JetStream consumer behaviour that needs more than a request and a reply.
// The tests cover push flow control (requests, the stall and the resume),
// idle heartbeats during a stall and of a filtered consumer, replay_policy
// "original", and exact pending counts of a filtered consumer on a large
// stream. The last one restarts a last_per_subject consumer before it
// delivered its starting messages, and one kills the server right after
// confirmed acks and creates. Each test starts its
// own server with -js and a fresh store directory, so the suite runs the
// same against nats-server and shoal.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import { AckPolicy, DeliverPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { collect, connectTo, serverCommand, startServer, within } from "./server.mjs";

const storeDirs = [];
let server;
let nc;

function newStoreDir() {
  const dir = mkdtempSync(join(tmpdir(), "shoal-js-consumer-"));
  storeDirs.push(dir);
  return dir;
}

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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const NS_PER_MS = 1_000_000;

// Polls check() every 20 ms until it returns a truthy value, for at most
// ms milliseconds, and returns that value (or the last falsy one).
async function poll(check, ms = 10_000) {
  const deadline = Date.now() + ms;
  let value = await check();
  while (!value && Date.now() < deadline) {
    await sleep(20);
    value = await check();
  }
  return value;
}

// Publishes count messages with acknowledgements, 500 in flight at most.
async function publishMany(js, count, subjectOf, payload) {
  for (let start = 0; start < count; start += 500) {
    const end = Math.min(count, start + 500);
    const acks = [];
    for (let i = start; i < end; i++) acks.push(js.publish(subjectOf(i), payload));
    await Promise.all(acks);
  }
}

const isStatus = (m, code, description) =>
  m.headers?.code === code && m.headers?.description === description;
const isFlowControl = (m) => isStatus(m, 100, "FlowControl Request");
const isHeartbeat = (m) => isStatus(m, 100, "Idle Heartbeat");
const isData = (m) => m.headers?.code === undefined || m.headers.code === 0;

describe("jetstream push flow control", () => {
  test("nats.js push consumer gets every message", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "FC", subjects: ["fc.in"], storage: StorageType.Memory });
    await jsm.consumers.add("FC", {
      durable_name: "fc",
      deliver_subject: "fc.out",
      ack_policy: AckPolicy.None,
      flow_control: true,
      idle_heartbeat: 1000 * NS_PER_MS,
    });
    // nats.js refuses a consumer whose subject has a subscriber when it
    // reads the consumer's info, so the raw subscription that counts the
    // requests comes after that, and both come before the first message.
    const consumer = await js.consumers.getPushConsumer("FC", "fc");
    const raw = collect(nc, "fc.out");
    const messages = await consumer.consume();
    let answered = 0;
    (async () => {
      for await (const s of messages.status()) if (s.type === "flow_control") answered++;
    })();
    await nc.flush();

    const total = 5000;
    let received = 0;
    let lastSeq = 0;
    const consumed = (async () => {
      for await (const m of messages) {
        received++;
        lastSeq = m.seq;
        if (received === total) break;
      }
    })();
    // 512-byte payloads make about 2.9 MB of deliveries. nats-server 2.9
    // sends a flow control request once half of its first 2 MiB window is out.
    await publishMany(js, total, () => "fc.in", new Uint8Array(512).fill(97));
    await within(consumed, () => `${total} messages through the push consumer (have ${received})`, 30_000);
    assert.equal(received, total);
    assert.equal(lastSeq, total);

    const requests = raw.messages.filter(isFlowControl);
    assert.ok(requests.length >= 1, "no flow control request was sent");
    for (const r of requests) assert.match(r.reply, /^\$JS\.FC\.FC\.fc\.\S+$/);
    assert.equal(raw.messages.filter(isData).length, total);
    assert.ok(answered >= 1, "nats.js answered no flow control request");
  });

  test("unanswered request stalls delivery until answered", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "FS", subjects: ["fs.in"], storage: StorageType.Memory });
    const total = 5000;
    await publishMany(js, total, () => "fs.in", new Uint8Array(512).fill(98));

    const raw = collect(nc, "fs.out");
    await nc.flush();
    await jsm.consumers.add("FS", {
      durable_name: "fs",
      deliver_subject: "fs.out",
      ack_policy: AckPolicy.None,
      flow_control: true,
      idle_heartbeat: 300 * NS_PER_MS,
    });

    // No client responds to the first request, so the consumer stops once
    // the window is full, and its idle heartbeats name the pending request.
    const request = await poll(() => raw.messages.find(isFlowControl));
    assert.ok(request, "no flow control request was sent");
    const stalled = await poll(() =>
      raw.messages.find((m) => isHeartbeat(m) && m.headers.get("Nats-Consumer-Stalled") !== ""),
    );
    assert.ok(stalled, "no idle heartbeat with Nats-Consumer-Stalled arrived");
    assert.equal(stalled.headers.get("Nats-Consumer-Stalled"), request.reply);
    const dataBefore = raw.messages.filter(isData);
    assert.ok(dataBefore.length < total, "every message came without an answer");
    const last = dataBefore[dataBefore.length - 1];
    assert.equal(stalled.headers.get("Nats-Last-Consumer"), String(dataBefore.length));
    // The ack reply is $JS.ACK.<stream>.<consumer>.<deliveries>.<stream seq>...
    assert.equal(stalled.headers.get("Nats-Last-Stream"), last.reply.split(".")[5]);

    // A response to every request resumes delivery up to the last message.
    const answered = new Set();
    const done = await poll(() => {
      for (const m of raw.messages) {
        if (isFlowControl(m) && !answered.has(m.reply)) {
          answered.add(m.reply);
          nc.publish(m.reply);
        }
      }
      return raw.messages.filter(isData).length === total;
    }, 20_000);
    assert.ok(done, `delivery did not resume (${raw.messages.filter(isData).length} of ${total})`);
    assert.ok(answered.size >= 1);
  });
});

describe("jetstream push idle heartbeats", () => {
  test("filtered consumer reports last sequences", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "HB", subjects: ["hb.*"] });
    for (const subject of ["hb.a", "hb.a", "hb.b", "hb.b", "hb.a", "hb.b"]) await js.publish(subject, "x");
    const raw = collect(nc, "out.hb");
    await nc.flush();
    await jsm.consumers.add("HB", {
      durable_name: "hb",
      deliver_subject: "out.hb",
      ack_policy: AckPolicy.Explicit,
      filter_subject: "hb.a",
      idle_heartbeat: 200 * NS_PER_MS,
    });
    // Three messages match; the heartbeat reports the stream's last
    // sequence, past the hb.b message after the last match.
    const first = await poll(() => raw.messages.find(isHeartbeat));
    assert.ok(first, "no idle heartbeat arrived");
    assert.equal(raw.messages.filter(isData).length, 3);
    assert.equal(first.headers.get("Nats-Last-Consumer"), "3");
    assert.equal(first.headers.get("Nats-Last-Stream"), "6");
    assert.equal(first.headers.get("Nats-Consumer-Stalled"), "");

    // Messages the filter skips move the reported stream sequence too.
    await js.publish("hb.b", "x");
    await js.publish("hb.b", "x");
    const later = await poll(() =>
      raw.messages.find((m) => isHeartbeat(m) && m.headers.get("Nats-Last-Stream") === "8"),
    );
    assert.ok(later, "no heartbeat reported stream sequence 8");
    assert.equal(later.headers.get("Nats-Last-Consumer"), "3");
  });
});

describe("jetstream replay policy", () => {
  test("original keeps the gaps between messages", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "RP", subjects: ["rp.in"], storage: StorageType.Memory });
    for (let i = 0; i < 3; i++) {
      if (i > 0) await sleep(300);
      await js.publish("rp.in", `m${i}`);
    }

    const arrivals = [];
    nc.subscribe("rp.out", {
      callback: (err, msg) => {
        if (!err && isData(msg)) arrivals.push({ at: performance.now(), data: msg.string() });
      },
    });
    await nc.flush();
    await jsm.consumers.add("RP", {
      durable_name: "rp",
      deliver_subject: "rp.out",
      ack_policy: AckPolicy.None,
      replay_policy: "original",
    });
    assert.ok(await poll(() => arrivals.length >= 3), `have ${arrivals.length} of 3 messages`);
    assert.deepEqual(arrivals.map((a) => a.data), ["m0", "m1", "m2"]);
    for (let i = 1; i < 3; i++) {
      const gap = arrivals[i].at - arrivals[i - 1].at;
      assert.ok(gap >= 250, `message ${i} came ${gap.toFixed(0)} ms after the one before`);
    }

    // Once caught up, a new message comes without waiting for its gap.
    await js.publish("rp.in", "m3");
    assert.ok(await poll(() => arrivals.length >= 4), "the new message did not come");
    assert.equal(arrivals[3].data, "m3");
  });
});

describe("jetstream filtered pending", () => {
  test("num_pending exact past 100000 messages", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "NP", subjects: ["np.>"], storage: StorageType.Memory });
    // Every tenth message goes to np.b, the others to np.a.
    const total = 112_000;
    const onA = total - total / 10;
    const payload = new Uint8Array(8);
    for (let i = 0; i < total; i++) nc.publish(i % 10 === 0 ? "np.b" : "np.a", payload);
    await nc.flush();
    const stored = await poll(async () => (await jsm.streams.info("NP")).state.messages === total);
    assert.ok(stored, "not every message was stored");

    await jsm.consumers.add("NP", {
      durable_name: "pa",
      ack_policy: AckPolicy.Explicit,
      filter_subject: "np.a",
    });
    const info = await jsm.consumers.info("NP", "pa");
    assert.equal(info.num_pending, onA);

    const js = jetstream(nc);
    const consumer = await js.consumers.get("NP", "pa");
    const got = [];
    const iter = await consumer.fetch({ max_messages: 5, expires: 2000 });
    for await (const m of iter) got.push(m);
    assert.equal(got.length, 5);
    assert.deepEqual(got.map((m) => m.info.pending), [onA - 1, onA - 2, onA - 3, onA - 4, onA - 5]);
    const after = await jsm.consumers.info("NP", "pa");
    assert.equal(after.num_pending, onA - 5);
    assert.equal(after.num_ack_pending, 5);

    // np.* is a wildcard filter that does not cover np.>.
    const wide = await jsm.consumers.add("NP", {
      durable_name: "pw",
      ack_policy: AckPolicy.Explicit,
      filter_subject: "np.*",
      opt_start_seq: 100_001,
      deliver_policy: DeliverPolicy.StartSequence,
    });
    assert.equal(wide.num_pending, total - 100_000);
  });
});

describe("jetstream last_per_subject restart", () => {
  test("durable consumer resumes its starting messages", async () => {
    const first = await startJetStream();
    await first.jsm.streams.add({ name: "LP", subjects: ["lp.*"] });
    // The last message of each subject: lp.a m1 (seq 1), lp.b m3 (seq 3),
    // lp.c m4 (seq 4), lp.d m6 (seq 6). Later writes replaced m2 and m5.
    const writes = [
      ["lp.a", "m1"],
      ["lp.b", "m2"],
      ["lp.b", "m3"],
      ["lp.c", "m4"],
      ["lp.d", "m5"],
      ["lp.d", "m6"],
    ];
    for (const [subject, data] of writes) await first.js.publish(subject, data);
    await first.jsm.consumers.add("LP", {
      durable_name: "lps",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.LastPerSubject,
      filter_subject: "lp.*",
    });
    const consumer = await first.js.consumers.get("LP", "lps");
    const early = [];
    for await (const m of await consumer.fetch({ max_messages: 1, expires: 2000 })) early.push(m);
    assert.deepEqual(early.map((m) => m.string()), ["m1"]);
    await early[0].ackAck();

    await nc.close();
    await server.stop();
    const { js } = await startJetStream(first.storeDir);

    const resumed = await js.consumers.get("LP", "lps");
    const rest = [];
    for await (const m of await resumed.fetch({ max_messages: 10, expires: 2000 })) rest.push(m);
    const data = rest.map((m) => m.string());
    // nats-server 2.9 resumes after the last delivered sequence, so it also
    // sends the replaced m2 and m5; the last value of every subject must come.
    for (const wanted of ["m3", "m4", "m6"]) assert.ok(data.includes(wanted), `${wanted} missing from ${data}`);
    assert.ok(!data.includes("m1"), "the acknowledged message came again");
    assert.ok(rest.every((m) => m.seq > 1));
  });
});

describe("jetstream pull batches", () => {
  test("batch larger than one delivery run", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "PB", subjects: ["pb"], storage: StorageType.Memory });
    await publishMany(js, 2000, () => "pb", "x");
    await jsm.consumers.add("PB", { durable_name: "p", ack_policy: AckPolicy.None });
    const consumer = await js.consumers.get("PB", "p");
    const got = [];
    for await (const m of await consumer.fetch({ max_messages: 1000, expires: 5000 })) got.push(m.seq);
    assert.equal(got.length, 1000);
    assert.equal(got[999], 1000);

    // A no_wait request ends with a 404 only once nothing is left to send.
    const inbox = collect(nc, "pb.inbox");
    await nc.flush();
    nc.publish("$JS.API.CONSUMER.MSG.NEXT.PB.p", JSON.stringify({ batch: 600, no_wait: true }), {
      reply: "pb.inbox",
    });
    await inbox.waitFor(600);
    assert.ok(inbox.messages.slice(0, 600).every(isData), "a status came before the 600th message");
  });
});

describe("jetstream consumer checks", () => {
  async function createError(jsm, stream, config) {
    try {
      await jsm.consumers.add(stream, config);
    } catch (err) {
      return err.apiError?.();
    }
    assert.fail("the consumer was created");
  }

  test("deliver cycle and missing filter rejected", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "CK", subjects: ["ck.*"] });
    const cycle = await createError(jsm, "CK", {
      durable_name: "loop",
      deliver_subject: "ck.out",
      ack_policy: AckPolicy.None,
    });
    assert.deepEqual(cycle, { code: 400, err_code: 10081, description: "consumer deliver subject forms a cycle" });
    const unfiltered = await createError(jsm, "CK", {
      durable_name: "lps",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    assert.deepEqual(unfiltered, {
      code: 400,
      err_code: 10094,
      description: "consumer delivery policy is deliver last per subject, but optional filter subject is not set",
    });
  });

  test("wildcard and invalid deliver subjects rejected", async () => {
    const { jsm } = await startJetStream();
    await jsm.streams.add({ name: "DS", subjects: ["ds.*"] });
    const wildcard = await createError(jsm, "DS", { durable_name: "w", deliver_subject: "out.*" });
    assert.deepEqual(wildcard, { code: 400, err_code: 10079, description: "consumer deliver subject has wildcards" });
    const tail = await createError(jsm, "DS", { durable_name: "t", deliver_subject: "out.>" });
    assert.equal(tail.err_code, 10079);
    const invalid = await createError(jsm, "DS", { durable_name: "i", deliver_subject: "out..x" });
    assert.deepEqual(invalid, { code: 400, err_code: 10112, description: "invalid push consumer deliver subject" });
  });
});

describe("jetstream consumer files", () => {
  // Kills the server, restarts it on the same store and returns the new
  // manager.
  async function killAndRestart(storeDir) {
    process.kill(server.pid, "SIGKILL");
    await server.exited;
    await nc.close().catch(() => {});
    return (await startJetStream(storeDir)).jsm;
  }

  test("created durables survive kill -9", async () => {
    const first = await startJetStream();
    await first.jsm.streams.add({ name: "KC", subjects: ["kc"] });
    await first.jsm.consumers.add("KC", { durable_name: "pull", ack_policy: AckPolicy.Explicit });
    await first.jsm.consumers.add("KC", {
      durable_name: "push",
      deliver_subject: "kc.out",
      ack_policy: AckPolicy.None,
    });

    const jsm = await killAndRestart(first.storeDir);
    const names = [];
    for await (const info of jsm.consumers.list("KC")) names.push(info.name);
    assert.deepEqual(names.sort(), ["pull", "push"]);
  });

  // nats-server 2.9.10 confirms an ack before it writes the consumer's
  // state: after kill -9 its ack floor was back at 0.
  const natsServer = serverCommand().binary.endsWith("/nats-server");
  test("confirmed acks survive kill -9", { skip: natsServer && "nats-server writes acks after confirming them" }, async () => {
    const first = await startJetStream();
    await first.jsm.streams.add({ name: "KS", subjects: ["ks"] });
    for (let i = 1; i <= 5; i++) await first.js.publish("ks", `m${i}`);
    await first.jsm.consumers.add("KS", { durable_name: "kept", ack_policy: AckPolicy.Explicit });
    const consumer = await first.js.consumers.get("KS", "kept");
    const got = [];
    for await (const m of await consumer.fetch({ max_messages: 3, expires: 2000 })) got.push(m);
    assert.deepEqual(got.map((m) => m.seq), [1, 2, 3]);
    // Confirmed acks of 1 and 2, while 3 stays unacknowledged.
    assert.equal(await got[0].ackAck(), true);
    assert.equal(await got[1].ackAck(), true);

    const jsm = await killAndRestart(first.storeDir);
    const info = await jsm.consumers.info("KS", "kept");
    assert.equal(info.ack_floor.stream_seq, 2);
    assert.equal(info.num_ack_pending, 1);
  });
});
