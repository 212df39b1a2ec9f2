#!/bin/sh
# Creates corral's Kafka topic, or brings an existing one up to the partition count and topic
# configs of ConfigMap corral-kafka, and the control topic (legal holds, audit heads: one
# partition, compacted, never deleted by time). Idempotent: every `kubectl apply` may run it again.
# Runs in the apache/kafka image (kafka-topics.sh, kafka-configs.sh under /opt/kafka/bin).
#
# With security_protocol SSL / SASL_SSL / SASL_PLAINTEXT it reads Secret corral-kafka-client,
# mounted at /etc/corral/kafka-client: ca.crt (PEM), username, password (printable ASCII: Java reads
# properties files as ISO-8859-1).
set -eu

: "${CORRAL_BROKERS:?from ConfigMap corral-kafka, key brokers}"
: "${CORRAL_TOPIC:?from ConfigMap corral-kafka, key topic}"
: "${CORRAL_CONTROL_TOPIC:?from ConfigMap corral-kafka, key control_topic}"
: "${TOPIC_PARTITIONS:?}" "${TOPIC_REPLICATION_FACTOR:?}" "${TOPIC_RETENTION_MS:?}" "${TOPIC_MIN_INSYNC_REPLICAS:?}"
protocol=${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}
mechanism=${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}
credentials=/etc/corral/kafka-client
bin=/opt/kafka/bin
props=/tmp/client.properties

# A value inside a JAAS quoted string, inside a properties file: backslash and double quote escaped
# for JAAS, then backslashes doubled again for java.util.Properties.
jaas_value() {
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\\/\\\\/g' "$1" | tr -d '\n'
}

umask 077
: > "$props"
case $protocol in
  PLAINTEXT) ;;
  SSL | SASL_SSL | SASL_PLAINTEXT)
    echo "security.protocol=$protocol" >> "$props"
    if [ -f "$credentials/ca.crt" ]; then
      echo "ssl.truststore.type=PEM" >> "$props"
      echo "ssl.truststore.location=$credentials/ca.crt" >> "$props"
    fi
    case $protocol in
      SASL_*)
        case $mechanism in
          PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
          SCRAM-SHA-256 | SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
          *) echo "create-topic: sasl_mechanism $mechanism is not supported here (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)" >&2; exit 1 ;;
        esac
        for key in username password; do
          [ -s "$credentials/$key" ] || { echo "create-topic: $credentials/$key is missing: create Secret corral-kafka-client (deploy/README.md)" >&2; exit 1; }
        done
        echo "sasl.mechanism=$mechanism" >> "$props"
        printf 'sasl.jaas.config=%s required username="%s" password="%s";\n' \
          "$module" "$(jaas_value "$credentials/username")" "$(jaas_value "$credentials/password")" >> "$props"
        ;;
    esac
    ;;
  *) echo "create-topic: security_protocol $protocol is not one of PLAINTEXT, SSL, SASL_SSL, SASL_PLAINTEXT" >&2; exit 1 ;;
esac

topics() { "$bin/kafka-topics.sh" --bootstrap-server "$CORRAL_BROKERS" --command-config "$props" "$@"; }

echo "create-topic: $CORRAL_TOPIC on $CORRAL_BROKERS ($protocol): $TOPIC_PARTITIONS partitions, replication factor $TOPIC_REPLICATION_FACTOR"
topics --create --if-not-exists --topic "$CORRAL_TOPIC" \
  --partitions "$TOPIC_PARTITIONS" --replication-factor "$TOPIC_REPLICATION_FACTOR" \
  --config "retention.ms=$TOPIC_RETENTION_MS" --config "min.insync.replicas=$TOPIC_MIN_INSYNC_REPLICAS"

# An existing topic: partitions only ever grow (Kafka cannot shrink them), configs follow the ConfigMap.
current=$(topics --describe --topic "$CORRAL_TOPIC" | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1)
if [ -z "$current" ]; then
  echo "create-topic: cannot read the partition count of $CORRAL_TOPIC" >&2
  exit 1
elif [ "$current" -lt "$TOPIC_PARTITIONS" ]; then
  echo "create-topic: growing $CORRAL_TOPIC from $current to $TOPIC_PARTITIONS partitions"
  topics --alter --topic "$CORRAL_TOPIC" --partitions "$TOPIC_PARTITIONS"
elif [ "$current" -gt "$TOPIC_PARTITIONS" ]; then
  echo "create-topic: $CORRAL_TOPIC has $current partitions, more than the $TOPIC_PARTITIONS asked for; left as it is"
fi
"$bin/kafka-configs.sh" --bootstrap-server "$CORRAL_BROKERS" --command-config "$props" --alter \
  --entity-type topics --entity-name "$CORRAL_TOPIC" \
  --add-config "retention.ms=$TOPIC_RETENTION_MS,min.insync.replicas=$TOPIC_MIN_INSYNC_REPLICAS"
topics --describe --topic "$CORRAL_TOPIC"

# The control topic: one partition (its order is the cluster's order of hold changes), compacted
# (the newest hold or audit head per key is kept, forever: retention.ms=-1).
echo "create-topic: $CORRAL_CONTROL_TOPIC: 1 partition, compacted, replication factor $TOPIC_REPLICATION_FACTOR"
topics --create --if-not-exists --topic "$CORRAL_CONTROL_TOPIC" \
  --partitions 1 --replication-factor "$TOPIC_REPLICATION_FACTOR" \
  --config cleanup.policy=compact --config retention.ms=-1 --config "min.insync.replicas=$TOPIC_MIN_INSYNC_REPLICAS"
"$bin/kafka-configs.sh" --bootstrap-server "$CORRAL_BROKERS" --command-config "$props" --alter \
  --entity-type topics --entity-name "$CORRAL_CONTROL_TOPIC" \
  --add-config "cleanup.policy=compact,retention.ms=-1,min.insync.replicas=$TOPIC_MIN_INSYNC_REPLICAS"
topics --describe --topic "$CORRAL_CONTROL_TOPIC"
