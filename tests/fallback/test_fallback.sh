#!/bin/sh
# Checks that shoal-server falls back to epoll, and says why, when
# io_uring_setup(2) is refused; that it still serves a PUB/SUB round trip;
# and that --backend io_uring then fails to start instead.
# Usage: test_fallback.sh NO_URING_EXEC SHOAL_SERVER
set -u
wrapper=$1
server=$2
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/log"; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$wrapper" "$server" -a 127.0.0.1 -p "$port" --shards 2 > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 50); do
  grep -q "Server is ready" "$dir/log" && break
  sleep 0.1
done
grep -q "io_uring is unavailable (io_uring_setup failed: Operation not permitted); using the epoll backend" "$dir/log" \
  || fail "no fallback warning"
grep -q "2 shards, epoll backend" "$dir/log" || fail "banner does not name the epoll backend"

reply=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nSUB t 1\r\nPUB t 2\r\nhi\r\nPING\r\n')
out = b""
while not out.endswith(b"PONG\r\n"):
    out += s.recv(4096)
print(out.decode().replace("\r\n", "|"))
PY
)
[ "$reply" = "MSG t 1 2|hi|PONG|" ] || fail "unexpected reply: $reply"
kill "$pid"
wait "$pid" 2>/dev/null

"$wrapper" "$server" -a 127.0.0.1 -p "$port" --backend io_uring > "$dir/log" 2>&1
status=$?
[ "$status" -ne 0 ] || fail "--backend io_uring started without io_uring"
grep -q "io_uring backend requested but unavailable" "$dir/log" || fail "no reason given"
echo "PASS"
