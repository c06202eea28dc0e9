package mapping

import (
	"slices"
	"strings"
)

// SchemaKind is the JSON type of a referral property.
type SchemaKind string

// The kinds of referral properties.
const (
	KindString   SchemaKind = "string"
	KindNumber   SchemaKind = "number"
	KindBool     SchemaKind = "bool"
	KindDateTime SchemaKind = "datetime"
	KindEnum     SchemaKind = "enum"
	KindObject   SchemaKind = "object"
	KindArray    SchemaKind = "array"
	// KindAny is a property whose shape Partner Center does not document.
	KindAny SchemaKind = "any"
)

// SchemaNode describes one property of the Partner Center Referral
// resource (reference §2.12: the documented resource tables, the connector
// specification and observed payloads).
type SchemaNode struct {
	// Name is the JSON member name as Partner Center spells it.
	Name string
	// Kind is its JSON type; Enum lists the values of an enum.
	Kind SchemaKind
	Enum []string
	// Props are an object's properties; Elem is an array's element.
	Props []*SchemaNode
	Elem  *SchemaNode
	// Server marks properties the service sets and ignores on create
	// (id, eTag, timestamps, trackingInfo, …).
	Server bool
	// Patch marks properties on Partner Center's PATCH allow-list (the
	// connector's path list plus /name): only these can change after the
	// referral exists.
	Patch bool
}

func sNode(name string, kind SchemaKind, props ...*SchemaNode) *SchemaNode {
	return &SchemaNode{Name: name, Kind: kind, Props: props}
}
func sStr(name string) *SchemaNode  { return sNode(name, KindString) }
func sNum(name string) *SchemaNode  { return sNode(name, KindNumber) }
func sBool(name string) *SchemaNode { return sNode(name, KindBool) }
func sTime(name string) *SchemaNode { return sNode(name, KindDateTime) }
func sAny(name string) *SchemaNode  { return sNode(name, KindAny) }
func sObj(name string, props ...*SchemaNode) *SchemaNode {
	return sNode(name, KindObject, props...)
}
func sEnum(name string, values ...string) *SchemaNode {
	return &SchemaNode{Name: name, Kind: KindEnum, Enum: values}
}
func sArr(name string, elem *SchemaNode) *SchemaNode {
	return &SchemaNode{Name: name, Kind: KindArray, Elem: elem}
}
func server(n *SchemaNode) *SchemaNode { n.Server = true; return n }
func patch(n *SchemaNode) *SchemaNode  { n.Patch = true; return n }

func schemaMember() *SchemaNode {
	return sObj("", sStr("firstName"), sStr("lastName"), sStr("phoneNumber"), sStr("email"), sStr("title"),
		sObj("contactPreference", sStr("locale"), sBool("disableNotifications")))
}

// The enumerations of the referral (reference §2.12).
var (
	ReferralStatuses    = []string{"None", "New", "Active", "Closed"}
	ReferralSubstatuses = []string{"None", "Pending", "Received", "Accepted", "Won", "Lost", "Declined", "Expired"}
	// AssistanceRequestCodes are inviteContext.assistanceRequestCode's
	// values; anything but Unknown means Microsoft's help is requested.
	AssistanceRequestCodes = []string{"Unknown", "GeneralOrOther", "CustomerTechnicalArchitecture",
		"ProofOfConceptOrDemo", "QuotesOrLicensing", "PostSalesCustomerSuccess", "WorkloadSpecificValueProposition"}
)

// ReferralSchema returns the Partner Center Referral resource's schema,
// built anew on every call (callers may keep it; nothing modifies it).
func ReferralSchema() *SchemaNode {
	tag := func(name string) *SchemaNode { return sArr(name, sObj("", sStr("id"))) }
	link := func(name string) *SchemaNode { return sObj(name, sStr("uri"), sStr("method")) }
	solutions := patch(sArr("solutions", sObj("",
		sStr("id"), sStr("name"), sEnum("type", "None", "Category", "Name"),
		sNum("price"), sNum("quantity"), sStr("currency"), sStr("publisherName"),
		sStr("solutionType"), sTime("closingDateTime"))))
	return sObj("",
		server(sStr("@odata.context")),
		server(sStr("id")), server(sStr("engagementId")), server(sStr("organizationId")),
		server(sStr("organizationName")), server(sStr("mpnId")),
		patch(sStr("name")), patch(sStr("externalReferenceId")),
		server(sTime("createdDateTime")), server(sTime("updatedDateTime")), server(sTime("expirationDateTime")),
		server(sTime("acceptedDateTime")), server(sTime("closedDateTime")),
		patch(sEnum("status", ReferralStatuses...)),
		patch(sEnum("substatus", ReferralSubstatuses...)),
		patch(sStr("statusReason")),
		sEnum("type", "Shared", "Independent"),
		sEnum("qualification", "None", "Direct", "MarketingQualified", "SalesQualified"),
		server(sEnum("direction", "Incoming", "Outgoing")),
		sStr("referralSource"), sStr("callToAction"),
		sObj("customerProfile",
			sStr("name"),
			sObj("address", sStr("addressLine1"), sStr("addressLine2"), sStr("city"), sStr("state"),
				sStr("postalCode"), sStr("country"), sStr("region")),
			sStr("size"),
			patch(sArr("team", schemaMember())),
			sArr("ids", sObj("", sStr("profileType"), sStr("id"))),
			sBool("isMatchingComplete"),
		),
		sObj("consent",
			sBool("consentToToShareInfoWithOthers"), sBool("consentToContact"),
			patch(sBool("consentToShareReferralWithMicrosoftSellers")),
			sBool("consentToMicrosoftToContactSpecificPartners"),
		),
		sObj("details",
			patch(sStr("notes")), patch(sNum("dealValue")), patch(sStr("currency")), patch(sTime("closingDateTime")),
			sBool("customerRequestedContact"), sStr("customerAction"), sStr("incentiveLevel"),
			sObj("requirements",
				tag("industries"), tag("products"), tag("services"), solutions,
				sArr("offers", sAny("")), sArr("salesPlays", sAny("")),
				sAny("additionalRequirements"),
			),
		),
		sAny("customerMarketplaceIntent"),
		patch(sArr("team", schemaMember())),
		sObj("inviteContext",
			sStr("notes"),
			sObj("invitedBy", sStr("organizationId"), sStr("organizationName")),
			sEnum("assistanceRequestCode", AssistanceRequestCodes...),
			sStr("invitedMpnId"),
		),
		sArr("target", sObj("", sEnum("type", "None", "BusinessProfileLocation", "SolutionProfile"), sStr("id"))),
		server(sStr("eTag")),
		server(sObj("links", link("relatedReferrals"), link("self"))),
		patch(sStr("campaignId")), patch(sStr("salesStage")), patch(sStr("referralProgram")), sBool("favorite"),
		server(sStr("lastModifiedVia")), server(sStr("lastRunId")),
		server(sObj("trackingInfo", sStr("microsoftMsxId"), sStr("microsoftUSFedOpportunityId"),
			sStr("microsoftUSFedLeadId"), sStr("migratedPSCDealId"), sStr("migratedPSCPartnerDealId"))),
		server(sArr("registrations", sAny(""))),
		server(sStr("registrationStatus")), server(sStr("quality")), server(sBool("isSpam")),
		sArr("tags", sAny("")),
		server(sStr("dealSensitivity")), server(sStr("createdVia")),
	)
}

// child finds an object's property by name, exactly and then ignoring
// case, as Partner Center binds names.
func (n *SchemaNode) child(name string) *SchemaNode {
	if n == nil || n.Kind != KindObject {
		return nil
	}
	for _, p := range n.Props {
		if p.Name == name {
			return p
		}
	}
	for _, p := range n.Props {
		if strings.EqualFold(p.Name, name) {
			return p
		}
	}
	return nil
}

// schemaLookup is what the schema says about a path.
type schemaLookup struct {
	node *SchemaNode
	// server: the path is (under) a property the service owns; patch: it
	// is (under) a property on the PATCH allow-list.
	server, patch bool
	// canonical is the path with Partner Center's spelling.
	canonical string
}

// Lookup resolves a path (as in a mapping file: dotted, "[]" walks an
// array) in the schema. It reports false, with the first segment that is
// not a property, when the referral has no such field. Anything below a
// KindAny property is accepted.
func (n *SchemaNode) lookup(p Path) (schemaLookup, string, bool) {
	cur := n
	var out schemaLookup
	names := make([]string, 0, len(p.segments))
	for _, seg := range p.segments {
		if cur.Kind == KindAny {
			names = append(names, seg.name)
			continue
		}
		next := cur.child(seg.name)
		if next == nil {
			return schemaLookup{}, seg.name, false
		}
		names = append(names, next.Name)
		out.server = out.server || next.Server
		out.patch = out.patch || next.Patch
		cur = next
		if seg.each {
			if cur.Kind != KindArray {
				return schemaLookup{}, seg.name + "[]", false
			}
			cur = cur.Elem
		}
	}
	out.node, out.canonical = cur, strings.Join(names, ".")
	return out, "", true
}

// enumHas reports whether v is one of the enum's values (ignoring case,
// as Partner Center binds enums).
func (n *SchemaNode) enumHas(v string) bool {
	return slices.ContainsFunc(n.Enum, func(e string) bool { return strings.EqualFold(e, v) })
}

// PatchPaths are the JSON Patch paths Partner Center's PATCH accepts (the
// connector's list plus /name); "/-" appends to an array.
var PatchPaths = []string{
	"/campaignId", "/consent/consentToShareReferralWithMicrosoftSellers", "/customerProfile/team", "/customerProfile/team/-",
	"/details/closingDateTime", "/details/currency", "/details/dealValue", "/details/notes",
	"/details/requirements/solutions", "/details/requirements/solutions/-", "/externalReferenceId", "/name",
	"/referralProgram", "/salesStage", "/status", "/substatus", "/statusReason", "/team", "/team/-",
}

// Transition is a referral status change Partner Center allows (reference
// §2.13): from a status to a status/substatus pair.
func allowedTransition(fromStatus, toStatus, toSubstatus string) bool {
	next := map[string][]string{"New": {"New", "Active", "Closed"}, "Active": {"Active", "Closed"}}
	subs := map[string][]string{"New": {"Pending", "Received"}, "Active": {"Accepted"}, "Closed": {"Won", "Lost", "Declined"}}
	return slices.Contains(next[fromStatus], toStatus) && slices.Contains(subs[toStatus], toSubstatus)
}
