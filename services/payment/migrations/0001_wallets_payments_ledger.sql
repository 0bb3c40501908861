-- Wallets, payments and the ledger. Runs on MariaDB 10.11 and MySQL 8.0.
-- balance == SUM(ledger_entries.delta) for every wallet; the CHECKs and unique keys are the
-- database's own line of defence behind the service's locks and idempotency records.
CREATE TABLE wallets (
  user_id VARCHAR(64) NOT NULL,
  balance BIGINT NOT NULL DEFAULT 0,
  fence_token BIGINT NOT NULL DEFAULT 0,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (user_id),
  CONSTRAINT wallets_balance_not_negative CHECK (balance >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE payments (
  payment_id CHAR(36) NOT NULL,
  order_id VARCHAR(64) NOT NULL,
  user_id VARCHAR(64) NOT NULL,
  amount BIGINT NOT NULL,
  status VARCHAR(16) NOT NULL,
  balance_after BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  cancelled_at DATETIME(6) NULL,
  PRIMARY KEY (payment_id),
  UNIQUE KEY payments_order_id (order_id),
  KEY payments_user_id (user_id),
  CONSTRAINT payments_amount_positive CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE ledger_entries (
  entry_id BIGINT NOT NULL AUTO_INCREMENT,
  user_id VARCHAR(64) NOT NULL,
  delta BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  reference VARCHAR(100) NOT NULL,
  balance_after BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (entry_id),
  UNIQUE KEY ledger_entries_reference (kind, reference),
  KEY ledger_entries_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
