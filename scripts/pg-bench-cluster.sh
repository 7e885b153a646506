#!/usr/bin/env bash
# Start or stop a PostgreSQL cluster on 127.0.0.1 for benchmarks/engine.py, with the server's default settings:
# durable (fsync, synchronous_commit and full_page_writes on), as production runs, unlike the test cluster.
#   eval "$(scripts/pg-bench-cluster.sh start)"   # prints: export CAMPAIGNKIT_BENCH_PG_URL=...
#   .venv/bin/python benchmarks/engine.py --database "$CAMPAIGNKIT_BENCH_PG_URL" --workers 2
#   scripts/pg-bench-cluster.sh stop
# scripts/pg-test-cluster.sh does the work, with a folder and ports of its own so that both can run at once;
# CAMPAIGNKIT_PG_DIR and CAMPAIGNKIT_PG_PORT choose them as they do there.
exec env CAMPAIGNKIT_PG_ROLE=bench "$(dirname "$0")/pg-test-cluster.sh" "$@"
