package salesforce

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// Stage is one OpportunityStage row: what a StageName value implies for the
// derived Opportunity fields IsClosed, IsWon, Probability and
// ForecastCategoryName. Salesforce keeps this outside describe, so the
// emulator keeps it beside the schema.
type Stage struct {
	Name             string
	Closed           bool
	Won              bool
	Probability      float64
	ForecastCategory string // ForecastCategoryName value: Pipeline, Best Case, Commit, Closed, Omitted
}

// DefaultStages returns Salesforce's ten standard stages with their
// out-of-the-box probabilities and forecast categories, plus cosell's
// "On Hold" (open, where inbound referrals wait) and "Declined" (closed,
// lost).
func DefaultStages() []Stage {
	return []Stage{
		{Name: "Prospecting", Probability: 10, ForecastCategory: "Pipeline"},
		{Name: "Qualification", Probability: 10, ForecastCategory: "Pipeline"},
		{Name: "Needs Analysis", Probability: 20, ForecastCategory: "Pipeline"},
		{Name: "Value Proposition", Probability: 50, ForecastCategory: "Pipeline"},
		{Name: "Id. Decision Makers", Probability: 60, ForecastCategory: "Pipeline"},
		{Name: "Perception Analysis", Probability: 70, ForecastCategory: "Pipeline"},
		{Name: "Proposal/Price Quote", Probability: 75, ForecastCategory: "Pipeline"},
		{Name: "Negotiation/Review", Probability: 90, ForecastCategory: "Pipeline"},
		{Name: "Closed Won", Closed: true, Won: true, Probability: 100, ForecastCategory: "Closed"},
		{Name: "Closed Lost", Closed: true, Probability: 0, ForecastCategory: "Omitted"},
		{Name: "On Hold", Probability: 10, ForecastCategory: "Pipeline"},
		{Name: "Declined", Closed: true, Probability: 0, ForecastCategory: "Omitted"},
	}
}

// ParseStages parses the -stages flag: comma-separated entries of the form
// Name[:open|closed|won][:probability]. A name that is one of the default
// stages keeps its default metadata unless overridden; other names default
// to open with probability 10.
func ParseStages(spec string) ([]Stage, error) {
	defaults := map[string]Stage{}
	for _, st := range DefaultStages() {
		defaults[st.Name] = st
	}
	var out []Stage
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		name := strings.TrimSpace(parts[0])
		st, ok := defaults[name]
		if !ok {
			st = Stage{Name: name, Probability: 10, ForecastCategory: "Pipeline"}
		}
		if len(parts) > 1 {
			switch strings.ToLower(strings.TrimSpace(parts[1])) {
			case "open":
				st.Closed, st.Won = false, false
				if st.ForecastCategory == "Closed" || st.ForecastCategory == "Omitted" {
					st.ForecastCategory = "Pipeline"
				}
			case "closed", "lost":
				st.Closed, st.Won, st.ForecastCategory = true, false, "Omitted"
				st.Probability = 0
			case "won":
				st.Closed, st.Won, st.ForecastCategory = true, true, "Closed"
				st.Probability = 100
			default:
				return nil, fmt.Errorf("stage %q: kind must be open, closed or won", entry)
			}
		}
		if len(parts) > 2 {
			p, err := strconv.ParseFloat(strings.TrimSpace(parts[2]), 64)
			if err != nil || p < 0 || p > 100 {
				return nil, fmt.Errorf("stage %q: probability must be a number from 0 to 100", entry)
			}
			st.Probability = p
		}
		if len(parts) > 3 {
			return nil, fmt.Errorf("stage %q: want Name[:open|closed|won][:probability]", entry)
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no stages in %q", spec)
	}
	return out, nil
}

// forecastCategory maps ForecastCategoryName values to the API values of
// the read-only ForecastCategory field.
func forecastCategory(name string) string {
	switch name {
	case "Best Case":
		return "BestCase"
	case "Commit":
		return "Forecast"
	}
	return name
}

// objOpportunityStage is the read-only sObject that exposes the stage
// table, so clients can learn which stages are closed or won with
// SELECT ApiName, IsClosed, IsWon FROM OpportunityStage.
const objOpportunityStage = "OpportunityStage"

// stageObject describes OpportunityStage (key prefix 01J) with the fields
// of reference §2.4.
func stageObject() *sfschema.Object {
	field := func(name, label string, t sfschema.FieldType, length int) *sfschema.Field {
		return &sfschema.Field{Name: name, Label: label, Type: t, Length: length, Nillable: t != sfschema.TypeBoolean,
			Filterable: true, Sortable: t != sfschema.TypeTextArea, DefaultedOnCreate: true}
	}
	id := field("Id", "Opportunity Stage ID", sfschema.TypeID, 18)
	id.Nillable, id.IDLookup = false, true
	fc := field("ForecastCategory", "Forecast Category", sfschema.TypePicklist, 40)
	fcn := field("ForecastCategoryName", "Forecast Category Name", sfschema.TypePicklist, 40)
	for _, v := range []string{"Omitted", "Pipeline", "BestCase", "Forecast", "Closed"} {
		fc.Picklist = append(fc.Picklist, sfschema.PicklistValue{Value: v, Label: v, Active: true})
	}
	for _, v := range []string{"Omitted", "Pipeline", "Best Case", "Commit", "Closed"} {
		fcn.Picklist = append(fcn.Picklist, sfschema.PicklistValue{Value: v, Label: v, Active: true})
	}
	prob := field("DefaultProbability", "Probability (%)", sfschema.TypePercent, 0)
	prob.Precision = 3
	sort := field("SortOrder", "Sort Order", sfschema.TypeInt, 0)
	sort.Precision = 9
	user := func(name, label, rel string) *sfschema.Field {
		f := field(name, label, sfschema.TypeReference, 18)
		f.ReferenceTo, f.RelationshipName = []string{sfschema.ObjUser}, rel
		return f
	}
	return &sfschema.Object{
		Name: objOpportunityStage, Label: "Opportunity Stage", LabelPlural: "Opportunity Stages",
		KeyPrefix: "01J", Queryable: true,
		Fields: []*sfschema.Field{
			id,
			field("MasterLabel", "Master Label", sfschema.TypeString, 255),
			field("ApiName", "Api Name", sfschema.TypeString, 255),
			field("IsActive", "Active", sfschema.TypeBoolean, 0),
			sort,
			field("IsClosed", "Closed", sfschema.TypeBoolean, 0),
			field("IsWon", "Won", sfschema.TypeBoolean, 0),
			fc, fcn, prob,
			field("Description", "Description", sfschema.TypeString, 255),
			field("CreatedDate", "Created Date", sfschema.TypeDateTime, 0),
			user("CreatedById", "Created By ID", "CreatedBy"),
			field("LastModifiedDate", "Last Modified Date", sfschema.TypeDateTime, 0),
			user("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
			field("SystemModstamp", "System Modstamp", sfschema.TypeDateTime, 0),
		},
	}
}

// stageRecord renders stage i of the table as an OpportunityStage row.
func stageRecord(i int, st Stage) map[string]any {
	return map[string]any{
		"MasterLabel": st.Name, "ApiName": st.Name, "IsActive": true, "SortOrder": float64(i + 1),
		"IsClosed": st.Closed, "IsWon": st.Won, "ForecastCategory": forecastCategory(st.ForecastCategory),
		"ForecastCategoryName": st.ForecastCategory, "DefaultProbability": st.Probability, "Description": nil,
	}
}
