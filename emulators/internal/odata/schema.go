package odata

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Kind is the EDM-like kind of a schema type.
type Kind int

// The kinds a property can have.
const (
	// KindString is Edm.String.
	KindString Kind = iota
	// KindGuidString is a string property that holds GUIDs (id,
	// engagementId, ...). It compares with quoted string literals
	// (ordinal, case-sensitive) and with unquoted GUID literals (as GUIDs,
	// case-insensitive); a stored value that is not a GUID never equals a
	// GUID literal.
	KindGuidString
	// KindNumber is Edm.Decimal (numbers are compared exactly).
	KindNumber
	// KindBoolean is Edm.Boolean.
	KindBoolean
	// KindDateTimeOffset is Edm.DateTimeOffset, stored as an ISO 8601
	// string and compared as an instant.
	KindDateTimeOffset
	// KindObject is a complex type with a fixed set of properties.
	KindObject
	// KindCollection is a collection of Elem.
	KindCollection
	// KindDynamic is an open (untyped) value: any sub-path is allowed and
	// the JSON type of the stored value decides at evaluation time.
	KindDynamic
)

// Type is a node of the schema the query options are checked against.
// Property names are case-sensitive.
type Type struct {
	Kind  Kind
	Name  string           // shown in messages, e.g. "Referral" or "Edm.String"
	Props map[string]*Type // KindObject only
	Elem  *Type            // KindCollection only
}

// Primitive types. They are shared; do not modify them.
var (
	String         = &Type{Kind: KindString, Name: "Edm.String"}
	GuidString     = &Type{Kind: KindGuidString, Name: "Edm.String"}
	Number         = &Type{Kind: KindNumber, Name: "Edm.Decimal"}
	Boolean        = &Type{Kind: KindBoolean, Name: "Edm.Boolean"}
	DateTimeOffset = &Type{Kind: KindDateTimeOffset, Name: "Edm.DateTimeOffset"}
	Dynamic        = &Type{Kind: KindDynamic, Name: "Edm.Untyped"}
)

// Object returns a complex type called name with the given properties.
func Object(name string, props map[string]*Type) *Type {
	return &Type{Kind: KindObject, Name: name, Props: props}
}

// CollectionOf returns the collection type of elem.
func CollectionOf(elem *Type) *Type {
	return &Type{Kind: KindCollection, Name: "Collection(" + elem.Name + ")", Elem: elem}
}

// Prop returns the property called name of an object type (case-sensitive).
func (t *Type) Prop(name string) (*Type, bool) {
	if t == nil || t.Kind != KindObject {
		return nil, false
	}
	p, ok := t.Props[name]
	return p, ok
}

// foldMatch returns the property whose name equals name ignoring case, for
// "did you mean" hints.
func (t *Type) foldMatch(name string) string {
	if t == nil || t.Kind != KindObject {
		return ""
	}
	for k := range t.Props {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return ""
}

// ReferralSchema returns a fresh copy of the Partner Center Referral
// resource schema (reference §2.12): every property the real service is
// documented or observed to return, with its type. It mirrors the binding
// model of the partnercenter server; values that model keeps as sent
// (additionalRequirements, offers, salesPlays, customerMarketplaceIntent,
// registrations, tags) are Dynamic.
func ReferralSchema() *Type {
	str, guid, num, boolean, dt, dyn := String, GuidString, Number, Boolean, DateTimeOffset, Dynamic
	member := func() *Type {
		return Object("Member", map[string]*Type{
			"firstName": str, "lastName": str, "phoneNumber": str, "email": str, "title": str,
			"contactPreference": Object("ContactPreference", map[string]*Type{
				"locale": str, "disableNotifications": boolean,
			}),
		})
	}
	tag := func() *Type { return Object("Tag", map[string]*Type{"id": str}) }
	link := func() *Type { return Object("Link", map[string]*Type{"uri": str, "method": str}) }
	return Object("Referral", map[string]*Type{
		"id":                        guid,
		"engagementId":              guid,
		"organizationId":            guid,
		"organizationName":          str,
		"mpnId":                     str,
		"name":                      str,
		"externalReferenceId":       str,
		"createdDateTime":           dt,
		"updatedDateTime":           dt,
		"expirationDateTime":        dt,
		"acceptedDateTime":          dt,
		"closedDateTime":            dt,
		"status":                    str,
		"substatus":                 str,
		"statusReason":              str,
		"type":                      str,
		"qualification":             str,
		"direction":                 str,
		"referralSource":            str,
		"callToAction":              str,
		"customerMarketplaceIntent": dyn,
		"eTag":                      str,
		"campaignId":                str,
		"salesStage":                str,
		"referralProgram":           str,
		"favorite":                  boolean,
		"lastModifiedVia":           str,
		"lastRunId":                 str,
		"registrationStatus":        str,
		"quality":                   str,
		"isSpam":                    boolean,
		"dealSensitivity":           str,
		"createdVia":                str,
		"customerProfile": Object("CustomerProfile", map[string]*Type{
			"name": str,
			"size": str,
			"address": Object("Address", map[string]*Type{
				"addressLine1": str, "addressLine2": str, "city": str, "state": str,
				"postalCode": str, "country": str, "region": str,
			}),
			"team": CollectionOf(member()),
			"ids": CollectionOf(Object("CustomerId", map[string]*Type{
				"profileType": str, "id": str,
			})),
			"isMatchingComplete": boolean,
		}),
		"consent": Object("Consent", map[string]*Type{
			"consentToToShareInfoWithOthers":              boolean,
			"consentToContact":                            boolean,
			"consentToShareReferralWithMicrosoftSellers":  boolean,
			"consentToMicrosoftToContactSpecificPartners": boolean,
		}),
		"details": Object("ReferralDetails", map[string]*Type{
			"notes":                    str,
			"dealValue":                num,
			"currency":                 str,
			"closingDateTime":          dt,
			"customerRequestedContact": boolean,
			"customerAction":           str,
			"incentiveLevel":           str,
			"requirements": Object("ReferralRequirements", map[string]*Type{
				"industries": CollectionOf(tag()),
				"products":   CollectionOf(tag()),
				"services":   CollectionOf(tag()),
				"solutions": CollectionOf(Object("SolutionTag", map[string]*Type{
					"id": str, "name": str, "type": str, "price": num, "quantity": num,
					"currency": str, "publisherName": str, "solutionType": str,
					"closingDateTime": dt,
				})),
				"offers":                 CollectionOf(dyn),
				"salesPlays":             CollectionOf(dyn),
				"additionalRequirements": dyn,
			}),
		}),
		"team": CollectionOf(member()),
		"inviteContext": Object("InviteContext", map[string]*Type{
			"notes": str,
			"invitedBy": Object("InvitedBy", map[string]*Type{
				"organizationId": guid, "organizationName": str,
			}),
			"assistanceRequestCode": str,
			"invitedMpnId":          str,
		}),
		"target": CollectionOf(Object("ReferralTarget", map[string]*Type{"type": str, "id": str})),
		"links": Object("ReferralLinks", map[string]*Type{
			"relatedReferrals": link(), "self": link(),
		}),
		"trackingInfo": Object("TrackingInfo", map[string]*Type{
			"microsoftMsxId": str, "microsoftUSFedOpportunityId": str, "microsoftUSFedLeadId": str,
			"migratedPSCDealId": str, "migratedPSCPartnerDealId": str,
		}),
		// The server stores registrations and tags as sent (their shape is
		// only partly documented), so their elements are open.
		"registrations": CollectionOf(dyn),
		"tags":          CollectionOf(dyn),
	})
}

// Check reports every place where doc does not fit schema t: a property
// the schema does not know, or a value of the wrong JSON type. null is
// allowed everywhere. A server can run it over the documents it stores (in
// tests) to make sure the schema the query options are checked against
// matches what it serves.
func (t *Type) Check(doc map[string]any) error {
	var problems []string
	checkValue(t, doc, "", &problems)
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("document does not match schema %s: %s", t.Name, strings.Join(problems, "; "))
}

func checkValue(t *Type, v any, path string, problems *[]string) {
	if v == nil || t.Kind == KindDynamic {
		return
	}
	bad := func(want string) {
		*problems = append(*problems, fmt.Sprintf("%s: want %s, got %T", displayPath(path), want, v))
	}
	switch t.Kind {
	case KindString, KindGuidString:
		if _, ok := v.(string); !ok {
			bad("string")
		}
	case KindNumber:
		if _, ok := toNum(v); !ok {
			bad("number")
		}
	case KindBoolean:
		if _, ok := v.(bool); !ok {
			bad("boolean")
		}
	case KindDateTimeOffset:
		s, ok := v.(string)
		if !ok {
			bad("date-time string")
		} else if _, ok := parseStoredDateTime(s); !ok {
			*problems = append(*problems, fmt.Sprintf("%s: %q is not a date-time", displayPath(path), s))
		}
	case KindObject:
		m, ok := v.(map[string]any)
		if !ok {
			bad("object")
			return
		}
		for k, cv := range m {
			p, ok := t.Props[k]
			if !ok {
				*problems = append(*problems, fmt.Sprintf("%s: property not in schema", displayPath(joinPath(path, k))))
				continue
			}
			checkValue(p, cv, joinPath(path, k), problems)
		}
	case KindCollection:
		a, ok := v.([]any)
		if !ok {
			bad("array")
			return
		}
		for i, e := range a {
			checkValue(t.Elem, e, fmt.Sprintf("%s[%d]", path, i), problems)
		}
	}
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

func displayPath(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// toNum converts a JSON-decoded number (float64, json.Number or a Go
// integer) to a num.
func toNum(v any) (num, bool) {
	switch x := v.(type) {
	case float64:
		return num{f: x}, true
	case json.Number:
		return parseNum(string(x))
	case float32:
		return num{f: float64(x)}, true
	case int:
		return num{f: float64(x), s: fmt.Sprint(x)}, true
	case int64:
		return num{f: float64(x), s: fmt.Sprint(x)}, true
	case int32:
		return num{f: float64(x), s: fmt.Sprint(x)}, true
	case uint64:
		return num{f: float64(x), s: fmt.Sprint(x)}, true
	}
	return num{}, false
}
