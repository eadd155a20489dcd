// SPDX-License-Identifier: Apache-2.0
// Request-reply, message headers and no_responders through nats.js.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { headers, NoRespondersError, RequestError, TimeoutError } from "@nats-io/nats-core";
import { collect, connectTo, startServer, within } from "./server.mjs";

describe("request-reply", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test("single request gets its reply", async () => {
    const responder = await connectTo(server);
    const requester = await connectTo(server);
    try {
      responder.subscribe("svc.upper", {
        callback: (_, msg) => msg.respond(msg.string().toUpperCase()),
      });
      await responder.flush();

      const reply = await requester.request("svc.upper", "hello shoal", { timeout: 5000 });
      assert.equal(reply.string(), "HELLO SHOAL");
      assert.match(reply.subject, /^_INBOX\./);
    } finally {
      await responder.close();
      await requester.close();
    }
  });

  test("request carries reply subject", async () => {
    const responder = await connectTo(server);
    const requester = await connectTo(server);
    try {
      const got = collect(responder, "svc.inspect");
      await responder.flush();
      const pending = requester.request("svc.inspect", "x", { timeout: 5000 });
      await got.waitFor(1);
      const request = got.messages[0];
      assert.equal(request.subject, "svc.inspect");
      assert.match(request.reply, /^_INBOX\./);
      request.respond("done");
      assert.equal((await pending).string(), "done");
    } finally {
      await responder.close();
      await requester.close();
    }
  });

  test("many concurrent requests", async () => {
    const count = 500;
    const responder = await connectTo(server);
    const requester = await connectTo(server);
    try {
      responder.subscribe("svc.double", {
        callback: (_, msg) => msg.respond(String(Number(msg.string()) * 2)),
      });
      await responder.flush();

      const replies = await within(
        Promise.all(Array.from({ length: count },
          (_, i) => requester.request("svc.double", String(i), { timeout: 10_000 }))),
        `${count} replies`, 20_000);
      assert.deepEqual(replies.map((m) => Number(m.string())),
        Array.from({ length: count }, (_, i) => i * 2));
    } finally {
      await responder.close();
      await requester.close();
    }
  });

  test("queue group answers once", async () => {
    const count = 300;
    const responders = [await connectTo(server), await connectTo(server), await connectTo(server)];
    const requester = await connectTo(server);
    try {
      const handled = responders.map(() => []);
      responders.forEach((nc, index) => {
        nc.subscribe("svc.pool", {
          queue: "pool",
          callback: (_, msg) => {
            handled[index].push(Number(msg.string()));
            msg.respond(`${index}:${msg.string()}`);
          },
        });
      });
      await Promise.all(responders.map((nc) => nc.flush()));

      const replies = await Promise.all(Array.from({ length: count },
        (_, i) => requester.request("svc.pool", String(i), { timeout: 10_000 })));
      replies.forEach((reply, i) => {
        const [index, sequence] = reply.string().split(":");
        assert.equal(Number(sequence), i);
        assert.ok(handled[Number(index)].includes(i), `responder ${index} did not log request ${i}`);
      });
      // Every request got its reply, so each reached at least one responder.
      // A duplicate that arrived by now shows as a total above `count`; the
      // queue group tests check exactly-once delivery with end markers.
      await Promise.all(responders.map((nc) => nc.flush()));
      assert.equal(handled.reduce((sum, list) => sum + list.length, 0), count);
    } finally {
      await Promise.all([...responders, requester].map((nc) => nc.close()));
    }
  });

  test("request times out without reply", async () => {
    const silent = await connectTo(server);
    const requester = await connectTo(server);
    try {
      const got = collect(silent, "svc.silent");
      await silent.flush();
      await assert.rejects(requester.request("svc.silent", "ping", { timeout: 300 }),
        (err) => err instanceof TimeoutError);
      assert.equal(got.messages.length, 1, "the silent subscriber should have seen the request");
    } finally {
      await silent.close();
      await requester.close();
    }
  });

  test("no_responders rejects request", async () => {
    const nc = await connectTo(server);
    try {
      await assert.rejects(nc.request("nobody.listens", "hello", { timeout: 5000 }), (err) => {
        assert.ok(err instanceof RequestError, `expected RequestError, got ${err}`);
        assert.equal(err.isNoResponders(), true);
        assert.ok(err.cause instanceof NoRespondersError, `cause is ${err.cause}`);
        assert.equal(err.cause.subject, "nobody.listens");
        return true;
      });
    } finally {
      await nc.close();
    }
  });

  test("no_responders status 503", async () => {
    // The same exchange by hand: a PUB with a reply subject that no one
    // listens on must come back to the reply subject as an empty HMSG
    // carrying status 503.
    const nc = await connectTo(server);
    try {
      const inbox = "_INBOX.manual.noresp";
      const got = collect(nc, inbox);
      await nc.flush();
      nc.publish("nobody.at.all", "data", { reply: inbox });
      await got.waitFor(1, "no_responders status message");

      const status = got.messages[0];
      assert.equal(status.subject, inbox);
      assert.equal(status.data.length, 0);
      assert.ok(status.headers, "status message has no headers");
      assert.equal(status.headers.code, 503);
      assert.equal(status.headers.hasError, true);
    } finally {
      await nc.close();
    }
  });

  test("no_responders only without interest", async () => {
    // A publish without a reply subject to a subject with no subscriber is
    // dropped silently, and a request with a responder gets its reply.
    const nc = await connectTo(server);
    try {
      const inbox = "_INBOX.manual.check";
      const got = collect(nc, inbox);
      nc.subscribe("someone.listens", { callback: (_, msg) => msg.respond("here") });
      await nc.flush();
      nc.publish("nobody.at.all", "data");
      nc.publish("someone.listens", "data", { reply: inbox });
      await got.waitFor(1);
      await nc.flush();
      assert.equal(got.messages.length, 1);
      assert.equal(got.messages[0].string(), "here");
      assert.equal(got.messages[0].headers, undefined);
    } finally {
      await nc.close();
    }
  });
});

describe("headers", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  function sampleHeaders() {
    const h = headers();
    h.append("X-Multi", "first");
    h.append("X-Multi", "second");
    h.append("X-Multi", "third value with spaces");
    h.set("X-Single", "1");
    h.set("lower-case-key", "Mixed Case Value");
    h.set("X-Colon", "a:b: c");
    h.set("X-Utf8", "grüße ☃");
    return h;
  }

  function assertSampleHeaders(received) {
    assert.ok(received, "message has no headers");
    assert.deepEqual(received.values("X-Multi"), ["first", "second", "third value with spaces"]);
    assert.equal(received.get("X-Single"), "1");
    assert.equal(received.get("lower-case-key"), "Mixed Case Value");
    assert.equal(received.get("X-Colon"), "a:b: c");
    assert.equal(received.get("X-Utf8"), "grüße ☃");
    assert.deepEqual(received.keys().sort(),
      ["X-Colon", "X-Multi", "X-Single", "X-Utf8", "lower-case-key"]);
    assert.equal(received.code, 0);
    assert.equal(received.hasError, false);
  }

  test("multiple values intact", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const got = collect(sub, "hdr.check");
      await sub.flush();
      pub.publish("hdr.check", "payload after headers", { headers: sampleHeaders() });
      pub.publish("hdr.check", undefined, { headers: sampleHeaders() });
      await pub.flush();
      await got.waitFor(2);

      const [withData, empty] = got.messages;
      assertSampleHeaders(withData.headers);
      assert.equal(withData.string(), "payload after headers");
      assertSampleHeaders(empty.headers);
      assert.equal(empty.data.length, 0);
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("headers with binary payload", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const payload = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7 + 3) & 0xff);
      const got = collect(sub, "hdr.bin.*");
      await sub.flush();
      pub.publish("hdr.bin.x", payload, { headers: sampleHeaders(), reply: "hdr.reply" });
      await pub.flush();
      await got.waitFor(1);

      const msg = got.messages[0];
      assert.equal(msg.subject, "hdr.bin.x");
      assert.equal(msg.reply, "hdr.reply");
      assertSampleHeaders(msg.headers);
      assert.deepEqual(Buffer.from(msg.data), Buffer.from(payload));
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("plain and header messages mixed", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const count = 200;
      const got = collect(sub, "hdr.mixed");
      await sub.flush();
      for (let i = 0; i < count; i++) {
        if (i % 2 === 0) {
          pub.publish("hdr.mixed", String(i));
        } else {
          const h = headers();
          h.set("Seq", String(i));
          pub.publish("hdr.mixed", String(i), { headers: h });
        }
      }
      await pub.flush();
      await got.waitFor(count);

      got.messages.forEach((msg, i) => {
        assert.equal(msg.string(), String(i));
        if (i % 2 === 0) assert.equal(msg.headers, undefined, `message ${i} should have no headers`);
        else assert.equal(msg.headers?.get("Seq"), String(i), `message ${i} header`);
      });
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("headers on request and reply", async () => {
    const responder = await connectTo(server);
    const requester = await connectTo(server);
    try {
      responder.subscribe("hdr.svc", {
        callback: (_, msg) => {
          const h = headers();
          for (const value of msg.headers?.values("X-Multi") ?? []) h.append("Echo", value);
          h.set("Answered-By", "responder");
          msg.respond("ok", { headers: h });
        },
      });
      await responder.flush();

      const reply = await requester.request("hdr.svc", "q", { headers: sampleHeaders(), timeout: 5000 });
      assert.equal(reply.string(), "ok");
      assert.deepEqual(reply.headers?.values("Echo"), ["first", "second", "third value with spaces"]);
      assert.equal(reply.headers?.get("Answered-By"), "responder");
    } finally {
      await responder.close();
      await requester.close();
    }
  });
});
