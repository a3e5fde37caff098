# Shared by the load benchmarks (scripts/bench-token, bench-flow, bench-introspect); sourced, not
# run. Builds both release binaries, starts a throwaway server on free loopback ports (SQLite in a
# temporary data directory, or a fresh Postgres database on DATABASE_ADMIN_URL, default
# postgres://postgres@127.0.0.1:5432), and on exit stops it and removes its data (and database).
#
# Environment: SKIP_BUILD=1 to use the binaries already in target/release, LOG_LEVEL of the
# server (warn; info logs a line per request), DATABASE_ADMIN_URL.

# Builds (unless SKIP_BUILD) and checks the binaries; sets $server and $load.
bench_build() {
  if [ -z "${SKIP_BUILD:-}" ]; then
    # Two builds, not one: building both packages together would unify their dependencies'
    # features and could make a server binary other than the one `cargo build -p` makes.
    cargo build --release -p portcullis-server --bin portcullis
    cargo build --release -p portcullis-loadgen --bin portcullis-load
  fi
  server=target/release/portcullis
  load=target/release/portcullis-load
  local bin
  for bin in "$server" "$load"; do
    [ -x "$bin" ] || { echo "$bin is missing: run without SKIP_BUILD" >&2; exit 1; }
  done
}

# bench_start NAME BACKEND [ENV=VALUE...]: a temporary directory ($dir), the store options
# ($store, an array), and the server started with the given extra environment ($pid, $issuer,
# $ca), all undone on exit.
bench_start() {
  local name=$1 backend=$2
  shift 2
  dir=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-$name.XXXXXX")
  pid=
  db=
  admin_url=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
  trap bench_cleanup EXIT

  store=(--data-dir "$dir")
  if [ "$backend" = postgres ]; then
    command -v psql >/dev/null || { echo "psql is needed for --postgres" >&2; exit 1; }
    db="portcullis_bench_$$_$RANDOM"
    psql -q "$admin_url" -c "CREATE DATABASE \"$db\"" >/dev/null
    # The admin URL without its database (if it names one), then the fresh database.
    local base=${admin_url%%\?*}
    case $base in *://*/*) base=${base%/*} ;; esac
    store+=(--database-url "$base/$db")
  fi

  # Free ports (port 0); the server prints its issuer and CA on its ready line. Rate limits are
  # off (RATE_LIMITS=true turns them on): one load generator on one address, as one client,
  # would otherwise measure the limits, not the endpoint.
  env PORTCULLIS_LOG__LEVEL="${LOG_LEVEL:-warn}" \
    PORTCULLIS_RATE_LIMITS__ENABLED="${RATE_LIMITS:-false}" "$@" "$server" serve "${store[@]}" \
    --listen 127.0.0.1:0 --mtls-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    >"$dir/server.out" 2>"$dir/server.err" &
  pid=$!
  local ready= _
  for _ in $(seq 1 600); do
    ready=$(grep -m1 '^portcullis ready' "$dir/server.out" || true)
    [ -n "$ready" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$ready" ]; then
    echo "the server did not start:" >&2
    cat "$dir/server.out" "$dir/server.err" >&2
    exit 1
  fi
  issuer=$(tr ' ' '\n' <<<"$ready" | sed -n 's/^issuer=//p')
  ca=$(tr ' ' '\n' <<<"$ready" | sed -n 's/^ca=//p')
}

bench_cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ -n "$db" ]; then
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
  fi
  rm -rf "$dir"
}

# bench_cli NAME ARGS...: runs `portcullis ARGS... <store options>` quietly, its output in
# $dir/NAME.out; on failure prints its errors and exits.
bench_cli() {
  local name=$1
  shift
  PORTCULLIS_LOG__LEVEL=warn "$server" "$@" "${store[@]}" >"$dir/$name.out" 2>"$dir/$name.err" ||
    { cat "$dir/$name.err" >&2; exit 1; }
}

# bench_client_id NAME: the client_id in $dir/NAME.out (as `admin bootstrap` and `clients create`
# print it).
bench_client_id() {
  local id
  id=$(sed -n 's/^  "client_id": "\(.*\)",\{0,1\}$/\1/p' "$dir/$1.out")
  [ -n "$id" ] || { echo "no client_id in the output of $1" >&2; exit 1; }
  echo "$id"
}

# The line before the report: commit, cores, backend.
bench_banner() {
  echo "== $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, backend $1"
}
