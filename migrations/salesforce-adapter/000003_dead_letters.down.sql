DROP TABLE IF EXISTS salesforce_adapter.dead_letters;
