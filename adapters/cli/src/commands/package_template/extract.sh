#!/bin/sh
# The first task: produce some data for the tasks after it.
set -eu
echo "extracting from ${SOURCE:-the demo source}"
printf '{"rows": 3, "source": "demo"}\n' > "$CLOACINA_OUTPUT_FILE"
