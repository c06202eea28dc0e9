package partnercenter

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind is the JSON type a schema node binds to.
type kind int

const (
	kindString kind = iota
	kindNumber
	kindBool
	kindDateTime
	kindEnum
	kindObject
	kindArray
	kindAny // free-form: kept as sent (shape undocumented)
)

// node describes one property of the Referral resource. The real service
// deserialises into a typed .NET model: property names bind
// case-insensitively, enum names case-insensitively, unknown properties are
// dropped, and on output every declared property of a present object is
// written, null when unset. Binding through this tree reproduces that.
type node struct {
	name  string
	kind  kind
	enum  []string
	props []*node
	elem  *node
	index map[string]*node // lower-case name -> prop, built by finish
}

func str(name string) *node                  { return &node{name: name, kind: kindString} }
func num(name string) *node                  { return &node{name: name, kind: kindNumber} }
func boolean(name string) *node              { return &node{name: name, kind: kindBool} }
func dateTime(name string) *node             { return &node{name: name, kind: kindDateTime} }
func anyValue(name string) *node             { return &node{name: name, kind: kindAny} }
func enum(name string, vals ...string) *node { return &node{name: name, kind: kindEnum, enum: vals} }
func object(name string, props ...*node) *node {
	return &node{name: name, kind: kindObject, props: props}
}
func array(name string, elem *node) *node { return &node{name: name, kind: kindArray, elem: elem} }

// finish builds the case-insensitive property indexes of the whole tree.
func (n *node) finish() *node {
	if n.kind == kindObject {
		n.index = make(map[string]*node, len(n.props))
		for _, p := range n.props {
			n.index[strings.ToLower(p.name)] = p
			p.finish()
		}
	}
	if n.elem != nil {
		n.elem.finish()
	}
	return n
}

func member(name string) *node {
	return object(name,
		str("firstName"), str("lastName"), str("phoneNumber"), str("email"), str("title"),
		object("contactPreference", str("locale"), boolean("disableNotifications")),
	)
}

// referralSchema returns the typed model of a Referral. It is built per
// Server (no package-level state) and never modified after finish.
func referralSchema() *node {
	tag := func(name string) *node { return array(name, object("", str("id"))) }
	link := func(name string) *node { return object(name, str("uri"), str("method")) }
	return object("",
		str("id"), str("engagementId"), str("organizationId"), str("organizationName"), str("mpnId"),
		str("name"), str("externalReferenceId"),
		dateTime("createdDateTime"), dateTime("updatedDateTime"), dateTime("expirationDateTime"),
		dateTime("acceptedDateTime"), dateTime("closedDateTime"),
		enum("status", "None", "New", "Active", "Closed"),
		enum("substatus", "None", "Pending", "Received", "Accepted", "Won", "Lost", "Declined", "Expired"),
		str("statusReason"),
		enum("type", "Shared", "Independent"),
		enum("qualification", "None", "Direct", "MarketingQualified", "SalesQualified"),
		enum("direction", "Incoming", "Outgoing"),
		str("referralSource"), str("callToAction"),
		object("customerProfile",
			str("name"),
			object("address", str("addressLine1"), str("addressLine2"), str("city"), str("state"),
				str("postalCode"), str("country"), str("region")),
			str("size"),
			array("team", member("")),
			array("ids", object("", str("profileType"), str("id"))),
			boolean("isMatchingComplete"),
		),
		object("consent",
			boolean("consentToToShareInfoWithOthers"), boolean("consentToContact"),
			boolean("consentToShareReferralWithMicrosoftSellers"),
			boolean("consentToMicrosoftToContactSpecificPartners"),
		),
		object("details",
			str("notes"), num("dealValue"), str("currency"), dateTime("closingDateTime"),
			boolean("customerRequestedContact"), str("customerAction"), str("incentiveLevel"),
			object("requirements",
				tag("industries"), tag("products"), tag("services"),
				array("solutions", object("",
					str("id"), str("name"), enum("type", "None", "Category", "Name"),
					num("price"), num("quantity"), str("currency"), str("publisherName"),
					str("solutionType"), dateTime("closingDateTime"))),
				array("offers", anyValue("")), array("salesPlays", anyValue("")),
				anyValue("additionalRequirements"),
			),
		),
		anyValue("customerMarketplaceIntent"),
		array("team", member("")),
		object("inviteContext",
			str("notes"),
			object("invitedBy", str("organizationId"), str("organizationName")),
			enum("assistanceRequestCode", "Unknown", "GeneralOrOther", "CustomerTechnicalArchitecture",
				"ProofOfConceptOrDemo", "QuotesOrLicensing", "PostSalesCustomerSuccess",
				"WorkloadSpecificValueProposition"),
			str("invitedMpnId"),
		),
		array("target", object("", enum("type", "None", "BusinessProfileLocation", "SolutionProfile"), str("id"))),
		str("eTag"),
		object("links", link("relatedReferrals"), link("self")),
		str("campaignId"), str("salesStage"), str("referralProgram"), boolean("favorite"),
		str("lastModifiedVia"), str("lastRunId"),
		object("trackingInfo", str("microsoftMsxId"), str("microsoftUSFedOpportunityId"),
			str("microsoftUSFedLeadId"), str("migratedPSCDealId"), str("migratedPSCPartnerDealId")),
		array("registrations", anyValue("")),
		str("registrationStatus"), str("quality"), boolean("isSpam"),
		array("tags", anyValue("")),
		str("dealSensitivity"), str("createdVia"),
	).finish()
}

// bind converts a decoded JSON value into the canonical form of n: property
// names in camelCase, enum values in their declared spelling, numeric and
// boolean strings coerced, datetimes normalised to UTC. path is the dotted
// location used as the error target.
func (n *node) bind(v any, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if num, ok := v.(json.Number); ok {
		v = normalizeNumbers(num)
	}
	switch n.kind {
	case kindAny:
		return normalizeNumbers(v), nil
	case kindString:
		switch t := v.(type) {
		case string:
			return t, nil
		case float64:
			return strconv.FormatFloat(t, 'f', -1, 64), nil
		case bool:
			return strconv.FormatBool(t), nil
		}
	case kindNumber:
		switch t := v.(type) {
		case float64:
			return t, nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
			if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, nil
			}
		}
	case kindBool:
		switch t := v.(type) {
		case bool:
			return t, nil
		case string:
			if b, err := strconv.ParseBool(t); err == nil {
				return b, nil
			}
		}
	case kindDateTime:
		if s, ok := v.(string); ok {
			if t, ok := parseDateTime(s); ok {
				return formatTime(t), nil
			}
		}
	case kindEnum:
		if s, ok := v.(string); ok {
			for _, e := range n.enum {
				if strings.EqualFold(e, s) {
					return e, nil
				}
			}
			return nil, badRequest(path, "The value '%s' is not valid for %s; expected one of %s.", s, path, strings.Join(n.enum, ", "))
		}
	case kindObject:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(n.props))
			for k, val := range m {
				p := n.index[strings.ToLower(k)]
				if p == nil {
					continue // unknown properties are dropped, as a typed model does
				}
				if _, dup := out[p.name]; dup {
					// Go maps lose member order, so "last one wins" cannot
					// be reproduced; refusing is better than guessing.
					return nil, badRequest(join(path, p.name), "Property '%s' is given more than once (property names are case-insensitive).", join(path, p.name))
				}
				bv, err := p.bind(val, join(path, p.name))
				if err != nil {
					return nil, err
				}
				out[p.name] = bv
			}
			for _, p := range n.props {
				if out[p.name] != nil {
					continue
				}
				// Collections are never null on output (the service
				// returns [] for an empty list, e.g. "tags": []), which
				// also lets JSON Patch append with "/-" to a list the
				// client never set.
				if p.kind == kindArray {
					out[p.name] = []any{}
				} else {
					out[p.name] = nil
				}
			}
			return out, nil
		}
	case kindArray:
		if a, ok := v.([]any); ok {
			out := make([]any, len(a))
			for i, e := range a {
				bv, err := n.elem.bind(e, fmt.Sprintf("%s[%d]", path, i))
				if err != nil {
					return nil, err
				}
				out[i] = bv
			}
			return out, nil
		}
	}
	return nil, badRequest(path, "The value %s is not valid for %s.", describe(v), path)
}

// child returns the property named name (any case) of an object node.
func (n *node) child(name string) *node {
	if n == nil || n.index == nil {
		return nil
	}
	return n.index[strings.ToLower(name)]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 60 {
		return fmt.Sprintf("of type %T", v)
	}
	return string(b)
}

// parseDateTime accepts the forms a .NET DateTime binder accepts in
// practice: RFC 3339 with or without fractional seconds, a local-less
// date-time (taken as UTC) and a bare date.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// formatTime renders t the way the service does: UTC, "Z", up to seven
// fractional digits with trailing zeros removed (e.g.
// 2022-03-07T05:08:23.810144Z).
func formatTime(t time.Time) string {
	return t.UTC().Truncate(100 * time.Nanosecond).Format(time.RFC3339Nano)
}

// normalizeNumbers turns json.Number values (JSON Patch decodes values with
// UseNumber) into float64, the representation stored documents use
// throughout, descending into free-form objects and arrays.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return f
		}
		return string(t)
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
	}
	return v
}
