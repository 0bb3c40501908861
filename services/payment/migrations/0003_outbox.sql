-- The transactional outbox: events are inserted in the transaction that changes the money
-- and published to Kafka by the relay afterwards; published rows are pruned later.
CREATE TABLE outbox (
  id BIGINT NOT NULL AUTO_INCREMENT,
  event_id CHAR(36) NOT NULL,
  topic VARCHAR(249) NOT NULL,
  event_key VARCHAR(64) NOT NULL,
  event_type VARCHAR(64) NOT NULL,
  payload BLOB NOT NULL,
  created_at DATETIME(6) NOT NULL,
  published_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY outbox_event_id (event_id),
  KEY outbox_published_at (published_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
