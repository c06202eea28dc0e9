package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/cli/internal/opsdb"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// mappingFileFlag registers --file, defaulting to MAPPING_FILE (the
// variable the mapper reads), else the embedded default.
func mappingFileFlag(e *env, fs interface {
	String(name, value, usage string) *string
}) *string {
	return fs.String("file", e.app.getenv("MAPPING_FILE"), "mapping `file` (env MAPPING_FILE; empty = the mapper's embedded default)")
}

// problem is a mapping.Problem as --json prints it.
type problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Text is the problem as one line: file:line:column: field: message.
	Text string `json:"text"`
}

func problems(ps []mapping.Problem) []problem {
	out := make([]problem, len(ps))
	for i, p := range ps {
		out[i] = problem{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Message, Text: p.String()}
	}
	return out
}

// validateResult is what mapping validate prints with --json.
type validateResult struct {
	File     string    `json:"file"`
	Valid    bool      `json:"valid"`
	Problems []problem `json:"problems"`
	// Describe says whether the file was also checked against the
	// Salesforce describe, and if not, why.
	Describe string `json:"describe"`
	Fields   int    `json:"fields,omitempty"`
}

func runMappingValidate(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "[--file F] [--describe-file D | --offline]",
		`Validates a mapping file exactly as the mapper does at start (same package), listing
every problem as file:line:column: field: message. Unless --offline, the file is
also checked against the Salesforce describe of its object, fetched from the
salesforce-adapter (GET /admin/describe/{object}) or read from --describe-file.
Exits 1 when the file has problems.`)
	file := mappingFileFlag(e, fs)
	offline := fs.Bool("offline", false, "check the file alone, not against the Salesforce describe")
	describeFile := fs.String("describe-file", "", "Salesforce describe JSON `file` to check against instead of asking the salesforce-adapter")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	res := validateResult{File: *file, Problems: []problem{}}
	if res.File == "" {
		res.File = mapping.DefaultFileName
	}
	cfg, err := mapping.LoadFile(*file)
	var verr *mapping.ValidationError
	switch {
	case errors.As(err, &verr):
		res.Problems = problems(verr.Problems)
		res.Describe = "not checked: the file itself has problems"
	case err != nil:
		return err
	default:
		res.Valid, res.Fields = true, len(cfg.Inbound.Fields)
		if *offline {
			res.Describe = "not checked (--offline)"
		} else {
			found, how, err := checkDescribe(ctx, e, cfg, *describeFile)
			if err != nil {
				return err
			}
			res.Describe = how
			res.Problems = append(res.Problems, problems(found)...)
			res.Valid = len(found) == 0
		}
	}
	if e.opts.json {
		if err := writeJSON(e.out, res); err != nil {
			return err
		}
	} else {
		for _, p := range res.Problems {
			fmt.Fprintln(e.out, p.Text)
		}
		if res.Valid {
			fmt.Fprintf(e.out, "%s: valid (%d field rules); Salesforce describe: %s\n", res.File, res.Fields, res.Describe)
		} else {
			fmt.Fprintf(e.out, "%s: %d problem(s)\n", res.File, len(res.Problems))
		}
	}
	if !res.Valid {
		return errFailed
	}
	return nil
}

// fetchDescribe reads the describe of object from a file or the
// salesforce-adapter.
func fetchDescribe(ctx context.Context, e *env, object, file string) ([]byte, string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("read describe file: %w", err)
		}
		return b, "checked against " + file, nil
	}
	b, err := e.sfAdapter().GetJSON(ctx, "/admin/describe/"+url.PathEscape(object))
	if err != nil {
		return nil, "", fmt.Errorf("fetch the Salesforce describe of %s (use --offline to check the file alone, or --describe-file): %w", object, err)
	}
	return b, "checked against the describe of " + object + " from " + e.opts.sfURL, nil
}

// dryField is one field a dry-run would send.
type dryField struct {
	Field string `json:"field"`
	// Value is exactly what the command would carry (null clears the field).
	Value any `json:"value"`
	// Lines are the mapping rules that write the field.
	Lines []int `json:"lines,omitempty"`
	// LastWritten is the value cosell last wrote, on an update.
	LastWritten json.RawMessage `json:"lastWritten,omitempty"`
	// Changed is false when the value equals what was last written.
	Changed bool `json:"changed"`
}

// dryRun is what mapping dry-run prints with --json.
type dryRun struct {
	Direction       string           `json:"direction"`
	ReferralID      string           `json:"referralId,omitempty"`
	OpportunityID   string           `json:"opportunityId,omitempty"`
	Source          string           `json:"source"`
	Event           string           `json:"event"`
	Object          string           `json:"object"`
	ExternalIDField string           `json:"externalIdField"`
	WouldSend       bool             `json:"wouldSend"`
	Why             string           `json:"why"`
	Fields          []dryField       `json:"fields"`
	Account         *mapping.Account `json:"account,omitempty"`
	Problems        []string         `json:"problems,omitempty"`
}

func runMappingDryRun(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "--referral ID | --opportunity ID [--file F] [--event create|update]",
		`Prints exactly what cosell would send for one record, field by field, with the
mapping file given (default: the mapper's), and writes nothing anywhere.

--referral: the referral is read from the partnercenter-adapter (GET
/admin/referrals/{id}), or, when that is not available, from the mapper's last
snapshot of it; the result is the Salesforce opportunity upsert. The event is
update when the referral is already linked to an opportunity, else create.`)
	file := mappingFileFlag(e, fs)
	referral := fs.String("referral", "", "Partner Center referral `id`")
	opportunity := fs.String("opportunity", "", "Salesforce opportunity `id`")
	event := fs.String("event", "", "force the `event` (create or update) instead of deciding from the link")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	if (*referral == "") == (*opportunity == "") {
		return usagef("give exactly one of --referral ID or --opportunity ID")
	}
	switch *event {
	case "", string(mapping.Create), string(mapping.Update):
	default:
		return usagef("--event %q: want create or update", *event)
	}
	cfg, err := mapping.LoadFile(*file)
	if err != nil {
		return fmt.Errorf("load the mapping: %w", err)
	}
	if *opportunity != "" {
		return dryRunOutbound(ctx, e, cfg, *opportunity)
	}
	res, err := dryRunInbound(ctx, e, cfg, *referral, mapping.Event(*event))
	if err != nil {
		return err
	}
	if e.opts.json {
		if err := writeJSON(e.out, res); err != nil {
			return err
		}
	} else if err := printDryRun(e, res); err != nil {
		return err
	}
	if len(res.Problems) > 0 {
		return errFailed
	}
	return nil
}

// outboundDryRun is what dry-run --opportunity prints with --json.
type outboundDryRun struct {
	OpportunityID string `json:"opportunityId"`
	ReferralID    string `json:"referralId,omitempty"`
	Source        string `json:"source"`
	*mapping.DryRun
}

// dryRunOutbound is the Salesforce → Partner Center dry-run: the
// opportunity as the salesforce-adapter reads it now, and, when it is
// linked, its referral as the partnercenter-adapter reads it (an update).
func dryRunOutbound(ctx context.Context, e *env, cfg *mapping.Config, opportunityID string) error {
	opp, err := e.sfAdapter().GetJSON(ctx, "/admin/opportunities/"+url.PathEscape(opportunityID))
	if err != nil {
		return fmt.Errorf("read opportunity %s: %w", opportunityID, err)
	}
	res := outboundDryRun{OpportunityID: opportunityID, Source: "Salesforce, read now by the salesforce-adapter at " + e.opts.sfURL}
	var current []byte
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	l, err := db.FindLink(ctx, opportunityID)
	switch {
	case err == nil && l.ReferralID != "":
		res.ReferralID = l.ReferralID
		body, err := e.pcAdapter().GetJSON(ctx, "/admin/referrals/"+url.PathEscape(l.ReferralID))
		if err != nil {
			return fmt.Errorf("read the linked referral %s: %w", l.ReferralID, err)
		}
		current = unwrapReferral(body)
		res.Source += "; referral read now by the partnercenter-adapter at " + e.opts.pcURL
	case err != nil && !errors.Is(err, opsdb.ErrNotFound):
		return err
	}
	dr, err := mapping.DryRunOutbound(cfg, opp, current)
	if err != nil {
		return fmt.Errorf("dry-run opportunity %s: %w", opportunityID, err)
	}
	res.DryRun = dr
	if e.opts.json {
		if err := writeJSON(e.out, res); err != nil {
			return err
		}
	} else if err := printOutbound(e, res); err != nil {
		return err
	}
	if dr.Outcome == mapping.DryRunRefused {
		return errFailed
	}
	return nil
}

func printOutbound(e *env, r outboundDryRun) error {
	if err := kv(e.out, "Direction", "Salesforce → Partner Center", "Opportunity", r.OpportunityID, "Referral", r.ReferralID,
		"Read from", r.Source, "Event", string(r.Event), "Outcome", string(r.Outcome), "Would send", r.Message); err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(e.out, "\nProblems:")
		for _, p := range r.Problems {
			fmt.Fprintf(e.out, "  %s\n", p)
		}
	}
	if len(r.Fields) > 0 {
		fmt.Fprintln(e.out, "\nReferral fields:")
		t := newTable("TARGET", "STATUS", "VALUE", "RULE", "LINE", "REASON")
		for _, f := range r.Fields {
			v := ""
			if f.Status == mapping.FieldSet {
				v = valueText(f.Value)
			}
			t.add(f.Target, string(f.Status), v, f.Rule, fmt.Sprint(f.Line), f.Reason)
		}
		if err := t.print(e.out); err != nil {
			return err
		}
	}
	if len(r.Command) > 0 {
		fmt.Fprintln(e.out, "\nPayload that would be sent:")
		return indentJSON(e.out, r.Command)
	}
	return nil
}

// referralDoc fetches the referral document and says where it came from.
// The partnercenter-adapter's live read is preferred; the mapper's stored
// snapshot is the fallback.
func referralDoc(ctx context.Context, e *env, id string, link *opsdb.Link) ([]byte, string, error) {
	body, aerr := e.pcAdapter().GetJSON(ctx, "/admin/referrals/"+url.PathEscape(id))
	if aerr == nil {
		doc := unwrapReferral(body)
		return doc, "Partner Center, read now by the partnercenter-adapter at " + e.opts.pcURL, nil
	}
	if link != nil && len(link.Snapshot) > 0 {
		var obs cosellv1.ReferralObserved
		if err := proto.Unmarshal(link.Snapshot, &obs); err != nil {
			return nil, "", fmt.Errorf("the mapper's snapshot of referral %s is not a ReferralObserved: %w", id, err)
		}
		src := "the mapper's last snapshot"
		if obs.GetUpdatedAt() != nil {
			src += " (updatedDateTime " + obs.GetUpdatedAt().AsTime().UTC().Format("2006-01-02T15:04:05.000Z") + ")"
		}
		return obs.GetReferralJson(), src + "; the partnercenter-adapter could not be asked: " + aerr.Error(), nil
	}
	return nil, "", fmt.Errorf("referral %s: the partnercenter-adapter could not be asked (%v) and the mapper has no snapshot of it", id, aerr)
}

// unwrapReferral accepts the referral document itself or an object that
// wraps it under "referral".
func unwrapReferral(body []byte) []byte {
	var wrapped struct {
		Referral json.RawMessage `json:"referral"`
	}
	if json.Unmarshal(body, &wrapped) == nil && len(wrapped.Referral) > 0 && wrapped.Referral[0] == '{' {
		return wrapped.Referral
	}
	return body
}

// dryRunInbound projects one referral as the mapper would, without sending.
func dryRunInbound(ctx context.Context, e *env, cfg *mapping.Config, id string, ev mapping.Event) (dryRun, error) {
	res := dryRun{Direction: "Partner Center → Salesforce", ReferralID: id, Object: cfg.Object, ExternalIDField: cfg.ExternalIDField, Fields: []dryField{}}
	var link *opsdb.Link
	if db, err := e.openDB(ctx); err == nil {
		l, err := db.FindLink(ctx, id)
		switch {
		case err == nil:
			link = &l
		case !errors.Is(err, opsdb.ErrNotFound):
			return res, err
		}
	}
	doc, src, err := referralDoc(ctx, e, id, link)
	if err != nil {
		return res, err
	}
	res.Source = src
	ref, err := mapping.ParseReferral(doc)
	if err != nil {
		return res, fmt.Errorf("referral %s: %w", id, err)
	}
	if ev == "" {
		ev = mapping.Create
		if link != nil && link.OpportunityID != "" {
			ev = mapping.Update
		}
	}
	res.Event = string(ev)
	if link != nil {
		res.OpportunityID = link.OpportunityID
	}
	if link == nil {
		if reason, ignored := cfg.Ignored(ref); ignored {
			res.Why = "nothing would be sent: the referral is ignored because " + reason
			return res, nil
		}
	}
	proj, err := cfg.Project(ref, ev)
	var perr *mapping.ProjectionError
	switch {
	case errors.As(err, &perr):
		for _, f := range perr.Fields {
			res.Problems = append(res.Problems, f.Error())
		}
		res.Why = "nothing would be sent: the referral cannot be mapped, the link would be parked"
		return res, nil
	case err != nil:
		return res, fmt.Errorf("map referral %s: %w", id, err)
	}
	res.Account = proj.Account
	var last map[string]json.RawMessage
	if link != nil && len(link.LastWritten) > 0 {
		var prev struct {
			Fields map[string]json.RawMessage `json:"fields"`
		}
		if json.Unmarshal(link.LastWritten, &prev) == nil {
			last = prev.Fields
		}
	}
	lines := map[string][]int{}
	for _, r := range cfg.Inbound.Fields {
		lines[r.To] = append(lines[r.To], r.Line)
	}
	names := make([]string, 0, len(proj.Fields))
	for k := range proj.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f := dryField{Field: k, Value: proj.Fields[k], Lines: lines[k], Changed: true}
		if old, ok := last[k]; ok {
			f.LastWritten = old
			nv, _ := json.Marshal(proj.Fields[k])
			f.Changed = !bytes.Equal(bytes.TrimSpace(old), nv)
		}
		res.Fields = append(res.Fields, f)
	}
	switch {
	case link != nil && link.State == "parked":
		res.Why = "nothing would be sent now: the link is parked (" + link.ParkReason + "); a replay would send this"
	case ev == mapping.Update && link != nil && proj.Within(link.LastWritten):
		res.Why = "nothing would be sent: every value is already what cosell last wrote"
	default:
		res.WouldSend = true
		res.Why = fmt.Sprintf("an upsert of %s by %s = %s", cfg.Object, cfg.ExternalIDField, id)
	}
	return res, nil
}

func printDryRun(e *env, r dryRun) error {
	pairs := []string{"Direction", r.Direction}
	if r.ReferralID != "" {
		pairs = append(pairs, "Referral", r.ReferralID)
	}
	pairs = append(pairs, "Opportunity", r.OpportunityID, "Read from", r.Source, "Event", r.Event, "Would send", r.Why)
	if err := kv(e.out, pairs...); err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(e.out, "\nProblems:")
		for _, p := range r.Problems {
			fmt.Fprintf(e.out, "  %s\n", p)
		}
		return nil
	}
	if len(r.Fields) == 0 {
		return nil
	}
	fmt.Fprintf(e.out, "\n%s fields (upsert by %s):\n", r.Object, r.ExternalIDField)
	t := newTable("FIELD", "VALUE", "LAST WRITTEN", "CHANGE", "MAPPING LINE")
	for _, f := range r.Fields {
		change := "new"
		switch {
		case f.LastWritten != nil && f.Changed:
			change = "changed"
		case f.LastWritten != nil:
			change = "same"
		}
		ls := make([]string, len(f.Lines))
		for i, l := range f.Lines {
			ls[i] = fmt.Sprint(l)
		}
		t.add(f.Field, valueText(f.Value), string(f.LastWritten), change, strings.Join(ls, ","))
	}
	if err := t.print(e.out); err != nil {
		return err
	}
	if a := r.Account; a != nil {
		fmt.Fprintln(e.out, "\nAccount (found by name and country/postal code, created when absent):")
		return kv(e.out, "  Name", a.Name, "  Country", a.Country, "  Postal code", a.PostalCode, "  City", a.City, "  State", a.State, "  Street", a.Street)
	}
	return nil
}
