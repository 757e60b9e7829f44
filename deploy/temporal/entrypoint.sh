#!/bin/sh
# Starts all four services from config.yaml in a container: listening on every
# interface, and giving the other services (and clients' redirects) this
# container's own address, as Temporal's Docker image does.
set -eu
: "${BIND_ON_IP:=0.0.0.0}"
: "${TEMPORAL_BROADCAST_ADDRESS:=$(hostname -i | cut -d' ' -f1)}"
export BIND_ON_IP TEMPORAL_BROADCAST_ADDRESS
exec temporal-server --config-file /etc/temporal/config.yaml --allow-no-auth start
