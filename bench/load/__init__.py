"""Load tests with Locust: `make load` (one run, thresholds, then the audit) and
`make load-threshold` (the highest rate that holds). The Locust user is locustfile.py."""
