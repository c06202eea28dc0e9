DROP TABLE IF EXISTS salesforce_adapter.observed;
DROP TABLE IF EXISTS salesforce_adapter.cursors;
