DROP SCHEMA IF EXISTS salesforce_adapter CASCADE;
