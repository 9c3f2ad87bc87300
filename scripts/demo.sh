#!/usr/bin/env bash
# A complete local round trip: build, start commander and server on loopback in a
# temporary directory, send one command with the client, show that it ran, stop both.
set -euo pipefail
echo "ruroco demo: the programs are not built yet; nothing to run."
