// Package odata implements the subset of OData 4 system query options the
// Partner Center referral list supports (reference §2.7), checked against a
// schema of the Referral resource (§2.12) and evaluated over JSON-decoded
// documents (map[string]any; numbers as float64 or json.Number).
//
// Supported:
//
//   - $filter: eq ne gt ge lt le, and or not, parentheses, '/' paths into
//     complex properties at any depth, and the lambda operators any and all
//     over collections (team/any(t: t/email eq 'x'), any() for "not empty",
//     nested lambdas, and outer properties inside a lambda body). Two
//     property paths may be compared with each other.
//     Literals: 'single-quoted' strings (a doubled quote escapes a quote), numbers
//     (-12, 3.5, 1e3), true, false, null, unquoted DateTimeOffset
//     (2026-01-01T00:00:00Z, 2026-01-01T00:00:00.1234567+02:00; seconds
//     and fraction optional, offset required) and unquoted GUIDs.
//   - $orderby on the Sortable paths (createdDateTime, updatedDateTime by
//     default), asc/desc, several keys; ties are broken by id.
//   - $top, $skip (non-negative 32-bit integers), $count=true|false,
//     $select (comma list; nested paths into complex properties allowed,
//     paths through collections not; "*" means everything), $skiptoken
//     (accepted, left to the server).
//
// Decisions where the reference is silent (a careful client copes with
// them; the emulator must never be more forgiving than the real service):
//
//   - Property names are case-sensitive and must be the camelCase names the
//     service returns (OData identifiers are case-sensitive; all documented
//     examples use camelCase). The error for a wrong case names the right
//     property. Operators and keywords must be lower case, as in OData 4.0.
//     System query option names must be lower case with their '$';
//     '$Filter' or 'filter' is an error rather than being ignored.
//   - Types are checked when the query is parsed, as the OData reference
//     implementation does: comparing a string property with a number, a
//     DateTimeOffset property with a quoted string, a boolean with gt, or
//     using not on a non-boolean (not status eq 'New' needs parentheses)
//     is an error. Properties whose type the reference does not give are
//     open (Dynamic); comparisons on them are checked when evaluated.
//   - id, engagementId, organizationId and inviteContext/invitedBy/
//     organizationId compare with both 'quoted' strings (ordinal) and
//     unquoted GUIDs (case-insensitive as GUIDs): the docs quote them, the
//     service's own relatedReferrals link does not. GUID literals allow
//     only eq and ne.
//   - String comparison is ordinal and case-sensitive (the service's
//     store compares that way; the docs show no case folding).
//   - null: x eq null is true for null and missing properties; ordering
//     comparisons with null are false; a null boolean property counts as
//     false (and/or/not follow three-valued logic).
//   - A $filter larger than 100 nodes is rejected, as with ASP.NET OData's
//     default MaxNodeCount.
//   - Everything else fails with a *Error (code invalidRequest): functions
//     (contains, startswith, ...), arithmetic, has, in, $it/$root/$count in
//     paths, typed literals (duration'...'), Edm.Date literals, parameter
//     aliases, $expand, $search, $apply, $format and any other option.
package odata
