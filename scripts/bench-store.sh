#!/usr/bin/env bash
# Ticket store benchmark on SQLite and PostgreSQL: ticket registration with
# assignment per second, and caller lookup p50/p99 over 1,000,000 contacts and
# 100,000 tickets. Each dialect runs on a throwaway database.
#
#   scripts/bench-store.sh                 # full size
#   scripts/bench-store.sh --contacts 100000 --tickets 10000   # smaller
#
# PostgreSQL: the admin URL is $DISPATCHLINE_TEST_PG (default
# postgres://postgres@127.0.0.1:5432/postgres); DISPATCHLINE_SKIP_PG=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --example store_bench
bench="${CARGO_TARGET_DIR:-target}/release/examples/store_bench"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bench" --database "sqlite://$dir/bench.db" "$@"

if [ "${DISPATCHLINE_SKIP_PG:-0}" = 1 ]; then
  echo "DISPATCHLINE_SKIP_PG=1: PostgreSQL skipped"
  exit 0
fi
admin="${DISPATCHLINE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! command -v psql >/dev/null; then
  echo "psql not found: PostgreSQL skipped" >&2
  exit 0
fi
db="dl_bench_$$"
psql "$admin" -qc "CREATE DATABASE $db"
trap 'rm -rf "$dir"; psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
"$bench" --database "${admin%/*}/$db" "$@"
