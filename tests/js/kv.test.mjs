// SPDX-License-Identifier: Apache-2.0
// Key-value buckets through nats.js's @nats-io/kv, which builds them on a
// JetStream stream KV_<bucket> with per-subject limits, rollups and direct
// gets: put and get, create and update with revision checks, delete and
// purge markers, keys, history and a watch. Each test starts its own
// server with -js and a fresh store directory.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import { Kvm } from "@nats-io/kv";
import { connectTo, startServer, within } from "./server.mjs";

const storeDirs = [];
let server;
let nc;

async function openBucket(name, options = {}) {
  const dir = mkdtempSync(join(tmpdir(), "shoal-kv-"));
  storeDirs.push(dir);
  server = await startServer({ args: ["-js", "-sd", dir] });
  nc = await connectTo(server);
  return new Kvm(nc).create(name, options);
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

describe("kv", () => {
  test("put, get and revisions", async () => {
    const kv = await openBucket("robots", { history: 3 });
    const r1 = await kv.put("r1.state", "idle");
    const r2 = await kv.put("r1.state", "busy");
    assert.equal(r2, r1 + 1);
    const entry = await kv.get("r1.state");
    assert.equal(entry.string(), "busy");
    assert.equal(entry.revision, r2);
    assert.equal(entry.operation, "PUT");
    assert.equal(await kv.get("missing"), null);
  });

  test("create and update check revisions", async () => {
    const kv = await openBucket("tasks");
    const rev = await kv.create("t1", "new");
    await assert.rejects(kv.create("t1", "again"), "create of an existing key succeeded");
    const next = await kv.update("t1", "taken", rev);
    assert.equal(next, rev + 1);
    await assert.rejects(kv.update("t1", "stale", rev), "update with an old revision succeeded");
    assert.equal((await kv.get("t1")).string(), "taken");
  });

  test("delete, purge and keys", async () => {
    const kv = await openBucket("cfg", { history: 5 });
    await kv.put("a", "1");
    await kv.put("b", "2");
    await kv.put("c", "3");
    await kv.delete("a");
    await kv.purge("b");
    const deleted = await kv.get("a");
    assert.equal(deleted.operation, "DEL");
    const purged = await kv.get("b");
    assert.equal(purged.operation, "PURGE");
    const keys = [];
    for await (const k of await kv.keys()) keys.push(k);
    assert.deepEqual(keys.sort(), ["c"]);
  });

  test("keys lists a bucket of 200 keys", async () => {
    const kv = await openBucket("many");
    for (let i = 0; i < 200; i++) await kv.put(`robot.${i}`, `${i}`);
    const keys = new Set();
    for await (const k of await kv.keys()) keys.add(k);
    assert.equal(keys.size, 200);
    assert.ok(keys.has("robot.0") && keys.has("robot.199"), "first or last key missing");
  });

  test("history keeps the last values", async () => {
    const kv = await openBucket("hist", { history: 2 });
    for (const v of ["x", "y", "z"]) await kv.put("k", v);
    const values = [];
    for await (const e of await kv.history({ key: "k" })) values.push(e.string());
    assert.deepEqual(values, ["y", "z"]);
  });

  test("watch sees updates", async () => {
    const kv = await openBucket("live");
    await kv.put("k", "before");
    const seen = [];
    const watch = await kv.watch({ key: "k" });
    const done = (async () => {
      for await (const e of watch) {
        seen.push(e.string());
        // The update goes out once the watch has shown the current value.
        if (seen.length === 1) await kv.put("k", "after");
        if (seen.length === 2) break;
      }
    })();
    await within(done, "two watch entries");
    assert.deepEqual(seen, ["before", "after"]);
  });
});
