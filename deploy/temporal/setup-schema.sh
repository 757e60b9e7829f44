#!/bin/sh
# Creates the Temporal server's two databases and brings their schemas to this
# release's: `create-database` (a database that exists is kept), `setup-schema
# -v 0.0` (the version table; a database that has one is skipped), then
# `update-schema` with the schemas embedded in temporal-sql-tool. Safe to run
# again, and after an upgrade of the server.
#
# Reads the variables deploy/temporal/config.yaml reads (POSTGRES_SEEDS, DB_PORT,
# POSTGRES_USER, POSTGRES_PWD, DBNAME, VISIBILITY_DBNAME), and SQL_TOOL: the
# temporal-sql-tool binary (default: the one on PATH).
set -eu

tool="${SQL_TOOL:-temporal-sql-tool}"
# temporal-sql-tool reads its connection from these itself; the password stays out of argv.
export SQL_PLUGIN=postgres12
export SQL_HOST="${POSTGRES_SEEDS:-127.0.0.1}"
export SQL_PORT="${DB_PORT:-5432}"
export SQL_USER="${POSTGRES_USER:-temporal}"
export SQL_PASSWORD="${POSTGRES_PWD:-}"

for pair in "${DBNAME:-temporal}:postgresql/v12/temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:postgresql/v12/visibility"; do
  db="${pair%%:*}"
  schema="${pair#*:}"
  "$tool" --db "$db" create-database
  "$tool" --db "$db" setup-schema -v 0.0
  "$tool" --db "$db" update-schema --schema-name "$schema"
  echo "database $db: schema $schema is up to date"
done
