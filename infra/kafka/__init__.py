"""The local single-node Kafka (KRaft) used in embedded mode; jars come from Maven."""
