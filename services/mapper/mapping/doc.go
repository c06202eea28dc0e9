// Package mapping turns Partner Center referrals into Salesforce opportunity
// fields, and Salesforce opportunities into referrals, according to a
// declarative YAML file, so that what is synced, and how, is configuration
// an integration engineer can read, change and validate without touching
// code.
//
// The package is pure: it reads no clock, network or database, so the same
// record and file always produce the same result (and the same hash, which
// is how the mapper recognises its own writes). The package is not
// internal on purpose: the operator CLI (cosellctl) validates and dry-runs
// mapping files with exactly the code the mapper runs.
//
// # Loading and validating
//
//	cfg, err := mapping.LoadFile(path)        // "" = the embedded default
//	cfg, err := mapping.Parse(name, data)     // name is used in messages
//
// Both return a *ValidationError listing every problem; each Problem has
// File, Line, Column, Field (a path into the file such as
// "inbound.fields[3] (CloseDate).as") and Message, and renders as
// "file:line:column: field: message".
//
// # Dry runs
//
// A dry run shows exactly what the mapper would send for one record, field
// by field, without writing anything:
//
//	// A referral document as Partner Center returns it (GET
//	// /v1.0/engagements/referrals/{id}); Create when it has no opportunity
//	// yet, Update afterwards.
//	out, err := mapping.DryRunInbound(cfg, referralJSON, mapping.Create)
//
//	// An opportunity as the salesforce-adapter publishes it (the
//	// record_json of OpportunityObserved); nil currentReferralJSON means
//	// create, else update against that referral.
//	out, err := mapping.DryRunOutbound(cfg, opportunityJSON, currentReferralJSON)
//
// The error is for unusable input only (not JSON, unknown event, a file
// without an outbound section: ErrNoOutbound). Everything else is in the
// *DryRun:
//
//   - Outcome: DryRunSend (Command is the payload), DryRunNothing,
//     DryRunIgnored (Message says why), DryRunRefused (Problems lists what is
//     wrong, in the plain words a seller reads in the Audit field).
//   - Fields: one FieldResult per rule in file order: Target (Salesforce
//     field, or referral path such as "details.dealValue"), Value, Status
//     (set, cleared, unchanged, skipped, failed), Rule and Line (the rule in
//     the file), Source (where the value comes from) and Reason (why it is
//     skipped, unchanged or failed).
//   - Command: inbound the opportunity fields (fields_json of the upsert),
//     outbound the complete referral create body or the JSON Patch array.
//   - Account: the customer account an inbound create finds or creates.
//
// DryRun and FieldResult have JSON tags, so printing one with
// encoding/json gives a stable machine-readable form.
package mapping
