DROP TABLE IF EXISTS ingress.test_events;
