"""Kafka side: the producer library an API embeds, the faust app factory and its agents."""
