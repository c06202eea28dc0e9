DROP TABLE IF EXISTS partnercenter_adapter.missing_referrals;
DROP TABLE IF EXISTS partnercenter_adapter.cursors;
