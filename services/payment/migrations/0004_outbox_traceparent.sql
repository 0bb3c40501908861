-- The W3C traceparent of the request that committed the event: the relay sends it as a
-- Kafka header, so the consumer's log lines carry the same trace id as the request's.
ALTER TABLE outbox ADD COLUMN traceparent VARCHAR(55) NULL;
