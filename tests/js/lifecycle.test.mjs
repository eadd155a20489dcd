// SPDX-License-Identifier: Apache-2.0
// Connection life cycle through nats.js: the INFO the server sends, the
// max_payload limit, drain, and what a client sees when the server stops.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ClosedConnectionError, InvalidArgumentError } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { collect, connectTo, startServer, within } from "./server.mjs";

// nats-server's default max_payload (1 MiB). The suite starts the server
// without a max_payload option, so shoal must announce the same default.
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

describe("connection", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test("INFO fields clients rely on", async () => {
    const nc = await connectTo(server);
    try {
      const { info } = nc;
      assert.ok(info, "no INFO received");
      assert.equal(info.headers, true);
      assert.equal(info.max_payload, DEFAULT_MAX_PAYLOAD);
      assert.equal(info.proto, 1);
      assert.equal(info.port, server.port);
      assert.equal(typeof info.server_id, "string");
      assert.ok(info.server_id.length > 0, "empty server_id");
      assert.match(info.version, /^\d+\.\d+\.\d+/);
      assert.ok(Number.isInteger(info.client_id), `client_id ${info.client_id}`);
      assert.ok(!info.auth_required, "auth_required set without any auth configured");
      assert.ok(!info.tls_required, "tls_required set without any TLS configured");
    } finally {
      await nc.close();
    }
  });

  test("rtt round trip", async () => {
    const nc = await connectTo(server);
    try {
      const rtt = await nc.rtt();
      assert.equal(typeof rtt, "number");
      assert.ok(rtt >= 0);
    } finally {
      await nc.close();
    }
  });

  test("max_payload message delivered", async () => {
    const sub = await connectTo(server);
    const pub = await connectTo(server);
    try {
      const max = pub.info.max_payload;
      const payload = Uint8Array.from({ length: max }, (_, i) => (i * 31 + 7) & 0xff);
      const got = collect(sub, "big.one");
      await sub.flush();
      pub.publish("big.one", payload);
      await pub.flush();
      await got.waitFor(1);
      assert.equal(got.messages[0].data.length, max);
      assert.ok(Buffer.from(got.messages[0].data).equals(Buffer.from(payload)), "payload differs");
    } finally {
      await sub.close();
      await pub.close();
    }
  });

  test("payload over max_payload throws", async () => {
    const nc = await connectTo(server);
    try {
      const max = nc.info.max_payload;
      assert.throws(() => nc.publish("big.too", new Uint8Array(max + 1)), (err) => {
        assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${err}`);
        assert.match(err.message, /max_payload/);
        return true;
      });
      // The rejected publish left the connection usable.
      const got = collect(nc, "big.after");
      await nc.flush();
      nc.publish("big.after", "still open");
      await got.waitFor(1);
      assert.equal(got.messages[0].string(), "still open");
      assert.equal(nc.isClosed(), false);
    } finally {
      await nc.close();
    }
  });

  test("drain delivers own pending messages", async () => {
    const count = 500;
    const nc = await connectTo(server);
    const got = collect(nc, "drain.self");
    await nc.flush();
    for (let i = 0; i < count; i++) nc.publish("drain.self", String(i));
    // drain() sends UNSUB after the PUBs above, and the server handles one
    // connection's commands in order, so every message reaches the callback.
    await within(nc.drain(), "connection drain");
    assert.equal(nc.isClosed(), true);
    assert.equal(await nc.closed(), undefined);
    assert.deepEqual(got.messages.map((m) => Number(m.string())),
      Array.from({ length: count }, (_, i) => i));
  });

  test("drain delivers flushed messages", async () => {
    // Several rounds, each with a new subscriber connection, so that with
    // more than one shard some rounds have publisher and subscriber on
    // different shards.
    const rounds = 16;
    const count = 1000;
    const pub = await connectTo(server);
    try {
      for (let round = 0; round < rounds; round++) {
        const sub = await connectTo(server);
        const subject = `drain.other.${round}`;
        const got = collect(sub, subject);
        await sub.flush();
        for (let i = 0; i < count; i++) pub.publish(subject, String(i));
        // Once the publisher's flush returns the server has handled every
        // PUB, so drain's UNSUB on the subscriber comes after all of them.
        await pub.flush();
        await within(sub.drain(), `connection drain in round ${round}`);

        assert.equal(sub.isClosed(), true);
        assert.equal(got.messages.length, count, `round ${round}: messages delivered before drain completed`);
        assert.deepEqual(got.messages.map((m) => Number(m.string())),
          Array.from({ length: count }, (_, i) => i));
      }
    } finally {
      await pub.close();
    }
  });

  test("subscription drain keeps connection open", async () => {
    const nc = await connectTo(server);
    try {
      const drained = collect(nc, "sdrain.x");
      const kept = collect(nc, "sdrain.x");
      await nc.flush();
      for (let i = 0; i < 100; i++) nc.publish("sdrain.x", String(i));
      await within(drained.sub.drain(), "subscription drain");
      assert.equal(drained.sub.isClosed(), true);
      assert.equal(drained.messages.length, 100);

      for (let i = 100; i < 150; i++) nc.publish("sdrain.x", String(i));
      await nc.flush();
      await kept.waitFor(150);
      assert.equal(drained.messages.length, 100, "drained subscription got more messages");
      assert.equal(nc.isClosed(), false);
      assert.deepEqual(kept.messages.map((m) => Number(m.string())),
        Array.from({ length: 150 }, (_, i) => i));
    } finally {
      await nc.close();
    }
  });
});

describe("server stop", () => {
  test("client sees connection closed", async () => {
    const server = await startServer();
    let nc;
    try {
      nc = await connectTo(server);
      const statuses = [];
      const watching = (async () => {
        for await (const status of nc.status()) statuses.push(status.type);
      })();
      await nc.flush();

      const exit = await server.stop();
      assert.equal(exit.forced, false, "server ignored SIGTERM and had to be killed");
      const closedWith = await within(nc.closed(), "connection close after server stop");
      await within(watching, "status iterator end");

      assert.equal(closedWith, undefined);
      assert.equal(nc.isClosed(), true);
      assert.deepEqual(statuses, ["disconnect", "close"]);
      assert.throws(() => nc.publish("after.stop", "x"), ClosedConnectionError);
      await assert.rejects(nc.flush(), ClosedConnectionError);
    } finally {
      await server.stop();
    }
  });

  test("client resubscribes after restart", async () => {
    let server = await startServer();
    const { port } = server;
    let nc;
    try {
      nc = await connect({
        servers: server.url,
        reconnect: true,
        maxReconnectAttempts: 100,
        reconnectTimeWait: 100,
        reconnectJitter: 0,
      });
      const statuses = [];
      let sawReconnect;
      const reconnected = new Promise((resolve) => {
        sawReconnect = resolve;
      });
      (async () => {
        for await (const status of nc.status()) {
          statuses.push(status.type);
          if (status.type === "reconnect") sawReconnect();
        }
      })();
      const got = collect(nc, "restart.check");
      await nc.flush();

      await server.stop();
      server = await startServer({ port });
      await within(reconnected, "client reconnect after server restart");
      // The client sends its SUBs before the PING that this flush waits on.
      await nc.flush();

      const pub = await connectTo(server);
      try {
        pub.publish("restart.check", "after restart");
        await pub.flush();
        await got.waitFor(1);
      } finally {
        await pub.close();
      }
      assert.equal(got.messages[0].string(), "after restart");
      assert.ok(statuses.includes("disconnect"), `statuses: ${statuses}`);
      assert.ok(statuses.includes("reconnect"), `statuses: ${statuses}`);
    } finally {
      await nc?.close();
      await server.stop();
    }
  });
});
