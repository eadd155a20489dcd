// SPDX-License-Identifier: Apache-2.0
// Test helpers for the nats.js interop suite: start a server under test on a
// free loopback port, connect clients to it, and wait for messages with a
// bound. Not a test file itself (Node's runner only picks up *.test.mjs).

import { spawn } from "node:child_process";
import net from "node:net";
import { connect } from "@nats-io/transport-node";

const HOST = "127.0.0.1";
const DEFAULT_SERVER = "/usr/sbin/nats-server";
const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 50;
const STOP_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 3;
const OUTPUT_TAIL_BYTES = 8192;

// Every child still running when the test process exits is killed by its PID,
// so a failed or interrupted test file leaves no server behind.
const running = new Set();
process.on("exit", () => {
  for (const child of running) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Returns the server binary and extra arguments named by the environment. */
export function serverCommand() {
  const binary = process.env.SHOAL_TEST_SERVER || DEFAULT_SERVER;
  const extra = (process.env.SHOAL_TEST_SERVER_ARGS || "")
    .split(/\s+/)
    .filter((word) => word.length > 0);
  return { binary, extra };
}

function tryConnectOnce(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class TestServer {
  constructor(binary, args, port) {
    this.binary = binary;
    this.args = args;
    this.port = port;
    this.url = `${HOST}:${port}`;
    this.output = "";
    this.exit = null;
    this.child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    running.add(this.child);

    const keepTail = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-OUTPUT_TAIL_BYTES);
    };
    this.child.stdout.on("data", keepTail);
    this.child.stderr.on("data", keepTail);
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        running.delete(this.child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.once("error", (error) => {
        running.delete(this.child);
        this.exit = { code: null, signal: null, error };
        resolve(this.exit);
      });
    });
  }

  get pid() {
    return this.child.pid;
  }

  describe() {
    return `${this.binary} ${this.args.join(" ")}`;
  }

  // Resolves true once the port accepts a TCP connection, false if the child
  // exited first (for example because another process took the port).
  async waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.exit) return false;
      if (await tryConnectOnce(this.port)) return true;
      await sleep(READY_POLL_MS);
    }
    await this.stop();
    throw new Error(
      `server did not accept connections on ${this.url} within ${READY_TIMEOUT_MS} ms: ` +
        `${this.describe()}\n--- server output ---\n${this.output}`,
    );
  }

  /**
   * Sends SIGTERM to the child by PID, then SIGKILL if it has not exited in
   * time. Resolves with the exit code and signal, and `forced` set when
   * SIGKILL was needed.
   */
  async stop() {
    if (this.exit) return this.exit;
    process.kill(this.pid, "SIGTERM");
    const timer = setTimeout(() => {
      if (this.exit) return;
      this.forced = true;
      process.kill(this.pid, "SIGKILL");
    }, STOP_TIMEOUT_MS);
    const result = await this.exited;
    clearTimeout(timer);
    return { ...result, forced: this.forced === true };
  }
}

/**
 * Starts the server under test on a free loopback port, or on `port` when
 * given (to restart a server where its clients expect it), and waits until it
 * accepts TCP connections. `args` are added after the environment's extra
 * arguments (for example `["-js", "-sd", dir]`). Retries when the child exits
 * before it is ready, since a probed port may be taken in between.
 */
export async function startServer({ port: fixedPort, args = [] } = {}) {
  const { binary, extra: envExtra } = serverCommand();
  const extra = [...envExtra, ...args];
  let lastFailure = "";
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = fixedPort ?? (await freePort());
    const args = ["-a", HOST, "-p", String(port), ...extra];
    const server = new TestServer(binary, args, port);
    if (await server.waitReady()) return server;

    const { code, signal, error } = server.exit;
    lastFailure =
      `${server.describe()} exited before accepting connections ` +
      `(code ${code}, signal ${signal}${error ? `, ${error.message}` : ""})` +
      `\n--- server output ---\n${server.output}`;
  }
  throw new Error(`server failed to start after ${START_ATTEMPTS} attempts: ${lastFailure}`);
}

/** Connects a nats.js client to the server with reconnects off, so a server failure shows at once. */
export function connectTo(server, options = {}) {
  return connect({ servers: server.url, reconnect: false, ...options });
}

/**
 * Resolves with the value of `promise`, or rejects with an error naming
 * `description` (a string, or a function called at the timeout) once `ms`
 * milliseconds pass. The bound only stops a hung test and is not an
 * assertion on speed.
 */
export async function within(promise, description, ms = 10_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const label = typeof description === "function" ? description() : description;
      reject(new Error(`timed out after ${ms} ms waiting for ${label}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Subscribes with a callback that stores every message and returns the list
 * with a `waitFor(count)` method that resolves once that many have arrived.
 */
export function collect(nc, subject, options = {}) {
  const messages = [];
  const waiters = [];
  const sub = nc.subscribe(subject, {
    ...options,
    callback: (err, msg) => {
      if (err) {
        for (const waiter of waiters.splice(0)) waiter.reject(err);
        return;
      }
      messages.push(msg);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (messages.length >= waiters[i].count) waiters.splice(i, 1)[0].resolve(messages);
      }
    },
  });
  const waitFor = (count, description = `${count} messages on ${subject}`) =>
    within(
      new Promise((resolve, reject) => {
        if (messages.length >= count) resolve(messages);
        else waiters.push({ count, resolve, reject });
      }),
      () => `${description} (have ${messages.length})`,
    );
  return { sub, messages, waitFor };
}
