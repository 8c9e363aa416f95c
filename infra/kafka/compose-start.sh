#!/bin/bash
# Starts the Kafka of `docker compose`: renders compose.properties with the passwords of the
# container's variables (into a file of its own, mode 0600), formats the data folder the first
# time with the admin's SCRAM user (the brokers log in to each other as it), then runs Kafka.
set -euo pipefail
: "${LOOPLINE_ADMIN_PASSWORD:?run loopline infra compose-secrets first}"
: "${LOOPLINE_CONTROLLER_PASSWORD:?run loopline infra compose-secrets first}"
: "${LOOPLINE_PLAIN_USERS:?run loopline infra compose-secrets first}"
umask 077
config=/tmp/server.properties
sed -e "s|@ADMIN_PASSWORD@|${LOOPLINE_ADMIN_PASSWORD}|g" \
    -e "s|@CONTROLLER_PASSWORD@|${LOOPLINE_CONTROLLER_PASSWORD}|g" \
    -e "s|@PLAIN_USERS@|${LOOPLINE_PLAIN_USERS}|g" \
    /loopline/compose.properties > "$config"
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format --standalone \
    --cluster-id "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" --config "$config" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${LOOPLINE_ADMIN_PASSWORD}]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
