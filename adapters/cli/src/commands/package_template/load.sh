#!/bin/sh
# The last task: everything the earlier tasks produced is in the context.
set -eu
echo "loading to ${TARGET}; the context is:"
cat "$CLOACINA_CONTEXT_FILE"
