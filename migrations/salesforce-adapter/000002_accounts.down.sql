DROP TABLE IF EXISTS salesforce_adapter.accounts;
