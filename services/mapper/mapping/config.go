package mapping

import (
	_ "embed"
	"fmt"
	"os"
	"strings"
	"time"
)

// defaultYAML is the mapping used when no file is configured: the field
// defaults of Microsoft's connector, extended with cosell's stage map.
//
//go:embed default.yaml
var defaultYAML []byte

// DefaultFileName names the embedded default in error messages.
const DefaultFileName = "default.yaml (embedded)"

// Version is the newest mapping file format this package reads. Version 1
// files (inbound only) keep working and keep their meaning: they sync
// Partner Center to Salesforce and nothing else.
const Version = 2

// Event says which write a projection is for. Partner Center → Salesforce
// creates an opportunity the first time a referral is synced and updates it
// afterwards; the file decides which fields each event writes.
type Event string

// The events of the inbound direction.
const (
	Create Event = "create"
	Update Event = "update"
)

// Type is how a mapped value is converted for Salesforce.
type Type string

// The conversions a field rule can ask for with "as".
const (
	// TypeString writes text; numbers and booleans become their text.
	TypeString Type = "string"
	// TypeNumber writes a JSON number; numeric text is accepted.
	TypeNumber Type = "number"
	// TypeDate writes a Salesforce date (2006-01-02) from an ISO 8601
	// date-time, taken in the rule's timezone (UTC by default).
	TypeDate Type = "date"
	// TypeDateTime writes a Salesforce date-time (2006-01-02T15:04:05.000Z).
	TypeDateTime Type = "datetime"
	// TypeBool writes true or false; "true"/"false" text is accepted.
	TypeBool Type = "bool"
	// TypeURL writes an absolute http(s) URL; template placeholders are
	// path-escaped.
	TypeURL Type = "url"
	// TypeCurrency writes an ISO 4217 currency code: three letters, upper
	// case.
	TypeCurrency Type = "currency"
	// TypeCountry writes a country as an upper-case code; the outbound
	// checks then require an ISO 3166-1 alpha-2 code.
	TypeCountry Type = "country"
)

// types lists the conversions, for messages.
const typesKnown = "string, number, date, datetime, bool, url, currency, country"

// Missing says what a field rule does when its source has no value.
type Missing string

// The policies for a missing value.
const (
	// MissingSkip leaves the Salesforce field out of the write, so the
	// opportunity keeps whatever it had. The default.
	MissingSkip Missing = "skip"
	// MissingClear writes null, clearing the Salesforce field.
	MissingClear Missing = "clear"
	// MissingFail refuses to map the referral: nothing is sent and the
	// link is parked with the reason, for fields Salesforce cannot do
	// without (StageName, CloseDate).
	MissingFail Missing = "fail"
)

// Config is a validated mapping file.
type Config struct {
	// File is where the mapping came from, for messages; Version is the
	// file's format version.
	File    string
	Version int
	// Object is the Salesforce object inbound referrals become.
	Object string
	// ExternalIDField is the object's External ID field that holds the
	// referral id; upserts go by it.
	ExternalIDField string
	// SyncField is the checkbox that opts an opportunity in to the sync
	// (Sync_with_Partner_Center__c).
	SyncField string
	// AuditField is the long text field the sync trail is written to,
	// newest line first (Audit__c); empty writes none.
	AuditField string
	// Inbound is the Partner Center → Salesforce direction.
	Inbound Inbound
	// Outbound is the Salesforce → Partner Center direction; nil when the
	// file has none (every version 1 file), and then opportunities are not
	// synced to Partner Center.
	Outbound *Outbound
	// Lifecycle says which Salesforce stages accept, decline, win or lose
	// the referral; nil without an outbound direction.
	Lifecycle *Lifecycle
	// Ownership says which side wins each field that both sides write.
	Ownership Ownership

	// lines locates settings for later checks (describe), by field path
	// ("salesforce.audit_field").
	lines map[string]int

	valueMaps map[string]*ValueMap
}

// Inbound holds the rules of the Partner Center → Salesforce direction.
type Inbound struct {
	// Ignore lists the referrals that never start a sync.
	Ignore []IgnoreRule
	// Account says where the customer account's details come from.
	Account AccountRule
	// Fields are the opportunity field rules, in file order.
	Fields []FieldRule
	// Related are the rules applied to Microsoft's referral of a linked
	// engagement (related-referral-* events): what Microsoft's sellers
	// change there reaches the opportunity. Update semantics: only values
	// that change are written.
	Related []FieldRule
}

// IgnoreRule keeps referrals that match When from starting a sync. It
// applies only to referrals that have no link yet: once linked, a referral
// is always followed.
type IgnoreRule struct {
	// Reason is written to the audit log, in plain words.
	Reason string
	// When is the condition; every predicate must hold.
	When Condition
	// Line is where the rule starts in the file.
	Line int
}

// Condition is a conjunction of predicates on the referral.
type Condition struct {
	preds []predicate
}

type predicateOp int

const (
	opEquals predicateOp = iota + 1
	opNotEquals
	opIn
	opPresent
)

type predicate struct {
	path    Path
	op      predicateOp
	values  []string
	present bool
}

// Source is one or more paths; the first that has a value wins.
type Source []Path

// AccountRule says where the customer account's name and address come from.
// The salesforce-adapter finds the account by name and country/postal code
// and creates it when absent.
type AccountRule struct {
	Name, Country, PostalCode, City, State, Street Source
}

// ValueMap translates source values (after templating) into Salesforce
// values, e.g. "Closed/Won" into the stage "Closed Won".
type ValueMap struct {
	// Name is the map's key under value_maps.
	Name string
	// Values maps source text to the value written.
	Values map[string]any
	// Line is where the map starts; lines locate each entry by key.
	Line  int
	lines map[string]int
	// Default is used for text the map does not list, when HasDefault.
	Default    any
	HasDefault bool
}

// FieldRule produces one Salesforce field.
type FieldRule struct {
	// To is the Salesforce field's API name.
	To string
	// OnCreate and OnUpdate say for which events the rule applies.
	OnCreate, OnUpdate bool
	// As is the conversion of the value.
	As Type
	// Missing is the policy when the source has no value.
	Missing Missing
	// MaxLength truncates text to this many characters when positive.
	MaxLength int
	// Line is where the rule starts in the file; Index is its position in
	// its list (inbound.fields[Index]).
	Line, Index int

	// Message is what a seller reads when the rule cannot map the record
	// (outbound), instead of the generated text.
	Message string

	outbound   bool
	from       Source
	list       *listSource
	reverse    bool
	decimals   int
	template   *template
	value      any
	hasValue   bool
	valueMap   *ValueMap
	def        any
	hasDefault bool
	location   *time.Location
	when       *Condition
}

// Default returns the embedded default mapping.
func Default() (*Config, error) {
	return Parse(DefaultFileName, defaultYAML)
}

// DefaultYAML returns the text of the embedded default mapping, so an
// operator can start a custom file from it.
func DefaultYAML() []byte {
	return append([]byte(nil), defaultYAML...)
}

// LoadFile reads and validates the mapping file at path; an empty path
// means the embedded default.
func LoadFile(path string) (*Config, error) {
	if strings.TrimSpace(path) == "" {
		return Default()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping file: %w", err)
	}
	return Parse(path, data)
}

// ValueMap returns the value map called name.
func (c *Config) ValueMap(name string) (*ValueMap, bool) {
	m, ok := c.valueMaps[name]
	return m, ok
}

// Outbound holds the rules of the Salesforce → Partner Center direction.
type Outbound struct {
	// Fields are the referral rules, in file order: To is a referral path
	// ("details.dealValue"), sources are opportunity paths ("Amount",
	// "Account.BillingCountry").
	Fields []FieldRule
	// Writeback are the opportunity fields written once the referral
	// exists, mapped from the created referral (Referral_Link__c); the
	// External ID field and the audit field are always written.
	Writeback []FieldRule
	// NameMarker is appended to the opportunity name once it syncs (" ✔");
	// empty leaves the name alone.
	NameMarker string
	// Line is where the section starts.
	Line int
}

// StageAction is what moving an opportunity into a stage does to its
// referral.
type StageAction string

// The lifecycle actions.
const (
	// ActionAccept accepts an inbound referral: Active/Accepted.
	ActionAccept StageAction = "accept"
	// ActionDecline declines it: Closed/Declined, with the reason.
	ActionDecline StageAction = "decline"
	// ActionWon closes it won: Closed/Won.
	ActionWon StageAction = "won"
	// ActionLost closes it lost: Closed/Lost.
	ActionLost StageAction = "lost"
)

// Verb says what the action does, for messages: "accepts the referral".
func (a StageAction) Verb() string {
	switch a {
	case ActionAccept:
		return "accepts the referral"
	case ActionDecline:
		return "declines the referral"
	case ActionWon:
		return "closes the referral as won"
	case ActionLost:
		return "closes the referral as lost"
	}
	return string(a)
}

// Status returns the referral status and substatus an action sets.
func (a StageAction) Status() (status, substatus string) {
	switch a {
	case ActionAccept:
		return "Active", "Accepted"
	case ActionDecline:
		return "Closed", "Declined"
	case ActionWon:
		return "Closed", "Won"
	case ActionLost:
		return "Closed", "Lost"
	}
	return "", ""
}

// Lifecycle maps Salesforce stages to referral status changes.
type Lifecycle struct {
	// StageField is the opportunity's stage field (StageName).
	StageField string
	// OnHoldStage is where inbound referrals wait until accepted; while an
	// inbound referral is not accepted, edits are not sent to Partner
	// Center (the move out of the stage sends them with the acceptance).
	OnHoldStage string
	// Stages maps a stage to its action; stages not listed leave the
	// referral's status alone.
	Stages map[string]StageAction
	// DeclineReason is where the decline's statusReason comes from
	// (Decline_Reason__c), DeclineDefault the reason when it is empty.
	DeclineReason  Source
	DeclineDefault string
	// Line is where the section starts.
	Line  int
	lines map[string]int
}

// Owner says which side wins a field both sides write.
type Owner string

// The owners.
const (
	// OwnerPartnerCenter: Partner Center's value wins; Salesforce edits of
	// the field are not sent and are overwritten.
	OwnerPartnerCenter Owner = "partnercenter"
	// OwnerSalesforce: Salesforce's value wins.
	OwnerSalesforce Owner = "salesforce"
	// OwnerLatest: the latest change wins, by source timestamp
	// (SystemModstamp against updatedDateTime).
	OwnerLatest Owner = "latest"
)

// Ownership says which side owns each Salesforce field that both
// directions write.
type Ownership struct {
	// Default applies to fields not listed.
	Default Owner
	// Fields are per-field owners, keyed by Salesforce field API name.
	Fields map[string]Owner
	lines  map[string]int
}

// Of returns the owner of a Salesforce field.
func (o Ownership) Of(field string) Owner {
	if w, ok := o.Fields[field]; ok {
		return w
	}
	if o.Default == "" {
		return OwnerLatest
	}
	return o.Default
}
