#!/usr/bin/env bash
# Command-line wrapper around kb_run_vm (see lib.sh for the options).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kb_run_vm "$@"
