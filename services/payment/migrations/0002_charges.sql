-- Wallet top-ups from the user's bank account. A charge is PENDING until the bank's answer
-- is known, then SUCCEEDED (the wallet credited in the same transaction) or FAILED.
CREATE TABLE charges (
  charge_id VARCHAR(64) NOT NULL,
  user_id VARCHAR(64) NOT NULL,
  amount BIGINT NOT NULL,
  status VARCHAR(16) NOT NULL,
  failure_reason VARCHAR(32) NULL,
  balance_after BIGINT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (charge_id),
  KEY charges_status_created (status, created_at),
  KEY charges_user_id (user_id),
  CONSTRAINT charges_amount_positive CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
