# stack.sh - the one-machine stack, for scripts/demo.sh (sourced, not run).
#
# Starts each server in the background in $STACK_DIR, waits until it answers, and records
# its address: REDIS_PORT, KAFKA_BOOTSTRAP, DS_PORT, GRIST_PORT. stack_stop stops them all.
# Logs go to $STACK_DIR/<name>.log.

STACK_PIDS=()

_stack_wait_file() { # file pid name
  for _ in $(seq 1 300); do
    if [ -s "$1" ]; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "stack: $3 exited; see $STACK_DIR/$3.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "stack: $3 did not start in 30 s; see $STACK_DIR/$3.log" >&2; return 1
}

_stack_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

stack_start_redis() {
  REDIS_PORT=$(_stack_free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$STACK_DIR" \
    >"$STACK_DIR/redis.log" 2>&1 &
  STACK_PIDS+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "stack: redis-server did not start; see $STACK_DIR/redis.log" >&2; return 1
}

stack_start_kafka() { # partitions
  "$D2G_BIN/ds2grist-kafka-mock" --partitions "${1:-6}" --bootstrap-file "$STACK_DIR/kafka.bootstrap" \
    >"$STACK_DIR/kafka.log" 2>&1 &
  STACK_PIDS+=($!)
  _stack_wait_file "$STACK_DIR/kafka.bootstrap" $! kafka || return 1
  KAFKA_BOOTSTRAP=$(cat "$STACK_DIR/kafka.bootstrap")
}

stack_start_ds() { # config.json
  node "$D2G_ROOT/tests/ds-emulator/server.js" --port 0 --port-file "$STACK_DIR/ds.port" --config "$1" \
    >"$STACK_DIR/ds-emulator.log" 2>&1 &
  STACK_PIDS+=($!)
  _stack_wait_file "$STACK_DIR/ds.port" $! ds-emulator || return 1
  DS_PORT=$(cat "$STACK_DIR/ds.port")
}

stack_start_grist() { # config.json
  node "$D2G_ROOT/tests/grist-emulator/server.js" --port 0 --port-file "$STACK_DIR/grist.port" --config "$1" \
    >"$STACK_DIR/grist-emulator.log" 2>&1 &
  STACK_PIDS+=($!)
  _stack_wait_file "$STACK_DIR/grist.port" $! grist-emulator || return 1
  GRIST_PORT=$(cat "$STACK_DIR/grist.port")
}

# Stops in the reverse order of start, each one before the next: the services (started last)
# shut down cleanly while Redis and Kafka are still there.
stack_stop() {
  local i pid
  for (( i=${#STACK_PIDS[@]}-1; i>=0; i-- )); do
    pid=${STACK_PIDS[$i]}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
}
