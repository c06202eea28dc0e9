// Package opprecord defines the shape in which the salesforce-adapter
// hands Salesforce opportunities to the rest of cosell: the SOQL that
// reads one (its fields, its customer Account, its contact roles and its
// Microsoft solutions) and the decoding of a query row into the
// record_json of an OpportunityObserved. The poller and the operator's
// admin endpoint both use it, so a dry run sees exactly what the mapper
// is sent.
package opprecord

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/events/cosellv1"
)

// SObject is the object this package reads.
const SObject = "Opportunity"

// Fields are the Opportunity fields every record carries.
var Fields = []string{
	"Id", "Name", "Amount", "CurrencyIsoCode", "CloseDate", "StageName", "Probability", "Description",
	"IsClosed", "IsWon", "IsDeleted", "OwnerId", "CreatedDate", "LastModifiedDate", "SystemModstamp", "LastModifiedById",
	"Sync_with_Partner_Center__c", "Referral_Identifier__c", "Referral_Link__c", "How_can_Microsoft_help__c",
	"Products__c", "Microsoft_CRM_Identifier__c", "Decline_Reason__c", "AccountId",
}

// AccountFields are the fields of the parent Account (the customer).
var AccountFields = []string{"Name", "BillingCountry", "BillingPostalCode", "BillingCity", "BillingState", "BillingStreet"}

// Child relationship subqueries. Records in the recycle bin are left out
// explicitly because queryAll would return them in subqueries too.
const (
	contactRoles = "(SELECT ContactId, Role, IsPrimary, Contact.FirstName, Contact.LastName, Contact.Email, Contact.Phone" +
		" FROM OpportunityContactRoles WHERE IsDeleted = false ORDER BY CreatedDate, Id)"
	solutions = "(SELECT Solution_Identifier__c, Name FROM Microsoft_Solutions__r WHERE IsDeleted = false ORDER BY CreatedDate, Id)"
)

// selectList is the SELECT list of SOQL, built once.
var selectList = func() string {
	items := append([]string{}, Fields...)
	for _, f := range AccountFields {
		items = append(items, "Account."+f)
	}
	items = append(items, contactRoles, solutions)
	return strings.Join(items, ", ")
}()

// Relevant is the SOQL condition of the opportunities cosell observes:
// opted in, linked, or deleted (queryAll returns those in the recycle bin,
// with the SystemModstamp of their deletion).
const Relevant = "(Sync_with_Partner_Center__c = true OR Referral_Identifier__c != null OR IsDeleted = true)"

// SOQL returns the query of opportunities matching where (a SOQL
// condition, values already escaped; empty for none), ordered by orderBy
// (empty for none).
func SOQL(where, orderBy string) string {
	q := "SELECT " + selectList + " FROM " + SObject
	if where != "" {
		q += " WHERE " + where
	}
	if orderBy != "" {
		q += " ORDER BY " + orderBy
	}
	return q
}

// Record is one decoded opportunity.
type Record struct {
	// ID is the 18-character Id.
	ID string
	// SystemModstamp is when the record last changed, by Salesforce's
	// clock; ModstampText is the same value as Salesforce wrote it.
	SystemModstamp time.Time
	ModstampText   string
	// Deleted reports a record in the recycle bin.
	Deleted bool
	// LastModifiedByID is the user who last changed the record.
	LastModifiedByID string
	// ReferralID is Referral_Identifier__c; empty while unlinked.
	ReferralID string
	// JSON is the record as the query returned it, without the
	// "attributes" objects Salesforce adds to every record.
	JSON json.RawMessage
}

// MsgID is the Msg-Id of the record's OpportunityObserved: one per
// version of the record, so a repeated observation is dropped.
func (r Record) MsgID() string {
	if r.Deleted {
		return "opp-deleted:" + r.ID + ":" + r.ModstampText
	}
	return "opp:" + r.ID + ":" + r.ModstampText
}

// Message is the OpportunityObserved of the record, read at observedAt.
func (r Record) Message(observedAt time.Time) *cosellv1.OpportunityObserved {
	return &cosellv1.OpportunityObserved{
		OpportunityId:    r.ID,
		SystemModstamp:   timestamppb.New(r.SystemModstamp),
		Deleted:          r.Deleted,
		LastModifiedById: r.LastModifiedByID,
		RecordJson:       r.JSON,
		ObservedAt:       timestamppb.New(observedAt),
	}
}

// Decode turns one query row into a Record. Numbers keep the text
// Salesforce sent (an Amount of 100.0 stays 100.0).
func Decode(raw json.RawMessage) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Record{}, fmt.Errorf("decode opportunity: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return Record{}, errors.New("decode opportunity: not a JSON object")
	}
	stripAttributes(obj)
	var r Record
	r.ID, _ = obj["Id"].(string)
	if r.ID == "" {
		return Record{}, errors.New("decode opportunity: no Id")
	}
	r.ModstampText, _ = obj["SystemModstamp"].(string)
	ts, err := ParseDateTime(r.ModstampText)
	if err != nil {
		return Record{}, fmt.Errorf("decode opportunity %s: SystemModstamp: %w", r.ID, err)
	}
	r.SystemModstamp = ts
	r.Deleted, _ = obj["IsDeleted"].(bool)
	r.LastModifiedByID, _ = obj["LastModifiedById"].(string)
	r.ReferralID, _ = obj["Referral_Identifier__c"].(string)
	out, err := json.Marshal(obj)
	if err != nil {
		return Record{}, fmt.Errorf("encode opportunity %s: %w", r.ID, err)
	}
	r.JSON = out
	return r, nil
}

// Version is what identifies one version of an opportunity.
type Version struct {
	ID             string
	SystemModstamp time.Time
}

// Peek reads only the Id and SystemModstamp of a query row, much cheaper
// than Decode; it fails where Decode would on either.
func Peek(raw json.RawMessage) (Version, error) {
	var row struct {
		ID             string `json:"Id"`
		SystemModstamp string `json:"SystemModstamp"`
	}
	if err := json.Unmarshal(raw, &row); err != nil {
		return Version{}, fmt.Errorf("decode opportunity: %w", err)
	}
	if row.ID == "" {
		return Version{}, errors.New("decode opportunity: no Id")
	}
	ts, err := ParseDateTime(row.SystemModstamp)
	if err != nil {
		return Version{}, fmt.Errorf("decode opportunity %s: SystemModstamp: %w", row.ID, err)
	}
	return Version{ID: row.ID, SystemModstamp: ts}, nil
}

// stripAttributes removes "attributes" from v and every object below it.
func stripAttributes(v any) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "attributes")
		for _, c := range x {
			stripAttributes(c)
		}
	case []any:
		for _, c := range x {
			stripAttributes(c)
		}
	}
}

// dateTimeLayouts are the forms Salesforce writes datetimes in: always
// 2006-01-02T15:04:05.000+0000 in REST answers, the others are accepted
// for robustness.
var dateTimeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	time.RFC3339Nano,
}

// ParseDateTime parses a Salesforce datetime.
func ParseDateTime(s string) (time.Time, error) {
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a Salesforce datetime", s)
}

// SOQLDateTime renders t as a SOQL datetime literal, truncated to the
// second (the precision SOQL literals document).
func SOQLDateTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z")
}

// ValidID reports whether s is a well-formed 15- or 18-character
// Salesforce record id. Ids go into SOQL literals and URL paths.
func ValidID(s string) bool {
	if len(s) != 15 && len(s) != 18 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
