-- Points accounts and entries, and the inbox of applied event ids (exactly-once effect).
CREATE TABLE points_accounts (
  user_id VARCHAR(64) NOT NULL,
  balance BIGINT NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE points_entries (
  entry_id BIGINT NOT NULL AUTO_INCREMENT,
  user_id VARCHAR(64) NOT NULL,
  payment_id VARCHAR(64) NOT NULL,
  event_id VARCHAR(64) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  delta BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (entry_id),
  UNIQUE KEY points_entries_payment_kind (payment_id, kind),
  KEY points_entries_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE processed_events (
  event_id VARCHAR(64) NOT NULL,
  event_type VARCHAR(64) NOT NULL,
  processed_at DATETIME(6) NOT NULL,
  PRIMARY KEY (event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
