DROP TABLE IF EXISTS partnercenter_adapter.dead_letters;
