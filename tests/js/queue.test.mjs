// SPDX-License-Identifier: Apache-2.0
// Queue groups through nats.js: each message goes to exactly one member of a
// group, members spread over several connections.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { collect, connectTo, startServer } from "./server.mjs";

// Counts how often each sequence number 0..count-1 arrived, over all members.
function countSequences(members, count) {
  const seen = new Array(count).fill(0);
  for (const member of members) {
    for (const msg of member.messages) {
      const sequence = Number(msg.string());
      assert.ok(Number.isInteger(sequence) && sequence >= 0 && sequence < count,
        `unexpected payload ${JSON.stringify(msg.string())}`);
      seen[sequence]++;
    }
  }
  return seen;
}

function assertEachOnce(seen, label) {
  const missing = seen.flatMap((n, i) => (n === 0 ? [i] : []));
  const repeated = seen.flatMap((n, i) => (n > 1 ? [`${i}x${n}`] : []));
  assert.deepEqual(missing, [], `${label}: sequences never delivered`);
  assert.deepEqual(repeated, [], `${label}: sequences delivered more than once`);
}

describe("queue groups", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test("each message once across group", async () => {
    const memberCount = 4;
    const count = 2000;
    const connections = [];
    try {
      for (let i = 0; i < memberCount; i++) connections.push(await connectTo(server));
      const pub = await connectTo(server);
      connections.push(pub);

      const members = connections.slice(0, memberCount).map((nc) => collect(nc, "work.q", { queue: "workers" }));
      // A plain subscription on each member connection receives the end
      // marker. Messages from one publisher reach one connection in order, so
      // once every member connection has the marker, all deliveries are in.
      const markers = connections.slice(0, memberCount).map((nc) => collect(nc, "work.done"));
      const watcher = collect(pub, "work.q");
      await Promise.all(connections.map((nc) => nc.flush()));

      for (let i = 0; i < count; i++) pub.publish("work.q", String(i));
      pub.publish("work.done", "");
      await pub.flush();
      await Promise.all(markers.map((m, i) => m.waitFor(1, `end marker on member ${i}`)));
      await watcher.waitFor(count);

      const seen = countSequences(members, count);
      assertEachOnce(seen, "queue group workers");
      assert.equal(members.reduce((sum, m) => sum + m.messages.length, 0), count);
      // A plain subscriber on the same subject still gets every message.
      assert.deepEqual(watcher.messages.map((m) => Number(m.string())),
        Array.from({ length: count }, (_, i) => i));
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  });

  test("two groups each get every message", async () => {
    const count = 500;
    const connections = [];
    try {
      for (let i = 0; i < 5; i++) connections.push(await connectTo(server));
      const [a1, a2, b1, b2, pub] = connections;
      const groupA = [a1, a2].map((nc) => collect(nc, "split.q", { queue: "alpha" }));
      const groupB = [b1, b2].map((nc) => collect(nc, "split.q", { queue: "beta" }));
      const markers = [a1, a2, b1, b2].map((nc) => collect(nc, "split.done"));
      await Promise.all(connections.map((nc) => nc.flush()));

      for (let i = 0; i < count; i++) pub.publish("split.q", String(i));
      pub.publish("split.done", "");
      await pub.flush();
      await Promise.all(markers.map((m, i) => m.waitFor(1, `end marker on connection ${i}`)));

      assertEachOnce(countSequences(groupA, count), "group alpha");
      assertEachOnce(countSequences(groupB, count), "group beta");
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  });

  test("wildcard queue subscriptions", async () => {
    const count = 300;
    const connections = [];
    try {
      for (let i = 0; i < 4; i++) connections.push(await connectTo(server));
      const [m1, m2, m3, pub] = connections;
      // Members of one group may subscribe with different subjects: the
      // server picks one member among all matching subscriptions of the group.
      const members = [
        collect(m1, "jobs.*", { queue: "mixed" }),
        collect(m2, "jobs.>", { queue: "mixed" }),
        collect(m3, "jobs.run", { queue: "mixed" }),
      ];
      const markers = [m1, m2, m3].map((nc) => collect(nc, "jobs_done"));
      await Promise.all(connections.map((nc) => nc.flush()));

      for (let i = 0; i < count; i++) pub.publish("jobs.run", String(i));
      pub.publish("jobs_done", "");
      await pub.flush();
      await Promise.all(markers.map((m, i) => m.waitFor(1, `end marker on member ${i}`)));

      assertEachOnce(countSequences(members, count), "queue group mixed");
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  });

  test("member unsubscribing mid-stream", async () => {
    const count = 1000;
    const connections = [];
    try {
      for (let i = 0; i < 4; i++) connections.push(await connectTo(server));
      const [stay1, stay2, leaving, pub] = connections;
      const stayers = [stay1, stay2].map((nc) => collect(nc, "leave.q", { queue: "g" }));
      const leaver = collect(leaving, "leave.q", { queue: "g" });
      const markers = [stay1, stay2].map((nc) => collect(nc, "leave.done"));
      await Promise.all(connections.map((nc) => nc.flush()));

      for (let i = 0; i < count / 2; i++) pub.publish("leave.q", String(i));
      // Once the leaver's flush returns, the server has handled its UNSUB, so
      // the second half can only go to the members that stay.
      leaver.sub.unsubscribe();
      await leaving.flush();
      for (let i = count / 2; i < count; i++) pub.publish("leave.q", String(i));
      pub.publish("leave.done", "");
      await pub.flush();
      await Promise.all(markers.map((m, i) => m.waitFor(1, `end marker on member ${i}`)));

      const seen = countSequences([...stayers, leaver], count);
      // Second half: the leaver was gone, so every message must reach a stayer exactly once.
      assertEachOnce(seen.slice(count / 2), "second half after member left");
      // First half: a message may be lost only if it was in flight to the
      // leaver when it unsubscribed; none may arrive twice.
      const repeated = seen.flatMap((n, i) => (n > 1 ? [i] : []));
      assert.deepEqual(repeated, [], "sequences delivered more than once");
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  });
});
