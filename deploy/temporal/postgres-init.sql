-- docker-compose.yml's Postgres runs this once, when its volume is new: the
-- Temporal server's own user, which creates and owns its two databases
-- (deploy/temporal/setup-schema.sh).
CREATE USER temporal WITH PASSWORD 'temporal' CREATEDB;
