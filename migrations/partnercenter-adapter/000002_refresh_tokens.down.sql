DROP TABLE IF EXISTS partnercenter_adapter.refresh_tokens;
