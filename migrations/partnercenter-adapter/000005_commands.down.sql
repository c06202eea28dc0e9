DROP TABLE IF EXISTS partnercenter_adapter.commands;
