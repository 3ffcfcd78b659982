#!/bin/sh
# GENERATED from infra/kafka_acls.py: do not edit (.venv/bin/python infra/kafka_acls.py).
# Run once by the compose service kafka-acls (as the super user kafka-admin, mutual TLS) before
# the topic job: one principal per service (the CN of its client certificate), least privilege.
set -eu
ACLS="/opt/kafka/bin/kafka-acls.sh --bootstrap-server ${KAFKA_BOOTSTRAP} --command-config ${ADMIN_CONFIG}"
$ACLS --add --allow-principal User:dasan-gateway --operation Describe --operation Write --topic call.audio
$ACLS --add --allow-principal User:dasan-gateway --operation Describe --operation Write --topic call.events
$ACLS --add --allow-principal User:dasan-asr-worker --operation Describe --operation Read --topic call.audio
$ACLS --add --allow-principal User:dasan-asr-worker --operation Describe --operation Write --topic call.audio.dlq
$ACLS --add --allow-principal User:dasan-asr-worker --operation Describe --operation Read --topic call.events
$ACLS --add --allow-principal User:dasan-asr-worker --operation Describe --operation Write --topic call.events.dlq
$ACLS --add --allow-principal User:dasan-asr-worker --operation Describe --operation Write --topic call.transcripts
$ACLS --add --allow-principal User:dasan-asr-worker --operation Describe --operation Read --group asr-workers
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Read --operation Write --topic assist.suggestions
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Read --topic call.events
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Write --topic call.events.dlq
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Read --topic call.transcripts
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Write --topic call.transcripts.dlq
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Read --operation Write --topic kb.versions
$ACLS --add --allow-principal User:dasan-assist --operation Describe --operation Read --group assist
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Read --topic assist.suggestions
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Write --topic assist.suggestions.dlq
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Read --topic call.events
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Write --topic call.events.dlq
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Read --operation Write --topic call.summaries
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Read --topic call.transcripts
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Write --topic call.transcripts.dlq
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Read --topic kb.versions
$ACLS --add --allow-principal User:dasan-assist-summaries --operation Describe --operation Read --group assist-summaries
$ACLS --add --allow-principal User:dasan-assist-shadow --operation Describe --operation Read --operation Write --topic assist.suggestions.shadow
$ACLS --add --allow-principal User:dasan-assist-shadow --operation Describe --operation Read --topic call.events
$ACLS --add --allow-principal User:dasan-assist-shadow --operation Describe --operation Write --topic call.events.dlq
$ACLS --add --allow-principal User:dasan-assist-shadow --operation Describe --operation Read --topic call.transcripts
$ACLS --add --allow-principal User:dasan-assist-shadow --operation Describe --operation Write --topic call.transcripts.dlq
$ACLS --add --allow-principal User:dasan-assist-shadow --operation Describe --operation Read --group assist-shadow-candidate
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Read --topic assist.suggestions
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Write --topic assist.suggestions.dlq
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Read --topic assist.suggestions.shadow
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Write --topic assist.suggestions.shadow.dlq
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Read --topic call.events
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Write --topic call.events.dlq
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Read --topic call.summaries
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Write --topic call.summaries.dlq
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Read --topic call.transcripts
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Write --topic call.transcripts.dlq
$ACLS --add --allow-principal User:dasan-console --operation Describe --operation Read --group console-recorder
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic assist.suggestions
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic assist.suggestions.dlq
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic assist.suggestions.shadow
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic assist.suggestions.shadow.dlq
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.audio
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.audio.dlq
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.events
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.events.dlq
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.summaries
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.summaries.dlq
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.transcripts
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic call.transcripts.dlq
$ACLS --add --allow-principal User:dasan-topics --operation Create --operation Describe --operation DescribeConfigs --topic kb.versions
$ACLS --add --allow-principal User:dasan-keda --operation Describe --topic call.audio
$ACLS --add --allow-principal User:dasan-keda --operation Describe --topic call.events
$ACLS --add --allow-principal User:dasan-keda --operation Describe --topic call.transcripts
$ACLS --add --allow-principal User:dasan-keda --operation Describe --group asr-workers
$ACLS --add --allow-principal User:dasan-keda --operation Describe --group assist
$ACLS --add --allow-principal User:dasan-keda --operation Describe --group assist-summaries
echo "ACLs in place"
