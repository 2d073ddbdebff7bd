#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job on the embedded default: generates one
# sample upload per example form type (with errors injected), ingests each through the Dagster
# assets into .ingest/warehouse.duckdb, and prints what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export INGEST_HOME=${INGEST_HOME:-$PWD/.ingest}
cli=.venv/bin/ingest-pipeline
samples=$INGEST_HOME/samples
mkdir -p "$samples"

echo "== generating sample uploads in $samples"
$cli generate --form-type employee_roster --rows 50000 --error-rate 0.02 --seed 1 --company acme --out "$samples/acme-roster.csv"
$cli generate --form-type claims_extract --rows 20000 --error-rate 0.04 --seed 2 --company acme --out "$samples/acme-claims.txt"
$cli generate --form-type payroll --rows 20000 --error-rate 0.03 --seed 3 --company globex --out "$samples/globex-payroll.txt"

echo "== ingesting them through the Dagster assets (home: $INGEST_HOME)"
status=0
$cli run "$samples/acme-roster.csv" --company acme --form-type employee_roster || status=1
$cli run "$samples/acme-claims.txt" --company acme --form-type claims_extract || status=1
$cli run "$samples/globex-payroll.txt" --company globex --form-type payroll || status=1

echo "== ingest-pipeline status"
$cli status
echo "== the most common problems, from ingest.messages"
.venv/bin/python - "$INGEST_HOME/warehouse.duckdb" <<'PY'
import sys, duckdb
with duckdb.connect(sys.argv[1], read_only=True) as db:
    rows = db.execute("""
        SELECT u.form_type, m.field, m.rule, count(*) AS n, any_value(m.message) AS example
        FROM ingest.messages m JOIN ingest.uploads u USING (upload_id)
        GROUP BY ALL ORDER BY n DESC LIMIT 8""").fetchall()
for form_type, field, rule, n, example in rows:
    print(f"{n:>6}  {form_type:<16} {str(field):<16} {rule:<12} e.g. {example[:70]}")
PY
echo "== open the Dagster UI on these runs with: .venv/bin/ingest-pipeline ui"
exit $status
