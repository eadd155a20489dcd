#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Power-cut test of a whole server's JetStream file store, for shoal-server
and nats-server alike.

Each round makes a new ext4 file system on a sparse file under /var/tmp,
loop-mounts it, and starts the server with -js -sd on it. A client speaking
the raw NATS protocol creates a file stream and publishes 1 KiB messages
with reply subjects, keeping up to WINDOW publishes unacknowledged, and
records the stream sequence of every PubAck it reads. At a random moment
the client stops reading, the server is stopped with SIGSTOP, and the
backing file is copied, as tests/storage/power_cut.c does for the bare
store (its file comment gives the limits of that approximation). The server
is then killed, the copy is repaired with e2fsck -p, mounted, and the same
server binary is started on it. Every acknowledged sequence is fetched with
$JS.API.STREAM.MSG.GET, and one whose message is missing or differs counts
as lost.

Usage: server_power_cut.py [--rounds N] [--seed S] [--seconds MIN MAX]
                           [--expect-no-loss] SERVER [ARGS...]
Prints one line per round and a summary. With --expect-no-loss it exits 1
when any acknowledged message was lost. Exits 77 (skipped) without root,
loop devices or the e2fsprogs tools.
"""
import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
FS_SIZE = 512 << 20
PAYLOAD = 1024
WINDOW = 256
GET_WINDOW = 512
STREAM = "PC"
CONNECT_TIMEOUT_S = 10
IO_TIMEOUT_S = 10
# A restarted server may reply only once its streams are restored.
RECOVERY_TIMEOUT_S = 120
TOOL_TIMEOUT_S = 60


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def run(*argv, check=True):
    """Runs a tool with its output captured; raises with that output on failure."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=TOOL_TIMEOUT_S)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {p.returncode}: {p.stdout.strip()}")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payload_of(client_id):
    head = f"{client_id:012d}".encode()
    return head + bytes((client_id * 7 + i) % 256 for i in range(PAYLOAD - len(head)))


class Client:
    """A minimal NATS protocol client: PUB, SUB and MSG parsing only."""

    def __init__(self, port, timeout=IO_TIMEOUT_S):
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not accept connections on port {port}")
                time.sleep(0.05)
        self.buf = b""
        self.read_line()  # INFO
        self.send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n')
        while self.read_line() != b"PONG":
            pass
        self.send(b"SUB _INBOX.pc.> 1\r\n")

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_msg(self):
        """Returns (subject, payload) of the next MSG, replying PONG to each PING."""
        while True:
            line = self.read_line()
            if line == b"PING":
                self.send(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise RuntimeError(f"server error: {line.decode()}")
            if not line.startswith(b"MSG "):
                continue
            parts = line.split()
            size = int(parts[-1])
            while len(self.buf) < size + 2:
                self.fill()
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return parts[1].decode(), data

    def request(self, subject, body):
        self.send(f"PUB {subject} _INBOX.pc.api {len(body)}\r\n".encode() + body + b"\r\n")
        while True:
            reply, data = self.read_msg()
            if reply == "_INBOX.pc.api":
                return json.loads(data)

    def close(self):
        self.sock.close()


class Server:
    def __init__(self, argv, store_dir, log_path):
        self.port = free_port()
        self.log = open(log_path, "ab")
        cmd = argv + ["-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", store_dir]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TOOL_TIMEOUT_S)
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TOOL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def unmount(mnt):
    """Unmounts mnt, lazily when a plain umount fails, so no mount is left."""
    if run("umount", mnt, check=False).returncode != 0:
        run("umount", "-l", mnt, check=False)


def make_fs(image, mnt):
    with open(image, "wb") as f:
        f.truncate(FS_SIZE)
    run("mkfs.ext4", "-q", "-F", "-J", "size=64", "-E", "lazy_itable_init=0", image)
    run("mount", "-t", "ext4", "-o", "loop", image, mnt)


def copy_sparse(src, dst):
    """Copies the data extents of src, in offset order, into a sparse dst."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        fout.truncate(size)
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fin.fileno(), data, os.SEEK_HOLE)
            os.lseek(fin.fileno(), data, os.SEEK_SET)
            fout.seek(data)
            left = hole - data
            while left > 0:
                chunk = fin.read(min(left, 1 << 20))
                fout.write(chunk)
                left -= len(chunk)
            pos = hole
        fout.flush()
        os.fsync(fout.fileno())


def publish_until(client, deadline):
    """Publishes with acknowledgements until the deadline; returns
    {stream seq: client id} of the PubAcks read by then."""
    acked = {}
    sent = 0
    outstanding = 0
    while time.monotonic() < deadline:
        batch = []
        while outstanding < WINDOW:
            body = payload_of(sent)
            batch.append(f"PUB pc.data _INBOX.pc.ack.{sent} {len(body)}\r\n".encode() + body + b"\r\n")
            sent += 1
            outstanding += 1
        if batch:
            client.send(b"".join(batch))
        reply, data = client.read_msg()
        if not reply.startswith("_INBOX.pc.ack."):
            continue
        outstanding -= 1
        ack = json.loads(data)
        if "error" in ack:
            raise RuntimeError(f"publish rejected: {ack['error']}")
        acked[ack["seq"]] = int(reply.rsplit(".", 1)[1])
    return acked


def count_lost(client, acked):
    """Fetches every acknowledged sequence, GET_WINDOW requests at a time;
    returns how many are missing or hold another message."""
    started = time.monotonic()
    info = client.request(f"$JS.API.STREAM.INFO.{STREAM}", b"")
    info_s = time.monotonic() - started
    if "error" in info:
        return len(acked), f"stream missing: {info['error'].get('description', info['error'])}"
    lost = 0
    seqs = sorted(acked)
    for start in range(0, len(seqs), GET_WINDOW):
        chunk = seqs[start:start + GET_WINDOW]
        client.send(b"".join(
            f"PUB $JS.API.STREAM.MSG.GET.{STREAM} _INBOX.pc.get.{seq} {len(body)}\r\n".encode()
            + body + b"\r\n" for seq in chunk for body in [json.dumps({"seq": seq}).encode()]))
        for _ in chunk:
            reply, data = client.read_msg()
            while not reply.startswith("_INBOX.pc.get."):
                reply, data = client.read_msg()
            seq = int(reply.rsplit(".", 1)[1])
            answer = json.loads(data)
            if "error" in answer:
                lost += 1
            elif base64.b64decode(answer["message"]["data"]) != payload_of(acked[seq]):
                lost += 1
    state = info["state"]
    return lost, (f"recovered seqs {state['first_seq']}..{state['last_seq']}, "
                  f"stream info after {info_s:.1f} s")


def one_round(number, server_argv, work, rng, seconds):
    image, copy = os.path.join(work, "disk.img"), os.path.join(work, "copy.img")
    mnt, copy_mnt = os.path.join(work, "mnt"), os.path.join(work, "copy-mnt")
    log = os.path.join(work, "server.log")
    os.makedirs(mnt, exist_ok=True)
    os.makedirs(copy_mnt, exist_ok=True)
    make_fs(image, mnt)
    server = None
    try:
        server = Server(server_argv, os.path.join(mnt, "js"), log)
        client = Client(server.port)
        config = {"name": STREAM, "subjects": ["pc.>"], "storage": "file", "num_replicas": 1}
        created = client.request(f"$JS.API.STREAM.CREATE.{STREAM}", json.dumps(config).encode())
        if "error" in created:
            raise RuntimeError(f"stream create failed: {created['error']}")
        acked = publish_until(client, time.monotonic() + rng.uniform(*seconds))
        server.signal(signal.SIGSTOP)
        copy_sparse(image, copy)
        server.kill()
        client.close()
        server = None
    finally:
        if server is not None:
            server.kill()
        unmount(mnt)
        os.unlink(image)

    preen = run("e2fsck", "-p", copy, check=False).returncode
    if preen >= 4:
        raise RuntimeError(f"e2fsck -p on the copy exited with {preen}")
    run("mount", "-t", "ext4", "-o", "loop", copy, copy_mnt)
    try:
        server = Server(server_argv, os.path.join(copy_mnt, "js"), log)
        try:
            client = Client(server.port, RECOVERY_TIMEOUT_S)
            lost, detail = count_lost(client, acked)
            client.close()
        finally:
            server.stop()
    finally:
        unmount(copy_mnt)
        os.unlink(copy)
    print(f"round {number}: {len(acked)} acknowledged before the copy, {lost} lost; "
          f"e2fsck -p exit {preen}; {detail}", flush=True)
    return len(acked), lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds to run (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the copy moments")
    parser.add_argument("--seconds", type=float, nargs=2, default=[0.5, 1.5],
                        metavar=("MIN", "MAX"),
                        help="publish for a random time in [MIN, MAX] seconds before the copy "
                             "(default 0.5 1.5)")
    parser.add_argument("--expect-no-loss", action="store_true",
                        help="exit 1 when an acknowledged message was lost")
    parser.add_argument("server", nargs=argparse.REMAINDER,
                        help="server binary and its arguments, before -a, -p, -js and -sd")
    args = parser.parse_args()
    if not args.server:
        parser.error("the server binary is missing")
    if not 0 < args.seconds[0] <= args.seconds[1] <= 600:
        parser.error("--seconds needs 0 < MIN <= MAX <= 600")
    if os.geteuid() != 0:
        skip("needs root to attach loop devices and mount file systems")
    if not os.path.exists("/dev/loop-control"):
        skip("loop devices are unavailable: /dev/loop-control is missing")
    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    for tool in ("mkfs.ext4", "e2fsck", "mount", "umount"):
        if shutil.which(tool) is None:
            skip(f"{tool} is missing (Debian packages e2fsprogs and mount)")

    seed = args.seed if args.seed is not None else time.time_ns()
    rng = random.Random(seed)
    print(f"server power-cut test: {' '.join(args.server)}, {args.rounds} rounds, seed {seed}",
          flush=True)
    work = tempfile.mkdtemp(prefix="shoal-server-power-cut-", dir="/var/tmp")
    total_acked = total_lost = 0
    try:
        for number in range(args.rounds):
            acked, lost = one_round(number, args.server, work, rng, args.seconds)
            total_acked += acked
            total_lost += lost
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"FAIL: {e}")
        print(f"server log: {os.path.join(work, 'server.log')}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"{'FAIL' if args.expect_no_loss and total_lost else 'DONE'}: "
          f"{total_lost} of {total_acked} acknowledged messages lost over {args.rounds} rounds")
    return 1 if args.expect_no_loss and total_lost else 0


if __name__ == "__main__":
    sys.exit(main())
