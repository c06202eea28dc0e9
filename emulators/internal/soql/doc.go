// Package soql parses and executes the subset of SOQL the Salesforce
// emulator serves on /query and /queryAll. It is a coherent slice of the
// language rather than the handful of statements cosell's adapter sends, so
// any field and any combination of the supported constructs works, and
// every construct outside the slice fails with MALFORMED_QUERY instead of a
// silently wrong answer.
//
// Supported:
//
//   - SELECT field lists with parent paths up to five lookups deep
//     (Account.Owner.Name), parent-to-child subqueries with their own WHERE,
//     ORDER BY and LIMIT (nested up to five levels), or COUNT() alone.
//   - FROM one object, with an optional alias; paths may be prefixed with the
//     alias or the object name.
//   - WHERE with = != <> < <= > >= LIKE IN NOT IN, AND/OR/NOT and
//     parentheses. As in SOQL, AND and OR cannot be mixed at one level
//     without parentheses.
//   - Literals: 'strings' with SOQL's backslash escapes, numbers, true,
//     false, null, dates (2026-01-01), datetimes (2026-01-01T00:00:00Z, with
//     milliseconds and ±hh:mm offsets), and the relative dates TODAY,
//     YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n and N_DAYS_AGO:n.
//   - ORDER BY several keys with ASC/DESC and NULLS FIRST/LAST (nulls first
//     by default, text case-insensitive), LIMIT, OFFSET up to 2000.
//
// Type rules follow Salesforce: text and id fields need quoted values,
// numbers, booleans, dates and datetimes unquoted ones; a date field takes a
// date and a datetime field a datetime (INVALID_QUERY_FILTER_OPERATOR
// "value of filter criterion for field … must be of type …"); malformed ids
// give "invalid ID field". Unknown objects and child relationships give
// INVALID_TYPE, unknown fields and parent relationships INVALID_FIELD, with
// Salesforce's wording and its "ERROR at Row:r:Column:c" position echo.
// Long text areas cannot be filtered or sorted.
//
// Evaluation: text comparisons and LIKE are case-insensitive; ids compare
// exactly in their 18-character form (15-character literals are accepted);
// a null field is unequal to every value, so != and NOT IN include it, and
// it fails every ordering comparison; an empty string literal in an
// equality test means null.
// Relative dates are whole UTC days.
// Records in the recycle bin are returned only with ExecOptions
// IncludeDeleted (queryAll), also in subqueries and parent paths.
//
// Not supported (MALFORMED_QUERY naming the construct): aggregate and
// other functions (COUNT(field), SUM, FIELDS(), toLabel, CALENDAR_YEAR, …),
// GROUP BY, HAVING, TYPEOF, WITH, USING SCOPE, FOR VIEW/REFERENCE/UPDATE,
// semi- and anti-joins (IN (SELECT …)), INCLUDES/EXCLUDES, OFFSET in
// subqueries, bind variables, and relative date literals other than those
// listed above.
//
// Known deviation: records are Go maps, so their JSON keys come out sorted
// rather than in SELECT order with "attributes" first; JSON clients do not
// depend on key order.
package soql
