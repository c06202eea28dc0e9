// Package sfschema models the Salesforce metadata the emulator serves: the
// sObjects, their fields, picklists, lookups and child relationships. The
// REST layer renders describe results from it and validates writes against
// it; the SOQL engine resolves names against it. Keeping one model means a
// field that describe advertises is exactly a field that queries and writes
// accept, as in a real org.
//
// Choices where the public contract is silent (see the package README in the
// emulator and reference §5.4, §7):
//
//   - The Microsoft co-sell fields use the un-namespaced API names of
//     Microsoft's 2020 manual-setup instructions (Sync_with_Partner_Center__c,
//     Referral_Identifier__c, …); the managed package's namespace prefix is
//     undocumented.
//   - The "Microsoft Solutions" related list is the custom object
//     Microsoft_Solution__c (key prefix a0X) with a master-detail field
//     Opportunity__c (child relationship Microsoft_Solutions__r) and the
//     solution id in Solution_Identifier__c.
//   - How_can_Microsoft_help__c is a restricted picklist whose values are the
//     six labels of Microsoft's instructions; HelpCode maps them to Partner
//     Center's assistanceRequestCode values one to one.
//   - StageName and CurrencyIsoCode are restricted picklists, the stricter of
//     the behaviours a client must cope with.
//   - Field requiredness follows describe's rule: a createable field that is
//     not nillable, not defaulted on create and not a boolean is required.
package sfschema

import (
	"sort"
	"strings"
)

// FieldType is the describe "type" of a field. Its values are the strings
// Salesforce puts in describe results, so they can be rendered unchanged.
type FieldType string

// The field types the emulator models.
const (
	TypeID            FieldType = "id"
	TypeString        FieldType = "string"
	TypeTextArea      FieldType = "textarea"
	TypeBoolean       FieldType = "boolean"
	TypeCurrency      FieldType = "currency"
	TypeDouble        FieldType = "double"
	TypeInt           FieldType = "int"
	TypePercent       FieldType = "percent"
	TypeDate          FieldType = "date"
	TypeDateTime      FieldType = "datetime"
	TypePicklist      FieldType = "picklist"
	TypeMultiPicklist FieldType = "multipicklist"
	TypeReference     FieldType = "reference"
	TypeURL           FieldType = "url"
	TypeEmail         FieldType = "email"
	TypePhone         FieldType = "phone"
)

// IsNumeric reports whether values of the type are JSON numbers; SOQL
// compares them numerically and the REST layer rejects strings for them.
func (t FieldType) IsNumeric() bool {
	switch t {
	case TypeCurrency, TypeDouble, TypeInt, TypePercent:
		return true
	}
	return false
}

// IsText reports whether values of the type are JSON strings holding free or
// constrained text (ids, references and picklists included), the types SOQL
// compares as strings and LIKE accepts.
func (t FieldType) IsText() bool {
	switch t {
	case TypeID, TypeString, TypeTextArea, TypePicklist, TypeMultiPicklist,
		TypeReference, TypeURL, TypeEmail, TypePhone:
		return true
	}
	return false
}

// Field describes one field of an sObject, with the describe attributes
// the emulator needs to render describe and to validate reads and writes.
type Field struct {
	Name      string
	Label     string
	Type      FieldType
	Length    int // maximum characters for text types; 0 otherwise
	Precision int // total digits for numeric types
	Scale     int // digits after the decimal point for numeric types

	Nillable   bool
	Createable bool
	Updateable bool
	Filterable bool
	Sortable   bool
	ExternalID bool
	Unique     bool
	IDLookup   bool
	Custom     bool
	Calculated bool
	// DefaultedOnCreate marks fields the server fills when a create omits
	// them (OwnerId, CurrencyIsoCode, …), which therefore are not required.
	DefaultedOnCreate bool

	Picklist           []PicklistValue
	RestrictedPicklist bool
	DefaultValue       any

	ReferenceTo      []string
	RelationshipName string // for lookups: e.g. AccountId → "Account"
	// CascadeDelete marks master-detail lookups: deleting the parent deletes
	// the child.
	CascadeDelete bool
}

// Required reports whether a create must supply the field, using the rule
// clients apply to describe results.
func (f *Field) Required() bool {
	return f.Createable && !f.Nillable && !f.DefaultedOnCreate && f.Type != TypeBoolean
}

// PicklistValue is one entry of a picklist field's picklistValues.
type PicklistValue struct {
	Value        string
	Label        string
	Active       bool
	DefaultValue bool
}

// HasPicklistValue reports whether v is an active value of the field's
// picklist. Salesforce matches picklist values exactly (case-sensitively).
func (f *Field) HasPicklistValue(v string) bool {
	for _, p := range f.Picklist {
		if p.Active && p.Value == v {
			return true
		}
	}
	return false
}

// ChildRelationship is one entry of describe's childRelationships: the
// name a parent-to-child subquery uses and the child's lookup field.
type ChildRelationship struct {
	RelationshipName string
	ChildSObject     string
	Field            string
	CascadeDelete    bool
}

// Object describes one sObject type.
type Object struct {
	Name        string
	Label       string
	LabelPlural string
	KeyPrefix   string
	Custom      bool

	Createable bool
	Updateable bool
	Deletable  bool
	Queryable  bool

	Fields             []*Field
	ChildRelationships []ChildRelationship

	byName map[string]*Field
	byRel  map[string]*Field
}

// Field returns the field with the given API name, matched
// case-insensitively as Salesforce does, or nil.
func (o *Object) Field(name string) *Field {
	if o.byName != nil {
		return o.byName[strings.ToLower(name)]
	}
	for _, f := range o.Fields {
		if strings.EqualFold(f.Name, name) {
			return f
		}
	}
	return nil
}

// FieldByRelationship returns the lookup field whose relationship name is
// rel (e.g. "Account" → AccountId), matched case-insensitively, or nil.
func (o *Object) FieldByRelationship(rel string) *Field {
	if o.byRel != nil {
		return o.byRel[strings.ToLower(rel)]
	}
	for _, f := range o.Fields {
		if f.RelationshipName != "" && strings.EqualFold(f.RelationshipName, rel) {
			return f
		}
	}
	return nil
}

// Child returns the child relationship named rel (e.g.
// "OpportunityContactRoles"), matched case-insensitively, or nil.
func (o *Object) Child(rel string) *ChildRelationship {
	for i := range o.ChildRelationships {
		if strings.EqualFold(o.ChildRelationships[i].RelationshipName, rel) {
			return &o.ChildRelationships[i]
		}
	}
	return nil
}

// index builds the lookup maps; called once when a schema is assembled so
// lookups on the request path are map reads.
func (o *Object) index() {
	o.byName = make(map[string]*Field, len(o.Fields))
	o.byRel = make(map[string]*Field)
	for _, f := range o.Fields {
		o.byName[strings.ToLower(f.Name)] = f
		if f.RelationshipName != "" {
			o.byRel[strings.ToLower(f.RelationshipName)] = f
		}
	}
}

// Schema is the set of sObjects of one emulated org. It is immutable once
// built and safe for concurrent reads.
type Schema struct {
	objects  map[string]*Object // lower-cased name → object
	byPrefix map[string]*Object
	ordered  []*Object
}

// New assembles a schema from objects, indexing names and key prefixes.
// Child relationships are taken as given.
func New(objects ...*Object) *Schema {
	s := &Schema{objects: map[string]*Object{}, byPrefix: map[string]*Object{}}
	for _, o := range objects {
		o.index()
		s.objects[strings.ToLower(o.Name)] = o
		if o.KeyPrefix != "" {
			s.byPrefix[o.KeyPrefix] = o
		}
		s.ordered = append(s.ordered, o)
	}
	sort.Slice(s.ordered, func(i, j int) bool { return s.ordered[i].Name < s.ordered[j].Name })
	return s
}

// Object returns the sObject with the given API name, matched
// case-insensitively, or nil.
func (s *Schema) Object(name string) *Object {
	return s.objects[strings.ToLower(name)]
}

// ObjectByPrefix returns the sObject whose ids start with the three-character
// key prefix, or nil. Prefixes are case-sensitive like ids.
func (s *Schema) ObjectByPrefix(prefix string) *Object {
	return s.byPrefix[prefix]
}

// Objects returns every sObject, sorted by name, for describeGlobal.
func (s *Schema) Objects() []*Object {
	return append([]*Object(nil), s.ordered...)
}
