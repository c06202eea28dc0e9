package salesforce

import (
	"net/http"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// soapType is the describe soapType of a field type.
func soapType(t sfschema.FieldType) string {
	switch t {
	case sfschema.TypeID, sfschema.TypeReference:
		return "tns:ID"
	case sfschema.TypeBoolean:
		return "xsd:boolean"
	case sfschema.TypeCurrency, sfschema.TypeDouble, sfschema.TypePercent:
		return "xsd:double"
	case sfschema.TypeInt:
		return "xsd:int"
	case sfschema.TypeDate:
		return "xsd:date"
	case sfschema.TypeDateTime:
		return "xsd:dateTime"
	}
	return "xsd:string"
}

func objectURLs(base string, obj *sfschema.Object) map[string]string {
	so := base + "/sobjects/" + obj.Name
	return map[string]string{
		"sobject":     so,
		"describe":    so + "/describe",
		"rowTemplate": so + "/{ID}",
	}
}

// globalEntry is an object's entry in describeGlobal (and the
// objectDescribe of sObject basic info).
func (s *Server) globalEntry(obj *sfschema.Object, base string) map[string]any {
	return map[string]any{
		"activateable": false, "createable": obj.Createable, "custom": obj.Custom,
		"customSetting": false, "deletable": obj.Deletable, "deprecatedAndHidden": false,
		"feedEnabled": false, "hasSubtypes": false, "isInterface": false, "isSubtype": false,
		"keyPrefix": obj.KeyPrefix, "label": obj.Label, "labelPlural": obj.LabelPlural,
		"layoutable": true, "mergeable": false, "mruEnabled": true, "name": obj.Name,
		"queryable": obj.Queryable, "replicateable": true, "retrieveable": true,
		"searchable": true, "triggerable": true, "undeletable": obj.Deletable,
		"updateable": obj.Updateable, "urls": objectURLs(base, obj),
	}
}

// metadataModified answers If-Modified-Since on describe: the schema is
// fixed when the server starts.
func (s *Server) metadataModified(w http.ResponseWriter, r *http.Request) bool {
	if h := r.Header.Get("If-Modified-Since"); h != "" {
		if t, err := http.ParseTime(h); err == nil && !s.started.Truncate(time.Second).After(t) {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
	}
	w.Header().Set("Last-Modified", s.started.UTC().Format(http.TimeFormat))
	return false
}

func (s *Server) handleDescribeGlobal(w http.ResponseWriter, r *http.Request) {
	if s.metadataModified(w, r) {
		return
	}
	base := basePath(r)
	objs := s.schema.Objects()
	list := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		list = append(list, s.globalEntry(o, base))
	}
	writeJSON(w, http.StatusOK, map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list})
}

func (s *Server) handleDescribe(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	if s.metadataModified(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, s.describe(obj, basePath(r)))
}

func (s *Server) describe(obj *sfschema.Object, base string) map[string]any {
	fields := make([]map[string]any, 0, len(obj.Fields))
	for _, f := range obj.Fields {
		fields = append(fields, describeField(f))
	}
	children := make([]map[string]any, 0, len(obj.ChildRelationships))
	for _, c := range obj.ChildRelationships {
		children = append(children, map[string]any{
			"cascadeDelete": c.CascadeDelete, "childSObject": c.ChildSObject,
			"deprecatedAndHidden": false, "field": c.Field, "junctionIdListNames": []string{},
			"junctionReferenceTo": []string{}, "relationshipName": c.RelationshipName,
			"restrictedDelete": false,
		})
	}
	d := s.globalEntry(obj, base)
	urls := objectURLs(base, obj)
	urls["defaultValues"] = base + "/sobjects/" + obj.Name + "/defaultValues?recordTypeId&fields"
	urls["layouts"] = base + "/sobjects/" + obj.Name + "/describe/layouts"
	urls["compactLayouts"] = base + "/sobjects/" + obj.Name + "/describe/compactLayouts"
	d["urls"] = urls
	d["fields"] = fields
	d["childRelationships"] = children
	d["recordTypeInfos"] = []map[string]any{{
		"active": true, "available": true, "defaultRecordTypeMapping": true,
		"developerName": "Master", "master": true, "name": "Master",
		"recordTypeId": "012000000000000AAA",
		"urls":         map[string]string{"layout": base + "/sobjects/" + obj.Name + "/describe/layouts/012000000000000AAA"},
	}}
	d["actionOverrides"] = []any{}
	d["namedLayoutInfos"] = []any{}
	d["supportedScopes"] = []map[string]string{{"label": "All " + obj.LabelPlural, "name": "everything"}}
	d["compactLayoutable"] = true
	d["listviewable"] = nil
	d["lookupLayoutable"] = nil
	d["searchLayoutable"] = true
	d["networkScopeFieldName"] = nil
	return d
}

func describeField(f *sfschema.Field) map[string]any {
	picklist := make([]map[string]any, 0, len(f.Picklist))
	for _, p := range f.Picklist {
		picklist = append(picklist, map[string]any{
			"active": p.Active, "defaultValue": p.DefaultValue, "label": p.Label,
			"validFor": nil, "value": p.Value,
		})
	}
	refTo := f.ReferenceTo
	if refTo == nil {
		refTo = []string{}
	}
	var rel any
	if f.RelationshipName != "" {
		rel = f.RelationshipName
	}
	digits := 0
	if f.Type == sfschema.TypeInt {
		digits = f.Precision
	}
	byteLength := f.Length * 3
	if f.Type == sfschema.TypeID || f.Type == sfschema.TypeReference {
		byteLength = 18
	}
	length := f.Length
	if !f.Type.IsText() {
		length = 0
	}
	precision, scale := 0, 0
	if f.Type == sfschema.TypeCurrency || f.Type == sfschema.TypeDouble || f.Type == sfschema.TypePercent {
		precision, scale = f.Precision, f.Scale
	}
	return map[string]any{
		"aggregatable": f.Sortable, "aiPredictionField": false, "autoNumber": false,
		"byteLength": byteLength, "calculated": f.Calculated, "calculatedFormula": nil,
		"cascadeDelete": f.CascadeDelete, "caseSensitive": false, "compoundFieldName": nil,
		"controllerName": nil, "createable": f.Createable, "custom": f.Custom,
		"defaultValue": f.DefaultValue, "defaultValueFormula": nil,
		"defaultedOnCreate": f.DefaultedOnCreate, "dependentPicklist": false,
		"deprecatedAndHidden": false, "digits": digits, "displayLocationInDecimal": false,
		"encrypted": false, "externalId": f.ExternalID, "extraTypeInfo": nil,
		"filterable": f.Filterable, "filteredLookupInfo": nil, "groupable": f.Sortable,
		"highScaleNumber": false, "htmlFormatted": false, "idLookup": f.IDLookup,
		"inlineHelpText": nil, "label": f.Label, "length": length, "mask": nil,
		"maskType": nil, "name": f.Name, "nameField": f.Name == "Name",
		"namePointing": false, "nillable": f.Nillable, "permissionable": f.Custom || f.Nillable,
		"picklistValues": picklist, "polymorphicForeignKey": len(f.ReferenceTo) > 1,
		"precision": precision, "queryByDistance": false, "referenceTargetField": nil,
		"referenceTo": refTo, "relationshipName": rel, "relationshipOrder": nil,
		"restrictedDelete": false, "restrictedPicklist": f.RestrictedPicklist,
		"scale": scale, "searchPrefilterable": false, "soapType": soapType(f.Type),
		"sortable": f.Sortable, "type": string(f.Type), "unique": f.Unique,
		"updateable": f.Updateable, "writeRequiresMasterRead": false,
	}
}
