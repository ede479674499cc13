#!/usr/bin/env bash
# Command-line wrapper around kb_make_seed: make-seed.sh OUT.iso USER_DATA META_DATA [NETWORK_CONFIG]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kb_make_seed "$@"
