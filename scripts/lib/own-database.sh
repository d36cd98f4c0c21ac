# Sourced by the scripts that run a Warung of their own (compliance-smoke, fuzz, chaos).
# own_database NAME: empties the database NAME on the stack's PostgreSQL (dropped and created
# anew, so nothing an earlier run left counts), points every WARUNG_DATABASE__*_URL at it and
# migrates it with ./target/debug/warung. Needs the stack's environment.
own_database() {
  local db=$1
  point() { printf '%s/%s' "${1%/*}" "$db"; }
  PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 \
    "${WARUNG_DATABASE__MIGRATE_URL%/*}/postgres" \
    -c "drop database if exists $db with (force)" -c "create database $db" >/dev/null
  export WARUNG_DATABASE__APP_URL=$(point "$WARUNG_DATABASE__APP_URL")
  export WARUNG_DATABASE__SYSTEM_URL=$(point "$WARUNG_DATABASE__SYSTEM_URL")
  export WARUNG_DATABASE__MIGRATE_URL=$(point "$WARUNG_DATABASE__MIGRATE_URL")
  export WARUNG_DATABASE__COMPLIANCE_URL=$(point "$WARUNG_DATABASE__COMPLIANCE_URL")
  ./target/debug/warung migrate >/dev/null
}
