#!/usr/bin/env bash
# ARCHITECTURE.md layering: sans-IO crates never depend on tokio, sqlx or axum.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in carillon-sip carillon-transaction carillon-digest carillon-registrar carillon-b2bua \
             carillon-sdp carillon-rtp carillon-codec carillon-dialplan carillon-cdr \
             carillon-media carillon-mediactl carillon-trunk carillon-recorder \
             carillon-dtmf carillon-events carillon-ami; do
  [ -d "crates/$crate" ] || continue
  if cargo tree -p "$crate" -e normal --prefix none 2>/dev/null | grep -E '^(tokio|sqlx|axum) ' >/dev/null; then
    echo "layering violation: $crate depends on tokio/sqlx/axum" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "layering: sans-IO crates are free of tokio/sqlx/axum"
exit $status
