// SPDX-License-Identifier: Apache-2.0
// Stream byte accounting through nats.js: the `bytes` of stream state,
// max_bytes with both discard policies and the server's max_file_store and
// max_memory_store all count a message as nats-server 2.9.10 does. A file
// stream charges subject, headers and payload plus 30 bytes, and 4 more
// when the message has headers. A memory stream charges the same lengths
// plus 16. Each test starts its own server with a fresh store directory,
// so the suite runs the same against nats-server and shoal.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import {
  DiscardPolicy,
  JetStreamApiError,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { connectTo, startServer } from "./server.mjs";

const storeDirs = [];
let server;
let nc;

function newStoreDir() {
  const dir = mkdtempSync(join(tmpdir(), "shoal-js-store-"));
  storeDirs.push(dir);
  return dir;
}

async function start(args) {
  server = await startServer({ args });
  nc = await connectTo(server);
  return { jsm: await jetstreamManager(nc), js: jetstream(nc) };
}

function startJetStream() {
  return start(["-js", "-sd", newStoreDir()]);
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

async function apiRequest(subject, body) {
  return (await nc.request(subject, JSON.stringify(body))).json();
}

// nats-server 2.9.10's charge for one message (memStoreMsgSize and
// fileStoreMsgSize).
function charged(storage, subjectLength, headerLength, payloadLength) {
  const lengths = subjectLength + headerLength + payloadLength;
  if (storage === StorageType.Memory) return lengths + 16;
  return lengths + 30 + (headerLength > 0 ? 4 : 0);
}

// Returns the charge of one stored message, from the message as the server
// returns it, so the header bytes are the ones it stored.
async function chargedMessage(stream, storage, seq) {
  const { message } = await apiRequest(`$JS.API.STREAM.MSG.GET.${stream}`, { seq });
  const headerLength = message.hdrs ? Buffer.from(message.hdrs, "base64").length : 0;
  const payloadLength = message.data ? Buffer.from(message.data, "base64").length : 0;
  return { bytes: charged(storage, message.subject.length, headerLength, payloadLength), headerLength };
}

function oneHeader() {
  const h = headers();
  h.set("Fleet-Robot", "r-0042");
  return h;
}

const STORAGES = [
  ["file", StorageType.File],
  ["memory", StorageType.Memory],
];

describe("stream bytes", () => {
  for (const [kind, storage] of STORAGES) {
    test(`${kind} stream with and without headers`, async () => {
      const { jsm, js } = await startJetStream();
      await jsm.streams.add({ name: "B", subjects: ["b.*"], storage });
      await js.publish("b.plain", "x".repeat(100));
      await js.publish("b.hdr", "x".repeat(100), { headers: oneHeader() });
      await js.publish("b.hdr", "", { headers: oneHeader() });
      await js.publish("b.id", "y", { msgID: "id-1" });

      const each = [];
      for (let seq = 1; seq <= 4; seq++) each.push(await chargedMessage("B", storage, seq));
      assert.deepEqual(
        each.map((m) => m.headerLength > 0),
        [false, true, true, true],
      );
      const total = each.reduce((sum, m) => sum + m.bytes, 0);
      const info = await jsm.streams.info("B");
      assert.equal(info.state.messages, 4);
      assert.equal(info.state.bytes, total);

      // A removal takes back what the message was charged.
      await jsm.streams.deleteMessage("B", 2, false);
      assert.equal((await jsm.streams.info("B")).state.bytes, total - each[1].bytes);
    });
  }
});

describe("stream max_bytes", () => {
  // Subject "mb" (2 bytes) and 100-byte payloads: a file message costs 132
  // bytes, a memory message 118, so a 1000-byte limit keeps 7 and 8 of them.
  for (const [kind, storage, kept] of [
    ["file", StorageType.File, 7],
    ["memory", StorageType.Memory, 8],
  ]) {
    test(`${kind} stream with discard old keeps ${kept} messages`, async () => {
      const { jsm, js } = await startJetStream();
      await jsm.streams.add({ name: "MB", subjects: ["mb"], storage, max_bytes: 1000 });
      for (let i = 0; i < 20; i++) await js.publish("mb", "z".repeat(100));
      const info = await jsm.streams.info("MB");
      assert.equal(info.state.messages, kept);
      assert.equal(info.state.first_seq, 21 - kept);
      assert.equal(info.state.bytes, kept * charged(storage, 2, 0, 100));
    });
  }

  // Discard new rejects a message once the stored bytes plus its payload
  // length reach the limit: with 132-byte file messages the 8th is
  // rejected (7 * 132 + 100 >= 1000), with 118-byte memory messages the 9th.
  for (const [kind, storage, accepted] of [
    ["file", StorageType.File, 7],
    ["memory", StorageType.Memory, 8],
  ]) {
    test(`${kind} stream with discard new accepts ${accepted} messages`, async () => {
      const { jsm, js } = await startJetStream();
      await jsm.streams.add({
        name: "MN",
        subjects: ["mb"],
        storage,
        max_bytes: 1000,
        discard: DiscardPolicy.New,
      });
      const seqs = [];
      let rejected;
      for (let i = 0; i < 20 && !rejected; i++) {
        try {
          seqs.push((await js.publish("mb", "z".repeat(100))).seq);
        } catch (err) {
          rejected = err.apiError();
        }
      }
      assert.equal(seqs.length, accepted);
      assert.deepEqual(seqs, Array.from({ length: accepted }, (_, i) => i + 1));
      assert.equal(rejected?.err_code, 10077);
      assert.equal(rejected?.description, "maximum bytes exceeded");
      const info = await jsm.streams.info("MN");
      assert.equal(info.state.messages, accepted);
    });
  }

  // With headers the file charge differs from the record's plain lengths:
  // subject "mh" (2), the header block and a 100-byte payload.
  test("file stream with headers keeps what nats-server keeps", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({ name: "MH", subjects: ["mh"], max_bytes: 1500 });
    for (let i = 0; i < 20; i++) await js.publish("mh", "h".repeat(100), { headers: oneHeader() });
    const info = await jsm.streams.info("MH");
    const each = (await chargedMessage("MH", StorageType.File, 20)).bytes;
    // 169 bytes each with nats.js's 33-byte header block: 8 fit, where 9
    // would if the 4 header bytes were not counted.
    const kept = Math.floor(1500 / each);
    assert.equal(info.state.messages, kept);
    assert.equal(info.state.bytes, kept * each);
  });
});

describe("discard new errors", () => {
  // nats-server checks max_msgs before max_bytes and names the limit that
  // rejected the message. A message that replaces its subject's oldest
  // under max_msgs_per_subject passes max_msgs.
  test("error names the limit reached", async () => {
    const { jsm, js } = await startJetStream();
    await jsm.streams.add({
      name: "DN",
      subjects: ["dn.*"],
      max_msgs: 2,
      max_bytes: 400,
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.New,
    });
    await js.publish("dn.a", "x".repeat(100));
    await js.publish("dn.b", "x".repeat(100));
    const msgs = await apiError(js.publish("dn.c", "x"));
    assert.equal(msgs.err_code, 10077);
    assert.equal(msgs.description, "maximum messages exceeded");
    // dn.a replaces its own message, so max_msgs passes, but 2 * 134 + 300
    // reaches max_bytes and the replaced message (134 bytes) frees too
    // little for 300 bytes of payload.
    const bytes = await apiError(js.publish("dn.a", "x".repeat(300)));
    assert.equal(bytes.err_code, 10077);
    assert.equal(bytes.description, "maximum bytes exceeded");
    // A replacement that fits is stored.
    assert.equal((await js.publish("dn.a", "y".repeat(100))).seq, 3);
    const info = await jsm.streams.info("DN");
    assert.equal(info.state.messages, 2);
    assert.equal(info.state.first_seq, 2);
  });
});

describe("server storage limits", () => {
  // max_file_store 1000 with 183-byte payloads and nats.js's 33-byte header
  // block: each message costs 34 + 2 + 33 + 183 = 252 bytes, so usage
  // passes the limit with the 4th (1008) and the 5th is rejected. Counting
  // without the 4 header bytes (992) would accept the 5th as well.
  test("max_file_store counts header bytes", async () => {
    const storeDir = newStoreDir();
    const config = join(storeDir, "server.conf");
    writeFileSync(config, `jetstream {\n  store_dir: "${storeDir}"\n  max_file_store: 1000\n}\n`);
    const { jsm, js } = await start(["-c", config]);
    await jsm.streams.add({ name: "AF", subjects: ["af"] });
    const accepted = [];
    let rejected;
    for (let i = 0; i < 10 && !rejected; i++) {
      try {
        accepted.push((await js.publish("af", "a".repeat(183), { headers: oneHeader() })).seq);
      } catch (err) {
        rejected = err.apiError();
      }
    }
    const each = (await chargedMessage("AF", StorageType.File, 1)).bytes;
    assert.equal(each, 252, "the header block is not the 33 bytes this test is sized for");
    assert.deepEqual(accepted, [1, 2, 3, 4]);
    assert.equal(rejected?.err_code, 10023);
    assert.equal((await jsm.streams.info("AF")).state.bytes, 4 * each);
  });

  // max_memory_store 1000 with 200-byte memory messages: usage equal to the
  // limit still takes a message, and only usage above it rejects.
  test("max_memory_store rejects once exceeded", async () => {
    const storeDir = newStoreDir();
    const config = join(storeDir, "server.conf");
    writeFileSync(config, `jetstream {\n  store_dir: "${storeDir}"\n  max_memory_store: 1000\n}\n`);
    const { jsm, js } = await start(["-c", config]);
    await jsm.streams.add({ name: "AM", subjects: ["am"], storage: StorageType.Memory });
    // 16 + 2 + 182 = 200 bytes each: 5 of them use exactly 1000.
    const accepted = [];
    let rejected;
    for (let i = 0; i < 10 && !rejected; i++) {
      try {
        accepted.push((await js.publish("am", "m".repeat(182))).seq);
      } catch (err) {
        rejected = err.apiError();
      }
    }
    assert.deepEqual(accepted, [1, 2, 3, 4, 5, 6]);
    assert.equal(rejected?.err_code, 10023);
    assert.equal((await jsm.streams.info("AM")).state.bytes, 6 * 200);
  });
});
