// Package compat proves that widely used third-party Salesforce clients work
// unchanged against the Salesforce emulator (issue 2): its tests drive a real
// client library, authenticating with client credentials, through the calls
// such a client makes against a real org (login, describe, sObject CRUD,
// upsert by External ID, SOQL with locator paging, sObject Collections,
// Composite, session refresh) and assert the results.
//
// The package has no non-test code; the clients are pinned in emulators/go.mod.
package compat
