#!/bin/sh
# Compose's Alertmanager entrypoint: fill alertmanager.yml.tmpl from the environment (the
# defaults are tradebus_cli.monitoring.ALERT_DEFAULTS'), then run Alertmanager with the result.
set -eu
: "${ALERT_WEBHOOK_URL:=http://127.0.0.1:9/no-webhook-configured}"
: "${ALERT_WEBHOOK_CRITICAL_URL:=$ALERT_WEBHOOK_URL}"
: "${ALERT_GROUP_WAIT:=30s}"
: "${ALERT_GROUP_INTERVAL:=5m}"
: "${ALERT_REPEAT_INTERVAL:=4h}"
: "${ALERTMANAGER_TEMPLATE:=/etc/alertmanager/alertmanager.yml.tmpl}"
: "${ALERTMANAGER_CONFIG:=/tmp/alertmanager.yml}"
sed -e "s|\${ALERT_WEBHOOK_URL}|$ALERT_WEBHOOK_URL|g" \
    -e "s|\${ALERT_WEBHOOK_CRITICAL_URL}|$ALERT_WEBHOOK_CRITICAL_URL|g" \
    -e "s|\${ALERT_GROUP_WAIT}|$ALERT_GROUP_WAIT|g" \
    -e "s|\${ALERT_GROUP_INTERVAL}|$ALERT_GROUP_INTERVAL|g" \
    -e "s|\${ALERT_REPEAT_INTERVAL}|$ALERT_REPEAT_INTERVAL|g" \
    "$ALERTMANAGER_TEMPLATE" >"$ALERTMANAGER_CONFIG"
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$ALERTMANAGER_CONFIG" "$@"
