#!/usr/bin/env bash
# Runs every posthorn-bench scenario against a release posthorn on loopback:
# starts the daemon with a temporary data directory (under /var/tmp, on disk, so
# fsyncs are real), creates a domain and accounts with the posthorn CLI, fills the
# mailboxes over SMTP, then measures SMTP ingest, the IMAP client mix and new
# sessions, POP3 RETR, and IDLE memory and push latency. delivery-bench (the
# delivery core without sockets) runs first.
#
#   benches/run.sh                 # build (if needed), run, print tables
#   benches/run.sh --json FILE     # also append one JSON report per line to FILE
#   benches/run.sh --compare       # then the same scenarios against Postfix+Dovecot
#                                  # (benches/postfix-dovecot.sh, Debian packages)
#
# Environment: SECONDS_PER_RUN (10), SMTP_SESSIONS (20), ACCOUNTS (8), FILL (2000
# messages per account before IMAP/POP3), IDLE_SESSIONS (2000), IDLE_MESSAGES (20),
# PORT_BASE (30000), SKIP_BUILD=1, KEEP=1 (keep the work directory),
# TARGET_DIR (/var/tmp/posthorn-target).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-/var/tmp/posthorn-target}
BIN=$TARGET_DIR/release
SECS=${SECONDS_PER_RUN:-10}
SMTP_SESSIONS=${SMTP_SESSIONS:-20}
ACCOUNTS=${ACCOUNTS:-8}
FILL=${FILL:-2000}
IDLE_SESSIONS=${IDLE_SESSIONS:-2000}
IDLE_MESSAGES=${IDLE_MESSAGES:-20}
PORT_BASE=${PORT_BASE:-30000}
SIZES=2k:70,20k:25,500k:5
DOMAIN=bench.test
USER_TEMPLATE="bench{n}@$DOMAIN"
PASSWORD=bench-password-1
JSON_OUT=
COMPARE=0

while [ $# -gt 0 ]; do
    case $1 in
        --json) JSON_OUT=$(realpath -m "$2"); shift 2 ;;
        --compare) COMPARE=1; shift ;;
        *) echo "usage: $0 [--json FILE] [--compare]" >&2; exit 2 ;;
    esac
done

if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --workspace --release)
fi
# Thousands of idle connections on both ends.
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /var/tmp/posthorn-bench.XXXXXX)
chmod 755 "$WORK" # Postfix and Dovecot run as their own users below it.
DAEMON_PID=
DNS_PID=
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null
    if [ "$COMPARE" = 1 ]; then "$ROOT/benches/postfix-dovecot.sh" stop "$WORK/pd" || true; fi
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

bench() {
    echo "+ posthorn-bench $*"
    "$BIN/posthorn-bench" ${JSON_OUT:+--save "$JSON_OUT"} "$@"
}

# Waits until messages acknowledged over SMTP are in their mailboxes (posthorn:
# at once; Postfix: once its queue is empty).
DRAIN=(true)
drain() {
    [ "${DRAIN[0]}" = true ] && return
    local t0 t1
    t0=$(date +%s.%N)
    "${DRAIN[@]}"
    t1=$(date +%s.%N)
    awk "BEGIN { printf \"queue drained %.1f s after the last 250\\n\", $t1 - $t0 }"
}

# Every scenario against one server.
#   scenarios LABEL SMTP_PORT IMAP_PORT POP3_PORT PROCESS_ARGS...
scenarios() {
    local label=$1 smtp=$2 imap=$3 pop3=$4
    shift 4
    local process=("$@") login=(--user "$USER_TEMPLATE" --password "$PASSWORD" --accounts "$ACCOUNTS")
    echo "### $label"
    # IDLE first, while the server's memory is not yet shaped by the other loads.
    bench --label "$label" idle --port "$imap" --smtp-port "$smtp" "${login[@]}" \
        --sessions "$IDLE_SESSIONS" --messages "$IDLE_MESSAGES" "${process[@]}"
    echo "filling $ACCOUNTS mailboxes with $FILL messages each ($SIZES)"
    "$BIN/posthorn-bench" smtp --port "$smtp" --to "$USER_TEMPLATE" --accounts "$ACCOUNTS" \
        --sessions "$SMTP_SESSIONS" --messages $((ACCOUNTS * FILL)) --sizes "$SIZES" >/dev/null
    drain
    bench --label "$label" smtp --port "$smtp" --to "$USER_TEMPLATE" --accounts "$ACCOUNTS" \
        --sessions "$SMTP_SESSIONS" --duration "$SECS" --sizes "$SIZES" "${process[@]}"
    drain
    bench --label "$label" smtp --port "$smtp" --to "$USER_TEMPLATE" --accounts "$ACCOUNTS" \
        --sessions "$SMTP_SESSIONS" --duration "$SECS" --sizes 10KiB "${process[@]}"
    drain
    bench --label "$label" smtp --port "$smtp" --to "$USER_TEMPLATE" --accounts "$ACCOUNTS" \
        --sessions "$SMTP_SESSIONS" --messages "$SMTP_SESSIONS" --sizes 50m "${process[@]}"
    drain
    bench --label "$label" imap --port "$imap" "${login[@]}" --sessions "$ACCOUNTS" --duration "$SECS"
    bench --label "$label" pop3 --port "$pop3" "${login[@]}" --sessions "$ACCOUNTS" --duration "$SECS"
}

# A loopback DNS server that knows no names: SPF on port 25 gets a quick NXDOMAIN
# ("none", accepted) instead of asking the machine's resolver.
python3 -u -c '
import sys, time
sys.path.insert(0, sys.argv[1])
from dns_stub import DnsServer
print(DnsServer({}).port)
while True: time.sleep(3600)
' "$ROOT/tests" >"$WORK/dns.port" &
DNS_PID=$!
for _ in $(seq 50); do [ -s "$WORK/dns.port" ] && break; sleep 0.1; done
DNS_PORT=$(cat "$WORK/dns.port")

SMTP_PORT=$((PORT_BASE + 25)) IMAP_PORT=$((PORT_BASE + 143)) POP3_PORT=$((PORT_BASE + 110))
CONFIG=$WORK/posthorn.toml
cat >"$CONFIG" <<EOF
[server]
hostname = "bench.localhost"
data_dir = "$WORK/data"

[listeners]
smtp = "127.0.0.1:$SMTP_PORT"
imap = "127.0.0.1:$IMAP_PORT"
pop3 = "127.0.0.1:$POP3_PORT"

[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
self_signed = true
allow_plaintext_auth = true

[limits]
max_connections = 20000
max_connections_per_ip = 20000

[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]

[log]
level = "warn"
EOF

"$BIN/posthorn" serve --config "$CONFIG" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do
    [ -S "$WORK/data/posthorn.sock" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log"; exit 1; }
    sleep 0.1
done
"$BIN/posthorn" --config "$CONFIG" domain add "$DOMAIN" >/dev/null
for n in $(seq 0 $((ACCOUNTS - 1))); do
    "$BIN/posthorn" --config "$CONFIG" account add "bench$n@$DOMAIN" --password "$PASSWORD" \
        --quota 100GB >/dev/null
done

echo "posthorn $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) cores, $(date -u '+%F %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "### delivery core (store directly, no sockets)"
"$BIN/delivery-bench" 5
scenarios posthorn "$SMTP_PORT" "$IMAP_PORT" "$POP3_PORT" --pid "$DAEMON_PID"
kill "$DAEMON_PID" && wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=

if [ "$COMPARE" = 1 ]; then
    PD_BASE=$((PORT_BASE + 1000))
    BENCH=$BIN/posthorn-bench "$ROOT/benches/postfix-dovecot.sh" start "$WORK/pd" "$PD_BASE" \
        "$DOMAIN" "$PASSWORD" "$ACCOUNTS"
    DRAIN=("$ROOT/benches/postfix-dovecot.sh" drain "$WORK/pd")
    scenarios postfix+dovecot $((PD_BASE + 25)) $((PD_BASE + 143)) $((PD_BASE + 110)) \
        --process master --process smtpd --process cleanup --process qmgr \
        --process trivial-rewrite --process lmtp --process dovecot --process imap \
        --process imap-login --process pop3 --process pop3-login --process auth \
        --process anvil --process log --process config
fi
