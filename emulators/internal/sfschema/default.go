package sfschema

// Options customises the default schema the way an admin customises an org.
type Options struct {
	// Stages are the StageName picklist values in sales-process order; nil
	// means DefaultStages.
	Stages []string
	// Currencies are the active CurrencyIsoCode values; the first is the
	// corporate currency and the default. Nil means DefaultCurrencies.
	Currencies []string
	// HelpValues are the How_can_Microsoft_help__c values; nil means
	// DefaultHelpValues.
	HelpValues []string
}

// Object API names of the default schema, exported so the server and tests
// refer to them without repeating string literals.
const (
	ObjOpportunity            = "Opportunity"
	ObjAccount                = "Account"
	ObjContact                = "Contact"
	ObjOpportunityContactRole = "OpportunityContactRole"
	ObjUser                   = "User"
	ObjMicrosoftSolution      = "Microsoft_Solution__c"
)

// DefaultStages returns Salesforce's ten out-of-the-box stages plus the two
// cosell needs for inbound referrals ("On Hold") and declines ("Declined").
func DefaultStages() []string {
	return []string{
		"Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
		"Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
		"Negotiation/Review", "Closed Won", "Closed Lost", "On Hold", "Declined",
	}
}

// DefaultCurrencies returns the ISO 4217 codes a multi-currency demo org has
// enabled; USD first as the corporate currency.
func DefaultCurrencies() []string {
	return []string{
		"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "CNY", "INR", "BRL",
		"MXN", "SEK", "NOK", "DKK", "NZD", "SGD", "HKD", "ZAR", "KRW", "PLN",
	}
}

// DefaultHelpValues returns the How_can_Microsoft_help__c picklist values
// from Microsoft's connector instructions.
func DefaultHelpValues() []string {
	return []string{
		"Workload specific value proposition", "Customer technical architecture",
		"Proof of concept or demo", "Quotes or licensing",
		"Post sales customer success", "General or other",
	}
}

// HelpCode maps a default How_can_Microsoft_help__c value to Partner
// Center's inviteContext.assistanceRequestCode; ok is false for values that
// have no code (an empty picklist means "Unknown").
func HelpCode(value string) (code string, ok bool) {
	switch value {
	case "Workload specific value proposition":
		return "WorkloadSpecificValueProposition", true
	case "Customer technical architecture":
		return "CustomerTechnicalArchitecture", true
	case "Proof of concept or demo":
		return "ProofOfConceptOrDemo", true
	case "Quotes or licensing":
		return "QuotesOrLicensing", true
	case "Post sales customer success":
		return "PostSalesCustomerSuccess", true
	case "General or other":
		return "GeneralOrOther", true
	}
	return "", false
}

// Default returns the emulated org's schema: Opportunity with the Microsoft
// co-sell fields, Account, Contact, OpportunityContactRole, User and the
// Microsoft_Solution__c custom object.
func Default(opts Options) *Schema {
	stages := opts.Stages
	if stages == nil {
		stages = DefaultStages()
	}
	currencies := opts.Currencies
	if currencies == nil {
		currencies = DefaultCurrencies()
	}
	help := opts.HelpValues
	if help == nil {
		help = DefaultHelpValues()
	}
	currency := func() *Field {
		f := picklist("CurrencyIsoCode", "Opportunity Currency", currencies, true)
		f.Length = 3
		f.DefaultedOnCreate = true
		if len(f.Picklist) > 0 {
			f.Picklist[0].DefaultValue = true
			f.DefaultValue = f.Picklist[0].Value
		}
		return f
	}

	opp := &Object{
		Name: ObjOpportunity, Label: "Opportunity", LabelPlural: "Opportunities", KeyPrefix: "006",
		Createable: true, Updateable: true, Deletable: true, Queryable: true,
	}
	opp.Fields = append(systemHead(),
		reference("AccountId", "Account ID", "Account", "Account", true, true),
		required(str("Name", "Name", 120)),
		textarea("Description", "Description", 32000),
		required(picklist("StageName", "Stage", stages, true)),
		number("Amount", "Amount", TypeCurrency, 18, 2),
		number("Probability", "Probability (%)", TypePercent, 3, 0),
		readOnly(number("ExpectedRevenue", "Expected Amount", TypeCurrency, 18, 2)),
		required(date("CloseDate", "Close Date")),
		picklist("Type", "Opportunity Type", []string{
			"New Customer", "Existing Customer - Upgrade",
			"Existing Customer - Replacement", "Existing Customer - Downgrade",
		}, false),
		str("NextStep", "Next Step", 255),
		picklist("LeadSource", "Lead Source", []string{
			"Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other",
		}, false),
		readOnly(boolean("IsClosed", "Closed")),
		readOnly(boolean("IsWon", "Won")),
		readOnly(picklist("ForecastCategory", "Forecast Category", []string{
			"Omitted", "Pipeline", "BestCase", "Forecast", "Closed",
		}, true)),
		defaulted(picklist("ForecastCategoryName", "Forecast Category", []string{
			"Omitted", "Pipeline", "Best Case", "Commit", "Closed",
		}, true)),
		currency(),
		createOnly(reference("ContactId", "Contact ID", "Contact", "Contact", true, false)),
		readOnly(boolean("HasOpportunityLineItem", "Has Line Item")),
		readOnly(date("LastActivityDate", "Last Activity")),
		owner(),
	)
	opp.Fields = append(opp.Fields, systemTail()...)
	opp.Fields = append(opp.Fields,
		custom(boolean("Sync_with_Partner_Center__c", "Sync with Partner Center")),
		custom(unique(externalID(str("Referral_Identifier__c", "Referral ID", 100)))),
		custom(url("Referral_Link__c", "Referral link", 255)),
		custom(picklist("How_can_Microsoft_help__c", "How can Microsoft help", help, true)),
		custom(str("Products__c", "Products", 255)),
		custom(textarea("Audit__c", "Audit", 131072)),
		custom(str("Microsoft_CRM_Identifier__c", "Microsoft CRM Identifier", 100)),
		custom(str("Decline_Reason__c", "Decline reason", 255)),
	)
	opp.ChildRelationships = []ChildRelationship{
		{RelationshipName: "OpportunityContactRoles", ChildSObject: ObjOpportunityContactRole, Field: "OpportunityId", CascadeDelete: true},
		{RelationshipName: "Microsoft_Solutions__r", ChildSObject: ObjMicrosoftSolution, Field: "Opportunity__c", CascadeDelete: true},
	}

	acct := &Object{
		Name: ObjAccount, Label: "Account", LabelPlural: "Accounts", KeyPrefix: "001",
		Createable: true, Updateable: true, Deletable: true, Queryable: true,
	}
	acct.Fields = append(systemHead(),
		required(str("Name", "Account Name", 255)),
		picklist("Type", "Account Type", []string{
			"Prospect", "Customer - Direct", "Customer - Channel",
			"Channel Partner / Reseller", "Installation Partner", "Technology Partner", "Other",
		}, false),
		reference("ParentId", "Parent Account ID", "Account", "Parent", true, true),
		textarea("BillingStreet", "Billing Street", 255),
		str("BillingCity", "Billing City", 40),
		str("BillingState", "Billing State/Province", 80),
		str("BillingPostalCode", "Billing Zip/Postal Code", 20),
		str("BillingCountry", "Billing Country", 80),
		phone("Phone", "Account Phone"),
		url("Website", "Website", 255),
		picklist("Industry", "Industry", []string{
			"Agriculture", "Banking", "Communications", "Education", "Energy",
			"Finance", "Government", "Healthcare", "Manufacturing", "Retail", "Technology", "Other",
		}, false),
		number("NumberOfEmployees", "Employees", TypeInt, 8, 0),
		textarea("Description", "Account Description", 32000),
		currency(),
		owner(),
	)
	acct.Fields = append(acct.Fields, systemTail()...)
	acct.ChildRelationships = []ChildRelationship{
		{RelationshipName: "ChildAccounts", ChildSObject: ObjAccount, Field: "ParentId"},
		{RelationshipName: "Contacts", ChildSObject: ObjContact, Field: "AccountId"},
		{RelationshipName: "Opportunities", ChildSObject: ObjOpportunity, Field: "AccountId"},
	}

	contact := &Object{
		Name: ObjContact, Label: "Contact", LabelPlural: "Contacts", KeyPrefix: "003",
		Createable: true, Updateable: true, Deletable: true, Queryable: true,
	}
	contact.Fields = append(systemHead(),
		reference("AccountId", "Account ID", "Account", "Account", true, true),
		str("FirstName", "First Name", 40),
		required(str("LastName", "Last Name", 80)),
		readOnly(str("Name", "Full Name", 121)),
		str("Title", "Title", 128),
		email("Email", "Email"),
		phone("Phone", "Business Phone"),
		phone("MobilePhone", "Mobile Phone"),
		str("MailingCountry", "Mailing Country", 80),
		currency(),
		owner(),
	)
	contact.Fields = append(contact.Fields, systemTail()...)
	contact.ChildRelationships = []ChildRelationship{
		{RelationshipName: "OpportunityContactRoles", ChildSObject: ObjOpportunityContactRole, Field: "ContactId", CascadeDelete: true},
	}

	ocr := &Object{
		Name: ObjOpportunityContactRole, Label: "Opportunity Contact Role", LabelPlural: "Opportunity Contact Roles",
		KeyPrefix: "00K", Createable: true, Updateable: true, Deletable: true, Queryable: true,
	}
	oppRef := createOnly(reference("OpportunityId", "Opportunity ID", "Opportunity", "Opportunity", false, false))
	oppRef.CascadeDelete = true
	contactRef := reference("ContactId", "Contact ID", "Contact", "Contact", false, true)
	contactRef.CascadeDelete = true
	ocr.Fields = append(systemHead(),
		oppRef,
		contactRef,
		picklist("Role", "Role", []string{
			"Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker",
			"Evaluator", "Executive Sponsor", "Influencer", "Technical Buyer", "Other",
		}, false),
		boolean("IsPrimary", "Primary"),
	)
	ocr.Fields = append(ocr.Fields, systemTail()...)

	user := &Object{
		Name: ObjUser, Label: "User", LabelPlural: "Users", KeyPrefix: "005",
		Createable: false, Updateable: false, Deletable: false, Queryable: true,
	}
	user.Fields = append([]*Field{idField()},
		readOnly(unique(str("Username", "Username", 80))),
		readOnly(str("FirstName", "First Name", 40)),
		readOnly(str("LastName", "Last Name", 80)),
		readOnly(str("Name", "Full Name", 121)),
		readOnly(email("Email", "Email")),
		readOnly(str("Alias", "Alias", 8)),
		readOnly(str("Title", "Title", 80)),
		readOnly(boolean("IsActive", "Active")),
	)
	user.Fields = append(user.Fields, systemTail()...)

	sol := &Object{
		Name: ObjMicrosoftSolution, Label: "Microsoft Solution", LabelPlural: "Microsoft Solutions",
		KeyPrefix: "a0X", Custom: true,
		Createable: true, Updateable: true, Deletable: true, Queryable: true,
	}
	solOpp := custom(createOnly(reference("Opportunity__c", "Opportunity", "Opportunity", "Opportunity__r", false, false)))
	solOpp.CascadeDelete = true
	sol.Fields = append(systemHead(),
		defaulted(str("Name", "Microsoft Solution Name", 80)),
		solOpp,
		custom(required(str("Solution_Identifier__c", "Solution ID", 100))),
		custom(str("Solution_Name__c", "Solution Name", 255)),
		custom(str("Publisher_Name__c", "Publisher Name", 255)),
	)
	sol.Fields = append(sol.Fields, systemTail()...)

	return New(opp, acct, contact, ocr, user, sol)
}

// idField is the Id every object has.
func idField() *Field {
	return &Field{
		Name: "Id", Label: "Record ID", Type: TypeID, Length: 18,
		Filterable: true, Sortable: true, IDLookup: true, DefaultedOnCreate: true,
	}
}

// systemHead returns Id and IsDeleted, the first fields of recycle-bin
// objects.
func systemHead() []*Field {
	return []*Field{idField(), readOnly(boolean("IsDeleted", "Deleted"))}
}

// systemTail returns the audit fields every object carries.
func systemTail() []*Field {
	user := func(name, label, rel string) *Field {
		f := readOnly(reference(name, label, "User", rel, false, false))
		return f
	}
	return []*Field{
		readOnly(datetime("CreatedDate", "Created Date")),
		user("CreatedById", "Created By ID", "CreatedBy"),
		readOnly(datetime("LastModifiedDate", "Last Modified Date")),
		user("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
		readOnly(datetime("SystemModstamp", "System Modstamp")),
	}
}

func owner() *Field {
	return defaulted(reference("OwnerId", "Owner ID", "User", "Owner", false, true))
}

func base(name, label string, t FieldType) *Field {
	return &Field{
		Name: name, Label: label, Type: t, Nillable: true,
		Createable: true, Updateable: true, Filterable: true, Sortable: true,
	}
}

func str(name, label string, length int) *Field {
	f := base(name, label, TypeString)
	f.Length = length
	return f
}

// textarea models both plain and long text areas; long ones (over 255
// characters) can be neither filtered nor sorted, as in Salesforce.
func textarea(name, label string, length int) *Field {
	f := base(name, label, TypeTextArea)
	f.Length = length
	if length > 255 {
		f.Filterable, f.Sortable = false, false
	}
	return f
}

func url(name, label string, length int) *Field {
	f := base(name, label, TypeURL)
	f.Length = length
	return f
}

func email(name, label string) *Field {
	f := base(name, label, TypeEmail)
	f.Length = 80
	return f
}

func phone(name, label string) *Field {
	f := base(name, label, TypePhone)
	f.Length = 40
	return f
}

func boolean(name, label string) *Field {
	f := base(name, label, TypeBoolean)
	f.Nillable = false
	f.DefaultedOnCreate = true
	f.DefaultValue = false
	return f
}

func number(name, label string, t FieldType, precision, scale int) *Field {
	f := base(name, label, t)
	f.Precision, f.Scale = precision, scale
	return f
}

func date(name, label string) *Field { return base(name, label, TypeDate) }

func datetime(name, label string) *Field { return base(name, label, TypeDateTime) }

func picklist(name, label string, values []string, restricted bool) *Field {
	f := base(name, label, TypePicklist)
	f.Length = 255
	f.RestrictedPicklist = restricted
	for _, v := range values {
		f.Picklist = append(f.Picklist, PicklistValue{Value: v, Label: v, Active: true})
	}
	return f
}

func reference(name, label, to, rel string, nillable, updateable bool) *Field {
	f := base(name, label, TypeReference)
	f.Length = 18
	f.Nillable = nillable
	f.Updateable = updateable
	f.ReferenceTo = []string{to}
	f.RelationshipName = rel
	return f
}

func required(f *Field) *Field { f.Nillable = false; return f }

func readOnly(f *Field) *Field {
	f.Createable, f.Updateable = false, false
	f.DefaultedOnCreate = true
	return f
}

func createOnly(f *Field) *Field { f.Updateable = false; return f }

func defaulted(f *Field) *Field { f.Nillable = false; f.DefaultedOnCreate = true; return f }

func custom(f *Field) *Field { f.Custom = true; return f }

func externalID(f *Field) *Field { f.ExternalID = true; f.IDLookup = true; return f }

func unique(f *Field) *Field { f.Unique = true; return f }
