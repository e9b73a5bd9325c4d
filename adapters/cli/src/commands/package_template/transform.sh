#!/bin/sh
# Reads what extract put in the context and passes a result on.
set -eu
rows=$(sed -n 's/.*"rows": *\([0-9][0-9]*\).*/\1/p' "$CLOACINA_CONTEXT_FILE")
echo "transforming ${rows} rows"
printf '{"doubled": %d}\n' "$((rows * 2))" > "$CLOACINA_OUTPUT_FILE"
