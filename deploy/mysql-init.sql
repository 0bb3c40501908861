CREATE DATABASE IF NOT EXISTS mockpay_points;
GRANT ALL PRIVILEGES ON `mockpay%`.* TO 'mockpay'@'%';
