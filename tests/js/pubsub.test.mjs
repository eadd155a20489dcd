// SPDX-License-Identifier: Apache-2.0
// Core publish/subscribe through nats.js: payload bytes, subjects, reply
// subjects, wildcards, echo and subscribe-then-flush.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { collect, connectTo, startServer } from "./server.mjs";

// Deterministic bytes (xorshift32) with protocol-looking text spliced in, so a
// server that scans payloads for CRLF or verbs would corrupt them.
function patternBytes(size, seed) {
  const bytes = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  const marker = new TextEncoder().encode("\r\nMSG x 1 5\r\nPING\r\n");
  if (size >= marker.length * 2) bytes.set(marker, size >> 1);
  return bytes;
}

describe("pub/sub", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test("payload bytes intact", async () => {
    const sizes = [0, 1, 2, 127, 128, 255, 256, 4095, 4096, 4097, 65535, 65536, 65537, 262_144];
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const got = collect(sub, "bytes.check");
      await sub.flush();
      sizes.forEach((size, i) => pub.publish("bytes.check", patternBytes(size, i + 1)));
      await pub.flush();
      await got.waitFor(sizes.length);

      assert.equal(got.messages.length, sizes.length);
      got.messages.forEach((msg, i) => {
        assert.equal(msg.subject, "bytes.check");
        assert.equal(msg.data.length, sizes[i], `message ${i} length`);
        assert.deepEqual(Buffer.from(msg.data), Buffer.from(patternBytes(sizes[i], i + 1)),
          `message ${i} (${sizes[i]} bytes) payload differs`);
      });
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("all 256 byte values intact", async () => {
    const nc = await connectTo(server);
    try {
      const every = Uint8Array.from({ length: 256 }, (_, i) => i);
      const got = collect(nc, "bytes.all");
      await nc.flush();
      nc.publish("bytes.all", every);
      await got.waitFor(1);
      assert.deepEqual(Buffer.from(got.messages[0].data), Buffer.from(every));
    } finally {
      await nc.close();
    }
  });

  test("subject and reply subject delivered", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const got = collect(sub, "reply.check.>");
      await sub.flush();
      pub.publish("reply.check.one", "a", { reply: "answer.here" });
      pub.publish("reply.check.two.three", "b");
      await pub.flush();
      await got.waitFor(2);

      const [first, second] = got.messages;
      assert.equal(first.subject, "reply.check.one");
      assert.equal(first.reply, "answer.here");
      assert.equal(first.string(), "a");
      assert.equal(second.subject, "reply.check.two.three");
      assert.ok(!second.reply, `expected no reply subject, got ${JSON.stringify(second.reply)}`);
      assert.equal(second.string(), "b");
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("order from one publisher kept", async () => {
    const count = 1000;
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const got = collect(sub, "order.check");
      await sub.flush();
      for (let i = 0; i < count; i++) pub.publish("order.check", String(i));
      await pub.flush();
      await got.waitFor(count);
      assert.deepEqual(got.messages.map((m) => Number(m.string())),
        Array.from({ length: count }, (_, i) => i));
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("wildcards * and >", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const patterns = ["wc.*", "wc.>", "wc.*.c", "wc.a.*", "*.a.c", "wc.a.c"];
      const subjects = ["wc", "wc.a", "wc.b", "wc.a.c", "wc.b.c", "wc.a.d", "wc.a.c.d", "other.a", "x.a.c"];
      const expected = {
        "wc.*": ["wc.a", "wc.b"],
        "wc.>": ["wc.a", "wc.b", "wc.a.c", "wc.b.c", "wc.a.d", "wc.a.c.d"],
        "wc.*.c": ["wc.a.c", "wc.b.c"],
        "wc.a.*": ["wc.a.c", "wc.a.d"],
        "*.a.c": ["wc.a.c", "x.a.c"],
        "wc.a.c": ["wc.a.c"],
      };
      const collectors = Object.fromEntries(patterns.map((p) => [p, collect(sub, p)]));
      const done = collect(sub, "wc_done");
      await sub.flush();

      for (const subject of subjects) pub.publish(subject, subject);
      // Messages from one publisher reach one subscribing connection in
      // order, so once the marker arrives nothing earlier is still in flight.
      pub.publish("wc_done", "");
      await pub.flush();
      await done.waitFor(1, "end marker");

      for (const pattern of patterns) {
        const received = collectors[pattern].messages.map((m) => m.subject);
        assert.deepEqual(received, expected[pattern], `subjects received on ${pattern}`);
        for (const msg of collectors[pattern].messages) assert.equal(msg.string(), msg.subject);
      }
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("echo:false skips own messages", async () => {
    const quiet = await connectTo(server, { noEcho: true });
    const loud = await connectTo(server);
    const other = await connectTo(server);
    try {
      const count = 20;
      const quietOwn = collect(quiet, "echo.check");
      const loudOwn = collect(loud, "echo.check");
      const seen = collect(other, "echo.check");
      await Promise.all([quiet.flush(), loud.flush(), other.flush()]);

      for (let i = 0; i < count; i++) quiet.publish("echo.check", `quiet ${i}`);
      // A flush returns after the server handled every earlier PUB of this
      // connection, and a message for the connection itself is written before
      // its PONG, so an echo would have arrived by now.
      await quiet.flush();
      assert.equal(quietOwn.messages.length, 0, "noEcho connection received its own messages");
      await loudOwn.waitFor(count);
      await seen.waitFor(count);

      for (let i = 0; i < count; i++) loud.publish("echo.check", `loud ${i}`);
      await loud.flush();
      // Same reasoning as above: with echo on, the publisher's own copies are in before its PONG.
      assert.equal(loudOwn.messages.length, 2 * count, "echo connection missed its own messages");
      await quietOwn.waitFor(count);
      await seen.waitFor(2 * count);

      assert.deepEqual(quietOwn.messages.map((m) => m.string()),
        Array.from({ length: count }, (_, i) => `loud ${i}`));
      assert.deepEqual(seen.messages.slice(0, count).map((m) => m.string()),
        Array.from({ length: count }, (_, i) => `quiet ${i}`));
    } finally {
      await quiet.close();
      await loud.close();
      await other.close();
    }
  });

  test("flush after subscribe guarantees delivery", async () => {
    // Each round publishes once to a new subject right after the subscriber's
    // flush returns, so the message arrives only if the SUB was in place by then.
    const rounds = 100;
    const pub = await connectTo(server);
    try {
      for (let round = 0; round < rounds; round++) {
        const sub = await connectTo(server);
        try {
          const subject = `flush.check.${round}`;
          const got = collect(sub, subject);
          await sub.flush();
          pub.publish(subject, `round ${round}`);
          await pub.flush();
          await got.waitFor(1, `round ${round} delivery`);
          assert.equal(got.messages[0].string(), `round ${round}`);
        } finally {
          await sub.close();
        }
      }
    } finally {
      await pub.close();
    }
  });

  test("fan-out to many connections", async () => {
    const connectionCount = 12;
    const count = 100;
    const connections = [];
    try {
      for (let i = 0; i < connectionCount; i++) connections.push(await connectTo(server));
      const pub = await connectTo(server);
      connections.push(pub);
      // Two matching subscriptions on one connection each get their own copy.
      const exact = connections.slice(0, connectionCount).map((nc) => collect(nc, "fan.x"));
      const wild = connections.slice(0, connectionCount).map((nc) => collect(nc, "fan.*"));
      await Promise.all(connections.map((nc) => nc.flush()));

      for (let i = 0; i < count; i++) pub.publish("fan.x", String(i));
      await pub.flush();
      const expected = Array.from({ length: count }, (_, i) => i);
      for (let i = 0; i < connectionCount; i++) {
        await exact[i].waitFor(count, `fan.x on connection ${i}`);
        await wild[i].waitFor(count, `fan.* on connection ${i}`);
        assert.deepEqual(exact[i].messages.map((m) => Number(m.string())), expected, `fan.x on connection ${i}`);
        assert.deepEqual(wild[i].messages.map((m) => Number(m.string())), expected, `fan.* on connection ${i}`);
      }
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  });

  test("unsubscribe stops delivery", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const leaving = collect(sub, "unsub.x");
      const done = collect(sub, "unsub_done");
      await sub.flush();
      pub.publish("unsub.x", "before");
      await pub.flush();
      await leaving.waitFor(1);

      leaving.sub.unsubscribe();
      await sub.flush();
      pub.publish("unsub.x", "after");
      pub.publish("unsub_done", "");
      await pub.flush();
      await done.waitFor(1, "end marker");
      assert.deepEqual(leaving.messages.map((m) => m.string()), ["before"]);
      assert.equal(sub.stats().inMsgs, 2, "server sent a message for the removed subscription");
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("unsubscribe after max messages", async () => {
    const nc = await connectTo(server);
    try {
      const got = collect(nc, "max.check", { max: 3 });
      const all = collect(nc, "max.check");
      await nc.flush();
      for (let i = 0; i < 10; i++) nc.publish("max.check", String(i));
      await all.waitFor(10);
      assert.deepEqual(got.messages.map((m) => m.string()), ["0", "1", "2"]);
      assert.equal(got.sub.isClosed(), true);
    } finally {
      await nc.close();
    }
  });
});
