DROP SCHEMA IF EXISTS partnercenter_adapter CASCADE;
